"""The blocks a hub batch reads ahead (gateway.reads): found by bisection, and kept as the
batch changes them, they answer as a read of the table would."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import cast

from hypothesis import given
from hypothesis import strategies as st

from article6.blocks import Block
from article6.limits import MAX_BLOCKS_READ_AHEAD, MAX_SPACES_READ_AHEAD
from article6.model import UnitBlock
from article6.unit import Unit
from article6.wire import unit_block
from gateway.reads import LedgerReads, _Ahead, _Space
from tests.builders import block as wire_block


@st.composite
def disjoint(draw: st.DrawFn) -> list[Block[int]]:
    """Disjoint blocks in random order, each carrying its index."""
    cuts = sorted(draw(st.sets(st.integers(0, 200), max_size=30)))
    spans = [(cuts[i], cuts[i + 1] - 1) for i in range(0, len(cuts) - 1, 2)]
    blocks = [Block(first, last, n) for n, (first, last) in enumerate(spans)]
    return draw(st.permutations(blocks))


def _naive(blocks: list[Block[int]], first: int, last: int) -> list[Block[int]]:
    return sorted((b for b in blocks if b.serial_first <= last and b.serial_last >= first),
                  key=lambda b: b.serial_first)  # fmt: skip


@given(disjoint(), st.integers(0, 210), st.integers(0, 30))
def test_the_blocks_meeting_a_range_are_those_sharing_a_serial_with_it(
    blocks: list[Block[int]], first: int, length: int
) -> None:
    assert _Space(blocks).meeting(first, first + length) == _naive(blocks, first, first + length)


@given(disjoint(), st.data())
def test_removing_and_adding_blocks_keeps_the_answers_a_read_would_give(
    blocks: list[Block[int]], data: st.DataObject
) -> None:
    space = _Space(blocks)
    removed = data.draw(st.lists(st.sampled_from(blocks), unique=True) if blocks else st.just([]))
    kept = [b for b in blocks if b not in removed]
    for block in removed:
        space.remove(block.serial_first)
    space.remove(500)  # not there: nothing changes
    for block in removed[::2]:  # put back, as a change that rearranges serials would
        space.add(block)
    kept += removed[::2]
    for first in range(0, 210, 7):
        assert space.meeting(first, first + 9) == _naive(kept, first, first + 9)


def test_only_ranges_read_ahead_are_answered_and_changes_are_seen() -> None:
    """A range not read ahead (or wider than one that was) is not answered; a replaced
    block is answered as replaced."""
    read: list[dict[str, list[tuple[int, int]]]] = []

    def found(widened: Mapping[str, Sequence[tuple[int, int]]]) -> dict[str, list[Block[str]]]:
        read.append({space: list(spans) for space, spans in widened.items()})
        return {"GHA01": [Block(1, 100, "old")]}

    ahead = _Ahead.read(found, {"GHA01": [Block(10, 10, None)]}, margin=1)
    assert read == [{"GHA01": [(9, 11)]}]
    assert ahead.find("GHA01", [Block(10, 10, None)]) == [Block(1, 100, "old")]
    assert ahead.find("GHA01", [Block(10, 11, None)]) is None
    assert ahead.find("CHE01", [Block(10, 10, None)]) is None
    new = [Block(1, 9, "old"), Block(10, 10, "new"), Block(11, 100, "old")]
    ahead.replaced("GHA01", [Block(1, 100, "old")], new)
    assert ahead.find("GHA01", [Block(10, 10, None)]) == new


class _Unit:
    """What ``LedgerReads.ahead`` uses of a unit of work, noting the spaces it locks."""

    def __init__(self) -> None:
        self.connection = None
        self.locked: list[list[str]] = []

    def lock_spaces(self, spaces: Iterable[str]) -> None:
        self.locked.append(sorted(spaces))


def block(first: int, last: int, space: str = "GHA01") -> UnitBlock:
    return unit_block(wire_block(first, last, space))


def test_a_batch_naming_too_many_spaces_locks_and_reads_nothing_ahead() -> None:
    """Its messages then lock and read their own spaces, as a message alone does."""
    many = [[block(1, 1, space=f"X{n:04}")] for n in range(MAX_SPACES_READ_AHEAD + 1)]
    wide = [[block(1, 1)] * (MAX_BLOCKS_READ_AHEAD + 1)]
    for proposed in (many, wide, []):
        unit = _Unit()
        reads = LedgerReads.ahead(cast(Unit, unit), proposed, [])
        assert unit.locked == []
        assert (reads._blocks, reads._locks) == (None, None)
