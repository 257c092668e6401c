"""Reconciliation runs, the discrepancies they find, and the serials those freeze.

A run is *open* from its start until its end. It is *holding* from its start until both
sides have pinned a snapshot of their books (a fraction of a second): meanwhile, proposals
involving its registry wait (7002), so that both snapshots are of the same books; the
comparison then reads the snapshots while transactions go on. A discrepancy is a block
as one side has it and the other has not; while it is open, no transaction may touch its
serials (7001). An operator resolves it with a reason, which is kept with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from google.protobuf import json_format
from sqlalchemy import Connection, Select, and_, bindparam, func, insert, or_, select, update

from article6.block_table import from_db, overlapping_blocks, to_db
from article6.blocks import Block
from article6.direct import Direct
from article6.model import LedgerBlock, Status
from article6.unit import Unit
from article6.v1 import units_pb2
from article6.wire import held_block, held_block_message
from gateway.storage import audit
from gateway.storage.records import storable
from gateway.storage.schema import discrepancies, outbox, reconciliation_runs, transactions

# article6.v1.ReconciliationStatus
INITIATED, VALIDATED, TOTALS_INCONSISTENT, BLOCKS_INCONSISTENT = 1, 2, 3, 4
COMPLETED, COMPLETED_MANUAL_INTERVENTION, START_DENIED = 5, 6, 7
UNFINISHED = (Status.PROPOSED.value, Status.CHECKED.value, Status.ACCEPTED.value)


@dataclass(frozen=True)
class Run:
    run_id: str
    registry: str
    status: int
    open: bool
    holding: bool
    released_at: datetime | None
    started_at: datetime
    finished_at: datetime | None
    fanout: int
    depth: int
    hub_blocks: int
    registry_blocks: int
    round_trips: int
    bytes_exchanged: int
    detail: str


@dataclass(frozen=True)
class Discrepancy:
    id: int
    run_id: str | None
    transaction_id: str | None
    registry: str
    side: str
    block: LedgerBlock
    open: bool
    found_at: datetime
    resolved_at: datetime | None
    resolved_by: str
    reason: str


def _run(row: Any) -> Run:
    return Run(**{name: getattr(row, name) for name in Run.__dataclass_fields__})


def _discrepancy(row: Any) -> Discrepancy:
    message = json_format.Parse(row.block, units_pb2.HeldBlock())
    return Discrepancy(
        row.id, row.run_id, row.transaction_id, row.registry, row.side, held_block(message),
        row.open, row.found_at, row.resolved_at, row.resolved_by, row.reason,
    )  # fmt: skip


def start_denied_because(connection: Connection, registry: str) -> str | None:
    """Why a run with ``registry`` cannot start now: one is already open, a transaction
    involving it is not final, or messages to it wait in the outbox (its books would lag)."""
    if get_open_run(connection, registry) is not None:
        return f"a run with {registry} is already open"
    involved = or_(
        transactions.c.transferring_registry == registry,
        transactions.c.acquiring_registry == registry,
    )
    pending = connection.execute(
        select(func.count()).where(transactions.c.status.in_(UNFINISHED), involved)
    ).scalar_one()
    if pending:
        return f"{pending} transactions involving {registry} are not final"
    waiting = connection.execute(
        select(func.count()).where(outbox.c.recipient == registry, outbox.c.state == "pending")
    ).scalar_one()
    if waiting:
        return f"{waiting} messages to {registry} wait for delivery"
    return None


def insert_run(
    unit: Unit, run_id: str, registry: str, fanout: int, depth: int, now: datetime
) -> None:
    unit.connection.execute(
        insert(reconciliation_runs).values(
            run_id=run_id, registry=registry, status=INITIATED, open=True, holding=True,
            released_at=None, started_at=now,
            finished_at=None, fanout=fanout, depth=depth, hub_blocks=0, registry_blocks=0,
            round_trips=0, bytes_exchanged=0, detail="",
        )
    )  # fmt: skip
    unit.record(audit.HUB, "reconciliation.started", run_id, registry=registry)


def update_run(unit: Unit, run_id: str, **values: Any) -> None:
    if "status" in values:
        unit.record(audit.HUB, "reconciliation.status", run_id,
                     status=values["status"], open=values.get("open", True))  # fmt: skip
    unit.connection.execute(
        update(reconciliation_runs).where(reconciliation_runs.c.run_id == run_id).values(values)
    )


def release(unit: Unit, run_id: str, now: datetime) -> None:
    """Let the run's registry's proposals through again (both snapshots are pinned)."""
    unit.record(audit.HUB, "reconciliation.released", run_id)
    unit.connection.execute(
        update(reconciliation_runs)
        .where(reconciliation_runs.c.run_id == run_id, reconciliation_runs.c.holding.is_(True))
        .values(holding=False, released_at=now)
    )


def end_run(unit: Unit, run_id: str, status: int, now: datetime,
            **values: Any) -> None:  # fmt: skip
    """The run's end: its final ``status``, and its proposals released if they were not."""
    update_run(unit, run_id, **_ended(status, now), **values)


