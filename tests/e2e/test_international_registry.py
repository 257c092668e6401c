"""The international registry with its ARS, end to end through the hub."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest

from article6.aef.check import check_workbook
from article6.codes import Code
from article6.pki import RegistryFiles
from article6.status import refusal_from_error
from article6.tls import TlsMaterial, channel_credentials, channel_options
from article6.v1 import international_registry_pb2 as ir_pb2
from article6.v1 import international_registry_pb2_grpc as ir_grpc
from article6.v1 import transaction_pb2, units_pb2
from demo.network import INTERNATIONAL, OPERATOR, Network
from tests.e2e.helpers import assert_ledgers_agree, final, local_holdings

IR = INTERNATIONAL
T = transaction_pb2


@pytest.fixture
def ir_network(tmp_path: Path) -> Iterator[Network]:
    with Network(tmp_path, registries=("CHE01", IR)).running() as network:
        yield network


def section(network: Network, party: str) -> dict[str, str]:
    """Open and verify ``party``'s section; its ARS, holding and NDC-use accounts."""
    ir = partial(network.registry_cli, IR)
    request = ir("request-section", "--party", party, "--submitted-by", f"{party} NFP",
                 "--administrator", "PSA")  # fmt: skip
    ir("validate-request", request)
    ir("open-section", request)
    ir("verify-section", party)
    return {
        "ars": ir("open-account", "--party", party, "--ars"),
        "holding": ir("open-account", "--party", party, "--ca", "CA0001"),
        "ndc": ir("open-account", "--party", party, "--type", "ndc-use", "--ca", "CA0001"),
    }


def test_every_ir_action_and_article6_refusal_through_the_hub(ir_network: Network) -> None:
    network = ir_network
    ir = partial(network.registry_cli, IR)
    sgp, ken = section(network, "SGP"), section(network, "KEN")
    che = network.registry_cli("CHE01", "open-account", "--ca", "CA0001")

    def done(transaction_id: str) -> tuple[str, list[int]]:
        return final(network, IR, transaction_id)

    def issue(serials: str, vintage: str = "2024") -> str:
        return ir("issue", "--account", sgp["ars"], "--kind", "mitigation-outcome",
                  "--vintage", vintage, "--serials", serials)  # fmt: skip

    def authorize(serials: str, authorization_id: str) -> str:
        return ir("authorize", "--from", sgp["ars"], "--serials", serials, "--authorization-id",
                  authorization_id, "--ca", "CA0001", "--cap", "600", "--vintages", "2021-2025",
                  "--party", "SGP")  # fmt: skip

    def first_transfer(source: str, serials: str, target: str, party: str = "SGP") -> str:
        return ir("first-transfer", "--from", source, "--serials", serials, "--to-registry", IR,
                  "--to", target, "--party", party)  # fmt: skip

    assert done(issue("1-1000")) == ("completed", [])
    assert done(issue("2001-2100")) == ("completed", [])
    assert done(issue("3001-3100", vintage="2030")) == ("completed", [])
    assert done(authorize("1-1000", "SGP-A1")) == ("completed", [])
    assert done(authorize("3001-3100", "SGP-A2")) == (
        "terminated", [Code.VINTAGE_OUTSIDE_AUTHORIZATION.value],
    )  # fmt: skip
    assert done(first_transfer(sgp["ars"], "2001-2010", ken["holding"])) == (
        "terminated", [Code.UNITS_NOT_AUTHORIZED.value],
    )  # fmt: skip
    assert done(first_transfer(sgp["ars"], "1-700", ken["holding"])) == (
        "terminated", [Code.AUTHORIZATION_CAP_EXCEEDED.value],
    )  # fmt: skip
    with pytest.raises(RuntimeError, match=str(Code.FIRST_TRANSFER_TRIGGER_INVALID.value)):
        first_transfer(sgp["ars"], "1-100", sgp["holding"])  # own section: not international
    assert done(first_transfer(sgp["ars"], "1-100", ken["holding"])) == ("completed", [])
    # ITMOs are held in IR accounts, and first transfers leave from the ARS (4014, locally).
    with pytest.raises(RuntimeError, match=str(Code.ACCOUNT_TYPE_NOT_ALLOWED.value)):
        first_transfer(ken["holding"], "1-10", sgp["holding"], party="KEN")
    # A section acts for its own Party only (5024, locally).
    with pytest.raises(RuntimeError, match=str(Code.PARTY_NOT_OF_REGISTRY.value)):
        first_transfer(sgp["ars"], "101-110", ken["holding"], party="KEN")
    moved = ir("transfer", "--from", ken["holding"], "--to-registry", IR, "--to", sgp["holding"],
               "--serials", "1-60")  # fmt: skip
    assert done(moved) == ("completed", [])
    used = ir("use", "--from", sgp["holding"], "--to", sgp["ndc"], "--serials", "1-10",
              "--party", "SGP", "--year", "2030")  # fmt: skip
    assert done(used) == ("completed", [])
    assert done(ir("cancel", "--from", sgp["holding"], "--serials", "11-20")) == ("completed", [])
    voluntary = ir("cancel", "--from", sgp["holding"], "--serials", "21-30", "--voluntary",
                   "--party", "SGP", "--purpose", "oimp")  # fmt: skip
    assert done(voluntary) == ("completed", [])
    out = ir("transfer", "--from", sgp["holding"], "--to-registry", "CHE01", "--to", che,
             "--serials", "31-40")  # fmt: skip
    assert done(out) == ("completed", [])
    assert_ledgers_agree(network)
    blocks = {(row[0], row[2], row[3]): row[4] for row in local_holdings(network, IR)}
    assert blocks[sgp["ndc"], 1, 10] == 2  # used
    # Cancelled and voluntarily cancelled units touch and are alike: one canonical block.
    assert blocks[sgp["holding"], 11, 30] == 3
    assert blocks[ken["holding"], 61, 100] == 1  # still held by KEN


