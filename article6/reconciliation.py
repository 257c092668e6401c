"""Reconciliation snapshots: totals, and a hash tree that finds the exact blocks two sides
disagree on in a few round trips. Pure: the hub and every registry build the same tree from
their own blocks, and the comparison needs only the nodes (docs/PROTOCOL.md, "Reconciliation").

**Where a block sits.** A block's *key* is the first 8 bytes (big-endian) of
``SHA-256("A6K1" US space US serial_first)``, US being the byte 0x1F and numbers in decimal.
With fanout ``f = 2**b`` and depth ``D`` (``D * b <= 64``), node ``(d, i)`` holds the blocks
whose key's top ``d * b`` bits equal ``i``; the root is ``(0, 0)`` and leaves are at depth D.
A block stays in its leaf whatever else changes, so one difference changes one path only.

**Digests.** A block's digest is ``SHA-256`` of its canonical bytes: "A6B1", then space,
serial_first, serial_last, account_id, vintage, cooperative_approach,
first_transferring_party, authorization_id, purpose, unit_kind, state, activity_id,
host_party and metric, each preceded by US, UTF-8, numbers in decimal, enums by number. The
account type is not part of it (the hub does not record account types). A leaf's digest is
``SHA-256("A6L1" || block digests in (space, serial_first) order)``; an inner node's is
``SHA-256("A6N1" || its f children's digests in index order)``; a node without blocks has 32
zero bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from article6.blocks import Block
from article6.codes import Code, Refusal
from article6.limits import LEAVES_PER_REQUEST, PARENTS_PER_REQUEST
from article6.model import Held, Holder, LedgerBlock, Purpose, UnitAttributes, UnitKind, UnitState

US = "\x1f"
EMPTY = bytes(32)
FANOUTS = frozenset(2**bits for bits in range(1, 9))
T = TypeVar("T")


@dataclass(frozen=True)
class Node:
    depth: int
    index: int
    digest: bytes
    block_count: int


def block_key(space: str, serial_first: int) -> int:
    text = f"A6K1{US}{space}{US}{serial_first}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


DigestRow = tuple[str, int, int, str, int, str, str, str, int, int, int, str, str, str]
"""A block as its digest reads it: originating registry, serial_first, serial_last, account
id, vintage, cooperative approach, first-transferring Party, authorization id, purpose, unit
kind and state (enum numbers), activity id, host Party, metric."""


def digest_row(block: LedgerBlock) -> DigestRow:
    unit = block.attributes.unit
    return (
        unit.originating_registry, block.serial_first, block.serial_last,
        block.attributes.holder.account_id, unit.vintage, unit.cooperative_approach,
        unit.first_transferring_party, unit.authorization_id, unit.purpose.value,
        unit.unit_kind.value, unit.state.value, unit.activity_id, unit.host_party, unit.metric,
    )  # fmt: skip


def _row_bytes(row: DigestRow) -> bytes:
    return ("A6B1" + US + US.join(map(str, row))).encode()


def block_bytes(block: LedgerBlock) -> bytes:
    return _row_bytes(digest_row(block))


def block_digest(block: LedgerBlock) -> bytes:
    return hashlib.sha256(block_bytes(block)).digest()


def check_shape(fanout: int, depth: int) -> int:
    """Bits per level, for a valid shape."""
    if fanout not in FANOUTS or depth < 1 or depth * (fanout.bit_length() - 1) > 64:
        raise Refusal(Code.HASH_TREE_NODE_INVALID, f"fanout {fanout}, depth {depth}")
    return fanout.bit_length() - 1


def choose_depth(blocks: int, fanout: int) -> int:
    """About two blocks per leaf: deep enough that a leaf holds few, shallow enough that the
    tree stays small (at least 1, at most what 64 key bits allow)."""
    bits = fanout.bit_length() - 1
    depth = 1
    while fanout ** (depth + 1) <= max(blocks // 2, 1) and (depth + 1) * bits <= 64:
        depth += 1
    return depth


TotalsKey = tuple[int, int, str]  # unit kind, vintage, cooperative approach


def _itself(row: DigestRow, block: Any) -> LedgerBlock:
    assert isinstance(block, Block), block
    found: LedgerBlock = block
    return found


def block_of_row(row: DigestRow, registry: str) -> LedgerBlock:
    """The block a digest row describes, held in ``registry``."""
    unit = UnitAttributes(
        originating_registry=row[0], vintage=row[4], cooperative_approach=row[5],
        first_transferring_party=row[6], authorization_id=row[7], purpose=Purpose(row[8]),
        unit_kind=UnitKind(row[9]), state=UnitState(row[10]), activity_id=row[11],
        host_party=row[12], metric=row[13],
    )  # fmt: skip
    return Block(row[1], row[2], Held(Holder(registry, row[3]), unit))


ToBlock = Callable[[DigestRow, Any], LedgerBlock]


@dataclass
class Tree:
    """One side's hash tree over its blocks, with their totals.

    Each leaf keeps its blocks as ``(DigestRow, payload)``, which ``to_block`` turns into a
    block when a leaf's blocks are listed (the payload is the block itself, or nothing when
    the row was read from a database: ``block_of_row``), so that a million blocks read for a
    run cost a tuple and two hashes each, not a block object each."""

    fanout: int
    depth: int
    levels: list[dict[int, tuple[bytes, int]]] = field(default_factory=list)
    leaves: dict[int, list[tuple[DigestRow, Any]]] = field(default_factory=dict)
    to_block: ToBlock = _itself
    totals: dict[TotalsKey, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def build(cls, blocks: Iterable[LedgerBlock], fanout: int, depth: int) -> Tree:
        return cls.from_rows(((digest_row(b), b) for b in blocks), fanout, depth, _itself)

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[tuple[DigestRow, Any]],
        fanout: int,
        depth: int,
        to_block: ToBlock,
    ) -> Tree:
        bits = check_shape(fanout, depth)
        shift = 64 - depth * bits
        sha256 = hashlib.sha256
        leaves: dict[int, list[tuple[DigestRow, Any]]] = {}
        found: dict[TotalsKey, tuple[int, int]] = {}
        for item in rows:
            row = item[0]
            leaves.setdefault(block_key(row[0], row[1]) >> shift, []).append(item)
            total = (row[9], row[4], row[5])
            units, count = found.get(total, (0, 0))
            found[total] = (units + row[2] - row[1] + 1, count + 1)
        level: dict[int, tuple[bytes, int]] = {}
        for index, held in leaves.items():
            held.sort(key=_space_and_first)
            digests = b"".join(sha256(_row_bytes(row)).digest() for row, _ in held)
            level[index] = (sha256(b"A6L1" + digests).digest(), len(held))
        levels = [level]
        for _ in range(depth):
            parents: dict[int, list[int]] = {}
            for index in level:
                parents.setdefault(index >> bits, []).append(index)
            above: dict[int, tuple[bytes, int]] = {}
            for parent in parents:
                children = [level.get((parent << bits) + j, (EMPTY, 0)) for j in range(fanout)]
                digest = sha256(b"A6N1" + b"".join(d for d, _ in children)).digest()
                above[parent] = (digest, sum(count for _, count in children))
            levels.append(above)
            level = above
        levels.reverse()  # levels[d] is depth d
        return cls(fanout, depth, levels, leaves, to_block, found)

    def node(self, depth: int, index: int) -> Node:
        if not 0 <= depth <= self.depth or not 0 <= index < self.fanout**depth:
            raise Refusal(Code.HASH_TREE_NODE_INVALID, f"node ({depth}, {index})")
        digest, count = self.levels[depth].get(index, (EMPTY, 0))
        return Node(depth, index, digest, count)

    @property
    def root(self) -> Node:
        return self.node(0, 0)

    def children(self, depth: int, index: int) -> list[Node]:
        if depth >= self.depth:
            raise Refusal(Code.HASH_TREE_NODE_INVALID, f"({depth}, {index}) is a leaf")
        self.node(depth, index)
        first = index * self.fanout
        return [self.node(depth + 1, first + j) for j in range(self.fanout)]

    def blocks(self, leaf: int) -> list[LedgerBlock]:
        self.node(self.depth, leaf)
        return [self.to_block(row, payload) for row, payload in self.leaves.get(leaf, ())]


def _space_and_first(item: tuple[DigestRow, Any]) -> tuple[str, int]:
    return item[0][0], item[0][1]


def differing(mine: Sequence[Node], theirs: Sequence[Node]) -> list[Node]:
    """The nodes (of ``mine``) whose digests differ from the other side's same nodes."""
    by_place = {(node.depth, node.index): node for node in theirs}
    return [
        node for node in mine
        if (other := by_place.get((node.depth, node.index))) is None or other.digest != node.digest
    ]  # fmt: skip


