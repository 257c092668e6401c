"""Operations end to end: metrics that equal what happened, the admin command line, logs
without secrets, and a real Prometheus server seeing the delivery alert fire and resolve."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from article6.pki import rotate_signing_key
from article6.v1 import admin_pb2
from demo.network import HUB, Network, free_port
from tests.e2e.helpers import accounts, final, make_network, transfer, wait_for

ALERTS = Path(__file__).resolve().parents[2] / "ops" / "prometheus" / "alerts.yml"


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and labels.items() <= dict(sample_labels).items()
    )


def drained(network: Network) -> bool:
    return total(network.scrape(HUB), "a6_outbox_messages") == 0


def test_metrics_equal_what_happened(network: Network) -> None:
    gha, che = accounts(network)  # an authorization, and ITMOs issued under it
    done = transfer(network, gha, che, "1-100")
    refused = transfer(network, gha, "CHE01-9999-02", "101-200")
    assert final(network, "GHA01", done) == ("completed", [])
    assert final(network, "GHA01", refused)[0] == "terminated"
    wait_for(lambda: drained(network), what="the hub's outbox to drain")
    hub = network.scrape(HUB)
    with network.admin() as admin:
        recorded = admin.ListTransactions(admin_pb2.ListTransactionsRequest(), timeout=10)
    statuses = [int(s.status) for s in recorded.transactions]
    assert total(hub, "a6_transactions", status="completed") == statuses.count(4) == 3
    assert total(hub, "a6_transactions", status="rejected") == statuses.count(6) == 1
    assert total(hub, "a6_transaction_duration_seconds_count") == 4
    assert total(hub, "a6_transaction_duration_seconds_count", type="issuance") == 1
    # The registries send everything through Hub.SubmitBatch, a lone proposal as a batch of
    # one (PROTOCOL section 9), so no unary ProposeTransaction came.
    assert total(hub, "a6_rpc_requests_total", method="ProposeTransaction") == 0
    assert total(hub, "a6_rpc_requests_total", method="SubmitBatch", code="OK") >= 2
    assert total(hub, "a6_outbox_messages") == 0
    assert total(hub, "a6_outbox_dead_letters") == 0
    # Two acquisition requests to CHE01, then the final notices: of the authorization and
    # the issuance to GHA01 only, of each transfer to GHA01 and CHE01.
    assert total(hub, "a6_delivery_attempts_total") == 2 + 1 + 1 + 2 + 2
    gha01 = network.scrape("GHA01")
    assert total(gha01, "a6_transactions", status="completed") == 3
    assert total(gha01, "a6_transactions", status="terminated") == 1
    # Four notices reached GHA01: one call each, or fewer when the hub batched them.
    calls = sum(
        total(gha01, "a6_rpc_requests_total", method=method, code="OK")
        for method in ("Deliver", "DeliverBatch")
    )
    assert 1 <= calls <= 4


def admin_cli(network: Network, *args: str) -> str:
    done = network.admin_cli(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_admin_command_line_shows_and_acts(network: Network) -> None:
    gha, che = accounts(network)
    assert "GHA01-1" in admin_cli(network, "transactions")
    history = admin_cli(network, "transaction", "GHA01-1")
    assert "1 proposed" in history
    assert "4 completed" in history
    listed = json.loads(admin_cli(network, "registries", "--json"))["registries"]
    assert [r["registry_id"] for r in listed] == ["CHE01", "GHA01"]
    assert "CHE01 is now suspended" in admin_cli(network, "suspend", "CHE01", "--reason", "test")
    refused = transfer(network, gha, che, "1-10")
    assert final(network, "GHA01", refused) == ("terminated", [4015])
    # A suspended registry's own messages are refused (1040), and both logs name peer and code.
    network.registry_cli(
        "CHE01", "authorize", "--authorization-id", "CHE-X", "--ca", "CA0001",
        "--purpose", "ndc", "--definition", "authorization", "--vintages", "2021",
    )  # fmt: skip
    logs = network.logs
    wait_for(lambda: "refused a message from CHE01: 1040 REGISTRY_SUSPENDED" in
             (logs / "hub.log").read_text(), what="the hub's log line")  # fmt: skip
    wait_for(lambda: "HUB refused a message of ours: 1040 REGISTRY_SUSPENDED" in
             (logs / "che01.log").read_text(), what="CHE01's log line")  # fmt: skip
    assert "CHE01 is now active" in admin_cli(network, "resume", "CHE01", "--reason", "test")
    holdings = json.loads(admin_cli(network, "holdings", "--registry", "GHA01", "--json"))
    assert holdings["blocks"][0]["block"]["serial_last"] == "1000000"
    assert admin_cli(network, "outbox", "--dead").strip() == "(none)"
    trail = hub_cli(network, "audit", "--subject", "CHE01", "--json").splitlines()
    actions = [(entry["actor"], entry["action"]) for entry in map(json.loads, trail)]
    assert actions == [("OPERATOR", "registry.suspended"), ("OPERATOR", "registry.resumed")]
    verdict = hub_cli(network, "audit-verify")
    assert verdict.startswith("audit trail intact:"), verdict
    remote = admin_cli(network, "audit-verify")  # the hub's own check, over the admin port
    assert remote.split(";")[1] == verdict.split(";")[1], (remote, verdict)  # the same head
    assert "registry.resumed" in admin_cli(network, "audit", "--subject", "CHE01")


def test_a_registry_pointed_at_the_wrong_hub_endpoint_says_so_at_start(network: Network) -> None:
    network.stop("CHE01")
    config = network.config("CHE01")
    wrong = network.components["GHA01"].endpoint  # a registry, not the hub: TLS names differ
    config.write_text(re.sub(r'^hub_endpoint = ".*"$', f'hub_endpoint = "{wrong}"',
                             config.read_text(), flags=re.MULTILINE))  # fmt: skip
    network.start("CHE01")
    line = f"the hub HUB at {wrong} does not answer (UNAVAILABLE"
    wait_for(lambda: line in (network.logs / "che01.log").read_text(), what="the warning")
    assert "does not answer" not in (network.logs / "gha01.log").read_text()


def hub_cli(network: Network, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", args[0], "--config", str(network.folder / "hub.toml"),
         *args[1:]], capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout


def secrets_of(pki: Path) -> list[str]:
    """Every private key under ``pki``: PEM body lines, and signing seeds in hex."""
    found = []
    for path in pki.rglob("*.key"):
        pem = path.read_bytes()
        found += [line for line in pem.decode().splitlines() if len(line) >= 24 and "-" not in line]
        if path.name == "signing.key":
            private = serialization.load_pem_private_key(pem, password=None)
            assert isinstance(private, Ed25519PrivateKey)
            seed = private.private_bytes_raw()
            found += [seed.hex(), seed.hex().upper()]
    return found


def test_no_log_line_holds_private_key_material(network: Network) -> None:
    gha, che = accounts(network)
    assert final(network, "GHA01", transfer(network, gha, che, "1-10")) == ("completed", [])
    network.stop_all()
    logs = "\n".join(path.read_text() for path in network.logs.glob("*.log"))
    assert "GHA01-2" in logs  # the logs do say what happened
    secrets = secrets_of(network.pki)
    assert len(secrets) > 10
    assert [secret for secret in secrets if secret in logs] == []
    for line in logs.splitlines():
        if line.startswith("{"):
            assert "PRIVATE KEY" not in line
            json.loads(line)  # every log line is one JSON object


def tool(name: str) -> str:
    """A Prometheus binary: required in CI (which installs it), skipped elsewhere if absent."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI (Debian package prometheus)")
        pytest.skip(f"{name} is not installed (Debian package prometheus)")
    return path


