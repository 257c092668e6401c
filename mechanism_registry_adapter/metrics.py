"""The adapter's own gauge beside the shared registry metrics: instructions by state, read
from its database at each scrape (low cardinality: five states)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from mechanism_registry_adapter import book
from mechanism_registry_adapter.instructions import InstructionState


class InstructionCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> Iterator[Metric]:
        return iter([_family()])

    def collect(self) -> Iterator[Metric]:
        family = _family()
        column = book.instructions.c.state
        with self.engine.connect() as connection:
            rows = connection.execute(select(column, func.count()).group_by(column)).all()
        counts: dict[int, int] = dict(rows)
        for state in InstructionState:
            family.add_metric([state.name.lower()], counts.get(state.value, 0))
        return iter([family])


def _family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "a6_mechanism_instructions",
        "First-transfer instructions taken by the mechanism adapter, by state.",
        labels=["state"],
    )
