"""The reconciliation hash tree and its comparison, in process: the exact differing blocks
are found whatever was changed, in one request per level."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from article6.blocks import Block
from article6.codes import Refusal
from article6.model import Held, Holder, LedgerBlock, Purpose, UnitAttributes, UnitKind, UnitState
from article6.reconciliation import Node, TotalsKey, Tree, block_totals, choose_depth, compare

UNIT = UnitAttributes("GHA01", 2024, "CA0001", "GHA", "", Purpose.NDC, UnitKind.ITMO,
                      UnitState.HELD)  # fmt: skip


def held(first: int, last: int, account: str = "GHA01-1001-57", **changes: object) -> LedgerBlock:
    unit = replace(UNIT, **changes)  # type: ignore[arg-type]
    return Block(first, last, Held(Holder("GHA01", account), unit))


def ledger(count: int) -> list[LedgerBlock]:
    """``count`` blocks of 10 units with a gap after each (so none would merge)."""
    return [held(20 * n + 1, 20 * n + 10) for n in range(count)]


class InProcess:
    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.requests = 0

    async def totals(self) -> tuple[dict[TotalsKey, tuple[int, int]], Node]:
        self.requests += 1
        everything = self.tree.blocks(self.tree.leaves)
        return block_totals(everything), self.tree.root

    async def children(self, parents: Sequence[tuple[int, int]]) -> list[Node]:
        self.requests += 1
        return [child for d, i in parents for child in self.tree.children(d, i)]

    async def blocks(self, leaves: Sequence[int]) -> list[LedgerBlock]:
        self.requests += 1
        return self.tree.blocks(leaves)


def run(hub: list[LedgerBlock], registry: list[LedgerBlock], fanout: int = 16):  # type: ignore[no-untyped-def]
    depth = choose_depth(len(hub), fanout)
    remote = InProcess(Tree.build(registry, fanout, depth))
    result = asyncio.run(compare(Tree.build(hub, fanout, depth), remote))
    return result, remote.requests, depth


def test_equal_sides_agree_in_one_request() -> None:
    result, requests, _ = run(ledger(1000), ledger(1000))
    assert (result.hub_only, result.registry_only, result.totals_agree) == ([], [], True)
    assert requests == 1


@pytest.mark.parametrize("kind", ["extra", "missing", "attribute", "split"])
def test_each_kind_of_tampering_is_found_exactly(kind: str) -> None:
    hub = ledger(5000)
    registry = list(hub)
    victim = hub[1234]
    expected: tuple[list[LedgerBlock], list[LedgerBlock]]
    if kind == "extra":
        registry.append(held(999_991, 999_999))
        expected = ([], [registry[-1]])
    elif kind == "missing":
        registry.remove(victim)
        expected = ([victim], [])
    elif kind == "attribute":
        changed = held(victim.serial_first, victim.serial_last, vintage=2023)
        registry[1234] = changed
        expected = ([victim], [changed])
    else:
        left = held(victim.serial_first, victim.serial_first + 4)
        right = held(victim.serial_first + 5, victim.serial_last)
        registry[1234:1235] = [left, right]
        expected = ([victim], [left, right])
    result, requests, depth = run(hub, registry)
    assert (result.hub_only, sorted(result.registry_only, key=lambda b: b.serial_first)) == (
        expected
    )
    assert requests <= depth + 2
    assert result.totals_agree is False


@settings(max_examples=30, deadline=None)
@given(
    st.sets(st.integers(min_value=0, max_value=399), max_size=20), st.sampled_from([2, 4, 16, 256])
)
def test_the_differences_found_are_exactly_the_symmetric_difference(
    removed: set[int], fanout: int
) -> None:
    hub = ledger(400)
    registry = [block for n, block in enumerate(hub) if n not in removed]
    result, _, _ = run(hub, registry, fanout)
    assert sorted(b.serial_first for b in result.hub_only) == sorted(
        hub[n].serial_first for n in removed
    )
    assert result.registry_only == []


def test_a_node_outside_the_tree_is_refused() -> None:
    tree = Tree.build(ledger(10), 16, 2)
    with pytest.raises(Refusal):
        tree.node(3, 0)
    with pytest.raises(Refusal):
        tree.children(2, 0)
    with pytest.raises(Refusal):
        Tree.build([], 3, 2)


def test_a_comparison_says_where_it_is_at_each_step() -> None:
    hub = ledger(5000)
    registry = hub[:1234] + hub[1235:]
    depth = choose_depth(len(hub), 16)
    steps: list[str] = []

    async def heard(step: str) -> None:
        steps.append(step)

    remote = InProcess(Tree.build(registry, 16, depth))
    asyncio.run(compare(Tree.build(hub, 16, depth), remote, on_progress=heard))
    assert steps == [
        *(f"descending the tree: depth {d} of {depth}, children of 1 differing nodes"
          for d in range(1, depth + 1)),
        "listing the blocks under 1 differing leaves",
    ]  # fmt: skip
    steps.clear()
    asyncio.run(compare(Tree.build(hub, 16, depth), InProcess(Tree.build(hub, 16, depth)),
                        on_progress=heard))  # fmt: skip
    assert steps == []  # equal roots: nothing to descend
