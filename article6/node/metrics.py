"""The reference registry's Prometheus metrics: the same names as the hub's where they mean
the same (RPCs, refusals, deliveries to its one peer, the hub; transactions by type and
status; its outbox), so one dashboard shows every process of the network."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from article6.metrics import DeliveryMetrics, RpcMetrics, outbox_families
from article6.model import Status
from article6.node import store


class RegistryMetrics:
    def __init__(self, registry: CollectorRegistry, engine: Engine, hub_id: str) -> None:
        self.rpc = RpcMetrics(registry)
        self.delivery = DeliveryMetrics(registry)
        registry.register(RegistryStateCollector(engine, hub_id))


class RegistryStateCollector(Collector):
    """Gauges computed from the registry's database at each scrape."""

    def __init__(self, engine: Engine, hub_id: str) -> None:
        self.engine = engine
        self.hub_id = hub_id

    def describe(self) -> Iterator[Metric]:
        return iter(_families())

    def collect(self) -> Iterator[Metric]:
        by_status, depth, failing, dead, oldest = families = _families()
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(store.transactions.c.status, func.count()).group_by(
                    store.transactions.c.status
                )
            )
            for status, count in rows:
                by_status.add_metric([Status(status).name.lower()], count)
            outbox = store.outbox
            states = connection.execute(
                select(outbox.c.state, outbox.c.attempts > 0, func.min(outbox.c.created_at),
                       func.count())
                .where(outbox.c.state.in_(["pending", "dead"]))
                .group_by(outbox.c.state, outbox.c.attempts > 0)
            ).all()  # fmt: skip
        pending = sum(count for state, _, _, count in states if state == "pending")
        tried = sum(
            count for state, was_tried, _, count in states if state == "pending" and was_tried
        )
        dead_count = sum(count for state, _, _, count in states if state == "dead")
        waiting = [at for state, _, at, _ in states if state == "pending" and at is not None]
        now = datetime.now(UTC)
        depth.add_metric([self.hub_id], pending)
        failing.add_metric([self.hub_id], tried)
        dead.add_metric([self.hub_id], dead_count)
        oldest.add_metric(
            [self.hub_id], max(0.0, (now - min(waiting)).total_seconds()) if waiting else 0.0
        )
        return iter(families)


def _families() -> list[GaugeMetricFamily]:
    transactions = GaugeMetricFamily(
        "a6_transactions", "Transactions recorded, by status.", labels=["status"]
    )
    return [transactions, *outbox_families()]
