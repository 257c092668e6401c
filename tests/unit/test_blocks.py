"""Serial-block arithmetic: properties against a unit-by-unit model, and cost independence
from block size (measured in executed lines, never in seconds)."""

from __future__ import annotations

import gc
import itertools
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from article6 import block_table
from article6 import blocks as blocks_module
from article6.block_table import overlapping_blocks
from article6.blocks import (
    Block,
    find_overlaps,
    intersect,
    merge_adjacent,
    serial_range,
    split,
    subtract,
    take,
    unit_count,
)

ATTRIBUTES = st.sampled_from(["a", "b"])


@st.composite
def disjoint_blocks(draw: st.DrawFn, max_serial: int = 200) -> list[Block[str]]:
    """Disjoint blocks, in random order, some adjacent, some with gaps."""
    points = sorted(draw(st.sets(st.integers(0, max_serial), max_size=16)))
    blocks = []
    for first, nxt in itertools.pairwise(points):
        if draw(st.booleans()):
            blocks.append(Block(first, nxt - 1, draw(ATTRIBUTES)))
    return draw(st.permutations(blocks))


def units(blocks: list[Block[Any]]) -> dict[int, Any]:
    """The unit-by-unit model: serial -> attributes (small serials only)."""
    model: dict[int, Any] = {}
    for block in blocks:
        for serial in range(block.serial_first, block.serial_last + 1):
            assert serial not in model
            model[serial] = block.attributes
    return model


def assert_disjoint(blocks: list[Block[Any]]) -> None:
    assert find_overlaps(blocks) == []


@given(st.integers(0, 10**12), st.integers(1, 10**12), st.data())
def test_split_then_merge_restores_the_block(first: int, size: int, data: st.DataObject) -> None:
    block = Block(first, first + size - 1, "a")
    cuts: set[int] = set()
    if size > 1:
        cuts = data.draw(st.sets(st.integers(first + 1, block.serial_last), max_size=8))
    pieces = [block]
    for cut in sorted(cuts, reverse=True):
        left, right = split(pieces[0], cut)
        pieces[0:1] = [left, right]
    assert unit_count(pieces) == block.unit_count
    assert_disjoint(pieces)
    assert merge_adjacent(reversed(pieces)) == [block]


@given(disjoint_blocks())
def test_merge_keeps_units_and_joins_only_equal_neighbours(blocks: list[Block[str]]) -> None:
    merged = merge_adjacent(blocks)
    assert units(merged) == units(blocks)
    for before, after in itertools.pairwise(merged):
        assert before.serial_last < after.serial_first
        touching = before.serial_last + 1 == after.serial_first
        assert not (touching and before.attributes == after.attributes)


@given(disjoint_blocks(), disjoint_blocks())
def test_take_matches_the_unit_model(held: list[Block[str]], wanted: list[Block[str]]) -> None:
    result = take(held, wanted)
    held_units, wanted_serials = units(held), set(units(wanted))
    assert units(result.taken) == {s: a for s, a in held_units.items() if s in wanted_serials}
    assert units(result.remaining) == {
        s: a for s, a in held_units.items() if s not in wanted_serials
    }
    assert set(units(result.missing)) == wanted_serials - set(held_units)
    assert result.complete == (not (wanted_serials - set(held_units)))
    assert_disjoint(result.taken + result.remaining)
    assert unit_count(result.taken) + unit_count(result.remaining) == unit_count(held)


@given(disjoint_blocks(), disjoint_blocks())
def test_subtract_and_intersect_partition_the_blocks(
    blocks: list[Block[str]], other: list[Block[str]]
) -> None:
    inside, outside = intersect(blocks, other), subtract(blocks, other)
    other_serials = set(units(other))
    assert set(units(inside)) == set(units(blocks)) & other_serials
    assert set(units(outside)) == set(units(blocks)) - other_serials
    assert merge_adjacent(inside + outside) == merge_adjacent(blocks)


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 20)), max_size=12))
def test_find_overlaps_is_empty_exactly_when_blocks_are_disjoint(
    spans: list[tuple[int, int]],
) -> None:
    blocks = [Block(first, first + length, i) for i, (first, length) in enumerate(spans)]
    counts: dict[int, int] = {}
    for block in blocks:
        for serial in range(block.serial_first, block.serial_last + 1):
            counts[serial] = counts.get(serial, 0) + 1
    assert (find_overlaps(blocks) == []) == all(n == 1 for n in counts.values())
    for left, right in find_overlaps(blocks):
        assert left.serial_first <= right.serial_last
        assert right.serial_first <= left.serial_last


