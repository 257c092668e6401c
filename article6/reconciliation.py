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

from article6.codes import Code, Refusal
from article6.limits import LEAVES_PER_REQUEST, PARENTS_PER_REQUEST
from article6.model import LedgerBlock

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


KEY_PREFIX = "A6K1" + US
KEY_TEXT = KEY_PREFIX + "%s" + US + "%s"  # a block's key's input: space, serial_first
ROW_TEXT = "A6B1" + (US + "%s") * 14  # a block's digest's input: a DigestRow, field by field


def block_key(space: str, serial_first: int) -> int:
    text = KEY_TEXT % (space, serial_first)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def place_of_key_text(text: str) -> Place:
    """The (space, serial_first) a key's input names."""
    cut = text.rindex(US)
    return text[len(KEY_PREFIX) : cut], int(text[cut + 1 :])


Place = tuple[str, int]  # a block's space (originating registry) and serial_first
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
    return (ROW_TEXT % row).encode()


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


def block_totals(blocks: Iterable[LedgerBlock]) -> dict[TotalsKey, tuple[int, int]]:
    """Units and blocks by (unit kind, vintage, cooperative approach)."""
    found: dict[TotalsKey, tuple[int, int]] = {}
    for block in blocks:
        unit = block.attributes.unit
        key = (unit.unit_kind.value, unit.vintage, unit.cooperative_approach)
        units, count = found.get(key, (0, 0))
        found[key] = (units + block.unit_count, count + 1)
    return found


@dataclass
class Tree:
    """One side's hash tree over its blocks, with their totals.

    Each leaf keeps, for each of its blocks in order, its key's input text and its digest
    (one flat list, alternating), so that the blocks under a leaf can be named (``places``)
    and looked up where they are kept: in ``known`` for a tree built from blocks, in the
    snapshot it was read from for a tree built from a database's rows. A million blocks cost
    a string and a digest each, not a block object each."""

    fanout: int
    depth: int
    levels: list[dict[int, tuple[bytes, int]]] = field(default_factory=list)
    leaves: dict[int, list[Any]] = field(default_factory=dict)
    totals: dict[TotalsKey, tuple[int, int]] = field(default_factory=dict)
    known: dict[Place, LedgerBlock] = field(default_factory=dict)

    @classmethod
    def build(cls, blocks: Iterable[LedgerBlock], fanout: int, depth: int) -> Tree:
        listed = list(blocks)
        known = {(b.attributes.unit.originating_registry, b.serial_first): b for b in listed}
        texts = sorted((place, KEY_TEXT % place, ROW_TEXT % digest_row(block))
                       for place, block in known.items())  # fmt: skip
        tree = cls.from_texts(((k, r) for _, k, r in texts), fanout, depth, block_totals(listed))
        tree.known = known
        return tree

    @classmethod
    def from_texts(
        cls,
        rows: Iterable[tuple[str, str]],
        fanout: int,
        depth: int,
        totals: dict[TotalsKey, tuple[int, int]],
    ) -> Tree:
        """The tree of blocks given as (key input, digest input) texts, in (space,
        serial_first) order, so that each leaf receives its blocks in the order its digest
        takes them; ``totals`` are the same blocks' totals.

        This loop is most of a run's cost: a million rows pass through it on each side, so
        it does no more per row than the two hashes need (the texts come formatted)."""
        bits = check_shape(fanout, depth)
        shift = 64 - depth * bits
        sha256, from_bytes = hashlib.sha256, int.from_bytes
        leaves: dict[int, list[Any]] = {}
        for key_text, row_text in rows:
            leaf = from_bytes(sha256(key_text.encode()).digest()[:8]) >> shift
            digest = sha256(row_text.encode()).digest()
            if (held := leaves.get(leaf)) is None:
                leaves[leaf] = [key_text, digest]
            else:
                held += (key_text, digest)
        level = {
            index: (sha256(b"A6L1" + b"".join(held[1::2])).digest(), len(held) // 2)
            for index, held in leaves.items()
        }
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
        return cls(fanout, depth, levels, leaves, dict(totals))

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

    def places(self, leaves: Iterable[int]) -> list[Place]:
        """The (space, serial_first) of every block under ``leaves``."""
        found = []
        for leaf in leaves:
            self.node(self.depth, leaf)
            found += [place_of_key_text(text) for text in self.leaves.get(leaf, [])[::2]]
        return found

    def blocks(self, leaves: Iterable[int]) -> list[LedgerBlock]:
        """The blocks under ``leaves``, for a tree built from blocks (``build``)."""
        return self.blocks_at(self.places(leaves))

    def blocks_at(self, places: Iterable[Place]) -> list[LedgerBlock]:
        """The blocks at ``places``, for a tree built from blocks (``build``)."""
        return [self.known[place] for place in places]


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


Lookup = Callable[[Sequence[Place]], Awaitable[list[LedgerBlock]]]
"""Blocks by place, from the snapshot a tree was built from."""


async def compare(
    tree: Tree,
    remote: Remote,
    on_totals: Callable[[bool], Awaitable[None]] | None = None,
    on_progress: Callable[[str], Awaitable[None]] | None = None,
    lookup: Lookup | None = None,
) -> Comparison:
    """Descend only into subtrees whose digests differ, one request per level (batched), down
    to the leaves, and list the blocks each side has that the other has not. ``on_totals``
    hears whether the totals agree before the descent (the run's intermediate status), and
    ``on_progress`` where the run is, in words, at each step; ``lookup`` finds this side's
    blocks by place (the tree's own blocks when it was built from them)."""

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
    places = tree.places(leaves)
    my_blocks = tree.blocks_at(places) if lookup is None else await lookup(places)
    hub_only, registry_only = block_differences(my_blocks, their_blocks)
    registry_count = their_root.block_count
    return Comparison(mine == their_totals, hub_only, registry_only, registry_count, len(leaves))
