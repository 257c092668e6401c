"""AEF prefill for the Parties with a section here (``article6.aef.prefill``): an account's
Party is its section's; the "Party ITMO registry" is the section's registry id."""

from __future__ import annotations

from sqlalchemy import Connection

from article6.aef.prefill import Tables, registry_party
from article6.aef.prefill import workbook as prefill
from article6.node.aef import Say, books
from international_registry.sections import get_account


def workbook(
    connection: Connection, here: str, party: str, year: int, section: str, say: Say | None = None
) -> Tables:
    """Every table's rows for the Party and year, keyed as ``article6/aef/template.toml``
    (with ``say``, each pass over the books reports its progress)."""

    def party_of(registry: str, account_id: str) -> str:
        if registry != here:
            return registry_party(registry)
        account = get_account(connection, account_id) if account_id else None
        return account.party if account else ""

    own = books(connection, party_of, f"{here} (international registry)", say)
    return prefill(own, party, year, section)