def test_the_secretariat_operates_through_the_admin_service(ir_network: Network) -> None:
    network = ir_network
    with admin(network, OPERATOR) as secretariat:
        request = secretariat.SubmitSectionRequest(ir_pb2.SubmitSectionRequestRequest(
            party="SGP", submitted_by="SGP NFP", focal_point="national",
            administrators=["PSA 1"], documents=["nomination letter"],
        )).request_id  # fmt: skip
        with pytest.raises(grpc.RpcError) as error:
            secretariat.OpenSection(ir_pb2.OpenSectionRequest(request_id=request))
        assert error.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        decided = secretariat.DecideSectionRequest(
            ir_pb2.DecideSectionRequestRequest(request_id=request, valid=True)
        )
        assert decided.status == "validated"
        opened = secretariat.OpenSection(ir_pb2.OpenSectionRequest(request_id=request))
        assert (opened.party, opened.status) == ("SGP", "provisional")
        ars = secretariat.OpenAccount(ir_pb2.OpenAccountRequest(party="SGP", ars=True)).account_id
        outcomes = units_pb2.UnitBlock(
            serial_first=1, serial_last=500, originating_registry=IR, vintage=2024,
            unit_kind=units_pb2.UNIT_KIND_MITIGATION_OUTCOME, state=units_pb2.UNIT_STATE_HELD,
        )  # fmt: skip
        issued = secretariat.ProposeAction(ir_pb2.ProposeActionRequest(
            type=T.TRANSACTION_TYPE_ISSUANCE, acquiring_account=ars, issued=[outcomes],
        )).transaction_id  # fmt: skip
        assert final(network, IR, issued) == ("completed", [])
        grant = T.Authorization(
            authorization_id="SGP-A1", authorizing_party="SGP", cooperative_approach="CA0001",
            purpose=units_pb2.PURPOSE_NDC, vintage_first=2021, vintage_last=2030,
        )  # fmt: skip
        authorize = ir_pb2.ProposeActionRequest(
            type=T.TRANSACTION_TYPE_AUTHORIZATION, transferring_account=ars,
            ranges=[ir_pb2.SerialRange(serial_first=1, serial_last=500)], authorization=grant,
        )  # fmt: skip
        with pytest.raises(grpc.RpcError) as error:
            secretariat.ProposeAction(authorize)  # still provisional
        assert refusal_from_error(error.value).code is Code.SECTION_PROVISIONAL  # type: ignore[union-attr]
        verified = secretariat.VerifySection(ir_pb2.VerifySectionRequest(party="SGP"))
        assert verified.status == "verified"
        authorized = secretariat.ProposeAction(authorize).transaction_id
        assert final(network, IR, authorized) == ("completed", [])

        def table(name: str) -> list[dict[str, Any]]:
            request = ir_pb2.ExportAefRequest(party="SGP", table=name, format="json")
            return list(json.loads(secretariat.ExportAef(request).content))

        [granted] = table("authorizations")  # Table 2, not an action row
        assert (granted["authorization_id"], granted["purposes"], granted["version"]) == (
            "SGP-A1", "NDC", 1
        )  # fmt: skip
        assert table("actions") == []
        assert table("holdings") == []  # authorized outcomes are ITMOs only once first transferred
        csv_text = secretariat.ExportAef(ir_pb2.ExportAefRequest(party="SGP")).content
        assert csv_text.splitlines()[0].startswith("Action date,Action type,")
        workbook = network.folder / "SGP-AEF.xlsx"
        workbook.write_bytes(
            secretariat.ExportAef(ir_pb2.ExportAefRequest(party="SGP", format="xlsx")).workbook
        )
        assert check_workbook(workbook) == []
    with admin(network, "CHE01") as stranger, pytest.raises(grpc.RpcError) as error:
        stranger.ExportAef(ir_pb2.ExportAefRequest(party="SGP"))
    assert error.value.code() is grpc.StatusCode.PERMISSION_DENIED


@contextlib.contextmanager
def admin(
    network: Network, identity: str
) -> Iterator[ir_grpc.InternationalRegistryAdminServiceStub]:
    tls = TlsMaterial.load(RegistryFiles(network.pki, identity))
    credentials = channel_credentials(tls)
    options = channel_options(IR)
    with grpc.secure_channel(network.ir_admin_endpoint, credentials, options=options) as channel:
        yield ir_grpc.InternationalRegistryAdminServiceStub(channel)
