"""The hub's audit trail on SQLite and PostgreSQL: every state change is chained, and every
way of tampering with the stored trail tried here is detected."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, delete, select, update

from article6.keys import DirectoryKey, KeyDirectory, SigningKey
from article6.model import Status
from article6.unit import Unit
from gateway.audit import Entry, Verdict, entry_hash, head_statement, verify
from gateway.storage import audit
from gateway.storage import reconciliations as runs
from gateway.storage.records import retry_dead_letter, set_suspended
from gateway.storage.schema import audit_head, audit_log
from tests.builders import HubHarness, external, issuance

KEY = SigningKey.from_seed(bytes(range(32)))
DIRECTORY = KeyDirectory([DirectoryKey("HUB", KEY.public_raw, datetime(2020, 1, 1, tzinfo=UTC))])


@pytest.fixture
def hub(hub_database_url: str) -> Iterator[HubHarness]:
    harness = HubHarness.create(hub_database_url, key=KEY)
    harness.propose(issuance("GHA01-1", 1, 1000))
    harness.propose(external("GHA01-2", 1, 250))
    harness.decide("GHA01-2", Status.ACCEPTED)
    harness.propose(external("GHA01-3", 5000, 6000))  # rejected: GHA01 holds none of these
    harness.database.write_now(
        lambda unit: set_suspended(
            unit, "CHE01", True, "maintenance", datetime.now(UTC), "OPERATOR"
        )
    )
    yield harness
    harness.close()


def check(hub: HubHarness) -> Verdict:
    def read(connection: Connection) -> Verdict:
        return verify(
            audit.entries(connection, batch=3),  # small batches: the paging is walked too
            audit.head(connection),
            audit.signed_by_hub(DIRECTORY, "HUB"),
        )

    return hub.database.read_now(read)


def actions(hub: HubHarness) -> list[tuple[str, str, str]]:
    found = hub.database.read_now(lambda c: audit.recent(c, limit=100))
    return [(entry.actor, entry.action, entry.subject) for entry, _ in reversed(found)]


def test_every_state_change_and_operator_action_is_chained(hub: HubHarness) -> None:
    assert actions(hub) == [
        ("GHA01", "authorization.recorded", "GHA-2024-1"),  # the harness's standing one
        ("GHA01", "transaction.recorded", "GHA01-1"),
        ("GHA01", "transaction.recorded", "GHA01-2"),
        ("hub", "transaction.status", "GHA01-2"),  # accepted
        ("hub", "transaction.status", "GHA01-2"),  # completed
        ("GHA01", "transaction.recorded", "GHA01-3"),
        ("OPERATOR", "registry.suspended", "CHE01"),
    ]
    rejected = hub.database.read_now(lambda c: audit.recent(c, "GHA01-3"))[0][0]
    assert rejected.detail["statuses"] == [
        Status.PROPOSED.value,
        Status.CHECKED_DISCREPANCY.value,
        Status.TERMINATED.value,
    ]
    assert rejected.detail["codes"]
    verdict = check(hub)
    assert (verdict.intact, verdict.records) == (True, 7)


def _abandoned(unit: Unit) -> None:
    set_suspended(unit, "GHA01", True, "x", datetime.now(UTC), "OPERATOR")
    raise RuntimeError("abandoned")


def test_a_change_that_rolls_back_leaves_no_entry(hub: HubHarness) -> None:
    before = actions(hub)
    with pytest.raises(RuntimeError):
        hub.database.write_now(_abandoned)
    nothing = hub.database.write_now(
        lambda unit: retry_dead_letter(unit, 999, datetime.now(UTC), "OP")
    )
    assert nothing is None
    assert actions(hub) == before
    assert check(hub).intact


def test_reconciliation_runs_and_resolutions_are_audited(hub: HubHarness) -> None:
    now = datetime.now(UTC)
    hub.database.write_now(lambda unit: runs.insert_run(unit, "RUN-1", "GHA01", 16, 2, now))
    hub.database.write_now(
        lambda unit: runs.update_run(
            unit, "RUN-1", status=runs.COMPLETED, open=False, finished_at=now
        )
    )
    assert actions(hub)[-2:] == [
        ("hub", "reconciliation.started", "RUN-1"),
        ("hub", "reconciliation.status", "RUN-1"),
    ]
    assert check(hub).intact


# --- tampering: each way of changing the stored trail, applied with SQL ----------------------

Tamper = Callable[[Connection], None]


def alter_detail(connection: Connection) -> None:
    connection.execute(
        update(audit_log).where(audit_log.c.seq == 2).values(detail='{"quantity":1}')
    )


def alter_actor(connection: Connection) -> None:
    connection.execute(update(audit_log).where(audit_log.c.seq == 6).values(actor="SOMEONE"))


def _rechain(connection: Connection, entries: list[Entry], sign: bool) -> None:
    """Rewrite the whole trail from ``entries`` with consistent hashes, as someone with
    database access but without the hub's key would; optionally re-sign with another key."""
    connection.execute(delete(audit_log))
    digest = "0" * 64
    for entry in entries:
        digest = entry_hash(digest, entry)
        connection.execute(
            audit_log.insert().values(
                seq=entry.seq, at=entry.at, actor=entry.actor, action=entry.action,
                subject=entry.subject, detail=audit.detail_json(entry.detail), hash=digest,
            )
        )  # fmt: skip
    last = entries[-1].seq if entries else 0
    forger = SigningKey.generate()
    values = {"seq": last, "hash": digest}
    if sign:
        values |= {"key_id": KEY.key_id, "signature": forger.sign(head_statement(last, digest))}
    connection.execute(update(audit_head).values(values))


