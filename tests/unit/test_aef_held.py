"""The AEF's held-set against a model of single serials: any sequence of adds and removes
leaves the same serials with the same attributes, in disjoint sorted blocks with neighbours
of equal attributes joined, and each remove counts exactly the serials not held."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from article6.aef.held import Holdings
from article6.aef.spans import Span

SPACE = ("CA0001-GHA01-GHA", "2024")
ranges = st.tuples(st.integers(1, 60), st.integers(0, 12)).map(lambda p: (p[0], p[0] + p[1]))
steps = st.lists(st.tuples(st.sampled_from(["add", "remove"]), ranges, st.sampled_from("ab")))


@given(steps)
def test_holdings_match_a_model_of_single_serials(
    operations: list[tuple[str, tuple[int, int], str]],
) -> None:
    held: Holdings[str] = Holdings()
    model: dict[int, str] = {}
    for action, (first, last), kind in operations:
        serials = range(first, last + 1)
        if action == "add":
            held.add(Span(SPACE, first, last), kind)
            model.update(dict.fromkeys(serials, kind))
        else:
            missing = held.remove(Span(SPACE, first, last))
            assert missing == sum(serial not in model for serial in serials)
            for serial in serials:
                model.pop(serial, None)
    blocks = [block for _, block in held]
    assert {
        s: b.attributes for b in blocks for s in range(b.serial_first, b.serial_last + 1)
    } == model
    for before, after in itertools.pairwise(blocks):
        assert before.serial_last < after.serial_first
        joinable = before.serial_last + 1 == after.serial_first
        assert not (joinable and before.attributes == after.attributes)