def _ended(status: int, now: datetime) -> dict[str, Any]:
    """The values that end a run with ``status`` at ``now`` (released then if still holding)."""
    released = func.coalesce(reconciliation_runs.c.released_at, now)
    return {"status": status, "open": False, "holding": False, "finished_at": now,
            "released_at": released}  # fmt: skip


def get_run(connection: Connection, run_id: str) -> Run | None:
    row = connection.execute(
        select(reconciliation_runs).where(reconciliation_runs.c.run_id == run_id)
    ).first()
    return None if row is None else _run(row)


def get_open_run(connection: Connection, registry: str) -> Run | None:
    row = connection.execute(
        select(reconciliation_runs).where(
            reconciliation_runs.c.registry == registry, reconciliation_runs.c.open.is_(True)
        )
    ).first()
    return None if row is None else _run(row)


def holding_registries(connection: Connection, registries: Sequence[str]) -> frozenset[str]:
    """Those of ``registries`` whose run holds their proposals now, in one statement (a peer
    may name anything: only ids that could be stored are looked up)."""
    named = sorted({registry for registry in registries if storable(registry, 16)})
    if not named:
        return frozenset()
    rows = connection.execute(_holding_runs(), {"registries": named})
    return frozenset(row.registry for row in rows)


@cache
def _holding_runs() -> Select[Any]:
    return select(reconciliation_runs.c.registry).where(
        reconciliation_runs.c.registry.in_(bindparam("registries", expanding=True)),
        reconciliation_runs.c.holding.is_(True),
    )


def list_runs(connection: Connection, registry: str, limit: int) -> list[Run]:
    query = select(reconciliation_runs).order_by(reconciliation_runs.c.started_at.desc())
    if registry:
        query = query.where(reconciliation_runs.c.registry == registry)
    return [_run(row) for row in connection.execute(query.limit(limit))]


def close_stale_runs(unit: Unit, started_before: datetime, now: datetime) -> int:
    """Runs left open by a hub process that died (a run lasts seconds to minutes) end as
    start denied, so their registries' proposals flow again."""
    stale = and_(
        reconciliation_runs.c.open.is_(True), reconciliation_runs.c.started_at < started_before
    )
    values = {**_ended(START_DENIED, now), "detail": "the hub stopped during the run"}
    result = unit.connection.execute(update(reconciliation_runs).where(stale).values(values))
    if result.rowcount:
        unit.record(audit.HUB, "reconciliation.closed", "stale runs",
                     runs=int(result.rowcount), status=START_DENIED)  # fmt: skip
    return int(result.rowcount or 0)


# --- discrepancies ---------------------------------------------------------------------------


