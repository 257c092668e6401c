"""AEF prefill: a Party's actions and holdings tables, from the international registry's books.

**Actions** (AEF table 3): one row per homogeneous block per action, for every completed
transaction in the reported year that involves the Party's section, seen from the Party:
authorization; first transfer (or, for the Party receiving it, acquisition); transfer and
acquisition between Parties (moves inside one Party's section are not reported); use;
cancellation; voluntary cancellation. Issuance is not an AEF action.

**Holdings** (AEF table 4): the blocks the Party's section holds when exported.

First and last ids are ITMO unique identifiers (cooperative approach, originating registry,
first-transferring Party, serial, vintage). In an authorization row the outcomes are not yet
first transferred: their ids carry the authorizing Party, which is the Party that will first
transfer them (the hub refuses any other, code 5014). In the holdings table, outcomes not yet
first transferred have no ITMO id yet, and the id columns are blank.

Labels of the controlled vocabularies come from ``data/aef_vocabulary.toml``.
"""

from __future__ import annotations

import csv
import io
import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from article6.blocks import Block
from article6.identifiers import ItmoId
from article6.model import (
    FirstTransferTrigger,
    Purpose,
    Status,
    TransactionSpec,
    TransactionType,
    UnitAttributes,
)
from article6.node import store
from article6.v1 import transaction_pb2
from article6.wire import transaction_spec
from international_registry.sections import get_account

VOCABULARY = Path(__file__).resolve().parent / "data" / "aef_vocabulary.toml"

ACTION_COLUMNS = (
    "date_time", "action_type", "action_subtype", "cooperative_approach", "authorization_id",
    "first_transferring_party", "registry_id", "first_id", "last_id", "metric", "quantity",
    "vintage", "transferring_party", "acquiring_party", "purpose", "using_party", "year_of_use",
)  # fmt: skip
HOLDING_COLUMNS = (
    "registry_id", "account_id", "account_type", "unit_kind", "cooperative_approach",
    "authorization_id", "first_transferring_party", "first_id", "last_id", "metric", "quantity",
    "vintage", "state",
)  # fmt: skip

_ONE_SIDED = {
    TransactionType.AUTHORIZATION: "authorization",
    TransactionType.USE: "use",
    TransactionType.CANCELLATION: "cancellation",
    TransactionType.VOLUNTARY_CANCELLATION: "voluntary_cancellation",
}
_MOVES = {
    TransactionType.EXTERNAL_TRANSFER,
    TransactionType.INTERNAL_TRANSFER,
    TransactionType.FIRST_TRANSFER,
}
_OIMP_SUBTYPES = {
    FirstTransferTrigger.AUTHORIZATION: "first_transfer_oimp_authorization",
    FirstTransferTrigger.ISSUANCE: "first_transfer_oimp_issuance",
    FirstTransferTrigger.USE_OR_CANCELLATION: "first_transfer_oimp_use_or_cancellation",
}


@cache
def vocabulary() -> dict[str, dict[str, str]]:
    with VOCABULARY.open("rb") as handle:
        return tomllib.load(handle)


def label(table: str, key: str) -> str:
    return vocabulary()[table][key] if key else ""


def registry_party(registry_id: str) -> str:
    """A Party registry's id is its Party's ISO 3166-1 alpha-3 code and two digits."""
    return registry_id[:3]


@dataclass(frozen=True)
class Views:
    """Who is on each side of a transaction, as Parties."""

    source: str
    target: str


def _party(connection: Connection, registry: str, account_id: str, here: str) -> str:
    if registry != here:
        return registry_party(registry)
    account = get_account(connection, account_id) if account_id else None
    return account.party if account else ""


def _views(connection: Connection, spec: TransactionSpec, here: str) -> Views:
    """Which Parties a transaction moves units between. Units first transferred from another
    registry come from their first-transferring Party (A6.4ERs: the host Party, whatever the
    mechanism registry's id)."""
    source = _party(connection, spec.transferring_registry, spec.transferring_account, here)
    if spec.first_transfer is not None and spec.transferring_registry != here:
        source = spec.first_transfer.first_transferring_party
    target_account = spec.acquiring_account or spec.transferring_account
    target = _party(connection, spec.acquiring_registry, target_account, here)
    return Views(source, target)


def _action(spec: TransactionSpec, views: Views, party: str) -> tuple[str, str] | None:
    """The AEF action type and subtype of ``spec`` for ``party``, or None if not reported."""
    between = views.source != views.target
    if spec.type in _ONE_SIDED:
        return (_ONE_SIDED[spec.type], "") if views.source == party else None
    if spec.type is TransactionType.FIRST_TRANSFER and views.source == party:
        return "first_transfer", _first_transfer_subtype(spec, between)
    if spec.type in _MOVES and between:  # a move within one Party's holdings is not reported
        return ("transfer", "") if views.source == party else ("acquisition", "")
    return None