def test_a_block_cannot_be_empty_or_run_backwards() -> None:
    with pytest.raises(AssertionError):
        Block(10, 9, "a")
    with pytest.raises(AssertionError):
        Block(-1, 5, "a")
    with pytest.raises(AssertionError):
        Block(0, 2**64, "a")


def test_merging_overlapping_blocks_is_an_invariant_violation() -> None:
    with pytest.raises(AssertionError):
        merge_adjacent([Block(0, 10, "a"), Block(5, 20, "a")])


# --- cost independence from block size ------------------------------------------------

SCALE = 10**9


def scaled(blocks: list[Block[str]], factor: int) -> list[Block[str]]:
    """Multiply every block by ``factor`` units, keeping gaps gaps and neighbours adjacent."""
    return [
        Block(b.serial_first * factor, b.serial_last * factor + factor - 1, b.attributes)
        for b in blocks
    ]


def executed_lines(operation: Callable[[], object], module: Any = blocks_module) -> int:
    """How many lines of ``module`` (``article6/blocks.py``) ran during ``operation``: a
    deterministic measure of work. Garbage collection is paused so no unrelated finalizer runs
    inside."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if event == "line" and frame.f_code.co_filename == module.__file__:
            count += 1
        return tracer

    previous = sys.gettrace()
    gc.collect()
    gc.disable()
    sys.settrace(tracer)
    try:
        operation()
    finally:
        sys.settrace(previous)
        gc.enable()
    return count


HELD = [Block(0, 99, "a"), Block(100, 199, "b"), Block(300, 399, "a"), Block(400, 999, "a")]
WANTED = [Block(50, 149, "x"), Block(350, 359, "x"), Block(990, 1200, "x")]


@pytest.mark.parametrize(
    ("name", "operation"),
    [
        ("take", take),
        ("subtract", subtract),
        ("merge_adjacent", lambda held, wanted: merge_adjacent(held)),
        ("find_overlaps", lambda held, wanted: find_overlaps(held + wanted)),
        ("split", lambda held, wanted: split(held[3], held[3].serial_first + 7)),
    ],
)
def test_cost_is_the_same_for_a_billion_times_more_units(
    name: str, operation: Callable[[list[Block[str]], list[Block[str]]], object]
) -> None:
    huge_held, huge_wanted = scaled(HELD, SCALE), scaled(WANTED, SCALE)
    small = executed_lines(lambda: operation(HELD, WANTED))
    large = executed_lines(lambda: operation(huge_held, huge_wanted))
    assert small == large, f"{name}: {small} lines for small blocks, {large} for huge ones"


def test_huge_blocks_are_counted_exactly() -> None:
    result = take(scaled(HELD, SCALE), scaled(WANTED, SCALE))
    small = take(HELD, WANTED)
    assert unit_count(result.taken) == unit_count(small.taken) * SCALE
    assert unit_count(result.missing) == unit_count(small.missing) * SCALE
    assert result.missing == [serial_range(1000 * SCALE, 1201 * SCALE - 1)]
    top = Block(2**64 - 10**12, 2**64 - 1, "a")
    assert take([top], [top]).taken == [top]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 20)), max_size=30),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 20)), max_size=30),
)
def test_overlapping_blocks_are_those_sharing_a_serial_with_any_range(
    blocks: list[tuple[int, int]], ranges: list[tuple[int, int]]
) -> None:
    held = [Block(first, first + length, None) for first, length in blocks]
    wanted = [Block(first, first + length, None) for first, length in ranges]  # may overlap
    naive = [
        b for b in held
        if any(b.serial_first <= r.serial_last and r.serial_first <= b.serial_last
               for r in wanted)
    ]  # fmt: skip
    assert overlapping_blocks(held, wanted) == naive


def test_finding_the_blocks_a_transfer_touches_grows_with_blocks_not_their_product() -> None:
    def cost(count: int) -> int:
        held = [Block(10 * n, 10 * n + 4, None) for n in range(count)]
        wanted = [Block(10 * n + 2, 10 * n + 2, None) for n in reversed(range(count))]
        return executed_lines(lambda: overlapping_blocks(held, wanted), block_table)

    assert cost(1000) < 12 * cost(100)  # ten times the blocks; a product would be a hundred