def block_differences(
    mine: Sequence[LedgerBlock], theirs: Sequence[LedgerBlock]
) -> tuple[list[LedgerBlock], list[LedgerBlock]]:
    """Blocks only one side has, exactly as it has them: (mine only, theirs only)."""
    their_digests = {block_digest(block) for block in theirs}
    my_digests = {block_digest(block) for block in mine}
    return (
        [block for block in mine if block_digest(block) not in their_digests],
        [block for block in theirs if block_digest(block) not in my_digests],
    )


# --- the comparison, as the hub drives it ---------------------------------------------------


class Remote(Protocol):
    """The other side's snapshot, asked over the network (or, in tests, in process)."""

    async def totals(self) -> tuple[dict[TotalsKey, tuple[int, int]], Node]:
        """Its totals and its root."""

    async def children(self, parents: Sequence[tuple[int, int]]) -> list[Node]:
        """The children of each parent, in order."""

    async def blocks(self, leaves: Sequence[int]) -> list[LedgerBlock]:
        """Its blocks under these leaves."""


@dataclass
class Comparison:
    totals_agree: bool
    hub_only: list[LedgerBlock]
    registry_only: list[LedgerBlock]
    registry_blocks: int
    differing_leaves: int


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def fold_totals(rows: Iterable[tuple[TotalsKey, int, int]]) -> dict[TotalsKey, tuple[int, int]]:
    """Totals reported per account type, summed over account types."""
    found: dict[TotalsKey, tuple[int, int]] = {}
    for key, units, count in rows:
        have = found.get(key, (0, 0))
        found[key] = (have[0] + units, have[1] + count)
    return found