def _first_transfer_subtype(spec: TransactionSpec, between: bool) -> str:
    assert spec.first_transfer is not None
    if between:
        return "first_transfer_to_another_party"
    return _OIMP_SUBTYPES.get(spec.first_transfer.trigger, "")


def _ids(block: Block[UnitAttributes], first_transferring_party: str) -> tuple[str, str]:
    unit = block.attributes
    if not unit.cooperative_approach or not first_transferring_party:
        return "", ""

    def itmo(serial: int) -> str:
        return str(ItmoId(unit.cooperative_approach, unit.originating_registry,
                          first_transferring_party, serial, unit.vintage))  # fmt: skip

    return itmo(block.serial_first), itmo(block.serial_last)


def _action_rows(
    spec: TransactionSpec, views: Views, action: tuple[str, str], at: datetime, section: str
) -> Iterator[dict[str, Any]]:
    granted = spec.authorization
    first = spec.first_transfer
    use = spec.use
    # Transferring and acquiring Parties belong to movements, not to one-sided actions.
    moving = spec.type in _MOVES
    for block in spec.blocks:
        unit = block.attributes
        approach = granted.cooperative_approach if granted else unit.cooperative_approach
        authorization_id = granted.authorization_id if granted else unit.authorization_id
        purpose = granted.purpose if granted else unit.purpose
        transferring = first.first_transferring_party if first else unit.first_transferring_party
        id_party = transferring or (granted.authorizing_party if granted else "")
        first_id, last_id = _ids(
            block.with_attributes(replace(unit, cooperative_approach=approach)), id_party
        )
        yield {
            "date_time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "action_type": label("action_types", action[0]),
            "action_subtype": label("action_subtypes", action[1]) if action[1] else spec.subtype,
            "cooperative_approach": approach,
            "authorization_id": authorization_id,
            "first_transferring_party": transferring,
            "registry_id": section,
            "first_id": first_id,
            "last_id": last_id,
            "metric": unit.metric or label("metrics", "default"),
            "quantity": block.unit_count,
            "vintage": unit.vintage,
            "transferring_party": views.source if moving else "",
            "acquiring_party": views.target if moving else "",
            "purpose": ""
            if purpose is Purpose.UNSPECIFIED
            else label("purposes", purpose.name.lower()),
            "using_party": use.using_party if use else "",
            "year_of_use": use.year_of_use if use and use.year_of_use else "",
        }


def _purpose_label(purpose: Purpose) -> str:
    return "" if purpose is Purpose.UNSPECIFIED else label("purposes", purpose.name.lower())


def actions(
    connection: Connection, here: str, party: str, year: int, section: str
) -> list[dict[str, Any]]:
    """The Party's AEF actions rows for ``year``, in the order the actions completed;
    ``section`` is the registry id of the Party's section (its "Party ITMO registry")."""
    rows: list[dict[str, Any]] = []
    for local in store.list_transactions(connection):
        completed_at = local.updated_at.replace(tzinfo=UTC)
        if local.status is not Status.COMPLETED or completed_at.year != year:
            continue
        spec = transaction_spec(transaction_pb2.Transaction.FromString(local.body))
        views = _views(connection, spec, here)
        action = _action(spec, views, party)
        if action is not None:
            rows.extend(_action_rows(spec, views, action, completed_at, section))
    return rows


def holdings(connection: Connection, here: str, party: str, section: str) -> list[dict[str, Any]]:
    """The blocks held in the Party's section now (``section``: the section's registry id)."""
    rows = []
    for held in store.all_holdings(connection, here):
        account = get_account(connection, held.attributes.holder.account_id)
        if account is None or account.party != party:
            continue
        unit = held.attributes.unit
        id_party = unit.first_transferring_party
        first_id, last_id = _ids(held.with_attributes(unit), id_party)
        rows.append({
            "registry_id": section,
            "account_id": account.account_id,
            "account_type": account.account_type.name.lower(),
            "unit_kind": label("unit_kinds", unit.unit_kind.name.lower()),
            "cooperative_approach": unit.cooperative_approach,
            "authorization_id": unit.authorization_id,
            "first_transferring_party": unit.first_transferring_party,
            "first_id": first_id,
            "last_id": last_id,
            "metric": unit.metric or label("metrics", "default"),
            "quantity": held.unit_count,
            "vintage": unit.vintage,
            "state": label("states", unit.state.name.lower()),
        })  # fmt: skip
    return rows


def render(rows: list[dict[str, Any]], columns: tuple[str, ...], form: str) -> str:
    """CSV (with a header row) or JSON (a list of objects)."""
    if form == "json":
        return json.dumps(rows, indent=2)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
