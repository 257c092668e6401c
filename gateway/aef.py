"""The hub's AEF: the prefill of any Party with a registry of its own, from what passed
through the hub, and the consistency check of the workbook a Party submits against it.

The hub knows each Party registry's Party from its directory. It does not know which Party
an account of the international registry belongs to (that registry holds many Parties'
sections), so a movement to or from a section there is reported without the other Party,
and the consistency check takes the submission's word for it (docs/AEF.md).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection

from article6.aef.consistency import Ledger, Outcome, annotate, check_consistency
from article6.aef.prefill import Books, Tables, actions, workbook
from article6.node.aef import completed
from gateway.config import RegistryEntry
from gateway.storage.records import completed_transactions, list_authorizations


class NoRegistry(LookupError):
    """The Party has no registry of its own in the hub's directory."""


def parties(directory: Mapping[str, RegistryEntry]) -> dict[str, str]:
    """Each registry's Party, by registry id ("" for the international and the mechanism
    registry)."""
    return {entry.registry_id: entry.party for entry in directory.values()}


def party_registry(directory: Mapping[str, str], party: str) -> str:
    """The Party's registry (its "Party ITMO registry"); the first by id if it has several."""
    own = sorted(registry for registry, its in directory.items() if its == party)
    if not own:
        raise NoRegistry(f"no registry of Party {party} in the hub's directory")
    return own[0]


def books(connection: Connection, directory: Mapping[str, str], year: int) -> Books:
    """The hub's completed transactions up to the end of ``year``."""
    until = datetime(year + 1, 1, 1, tzinfo=UTC)

    def party_of(registry: str, account_id: str) -> str:
        return directory.get(registry, "")

    return Books(
        party_of, lambda: completed(completed_transactions(connection, until)), "the hub's ledger"
    )


def export(connection: Connection, directory: Mapping[str, str], party: str, year: int) -> Tables:
    """The Party's five tables for the year, from the hub's ledger."""
    section = party_registry(directory, party)
    return workbook(books(connection, directory, year), party, year, section)


def ledger(connection: Connection, directory: Mapping[str, str], party: str, year: int) -> Ledger:
    """What the hub's ledger says of the Party, for checking its submission for ``year``."""
    section = party_registry(directory, party)
    own = books(connection, directory, year)
    caps = {record.grant.authorization_id: record.grant.quantity_cap
            for record, _ in list_authorizations(connection, party)}  # fmt: skip
    rows = list(actions(own.completed(), own.party_of, party, section))
    return Ledger(party=party, year=year, actions=rows, caps=caps, section=section)


def check(workbook: bytes, books: Ledger) -> tuple[Outcome, bytes]:
    """Check a submitted workbook's bytes against the ledger; the outcome, and the workbook
    with each action row's result."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "submitted.xlsx"
        path.write_bytes(workbook)
        outcome = check_consistency(path, books)
        out = io.BytesIO()
        annotate(path, out, outcome.results)
    return outcome, out.getvalue()
