"""AEF prefill: a Party's five AEF tables (4/CMA.6) from the international registry's books.

- **Table 1, summary**: the Party, the year, its section's registry id, counts and totals.
- **Table 2, authorizations**: every version of the Party's authorizations recorded in the
  year, with the full record the authorization carried (AEF Table 2 fields).
- **Table 3, actions**: one row per homogeneous block per action, for every completed
  transaction in the year that involves the Party's section, seen from the Party: first
  transfer (or, for the Party receiving it, acquisition); transfer and acquisition between
  Parties (moves inside one Party's section are not reported); use; cancellation (for OIMP,
  or voluntary). Authorizations are Table 2, not actions; issuance is not an AEF action.
- **Table 4, holdings**: the ITMOs the Party's section holds when exported.
- **Table 5, authorized entities**: the entities named by the year's authorizations.

First and last ids are ITMO unique identifiers (cooperative approach, originating registry,
first-transferring Party, serial, vintage). ITMOs from A6.4ERs keep the mechanism registry's
serials, reported as the underlying unit registry and unit ids; the registry element of
their ITMO ids is the host Party's code and ``A64_REGISTRY_SUFFIX`` (docs/AEF.md). Labels come
from ``data/aef_vocabulary.toml``; the layout from ``article6/aef/template.toml``.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from article6.blocks import Block
from article6.identifiers import A64_REGISTRY_SUFFIX, PARTY_REGISTRY_ID, ItmoId
from article6.model import (
    FirstTransferTrigger,
    Purpose,
    Status,
    TransactionSpec,
    TransactionType,
    UnitAttributes,
    UnitKind,
    UnitState,
)
from article6.node import store
from article6.v1 import transaction_pb2
from article6.wire import transaction_spec
from international_registry.sections import get_account

VOCABULARY = Path(__file__).resolve().parent / "data" / "aef_vocabulary.toml"
Row = dict[str, Any]

_ONE_SIDED = {
    TransactionType.USE: ("use", "use"),
    TransactionType.CANCELLATION: ("cancellation", "cancellation"),
    TransactionType.VOLUNTARY_CANCELLATION: ("cancellation", "voluntary_cancellation"),
}
_MOVES = {
    TransactionType.EXTERNAL_TRANSFER,
    TransactionType.INTERNAL_TRANSFER,
    TransactionType.FIRST_TRANSFER,
}
OIMP_USES = frozenset({Purpose.OIMP, Purpose.IMP, Purpose.OP})
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
        if views.source != party:
            return None
        kind, subtype = _ONE_SIDED[spec.type]
        if spec.type is TransactionType.USE and spec.use and spec.use.purpose in OIMP_USES:
            subtype = ""  # a use for OIMP: its purpose column says which
        return kind, subtype
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


# --- identifiers ---------------------------------------------------------------------------


def _ids(unit: UnitAttributes, block: Block[Any], party: str) -> dict[str, str]:
    """First and last ITMO ids of a block, and for ITMOs from A6.4ERs (units that originate
    outside any Party registry) the underlying unit registry and unit ids."""
    if not unit.cooperative_approach or not party:
        return {}
    registry = unit.originating_registry
    ids: dict[str, str] = {}
    if not PARTY_REGISTRY_ID.fullmatch(registry):
        ids = {"unit_registry": registry,
               "first_unit_id": f"{registry}-{block.serial_first}",
               "last_unit_id": f"{registry}-{block.serial_last}"}  # fmt: skip
        registry = party + A64_REGISTRY_SUFFIX

    def itmo(serial: int) -> str:
        return str(ItmoId(unit.cooperative_approach, registry, party, serial, unit.vintage))

    return {"first_id": itmo(block.serial_first), "last_id": itmo(block.serial_last), **ids}


def _quantity(unit: UnitAttributes, count: int) -> Row:
    """The metric and the quantity in its column (GHG: t CO2 eq; else the non-GHG metric)."""
    if unit.metric and unit.metric.lower().startswith("non"):
        return {"metric": label("metrics", "non_ghg"), "quantity_non_ghg": count}
    return {"metric": label("metrics", "ghg"), "quantity": count}


def _purpose(purpose: Purpose) -> str:
    return "" if purpose is Purpose.UNSPECIFIED else label("purposes", purpose.name.lower())


# --- Table 3: actions ----------------------------------------------------------------------


def _implicit_first_transfer(spec: TransactionSpec, party: str) -> tuple[str, str] | None:
    """The first transfer that an authorization, issuance, use or cancellation makes for
    OIMP (the Party's first-transfer definition), reported as a first transfer of its own."""
    if spec.type is TransactionType.FIRST_TRANSFER or spec.first_transferring_party != party:
        return None
    if spec.type is TransactionType.AUTHORIZATION:
        return "first_transfer", _OIMP_SUBTYPES[FirstTransferTrigger.AUTHORIZATION]
    assert spec.first_transfer is not None
    return "first_transfer", _OIMP_SUBTYPES.get(spec.first_transfer.trigger, "")


def _action_rows(
    spec: TransactionSpec, views: Views, action: tuple[str, str], at: datetime, section: str
) -> Iterator[Row]:
    first, granted = spec.first_transfer, spec.authorization
    use = spec.use if action[0] in {"use", "cancellation"} else None
    moving = spec.type in _MOVES  # transferring and acquiring Parties belong to movements
    for block in spec.blocks:
        unit = block.attributes
        if granted is not None:  # outcomes first transferred by their authorization
            unit = replace(unit, cooperative_approach=granted.cooperative_approach,
                           authorization_id=granted.authorization_id)  # fmt: skip
        transferring = (first.first_transferring_party if first else
                        unit.first_transferring_party or spec.first_transferring_party)  # fmt: skip
        oimp = use is not None and use.purpose in OIMP_USES
        yield {
            "date": at.date(),
            "action_type": label("action_types", action[0]),
            "action_subtype": label("action_subtypes", action[1]) if action[1] else "",
            "cooperative_approach": unit.cooperative_approach,
            "authorization_id": unit.authorization_id,
            "first_transferring_party": transferring,
            "registry": section,
            **_ids(unit, block, transferring),
            **_quantity(unit, block.unit_count),
            "vintage": unit.vintage,
            "transferring_party": views.source if moving else "",
            "acquiring_party": views.target if moving else "",
            "purpose": _purpose(use.purpose) if use and oimp else "",
            "using_party": use.using_party if use else "",
            "using_entity": use.entity if use else "",
            "year_of_use": use.year_of_use if use and use.year_of_use else "",
        }


Completed = tuple[TransactionSpec, datetime, transaction_pb2.Transaction]


def _completed_in(connection: Connection, year: int) -> Iterator[Completed]:
    for local in store.list_transactions(connection):
        completed_at = local.updated_at.replace(tzinfo=UTC)
        if local.status is Status.COMPLETED and completed_at.year == year:
            message = transaction_pb2.Transaction.FromString(local.body)
            yield transaction_spec(message), completed_at, message


def actions(connection: Connection, here: str, party: str, year: int, section: str) -> list[Row]:
    """The Party's AEF actions rows for ``year``, in the order the actions completed;
    ``section`` is the registry id of the Party's section (its "Party ITMO registry")."""
    rows: list[Row] = []
    for spec, completed_at, _ in _completed_in(connection, year):
        views = _views(connection, spec, here)
        # An authorization is Table 2; what it first transfers (OIMP) is an action.
        for action in (_implicit_first_transfer(spec, party), _action(spec, views, party)):
            if action is not None:
                rows.extend(_action_rows(spec, views, action, completed_at, section))
    return rows


# --- Table 2 and 5: authorizations and their entities --------------------------------------


def _granted(
    connection: Connection, party: str, year: int
) -> Iterator[tuple[transaction_pb2.Authorization, datetime]]:
    for spec, completed_at, message in _completed_in(connection, year):
        granted = message.authorization
        if spec.type is TransactionType.AUTHORIZATION and granted.authorizing_party == party:
            yield granted, completed_at


def _day(stamp: Any, fallback: datetime) -> date:
    return stamp.ToDatetime(tzinfo=UTC).date() if stamp.seconds else fallback.date()


def _years(first: int, last: int) -> tuple[int | str, int | str]:
    return first or "", last or ""


def authorizations(connection: Connection, party: str, year: int) -> list[Row]:
    """Each version of the Party's authorizations recorded in ``year`` (AEF Table 2)."""
    return [_authorization_row(granted, at) for granted, at in _granted(connection, party, year)]


def _authorization_row(granted: transaction_pb2.Authorization, at: datetime) -> Row:
    trigger = FirstTransferTrigger(granted.first_transfer_definition)
    metric = "non_ghg" if granted.metric.lower().startswith("non") else "ghg"
    occurred_from, occurred_to = _years(granted.vintage_first, granted.vintage_last)
    use_from, use_to = _years(granted.use_year_first, granted.use_year_last)
    return {
        "authorization_id": granted.authorization_id,
        "date": _day(granted.authorized_at, at),
        "cooperative_approach": granted.cooperative_approach,
        "version": granted.version or 1,
        "quantity": granted.quantity_cap or "",
        "metric": label("metrics", metric),
        "gwp_values": granted.gwp_values,
        "non_ghg_metric": granted.non_ghg_metric,
        "sectors": "; ".join(granted.sectors),
        "activity_types": "; ".join(granted.activity_types),
        "purposes": _purpose(Purpose(granted.purpose)),
        "authorized_parties": "; ".join(granted.authorized_parties),
        "authorized_entities": "; ".join(entity.name for entity in granted.authorized_entities),
        "occurred_from": occurred_from,
        "occurred_to": occurred_to,
        "use_from": use_from,
        "use_to": use_to,
        "terms_and_conditions": granted.terms_and_conditions,
        "documentation": granted.documentation,
        "first_transfer_definition": label("first_transfer_definitions", trigger.name.lower()),
        "explanatory_information": granted.explanatory_information,
    }


def entities(connection: Connection, party: str, year: int) -> list[Row]:
    """The entities the year's authorizations name (AEF Table 5), once per authorization."""
    rows, seen = [], set()
    for granted, at in _granted(connection, party, year):
        for entity in granted.authorized_entities:
            key = (granted.authorization_id, entity.name)
            if key in seen:
                continue
            seen.add(key)
            rows.append({
                "date": _day(entity.authorized_at, at), "name": entity.name,
                "country": entity.country, "identification_number": entity.identification_number,
                "cooperative_approach": granted.cooperative_approach,
                "authorization_id": granted.authorization_id, "conditions": entity.conditions,
                "change_and_revocation_conditions": entity.change_and_revocation_conditions,
            })  # fmt: skip
    return rows


# --- Table 4: holdings ---------------------------------------------------------------------


def holdings(connection: Connection, here: str, party: str, section: str) -> list[Row]:
    """The ITMOs held in the Party's section now (``section``: the section's registry id).
    Outcomes not yet first transferred are not ITMOs, and used or cancelled ITMOs are no
    longer held: neither is reported."""
    rows = []
    for held in store.all_holdings(connection, here):
        account = get_account(connection, held.attributes.holder.account_id)
        unit = held.attributes.unit
        if account is None or account.party != party:
            continue
        if unit.unit_kind is not UnitKind.ITMO or unit.state is not UnitState.HELD:
            continue
        rows.append({
            "cooperative_approach": unit.cooperative_approach,
            "authorization_id": unit.authorization_id,
            "first_transferring_party": unit.first_transferring_party,
            "registry": section,
            **_ids(unit, held, unit.first_transferring_party),
            **_quantity(unit, held.unit_count),
            "vintage": unit.vintage,
        })  # fmt: skip
    return rows


# --- Table 1, and the whole workbook -------------------------------------------------------


def summary(
    party: str, year: int, section: str, here: str, tables: dict[str, list[Row]]
) -> list[Row]:
    counted = Counter(row["action_type"] for row in tables["actions"])
    held = sum(int(row.get("quantity") or 0) for row in tables["holdings"])
    items: list[tuple[str, Any]] = [
        ("Party", party), ("Reported year", year), ("Party ITMO registry", section),
        ("Prepared by", f"{here} (international registry)"),
        ("Prepared on", datetime.now(UTC).date()),
        ("Authorizations (versions)", len(tables["authorizations"])),
        *((f"Actions: {name}", counted.get(name, 0)) for name in
          (label("action_types", key) for key in vocabulary()["action_types"])),
        ("ITMOs held (t CO2 eq)", held),
    ]  # fmt: skip
    return [{"item": item, "value": value} for item, value in items]


def workbook(
    connection: Connection, here: str, party: str, year: int, section: str
) -> dict[str, list[Row]]:
    """Every table's rows for the Party and year, keyed as ``article6/aef/template.toml``."""
    tables = {
        "authorizations": authorizations(connection, party, year),
        "actions": actions(connection, here, party, year, section),
        "holdings": holdings(connection, here, party, section),
        "entities": entities(connection, party, year),
    }
    return {"summary": summary(party, year, section, here, tables), **tables}