def add_discrepancies(
    unit: Unit,
    registry: str,
    side: str,
    blocks: Sequence[LedgerBlock],
    now: datetime,
    run_id: str | None = None,
    transaction_id: str | None = None,
) -> None:
    if not blocks:
        return
    unit.record(audit.HUB, "discrepancy.found", run_id or transaction_id or registry,
        registry=registry, side=side, blocks=len(blocks),
        units=sum(block.unit_count for block in blocks),
    )  # fmt: skip
    unit.connection.execute(
        insert(discrepancies),
        [
            {
                "run_id": run_id, "transaction_id": transaction_id, "registry": registry,
                "side": side, "space": block.attributes.unit.originating_registry,
                "serial_first": to_db(block.serial_first),
                "serial_last": to_db(block.serial_last),
                "block": json_format.MessageToJson(held_block_message(block), indent=None),
                "open": True, "found_at": now, "resolved_at": None, "resolved_by": "",
                "reason": "",
            }
            for block in blocks
        ],
    )  # fmt: skip


def frozen(connection: Connection, space: str, ranges: Sequence[Block[Any]]) -> list[int]:
    """Open discrepancies sharing a serial with ``ranges`` of ``space``.

    One range condition over the span of ``ranges`` (open discrepancies are few), then the
    exact test here (``overlapping_blocks``): a query with one condition per range would grow
    with the transaction's blocks until the database refuses it (SQLite's depth limit is
    1,000).
    """
    if not ranges:
        return []
    low = min(r.serial_first for r in ranges)
    high = max(r.serial_last for r in ranges)
    values = {"space": space, "low": to_db(low), "high": to_db(high)}
    rows = _open_discrepancies_within().rows(connection, values)
    found = [Block(from_db(row.serial_first), from_db(row.serial_last), row.id) for row in rows]
    return [block.attributes for block in overlapping_blocks(found, ranges)]


def any_open_discrepancy(connection: Connection) -> bool:
    """Whether any serial is frozen: while none is, no proposal need ask about its own."""
    return connection.execute(_any_open()).first() is not None


@cache
def _any_open() -> Select[Any]:
    return select(discrepancies.c.id).where(discrepancies.c.open.is_(True)).limit(1)


@cache
def _open_discrepancies_within() -> Direct:
    return Direct(
        select(discrepancies.c.id, discrepancies.c.serial_first, discrepancies.c.serial_last).where(
            discrepancies.c.open.is_(True),
            discrepancies.c.space == bindparam("space"),
            discrepancies.c.serial_first <= bindparam("high"),
            discrepancies.c.serial_last >= bindparam("low"),
        )
    )


def list_discrepancies(
    connection: Connection, run_id: str = "", registry: str = "", open_only: bool = False
) -> list[Discrepancy]:
    query = select(discrepancies).order_by(discrepancies.c.id)
    if run_id:
        query = query.where(discrepancies.c.run_id == run_id)
    if registry:
        query = query.where(discrepancies.c.registry == registry)
    if open_only:
        query = query.where(discrepancies.c.open.is_(True))
    return [_discrepancy(row) for row in connection.execute(query)]


def open_count(connection: Connection) -> int:
    return int(
        connection.execute(select(func.count()).where(discrepancies.c.open.is_(True))).scalar_one()
    )


def resolve(
    unit: Unit, discrepancy_id: int, by: str, reason: str, now: datetime
) -> Discrepancy | None:
    """Close a discrepancy with the operator's reason; a run whose discrepancies are all
    resolved becomes 'completed with manual intervention'. None if it is unknown or closed."""
    row = unit.connection.execute(
        select(discrepancies).where(discrepancies.c.id == discrepancy_id)
    ).first()
    if row is None or not row.open:
        return None
    unit.connection.execute(
        update(discrepancies)
        .where(discrepancies.c.id == discrepancy_id)
        .values(open=False, resolved_at=now, resolved_by=by, reason=reason)
    )
    unit.record(by, "discrepancy.resolved", str(discrepancy_id),
                 registry=row.registry, run_id=row.run_id, reason=reason)  # fmt: skip
    if row.run_id is not None and not list_discrepancies(
        unit.connection, row.run_id, open_only=True
    ):
        update_run(unit, row.run_id, status=COMPLETED_MANUAL_INTERVENTION)
    found = unit.connection.execute(
        select(discrepancies).where(discrepancies.c.id == discrepancy_id)
    ).first()
    return _discrepancy(found)


def discrepancy_serials(item: Discrepancy) -> str:
    block = item.block
    return f"{block.attributes.unit.originating_registry}:{block.serial_first}-{block.serial_last}"