async def compare(
    tree: Tree,
    remote: Remote,
    on_totals: Callable[[bool], Awaitable[None]] | None = None,
    on_progress: Callable[[str], Awaitable[None]] | None = None,
) -> Comparison:
    """Descend only into subtrees whose digests differ, one request per level (batched), down
    to the leaves, and list the blocks each side has that the other has not. ``on_totals``
    hears whether the totals agree before the descent (the run's intermediate status), and
    ``on_progress`` where the run is, in words, at each step."""

    async def progress(step: str) -> None:
        if on_progress is not None:
            await on_progress(step)

    their_totals, their_root = await remote.totals()
    mine = tree.totals
    if on_totals is not None:
        await on_totals(mine == their_totals)
    frontier = [] if their_root.digest == tree.root.digest else [(0, 0)]
    for depth in range(tree.depth):
        if not frontier:
            break
        await progress(f"descending the tree: depth {depth + 1} of {tree.depth}, "
                       f"children of {len(frontier):,} differing nodes")  # fmt: skip
        theirs: list[Node] = []
        for chunk in _chunks(frontier, PARENTS_PER_REQUEST):
            answer = await remote.children(chunk)
            if len(answer) != len(chunk) * tree.fanout:
                raise Refusal(Code.HASH_TREE_NODE_INVALID, "children missing from the answer")
            theirs += answer
        mine_children = [child for d, i in frontier for child in tree.children(d, i)]
        frontier = [(node.depth, node.index) for node in differing(mine_children, theirs)]
    leaves = [index for _, index in frontier]
    if leaves:
        await progress(f"listing the blocks under {len(leaves):,} differing leaves")
    wanted = set(leaves)
    bits = tree.fanout.bit_length() - 1
    shift = 64 - tree.depth * bits
    their_blocks: list[LedgerBlock] = []
    for leaf_chunk in _chunks(leaves, LEAVES_PER_REQUEST):
        for block in await remote.blocks(leaf_chunk):
            leaf = block_key(block.attributes.unit.originating_registry, block.serial_first)
            if leaf >> shift in wanted:  # anything else was not asked for
                their_blocks.append(block)
    my_blocks = [block for leaf in leaves for block in tree.blocks(leaf)]
    hub_only, registry_only = block_differences(my_blocks, their_blocks)
    registry_count = their_root.block_count
    return Comparison(mine == their_totals, hub_only, registry_only, registry_count, len(leaves))
