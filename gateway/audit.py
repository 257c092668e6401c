"""The audit trail's hash chain: pure logic, no storage.

Every state change and operator action becomes an ``Entry`` with a sequence number. Its hash
is SHA-256 over the previous entry's hash and the entry's canonical bytes, so altering,
removing, inserting or reordering any entry changes every hash after it. The chain's head
(the last sequence number and hash) is signed with the hub's Ed25519 key each time it moves:
rewriting the chain consistently from some entry onwards would also need that key, and cutting
entries off the end leaves a chain that no longer reaches the signed head.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64  # the "previous hash" of entry 1


@dataclass(frozen=True)
class Entry:
    """One audited fact: who (``actor``) did what (``action``) to what (``subject``)."""

    seq: int
    at: str  # ISO 8601 UTC, stored as text so the hashed bytes never pass through a driver
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]

    def canonical(self) -> bytes:
        fields = [self.seq, self.at, self.actor, self.action, self.subject, self.detail]
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def entry_hash(previous: str, entry: Entry) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + entry.canonical()).hexdigest()


def head_statement(seq: int, digest: str) -> bytes:
    """The bytes the hub signs for a head: domain-separated from every protocol message."""
    return f"article6 audit head\n{seq}\n{digest}\n".encode()


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    key_id: str
    signature: bytes


@dataclass(frozen=True)
class Verdict:
    records: int
    problems: list[str]

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(
    records: Iterable[tuple[Entry, str]],
    head: Head,
    signature_valid: Callable[[Head], bool],
    problem_limit: int = 20,
) -> Verdict:
    """Walk the stored chain (entries with their stored hashes, in sequence order) and say
    whether it is whole: every hash recomputes, sequence numbers run 1, 2, 3... without a gap
    or repeat, the chain ends exactly at the head, and the head's signature holds."""
    problems: list[str] = []
    previous, expected, count = GENESIS, 1, 0
    for entry, stored in records:
        count += 1
        if entry.seq != expected:
            problems.append(f"entry {entry.seq} where {expected} was due: removed or reordered")
        recomputed = entry_hash(previous, entry)
        if recomputed != stored:
            problems.append(f"entry {entry.seq} does not hash to its stored hash: altered")
        previous, expected = stored, entry.seq + 1
        if len(problems) >= problem_limit:
            return Verdict(count, [*problems, "(stopped after the first problems)"])
    if (expected - 1, previous) != (head.seq, head.hash):
        problems.append(
            f"the chain ends at entry {expected - 1} but the signed head is entry {head.seq}: "
            "entries removed from the end, or the head rewritten"
        )
    if head.seq and not signature_valid(head):
        problems.append("the head's signature does not verify under the hub's keys")
    return Verdict(count, problems)


def verdict_lines(verdict: Verdict, head: Head) -> list[str]:
    """The verdict as the command lines print it (offline and over the admin port alike)."""
    state = "intact" if verdict.intact else "NOT intact"
    return [
        f"audit trail {state}: {verdict.records} entries; head {head.seq} {head.hash} "
        f"signed by key {head.key_id or '-'}",
        *(f"  {problem}" for problem in verdict.problems),
    ]


def entry_line(entry: Entry, detail_json: str) -> str:
    return (
        f"{entry.seq:>8} {entry.at} {entry.actor:<10} {entry.action:<24} "
        f"{entry.subject:<16} {detail_json}"
    )
