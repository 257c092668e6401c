"""What a Party holds, as disjoint serial blocks per ITMO id space, kept sorted so that adding
or removing a range costs O(log blocks) to find (plus the list's move of the blocks after it):
replaying a Party's actions grows with the number of blocks, never quadratically."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from article6.aef.spans import Space, Span
from article6.blocks import Block

K = TypeVar("K", bound=Hashable)


@dataclass
class Blocks(Generic[K]):
    """Disjoint blocks of one space, ordered by first serial."""

    firsts: list[int] = field(default_factory=list)
    blocks: list[Block[K]] = field(default_factory=list)

    def remove(self, first: int, last: int) -> int:
        """Take serials ``first..last`` out; return how many of them were not held."""
        start = max(bisect_right(self.firsts, first) - 1, 0)
        end, kept, found = start, [], 0
        while end < len(self.blocks) and self.blocks[end].serial_first <= last:
            block = self.blocks[end]
            if block.serial_last >= first:
                low, high = max(first, block.serial_first), min(last, block.serial_last)
                found += high - low + 1
                if block.serial_first < low:
                    kept.append(block.piece(block.serial_first, low - 1))
                if high < block.serial_last:
                    kept.append(block.piece(high + 1, block.serial_last))
            else:
                kept.append(block)
            end += 1
        self._replace(start, end, kept)
        return last - first + 1 - found

    def add(self, block: Block[K]) -> None:
        """Put ``block`` in (replacing whatever it overlaps), joined to a neighbour with the
        same attributes that it continues."""
        self.remove(block.serial_first, block.serial_last)
        index = bisect_right(self.firsts, block.serial_first)
        start, end = index, index
        before = self.blocks[index - 1] if index else None
        after = self.blocks[index] if index < len(self.blocks) else None
        if before and before.attributes == block.attributes and \
                before.serial_last + 1 == block.serial_first:  # fmt: skip
            block, start = (
                Block(before.serial_first, block.serial_last, block.attributes),
                start - 1,
            )
        if after and after.attributes == block.attributes and \
                block.serial_last + 1 == after.serial_first:  # fmt: skip
            block = Block(block.serial_first, after.serial_last, block.attributes)
            end += 1
        self._replace(start, end, [block])

    def _replace(self, start: int, end: int, blocks: list[Block[K]]) -> None:
        self.blocks[start:end] = blocks
        self.firsts[start:end] = [block.serial_first for block in blocks]


def _continues(before: Block[K], after: Block[K]) -> bool:
    return before.attributes == after.attributes and before.serial_last + 1 == after.serial_first


@dataclass
class Holdings(Generic[K]):
    """Blocks by space."""

    spaces: dict[Space, Blocks[K]] = field(default_factory=dict)

    def add(self, span: Span, attributes: K) -> None:
        self.spaces.setdefault(span.space, Blocks()).add(Block(span.first, span.last, attributes))

    def remove(self, span: Span) -> int:
        """Take the span's serials out; return how many were not held."""
        held = self.spaces.get(span.space)
        return span.count if held is None else held.remove(span.first, span.last)

    def __iter__(self) -> Iterator[tuple[Space, Block[K]]]:
        for space in sorted(self.spaces):
            for block in self.spaces[space].blocks:
                yield space, block
