"""The dashboard and alert rules name only metrics the code exports; logs leak no secrets."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from article6.keys import SigningKey
from article6.logs import JsonFormatter
from article6.node import store
from article6.node.metrics import RegistryMetrics
from article6.pki import RegistryFiles, init_pki
from article6.tls import TlsMaterial
from gateway.metrics import HubMetrics
from gateway.storage.database import Database
from mechanism_registry_adapter import book
from mechanism_registry_adapter.metrics import InstructionCollector

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "article6-gateway.json"
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}


def exported_names(tmp_path: Path) -> set[str]:
    """Every sample name the hub and the reference registry can export."""
    names: set[str] = set()
    hub_registry, registry_registry = CollectorRegistry(), CollectorRegistry()
    database = Database(f"sqlite:///{tmp_path / 'hub.db'}")
    database.migrate()
    HubMetrics(hub_registry, database)
    engine = store.open_database(f"sqlite:///{tmp_path / 'registry.db'}", book.metadata)
    RegistryMetrics(registry_registry, engine, "HUB")
    registry_registry.register(InstructionCollector(engine))  # the mechanism adapter's own
    for registry in (hub_registry, registry_registry):
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    database.close()
    engine.dispose()
    return names


def metric_names(expression: str) -> set[str]:
    return set(re.findall(r"\ba6_[a-z0-9_]+", expression))


def test_every_dashboard_query_names_an_exported_metric(tmp_path: Path) -> None:
    exported = exported_names(tmp_path)
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert len(expressions) >= 15
    used = set().union(*(metric_names(expression) for expression in expressions))
    assert used - exported == set()
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert rows == ["Processes", "RPCs (rate, errors, duration)", "Transactions", "Outbox",
                    "Delivery", "Reconciliation", "Security", "Article 6.4 mechanism"]  # fmt: skip


def test_every_alert_names_an_exported_metric_and_has_a_runbook(tmp_path: Path) -> None:
    exported = exported_names(tmp_path)
    text = ALERTS.read_text()
    assert metric_names(text) - exported == set()
    operations = (ROOT / "docs" / "OPERATIONS.md").read_text()
    for alert in re.findall(r"- alert: (\w+)", text):
        assert f"### {alert}\n" in operations
        assert f"docs/OPERATIONS.md#{alert.lower()}" in text


def test_log_lines_never_show_keys_even_when_handed_them(tmp_path: Path) -> None:
    init_pki(tmp_path, ["GHA01"])
    files = RegistryFiles(tmp_path, "GHA01")
    key = SigningKey.from_pem(files.signing_key.read_bytes())
    tls = TlsMaterial.load(files)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger("test.secrets")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("signed with %s over %s", key, tls, extra={"peer": key, "payload": tls})
        logger.info("material %r", [key, tls], extra={"transaction_id": "GHA01-1"})
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    for pem in (files.signing_key, files.tls_key):
        body = [line for line in pem.read_text().splitlines() if "-" not in line]
        assert all(line not in text for line in body)
    assert "PRIVATE" not in text
    assert key.key_id in text  # what identifies a key is shown
    for line in text.splitlines():
        entry = json.loads(line)
        assert "payload" not in entry  # only whitelisted fields leave the process
