"""The mechanism adapter's pure parts: deductions, the checks of an instruction, the feed's
layout, the bulk formats and the leg comparison."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from article6.codes import Code, Refusal
from article6.identifiers import format_account_id
from article6.model import UnitState
from article6.v1 import mechanism_pb2
from mechanism_registry_adapter import feed, leg
from mechanism_registry_adapter.formats import (
    Unreadable,
    instruction,
    read_csv,
    read_json_lines,
    write_csv,
    write_json_lines,
)
from mechanism_registry_adapter.instructions import (
    Rounding,
    check,
    deductions,
    unit_blocks,
)

TODAY = date(2026, 11, 26)
ACCOUNT = format_account_id("UNIR", 1001)
M = mechanism_pb2


def made(count: int = 4, gross: int = 10_000, **changes: Any) -> list[M.FirstTransferInstruction]:
    fields: dict[str, Any] = {
        "activity_id": "A64-GHA-0001", "host_party": "GHA", "vintage": 2025,
        "authorization_id": "GHA-A64-1", "acquiring_account": ACCOUNT,
    }  # fmt: skip
    fields.update(changes)
    return feed.instructions(feed.issuance("ISS-1", 1, gross), feed.template(**fields), count)


def one(**changes: Any) -> M.FirstTransferInstruction:
    message = made(1)[0]
    for name, value in changes.items():
        target, _, field = name.rpartition("__")
        holder = message
        for part in filter(None, target.split("__")):
            holder = getattr(holder, part)
        setattr(holder, field, value)
    return message


def refusal_code(message: M.FirstTransferInstruction) -> Code | None:
    try:
        check(instruction(message, "UNIR"), TODAY)
    except Refusal as refusal:
        return refusal.code
    return None


def test_deductions_round_down_by_default_so_every_issuance_can_pass() -> None:
    assert deductions(10_000) == (500, 200)
    assert deductions(1) == (0, 0)
    assert deductions(101) == (5, 2)
    assert deductions(1, Rounding.UP) == (1, 1)  # the other policy: 1 issued could never pass
    assert deductions(101, Rounding.UP) == (6, 3)


@given(st.integers(min_value=1, max_value=10**15))
def test_deductions_are_the_whole_units_each_policy_gives(gross: int) -> None:
    share, omge = deductions(gross)
    assert share * 100 <= gross * 5 < (share + 1) * 100
    assert omge * 100 <= gross * 2 < (omge + 1) * 100
    assert share + omge < gross
    share, omge = deductions(gross, Rounding.UP)
    assert share * 100 >= gross * 5 > (share - 1) * 100
    assert omge * 100 >= gross * 2 > (omge - 1) * 100


def test_an_issuance_of_one_unit_is_forwarded_whole() -> None:
    record = feed.issuance("ISS-1", 1, 1)
    assert not record.HasField("share_of_proceeds")
    assert not record.HasField("omge")
    assert feed.net_of(record) == (1, 1)
    [message] = made(1, gross=1)
    assert refusal_code(message) is None
    assert list(read_csv(write_csv([message]).splitlines())) == [message]  # empty cells


@given(st.integers(min_value=3, max_value=10**9), st.integers(min_value=1, max_value=50))
def test_the_feed_forwards_exactly_the_net_and_passes_every_check(gross: int, count: int) -> None:
    share, omge = deductions(gross)
    count = min(count, gross - share - omge)
    if count < 1:
        return
    messages = made(count, gross)
    forwarded = 0
    for message in messages:
        check(instruction(message, "UNIR"), TODAY)
        forwarded += sum(b.serial_last - b.serial_first + 1 for b in message.blocks)
    assert forwarded == gross - share - omge


def _share_of_proceeds_forwarded() -> M.FirstTransferInstruction:
    message = one()
    message.blocks[0].serial_last = message.issuance.share_of_proceeds.serial_first
    return message


def _omge_forwarded() -> M.FirstTransferInstruction:
    message = one()
    message.blocks.add(serial_first=10_000, serial_last=10_000)
    return message


def _overlapping() -> M.FirstTransferInstruction:
    message = one()
    message.blocks.add(serial_first=5, serial_last=9)
    return message


def _outside() -> M.FirstTransferInstruction:
    message = one()
    message.blocks[0].serial_first = 0
    return message


def _backwards() -> M.FirstTransferInstruction:
    message = one()
    message.blocks[0].serial_first = 50
    message.blocks[0].serial_last = 40
    return message


def _no_serials() -> M.FirstTransferInstruction:
    message = one()
    del message.blocks[:]
    return message


@pytest.mark.parametrize(
    ("name", "make", "code"),
    [
        ("mitigation contribution", lambda: one(
            authorization__kind=M.AER_AUTHORIZATION_KIND_MITIGATION_CONTRIBUTION),
         Code.A64ER_NOT_AUTHORIZED),
        ("no authorization kind", lambda: one(authorization__kind=0), Code.A64ER_NOT_AUTHORIZED),
        ("authorized by another Party", lambda: one(authorization__authorizing_party="CHE"),
         Code.A64ER_NOT_AUTHORIZED),
        ("no purpose", lambda: one(authorization__purpose=0), Code.A64ER_NOT_AUTHORIZED),
        ("share of proceeds short", lambda: one(issuance__share_of_proceeds__serial_first=9302),
         Code.SHARE_OF_PROCEEDS_NOT_APPLIED),
        ("OMGE short", lambda: one(issuance__omge__serial_first=9802), Code.OMGE_NOT_APPLIED),
        ("share of proceeds forwarded", _share_of_proceeds_forwarded,
         Code.SHARE_OF_PROCEEDS_NOT_APPLIED),
        ("OMGE forwarded", _omge_forwarded, Code.OMGE_NOT_APPLIED),
        ("serials outside the issuance", _outside,
         Code.ISSUANCE_RECORD_CONFLICT),
        ("serials backwards", _backwards, Code.SERIAL_RANGE_INVALID),
        ("overlapping serials", _overlapping, Code.BLOCKS_OVERLAP),
        ("vintage before 2021", lambda: one(vintage=2019, authorization__vintage_first=2019),
         Code.VINTAGE_IMPLAUSIBLE),
        ("vintage in the future", lambda: one(vintage=2031, authorization__vintage_last=2031),
         Code.VINTAGE_IMPLAUSIBLE),
        ("vintage outside the authorization", lambda: one(authorization__vintage_first=2026),
         Code.VINTAGE_OUTSIDE_AUTHORIZATION),
        ("no serials", _no_serials, Code.REQUIRED_FIELD_MISSING),
        ("malformed host Party", lambda: one(host_party="gh"), Code.PARTY_CODE_INVALID),
        ("malformed account", lambda: one(acquiring_account="UNIR-1001-00"),
         Code.ACCOUNT_ID_INVALID),
        ("account of another registry", lambda: one(acquiring_registry="CHE01"),
         Code.ACCOUNT_ID_INVALID),
        ("malformed instruction id", lambda: one(instruction_id="a b"),
         Code.REQUIRED_FIELD_MISSING),
    ],
)  # fmt: skip
def test_each_refusal_has_its_own_code(name: str, make: Any, code: Code) -> None:
    assert refusal_code(make()) is code


def test_json_lines_and_csv_carry_the_same_instructions() -> None:
    messages = made(3)
    messages[1].blocks.add(serial_first=9_000, serial_last=9_000)  # two ranges: two CSV rows
    assert list(read_json_lines(write_json_lines(messages).splitlines())) == messages
    assert list(read_csv(write_csv(messages).splitlines())) == messages


def test_unreadable_lines_are_reported_with_their_numbers_and_the_rest_is_read() -> None:
    good = write_json_lines(made(2)).splitlines()
    lines = [good[0], "{not json", json.dumps({"no_such_field": 1}), good[1]]
    read = list(read_json_lines(lines))
    assert [item.line for item in read if isinstance(item, Unreadable)] == [2, 3]
    assert [m.instruction_id for m in read if not isinstance(m, Unreadable)] == [
        "I-000001", "I-000002",
    ]  # fmt: skip
    rows = write_csv(made(2)).splitlines()
    broken = [rows[0], rows[1].replace(",2025,", ",twenty,", 1), rows[2]]
    read = list(read_csv(broken))
    assert isinstance(read[0], Unreadable)
    assert [m.instruction_id for m in read[1:] if not isinstance(m, Unreadable)] == ["I-000002"]


# --- the leg -----------------------------------------------------------------------------


def _forward(transaction_id: str, message: M.FirstTransferInstruction) -> leg.Forward:
    blocks = unit_blocks(instruction(message, "UNIR"), "A64MR", "CA6400")
    arrived = tuple(leg.arrival(b, "GHA") for b in blocks)
    return leg.Forward(transaction_id, ACCOUNT, arrived)


def test_the_leg_is_clean_when_both_sides_agree_and_finds_each_kind_of_difference() -> None:
    first, second = made(2)
    ours = [_forward("A64MR-2", first), _forward("A64MR-4", second)]
    held = [(ACCOUNT, b) for f in ours for b in f.blocks]
    assert leg.reconcile(ours, ours, held).clean

    report = leg.reconcile(ours, ours[:1], held)
    assert [(d.kind, d.reference) for d in report.discrepancies] == [("missing", "A64MR-4")]

    stranger = leg.Forward("A64MR-9", ACCOUNT, ours[0].blocks)
    report = leg.reconcile(ours, [*ours, stranger], held)
    assert [(d.kind, d.reference) for d in report.discrepancies] == [("unexpected", "A64MR-9")]

    changed = replace(ours[1], blocks=(replace(ours[1].blocks[0], serial_last=9_000),))
    report = leg.reconcile(ours, [ours[0], changed], held)
    assert [(d.kind, d.reference) for d in report.discrepancies] == [("differs", "A64MR-4")]

    block = ours[0].blocks[0]
    other_vintage = replace(block, attributes=replace(block.attributes, vintage=2024))
    report = leg.reconcile(ours, ours, [(ACCOUNT, other_vintage), *held[1:]])
    assert [(d.kind, d.reference) for d in report.discrepancies] == [("not-forwarded", ACCOUNT)]

    beyond = replace(block, serial_first=9_301, serial_last=9_400)
    report = leg.reconcile(ours, ours, [*held, (ACCOUNT, beyond)])
    assert [d.kind for d in report.discrepancies] == ["not-forwarded"]


def test_held_units_used_since_still_reconcile() -> None:
    ours = [_forward("A64MR-2", made(1)[0])]
    block = ours[0].blocks[0]
    used = replace(block, attributes=block.attributes.with_state(UnitState.USED))
    assert leg.reconcile(ours, ours, [(ACCOUNT, used)]).clean
