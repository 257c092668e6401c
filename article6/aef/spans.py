"""The serial span an AEF row's first and last ITMO ids describe.

An ITMO id is ``approach-registry-Party-serial-vintage``; serials are unique within one
approach, registry, Party and vintage (the span's space), so that is what rows are compared
in. Serials may carry thousands separators (``250,000``), as the template allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Space = tuple[str, str]  # ("approach-registry-Party", vintage)


@dataclass(frozen=True)
class Span:
    space: Space
    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    def ids(self) -> tuple[str, str]:
        prefix, vintage = self.space
        return f"{prefix}-{self.first}-{vintage}", f"{prefix}-{self.last}-{vintage}"

    def overlaps(self, other: Span) -> bool:
        return self.space == other.space and self.first <= other.last and other.first <= self.last

    def __str__(self) -> str:
        first, last = self.ids()
        return first if first == last else f"{first} to {last}"


def id_parts(itmo_id: str) -> tuple[Space, int] | None:
    """(space, serial) of a well-formed ITMO id, or None."""
    pieces = itmo_id.split("-")
    if len(pieces) != 5:
        return None
    approach, registry, party, serial, vintage = pieces
    digits = serial.replace(",", "")
    if not digits.isdigit():
        return None
    return (f"{approach}-{registry}-{party}", vintage), int(digits)


def span(row: Mapping[str, Any]) -> Span | None:
    """The span of a row's first and last ITMO ids, or None unless they are one block."""
    first = id_parts(str(row.get("first_id", "")))
    last = id_parts(str(row.get("last_id", "")))
    if first is None or last is None or first[0] != last[0] or last[1] < first[1]:
        return None
    return Span(first[0], first[1], last[1])
