"""The Party-section portal served by the international registry's own process, walked over
real HTTP by the demo's people, its e-mails through a real local SMTP server."""

from __future__ import annotations

import urllib.request
from functools import partial
from pathlib import Path

import grpc
import pytest

from article6.v1 import international_registry_pb2 as ir_pb2
from demo.mailbox import LocalSmtp
from demo.network import INTERNATIONAL, OPERATOR, Network
from demo.portal import ADMINISTRATORS, Browser, run_portal_scenario, sign_in
from tests.e2e.test_international_registry import admin as ir_admin


def test_the_portal_walks_the_opening_procedure_in_the_registry_process(tmp_path: Path) -> None:
    network = Network(tmp_path, registries=(INTERNATIONAL,))
    with network.running(), LocalSmtp(tmp_path / "mail", network.smtp_port) as smtp:
        request_id = run_portal_scenario(network, smtp)
        admin = Browser(network.portal_url)
        sign_in(admin, smtp, ADMINISTRATORS[1][1])
        page = admin.get(f"/requests/{request_id}")
        assert page.status == 200
        assert "nomination.pdf" in page.text
        assert "Still needed" not in page.text
        with urllib.request.urlopen(network.portal_url + "/sign-in", timeout=10) as reply:  # noqa: S310
            headers = reply.headers
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        cookie = headers["Set-Cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        stored = list((tmp_path / "portal-documents" / "KEN" / request_id).iterdir())
        assert len(stored) == 3  # two supporting documents, and the letter
        # The secretariat's steps from the command line: the same rules and e-mails.
        form = admin.get("/accounts/new")
        admin.post("/accounts/new", {
            "csrf": form.csrf(), "account_type": "holding", "holder": "Rift Geothermal Ltd",
            "representative_name": "Juma Ali", "representative_email": "juma@rift.example",
        })  # fmt: skip
        ir = partial(network.registry_cli, INTERNATIONAL)
        assert "ACR-0002  KEN  requested" in ir("account-requests")
        opened = ir("decide-account", "ACR-0002", "--approve")
        assert opened.startswith("ACR-0002: account UNIR-")
        assert "Account request ACR-0002 approved" in smtp.wait_for("juma@rift.example",
                                                                    "ACR-0002").subject  # fmt: skip
        said = ir("verify-identity", "juma@rift.example")
        assert "is verified" in said
        refused = network.registry_cli(INTERNATIONAL, "verify-identity", "juma@rift.example",
                                       check=False)  # fmt: skip
        assert refused == ""
        # And from the secretariat's admin service.
        with ir_admin(network, OPERATOR) as stub:
            stub.PutFocalPoint(ir_pb2.PutFocalPointRequest(focal_point=ir_pb2.FocalPoint(
                party="TZA", email="nfp@tza.example", name="Neema Mushi")), timeout=10)  # fmt: skip
            listed = stub.ListFocalPoints(ir_pb2.ListFocalPointsRequest(party="TZA"), timeout=10)
            assert [(p.email, p.kind) for p in listed.focal_points] == [
                ("nfp@tza.example", "national")
            ]
            asked = stub.ListAccountRequests(ir_pb2.ListAccountRequestsRequest(), timeout=10)
            assert [(r.request_id, r.status) for r in asked.account_requests] == [
                ("ACR-0001", "approved"), ("ACR-0002", "approved")
            ]  # fmt: skip
            with pytest.raises(grpc.RpcError) as nobody:
                stub.VerifyIdentity(ir_pb2.VerifyIdentityRequest(email="juma@rift.example"),
                                    timeout=10)  # fmt: skip
            assert nobody.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            with pytest.raises(grpc.RpcError) as bad:
                stub.PutFocalPoint(ir_pb2.PutFocalPointRequest(focal_point=ir_pb2.FocalPoint(
                    party="TZA", email="not an address", name="x")), timeout=10)  # fmt: skip
            assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        letter = tmp_path / f"KEN-{request_id}-Letter-of-Acknowledgement.pdf"
        assert letter.read_bytes().startswith(b"%PDF-")
        assert ">verified<" in page.text  # the section, once every identity is verified