def test_promtool_accepts_the_alert_rules() -> None:
    done = subprocess.run(
        [tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True,
        check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


@pytest.fixture
def prometheus_network(tmp_path: Path) -> Iterator[Network]:
    yield from make_network(
        tmp_path / "network",
        acceptance_timeout_seconds=300.0,
        delivery={"max_attempts": 100, "backoff_initial_seconds": 0.1, "backoff_max_seconds": 0.5},
    )


def start_prometheus(folder: Path, network: Network) -> tuple[subprocess.Popen[bytes], str]:
    """A real Prometheus on loopback scraping every process each second, with the project's
    alert rules evaluated each second and their `for:` shortened to 2 s for the test."""
    folder.mkdir(parents=True, exist_ok=True)
    rules = re.sub(r"\bfor: \w+", "for: 2s", ALERTS.read_text())
    (folder / "alerts.yml").write_text(rules)
    registries = ", ".join(f'"{network.metrics[r]}"' for r in network.registries)
    (folder / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "rule_files: [alerts.yml]\nscrape_configs:\n"
        f'  - job_name: a6-hub\n    static_configs: [{{targets: ["{network.metrics[HUB]}"]}}]\n'
        f"  - job_name: a6-registry\n    static_configs: [{{targets: [{registries}]}}]\n"
    )
    address = f"127.0.0.1:{free_port()}"
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [tool("prometheus"), f"--config.file={folder / 'prometheus.yml'}",
         f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address={address}"],
        stdout=log, stderr=log, cwd=folder,
    )  # fmt: skip
    log.close()
    return process, f"http://{address}"


def firing(prometheus: str, alert: str, **labels: str) -> bool:
    with urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=5) as response:  # noqa: S310
        alerts = json.load(response)["data"]["alerts"]
    return any(
        a["labels"]["alertname"] == alert
        and a["state"] == "firing"
        and labels.items() <= a["labels"].items()
        for a in alerts
    )


def test_prometheus_fires_the_delivery_alert_and_resolves_it(
    prometheus_network: Network, tmp_path: Path
) -> None:
    network = prometheus_network
    process, prometheus = start_prometheus(tmp_path / "prometheus", network)
    try:
        wait_for(lambda: _ready(prometheus), timeout=60, what="Prometheus to be ready")
        gha, che = accounts(network)
        network.stop("CHE01")
        pending = transfer(network, gha, che, "1-100")
        wait_for(lambda: firing(prometheus, "A6DeliveryFailing", job="a6-hub", registry="CHE01"),
                 timeout=90, what="A6DeliveryFailing to fire")  # fmt: skip
        assert firing(prometheus, "A6ProcessDown", job="a6-registry")
        wait_for(lambda: firing(prometheus, "A6PeerNotAnswering", registry="CHE01"),
                 timeout=60, what="A6PeerNotAnswering to fire")  # fmt: skip
        network.start("CHE01")
        assert final(network, "GHA01", pending) == ("completed", [])
        wait_for(lambda: not firing(prometheus, "A6DeliveryFailing"), timeout=90,
                 what="A6DeliveryFailing to resolve")  # fmt: skip
    finally:
        process.terminate()
        process.wait(timeout=30)


def _ready(prometheus: str) -> bool:
    try:
        with urllib.request.urlopen(f"{prometheus}/-/ready", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


def test_a_rotated_key_reaches_the_running_hub_on_sighup(network: Network) -> None:
    gha, che = accounts(network)
    old, new = rotate_signing_key(network.pki, "GHA01", overlap=timedelta(0))
    network.stop("GHA01")  # it restarts signing with its new key
    network.start("GHA01")
    refused = transfer(network, gha, che, "1-10")  # the hub still knows only the old key
    wait_for(lambda: total(network.scrape(HUB), "a6_message_refusals_total", reason="key_unknown")
             > 0, what="the hub to refuse the unknown key")  # fmt: skip
    hub = network.components[HUB].process
    assert hub is not None
    hub.send_signal(signal.SIGHUP)
    assert final(network, "GHA01", refused) == ("completed", [])  # the retry now verifies
    assert old != new
