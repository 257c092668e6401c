"""Domain types against the protos, wire round trips, holdings maths, back-off."""

from __future__ import annotations

import enum
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from article6 import holdings
from article6.blocks import Block, serial_range, unit_count
from article6.codes import Code, Refusal
from article6.model import (
    AccountType,
    FirstTransferTrigger,
    Held,
    Holder,
    Purpose,
    Status,
    TransactionType,
    UnitAttributes,
    UnitKind,
    UnitState,
)
from article6.retry import Backoff
from article6.v1 import transaction_pb2, units_pb2
from article6.wire import held_block, held_block_message, unit_block, unit_block_message

PAIRS: list[tuple[type[enum.IntEnum], object, str]] = [
    (TransactionType, transaction_pb2.TransactionType, "TRANSACTION_TYPE_"),
    (Status, transaction_pb2.TransactionStatus, "TRANSACTION_STATUS_"),
    (UnitKind, units_pb2.UnitKind, "UNIT_KIND_"),
    (UnitState, units_pb2.UnitState, "UNIT_STATE_"),
    (Purpose, units_pb2.Purpose, "PURPOSE_"),
    (AccountType, units_pb2.AccountType, "ACCOUNT_TYPE_"),
    (FirstTransferTrigger, transaction_pb2.FirstTransferTrigger, "FIRST_TRANSFER_TRIGGER_"),
]


@pytest.mark.parametrize(("domain", "wire", "prefix"), PAIRS, ids=[p[2] for p in PAIRS])
def test_domain_enums_have_the_protos_names_and_numbers(
    domain: type[enum.IntEnum], wire: object, prefix: str
) -> None:
    from_wire = {
        name.removeprefix(prefix): number
        for name, number in wire.items()  # type: ignore[attr-defined]
        if number != 0 or domain in {Purpose, FirstTransferTrigger}
    }
    assert from_wire == {member.name: member.value for member in domain}


units = st.builds(
    UnitAttributes,
    originating_registry=st.sampled_from(["GHA01", "CHE01"]),
    vintage=st.integers(2021, 2035),
    cooperative_approach=st.sampled_from(["CA0001", ""]),
    first_transferring_party=st.sampled_from(["GHA", ""]),
    authorization_id=st.text(max_size=8),
    purpose=st.sampled_from(Purpose),
    unit_kind=st.sampled_from(UnitKind),
    state=st.sampled_from(UnitState),
    activity_id=st.text(max_size=8),
    host_party=st.sampled_from(["", "KEN"]),
    metric=st.sampled_from(["", "tCO2e"]),
)


@given(st.integers(0, 2**63), st.integers(0, 2**63 - 1), units, st.sampled_from(["A-1", "B-2"]))
def test_blocks_survive_the_wire_unchanged(
    first: int, size: int, unit: UnitAttributes, account: str
) -> None:
    block = Block(first, first + size, unit)
    assert unit_block(unit_block_message(block)) == block
    held = block.with_attributes(Held(Holder("GHA01", account), unit))
    assert held_block(held_block_message(held)) == held


def test_unknown_enum_numbers_from_the_wire_are_refused_with_the_fields_code() -> None:
    message = units_pb2.UnitBlock(serial_first=1, serial_last=2, unit_kind=9, state=1)  # type: ignore[arg-type]
    with pytest.raises(Refusal) as refusal:
        unit_block(message)
    assert refusal.value.code is Code.UNIT_KIND_INVALID


UNIT = UnitAttributes(
    "GHA01", 2024, "CA0001", "GHA", "", Purpose.NDC, UnitKind.ITMO, UnitState.HELD
)
A, B = Holder("GHA01", "A"), Holder("GHA01", "B")


def held(first: int, last: int, holder: Holder = A, unit: UnitAttributes = UNIT) -> Block[Held]:
    return Block(first, last, Held(holder, unit))


def test_moving_part_of_a_block_splits_it_and_moving_back_merges_it() -> None:
    ledger = [held(1, 100)]
    moved = holdings.move(ledger, [serial_range(21, 30)], holdings.to(B))
    assert moved == [held(1, 20), held(21, 30, B), held(31, 100)]
    back = holdings.move(moved, [serial_range(21, 30)], holdings.to(A))
    assert back == ledger
    assert unit_count(back) == unit_count(moved) == 100


def test_check_held_names_each_way_units_can_be_missing() -> None:
    used = UNIT.with_state(UnitState.USED)
    ledger = [held(1, 10), held(11, 20, B), held(21, 30, A, used)]
    wanted = [Block(1, 10, UNIT)]
    holdings.check_held(wanted, ledger, A)
    cases = [
        ([Block(1, 40, UNIT)], Code.UNITS_NOT_HELD),  # beyond the ledger
        ([Block(5, 15, UNIT)], Code.UNITS_NOT_HELD),  # partly another account's
        ([Block(21, 25, UNIT)], Code.UNITS_NOT_HELD_STATE),  # used
        ([Block(1, 5, replace(UNIT, vintage=2023))], Code.UNITS_NOT_HELD),  # other attributes
    ]  # fmt: skip
    for blocks, code in cases:
        with pytest.raises(Refusal) as refusal:
            holdings.check_held(blocks, ledger, A)
        assert refusal.value.code is code


def test_adding_next_to_an_equal_block_merges_into_canonical_form() -> None:
    assert holdings.add([held(1, 10)], [held(11, 20)]) == [held(1, 20)]
    with pytest.raises(AssertionError):
        holdings.add([held(1, 10)], [held(5, 20)])


def test_backoff_grows_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(0.2, 5.0)
    delays = [backoff.delay_seconds(attempt) for attempt in range(1, 12)]
    for attempt, delay in enumerate(delays, start=1):
        assert 0.2 * 2 ** (attempt - 1) <= delay + 1e-9 or delay == pytest.approx(5.0)
        assert delay <= 5.0
    assert delays[-1] == pytest.approx(5.0)
