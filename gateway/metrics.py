"""The hub's Prometheus metrics.

Events are counted as they happen (RPCs, refusals, delivery attempts and failures, dead
letters, transactions reaching a final status). State is read from the database at scrape
time, so it is right after a restart and across several hub processes: transactions by type
and status, and, per recipient registry, the outbox's depth, its failing messages (tried at
least once, not yet delivered), dead letters and the age of the oldest undelivered message.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, func, select

from article6.metrics import DeliveryMetrics, RpcMetrics, outbox_families
from article6.model import Status, TransactionType
from gateway.storage.database import Database
from gateway.storage.reconciliations import open_count
from gateway.storage.records import TransactionRecord
from gateway.storage.schema import outbox, transactions

TRANSACTION_BUCKETS_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


def type_name(value: int) -> str:
    return TransactionType(value).name.lower() if value in _TYPES else "unknown"


def status_name(value: int) -> str:
    return Status(value).name.lower()


class HubMetrics:
    def __init__(self, registry: CollectorRegistry, database: Database) -> None:
        self.rpc = RpcMetrics(registry)
        self.transaction_duration = Histogram(
            "a6_transaction_duration_seconds",
            "Time from proposal to final status, by type and final status.",
            ["type", "status"],
            buckets=TRANSACTION_BUCKETS_SECONDS,
            registry=registry,
        )
        self.delivery = DeliveryMetrics(registry)
        self.reconciliation_runs = Counter(
            "a6_reconciliation_runs",
            "Reconciliation runs, by final status.",
            ["status"],
            registry=registry,
        )
        registry.register(HubStateCollector(database))

    def reconciled(self, status: int) -> None:
        """A reconciliation run ended with ``status`` (article6.v1.ReconciliationStatus)."""
        self.reconciliation_runs.labels(RUN_STATUSES.get(status, "unknown")).inc()

    def finished(self, record: TransactionRecord) -> None:
        """A transaction reached its final status (called after the commit)."""
        seconds = (record.status_at - record.proposed_at).total_seconds()
        self.transaction_duration.labels(
            type_name(record.type), status_name(record.status)
        ).observe(max(seconds, 0.0))


class HubStateCollector(Collector):
    """Gauges computed from the hub's database at each scrape."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def describe(self) -> Iterator[Metric]:
        # Named up front so that registering the collector reads no database.
        return iter(_families())

    def collect(self) -> Iterator[Metric]:
        families = _families()
        self.database.read_now(lambda connection: _fill(connection, families))
        return iter(families)


def _families() -> list[GaugeMetricFamily]:
    transactions = GaugeMetricFamily(
        "a6_transactions", "Transactions recorded, by type and status.", labels=["type", "status"]
    )
    inconsistent = GaugeMetricFamily(
        "a6_inconsistent_blocks", "Blocks frozen by unresolved reconciliation discrepancies."
    )
    return [transactions, *outbox_families(), inconsistent]


def _fill(connection: Connection, families: list[GaugeMetricFamily]) -> None:
    by_status, depth, failing, dead, oldest, inconsistent = families
    inconsistent.add_metric([], open_count(connection))
    rows = connection.execute(
        select(transactions.c.type, transactions.c.status, func.count()).group_by(
            transactions.c.type, transactions.c.status
        )
    )
    for kind, status, count in rows:
        by_status.add_metric([type_name(kind), status_name(status)], count)
    now = datetime.now(UTC)
    tried = (outbox.c.attempts > 0).label("tried")
    outbox_rows = connection.execute(
        select(
            outbox.c.recipient, outbox.c.state, tried, func.min(outbox.c.created_at), func.count()
        )
        .where(outbox.c.state.in_(["pending", "dead"]))
        .group_by(outbox.c.recipient, outbox.c.state, tried)
    )
    totals: dict[str, dict[str, Any]] = {}
    for recipient, state, was_tried, created_min, count in outbox_rows:
        entry = totals.setdefault(
            recipient, {"pending": 0, "failing": 0, "dead": 0, "oldest": None}
        )
        if state == "dead":
            entry["dead"] += count
            continue
        entry["pending"] += count
        entry["failing"] += count if was_tried else 0
        created = created_min if created_min.tzinfo else created_min.replace(tzinfo=UTC)
        entry["oldest"] = created if entry["oldest"] is None else min(entry["oldest"], created)
    for recipient, entry in sorted(totals.items()):
        depth.add_metric([recipient], entry["pending"])
        failing.add_metric([recipient], entry["failing"])
        dead.add_metric([recipient], entry["dead"])
        age = (now - entry["oldest"]).total_seconds() if entry["oldest"] else 0.0
        oldest.add_metric([recipient], age)


_TYPES = frozenset(kind.value for kind in TransactionType)
RUN_STATUSES = {
    1: "initiated", 2: "validated", 3: "totals_inconsistent", 4: "blocks_inconsistent",
    5: "completed", 6: "completed_manual_intervention", 7: "start_denied", 8: "confirmed",
}  # fmt: skip