def _entries(connection: Connection) -> list[Entry]:
    return [entry for entry, _ in audit.entries(connection)]


def alter_and_rechain(connection: Connection) -> None:
    entries = _entries(connection)
    entries[1] = Entry(**{**entries[1].__dict__, "detail": {"quantity": 1}})
    _rechain(connection, entries, sign=False)


def alter_rechain_and_forge_signature(connection: Connection) -> None:
    entries = _entries(connection)
    entries[1] = Entry(**{**entries[1].__dict__, "actor": "CHE01"})
    _rechain(connection, entries, sign=True)


def remove_middle(connection: Connection) -> None:
    connection.execute(delete(audit_log).where(audit_log.c.seq == 3))


def remove_middle_and_renumber(connection: Connection) -> None:
    entries = [e for e in _entries(connection) if e.seq != 3]
    renumbered = [Entry(**{**e.__dict__, "seq": i}) for i, e in enumerate(entries, start=1)]
    _rechain(connection, renumbered, sign=True)


def remove_last(connection: Connection) -> None:
    connection.execute(delete(audit_log).where(audit_log.c.seq == 6))


def remove_last_and_move_head(connection: Connection) -> None:
    fifth = connection.execute(select(audit_log).where(audit_log.c.seq == 5)).one()
    connection.execute(delete(audit_log).where(audit_log.c.seq == 6))
    connection.execute(update(audit_head).values(seq=5, hash=fifth.hash))


def remove_everything(connection: Connection) -> None:
    connection.execute(delete(audit_log))


def swap_two(connection: Connection) -> None:
    rows = {row.seq: row for row in connection.execute(select(audit_log))}
    for seq, other in ((2, 4), (4, 2)):
        source = rows[other]
        connection.execute(
            update(audit_log).where(audit_log.c.seq == seq).values(
                at=source.at, actor=source.actor, action=source.action, subject=source.subject,
                detail=source.detail, hash=source.hash,
            )
        )  # fmt: skip


def append_forged(connection: Connection) -> None:
    last = connection.execute(select(audit_log).where(audit_log.c.seq == 7)).one()
    forged = Entry(8, last.at, "OPERATOR", "registry.resumed", "CHE01", {"reason": "x"})
    connection.execute(
        audit_log.insert().values(
            seq=8, at=forged.at, actor=forged.actor, action=forged.action,
            subject=forged.subject, detail='{"reason":"x"}', hash=entry_hash(last.hash, forged),
        )
    )  # fmt: skip


def clear_signature(connection: Connection) -> None:
    connection.execute(update(audit_head).values(signature=b"\0" * 64))


TAMPERING = [alter_detail, alter_actor, alter_and_rechain, alter_rechain_and_forge_signature,
             remove_middle, remove_middle_and_renumber, remove_last, remove_last_and_move_head,
             remove_everything, swap_two, append_forged, clear_signature]  # fmt: skip


@pytest.mark.parametrize("tamper", TAMPERING, ids=lambda t: t.__name__)
def test_tampering_is_detected(hub: HubHarness, tamper: Tamper) -> None:
    assert check(hub).intact
    with hub.database.engine.begin() as connection:
        tamper(connection)
    verdict = check(hub)
    assert not verdict.intact
    assert verdict.problems


def test_the_trail_keeps_growing_after_a_verify(hub: HubHarness) -> None:
    hub.propose(external("GHA01-4", 251, 300))
    verdict = check(hub)
    assert (verdict.intact, verdict.records) == (True, 8)
    assert hub.database.read_now(audit.head).seq == 8
