"""Serial-block arithmetic: the only way units are counted, split, moved and merged.

A block is an inclusive serial range ``serial_first..serial_last`` whose units share one set of
attributes (any hashable value: the ledger uses unit attributes plus the holding account).
Every function here costs O(blocks log blocks) and never looks at individual units, so a block
of 10**12 units costs what a block of one does.

All blocks passed to one call belong to one serial space (one originating registry): serials
are unique only within it, and grouping by space is the caller's job.

Invariants asserted on every result: blocks are non-empty, results never overlap, and the unit
count is preserved by every split, merge and partition.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from article6.identifiers import SERIAL_MAX

A = TypeVar("A", bound=Hashable)
B = TypeVar("B", bound=Hashable)


@dataclass(frozen=True)
class Block(Generic[A]):
    """Units ``serial_first..serial_last`` (inclusive), all with ``attributes``."""

    serial_first: int
    serial_last: int
    attributes: A

    def __post_init__(self) -> None:
        assert 0 <= self.serial_first <= self.serial_last <= SERIAL_MAX, self

    @property
    def unit_count(self) -> int:
        return self.serial_last - self.serial_first + 1

    def piece(self, serial_first: int, serial_last: int) -> Block[A]:
        """The part of this block between two serials, keeping its attributes."""
        assert self.serial_first <= serial_first <= serial_last <= self.serial_last
        return type(self)(serial_first, serial_last, self.attributes)  # dataclasses.replace, faster

    def with_attributes(self, attributes: B) -> Block[B]:
        return Block(self.serial_first, self.serial_last, attributes)


SerialRange = Block[None]
"""A bare serial range: a block whose attributes do not matter."""


def serial_range(serial_first: int, serial_last: int) -> SerialRange:
    return Block(serial_first, serial_last, None)


def unit_count(blocks: Iterable[Block[A]]) -> int:
    return sum(block.unit_count for block in blocks)


def split(block: Block[A], serial: int) -> tuple[Block[A], Block[A]]:
    """Split before ``serial``: ``first..serial-1`` and ``serial..last``, both non-empty."""
    assert block.serial_first < serial <= block.serial_last, (block, serial)
    left = block.piece(block.serial_first, serial - 1)
    right = block.piece(serial, block.serial_last)
    assert left.unit_count + right.unit_count == block.unit_count
    return left, right


def find_overlaps(blocks: Iterable[Block[A]]) -> list[tuple[Block[A], Block[A]]]:
    """Pairs of blocks that share serials: for each block, the earlier-starting block with the
    furthest reach that it overlaps. Empty exactly when the blocks are pairwise disjoint."""
    ordered = sorted(blocks, key=lambda block: (block.serial_first, block.serial_last))
    overlaps: list[tuple[Block[A], Block[A]]] = []
    reach: Block[A] | None = None
    for block in ordered:
        if reach is not None and block.serial_first <= reach.serial_last:
            overlaps.append((reach, block))
        if reach is None or block.serial_last > reach.serial_last:
            reach = block
    return overlaps


def _sorted_disjoint(blocks: Iterable[Block[A]]) -> list[Block[A]]:
    ordered = sorted(blocks, key=lambda block: block.serial_first)
    for before, after in itertools.pairwise(ordered):
        assert before.serial_last < after.serial_first, ("overlapping blocks", before, after)
    return ordered


def merge_adjacent(blocks: Iterable[Block[A]]) -> list[Block[A]]:
    """Join blocks that touch (``last + 1 == first``) and have equal attributes.

    The input must be disjoint; the result is sorted by serial and holds the same units.
    """
    merged: list[Block[A]] = []
    ordered = _sorted_disjoint(blocks)
    for block in ordered:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and previous.serial_last + 1 == block.serial_first
            and previous.attributes == block.attributes
        ):
            merged[-1] = replace(previous, serial_last=block.serial_last)
        else:
            merged.append(block)
    assert unit_count(merged) == unit_count(ordered)
    return merged


def partition(
    blocks: Iterable[Block[A]], cuts: Iterable[Block[B]]
) -> tuple[list[Block[A]], list[Block[A]]]:
    """Split ``blocks`` by the serial ranges of ``cuts``: (pieces inside, pieces outside).

    Both inputs must be disjoint within themselves. Pieces keep their block's attributes and
    come out sorted by serial. One sweep over both sorted lists.
    """
    ordered = _sorted_disjoint(blocks)
    cut_list = _sorted_disjoint(cuts)
    inside: list[Block[A]] = []
    outside: list[Block[A]] = []
    next_cut = 0
    for block in ordered:
        while next_cut < len(cut_list) and cut_list[next_cut].serial_last < block.serial_first:
            next_cut += 1
        next_cut = _cut_one(block, cut_list, next_cut, inside, outside)
    assert unit_count(inside) + unit_count(outside) == unit_count(ordered)
    return inside, outside


def _cut_one(
    block: Block[A],
    cuts: Sequence[Block[B]],
    next_cut: int,
    inside: list[Block[A]],
    outside: list[Block[A]],
) -> int:
    """Cut one block by the cuts starting at ``next_cut``; return the first cut that may still
    reach into later blocks."""
    cursor = block.serial_first
    index = next_cut
    while index < len(cuts) and cuts[index].serial_first <= block.serial_last:
        cut = cuts[index]
        low = max(cut.serial_first, cursor)
        high = min(cut.serial_last, block.serial_last)
        if low > cursor:
            outside.append(block.piece(cursor, low - 1))
        inside.append(block.piece(low, high))
        cursor = high + 1
        if cut.serial_last > block.serial_last:
            break
        index += 1
    if cursor <= block.serial_last:
        outside.append(block.piece(cursor, block.serial_last))
    return index


def subtract(blocks: Iterable[Block[A]], removed: Iterable[Block[B]]) -> list[Block[A]]:
    """The parts of ``blocks`` whose serials are in no range of ``removed``."""
    return partition(blocks, removed)[1]


def intersect(blocks: Iterable[Block[A]], kept: Iterable[Block[B]]) -> list[Block[A]]:
    """The parts of ``blocks`` whose serials are in some range of ``kept``."""
    return partition(blocks, kept)[0]


@dataclass(frozen=True)
class Taken(Generic[A]):
    """The result of taking serial ranges out of held blocks."""

    taken: list[Block[A]]
    remaining: list[Block[A]]
    missing: list[SerialRange]

    @property
    def complete(self) -> bool:
        return not self.missing


def take(held: Sequence[Block[A]], wanted: Sequence[Block[B]]) -> Taken[A]:
    """Take the ``wanted`` serials out of ``held``: the pieces taken (with the attributes they
    were held with), what stays held, and the wanted serials that were not held at all.

    A partial transfer is exactly this: the block splits, nothing is counted unit by unit.
    """
    taken, remaining = partition(held, wanted)
    missing = subtract([serial_range(b.serial_first, b.serial_last) for b in wanted], held)
    assert unit_count(taken) + unit_count(missing) == unit_count(wanted)
    return Taken(taken, remaining, missing)
