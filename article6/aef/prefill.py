"""AEF prefill from completed transactions: a Party's five AEF tables (4/CMA.6), whoever holds
the books. The hub, the international registry and every ``article6.node`` registry feed it
their own completed transactions and say which Party an account belongs to; the rows are the
same wherever they are made, which is what lets the hub check a Party's submission.

- **Table 1, summary**: the Party, the year, its registry, counts and totals.
- **Table 2, authorizations**: every version of the Party's authorizations recorded in the
  year, with the full record the authorization carried.
- **Table 3, actions**: one row per block per action, for the completed transactions of the
  year that involve the Party, seen from the Party: first transfer (or, for the Party
  receiving it, acquisition); transfer and acquisition between Parties (moves within one
  Party's holdings are not reported); use; cancellation (for OIMP, or voluntary).
  Authorizations are Table 2, not actions; issuance is not an AEF action.
- **Table 4, holdings**: the ITMOs the Party holds at the end of the year (now, for the
  current year), replayed from its actions of that year and every year before.
- **Table 5, authorized entities**: the entities named by the year's authorizations.

First and last ids are ITMO unique identifiers (cooperative approach, originating registry,
first-transferring Party, serial, vintage). ITMOs from A6.4ERs keep the mechanism registry's
serials, reported as the underlying unit registry and unit ids; the registry element of their
ITMO ids is the host Party's code and ``A64_REGISTRY_SUFFIX`` (docs/AEF.md). Labels come from
``labels.toml``; the layout from ``template.toml``.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from article6.aef.held import Holdings
from article6.aef.spans import Span, span
from article6.blocks import Block
from article6.identifiers import A64_REGISTRY_SUFFIX, PARTY_REGISTRY_ID, ItmoId
from article6.model import (
    FirstTransferTrigger,
    Purpose,
    TransactionSpec,
    TransactionType,
    UnitAttributes,
)
from article6.v1 import transaction_pb2

LABELS = Path(__file__).resolve().parent / "labels.toml"
Row = dict[str, Any]
PartyOf = Callable[[str, str], str]
"""The Party an account of a registry belongs to (registry id, account id), or "" if not
known where the books are kept."""

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
def labels() -> dict[str, dict[str, str]]:
    with LABELS.open("rb") as handle:
        return tomllib.load(handle)


def label(table: str, key: str) -> str:
    return labels()[table][key] if key else ""


def registry_party(registry_id: str) -> str:
    """The Party of a Party registry (its id is the ISO 3166-1 alpha-3 code and two digits),
    or "" for any other registry (the international or the mechanism registry)."""
    return registry_id[:3] if PARTY_REGISTRY_ID.fullmatch(registry_id) else ""


@dataclass(frozen=True)
class Completed:
    """A completed transaction: as the domain sees it, when it completed, and as sent (for
    the whole record of an authorization)."""

    spec: TransactionSpec
    at: datetime
    message: transaction_pb2.Transaction


@dataclass(frozen=True)
class Views:
    """Who is on each side of a transaction, as Parties ("" where not known)."""

    source: str
    target: str


def views(spec: TransactionSpec, party_of: PartyOf) -> Views:
    """Which Parties a transaction moves units between. A first transfer's units come from
    its first-transferring Party (A6.4ERs: the host Party, whatever the mechanism registry's
    id)."""
    source = party_of(spec.transferring_registry, spec.transferring_account)
    if spec.first_transfer is not None and spec.first_transfer.first_transferring_party:
        source = spec.first_transfer.first_transferring_party
    target_account = spec.acquiring_account or spec.transferring_account
    return Views(source, party_of(spec.acquiring_registry, target_account))


def _action(spec: TransactionSpec, seen: Views, party: str) -> tuple[str, str] | None:
    """The AEF action type and subtype of ``spec`` for ``party``, or None if not reported."""
    between = seen.source != seen.target
    if spec.type in _ONE_SIDED:
        if seen.source != party:
            return None
        kind, subtype = _ONE_SIDED[spec.type]
        if spec.type is TransactionType.USE and spec.use and spec.use.purpose in OIMP_USES:
            subtype = ""  # a use for OIMP: its purpose column says which
        return kind, subtype
    if spec.type is TransactionType.FIRST_TRANSFER and seen.source == party:
        return "first_transfer", _first_transfer_subtype(spec, between)
    if spec.type in _MOVES and between and party in (seen.source, seen.target):
        # A move within one Party's holdings is not reported.
        return ("transfer", "") if seen.source == party else ("acquisition", "")
    return None


def _first_transfer_subtype(spec: TransactionSpec, between: bool) -> str:
    assert spec.first_transfer is not None
    if between:
        return "first_transfer_to_another_party"
    return _OIMP_SUBTYPES.get(spec.first_transfer.trigger, "")


def _implicit_first_transfer(spec: TransactionSpec, party: str) -> tuple[str, str] | None:
    """The first transfer that an authorization, issuance, use or cancellation makes for
    OIMP (the Party's first-transfer definition), reported as a first transfer of its own."""
    if spec.type is TransactionType.FIRST_TRANSFER or spec.first_transferring_party != party:
        return None
    if spec.type is TransactionType.AUTHORIZATION:
        return "first_transfer", _OIMP_SUBTYPES[FirstTransferTrigger.AUTHORIZATION]
    assert spec.first_transfer is not None
    return "first_transfer", _OIMP_SUBTYPES.get(spec.first_transfer.trigger, "")


# --- cells ---------------------------------------------------------------------------------


def _ids(unit: UnitAttributes, block: Block[Any], party: str) -> dict[str, str]:
    """First and last ITMO ids of a block, and for ITMOs from A6.4ERs (units that originate
    outside any Party registry) the underlying unit registry and unit ids."""
    if not unit.cooperative_approach or not party:
        return {}
    registry = unit.originating_registry
    ids: dict[str, str] = {}
    if not PARTY_REGISTRY_ID.fullmatch(registry):
        ids = unit_ids(registry, block.serial_first, block.serial_last)
        registry = party + A64_REGISTRY_SUFFIX

    def itmo(serial: int) -> str:
        return str(ItmoId(unit.cooperative_approach, registry, party, serial, unit.vintage))

    return {"first_id": itmo(block.serial_first), "last_id": itmo(block.serial_last), **ids}


def unit_ids(registry: str, first: int, last: int) -> dict[str, str]:
    """The underlying unit registry and unit ids of ITMOs from A6.4ERs: their own serials."""
    return {"unit_registry": registry, "first_unit_id": f"{registry}-{first}",
            "last_unit_id": f"{registry}-{last}"}  # fmt: skip


def quantity(metric: str, count: int) -> Row:
    """The metric and the quantity in its column (GHG: t CO2 eq; else the non-GHG metric)."""
    if metric.lower().startswith("non"):
        return {"metric": label("metrics", "non_ghg"), "quantity_non_ghg": count}
    return {"metric": label("metrics", "ghg"), "quantity": count}


def _purpose(purpose: Purpose) -> str:
    return "" if purpose is Purpose.UNSPECIFIED else label("purposes", purpose.name.lower())


# --- Table 3: actions ----------------------------------------------------------------------


def _action_rows(
    spec: TransactionSpec, seen: Views, action: tuple[str, str], at: datetime, section: str
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
            **quantity(unit.metric, block.unit_count),
            "vintage": unit.vintage,
            "transferring_party": seen.source if moving else "",
            "acquiring_party": seen.target if moving else "",
            "purpose": _purpose(use.purpose) if use and oimp else "",
            "using_party": use.using_party if use else "",
            "using_entity": use.entity if use else "",
            "year_of_use": use.year_of_use if use and use.year_of_use else "",
        }


def actions(
    completed: Iterable[Completed], party_of: PartyOf, party: str, section: str
) -> Iterator[Row]:
    """The Party's AEF actions rows, in the order the actions completed, one at a time;
    ``section`` is the Party's registry (its "Party ITMO registry")."""
    for done in completed:
        seen = views(done.spec, party_of)
        # An authorization is Table 2; what it first transfers (OIMP) is an action.
        for action in (_implicit_first_transfer(done.spec, party), _action(done.spec, seen, party)):
            if action is not None:
                yield from _action_rows(done.spec, seen, action, done.at, section)


# --- Table 4: holdings, replayed from the actions ------------------------------------------


@dataclass(frozen=True)
class Kind:
    """What a held block's Table 4 row says besides its serials."""

    cooperative_approach: str
    authorization_id: str
    first_transferring_party: str
    unit_registry: str
    metric: str
    vintage: str


Held = Holdings[Kind]


def adds(row: Row) -> bool:
    """Whether the action brings ITMOs into the Party's holdings: an acquisition, or a first
    transfer the Party keeps them through (OIMP)."""
    if row["action_type"] == label("action_types", "acquisition"):
        return True
    to_another = label("action_subtypes", "first_transfer_to_another_party")
    first = row["action_type"] == label("action_types", "first_transfer")
    return first and row.get("action_subtype") != to_another


def removes(row: Row) -> bool:
    """Whether the action takes ITMOs out of the Party's holdings (transfer, use, cancellation)."""
    return row["action_type"] in {label("action_types", key)
                                  for key in ("transfer", "use", "cancellation")}  # fmt: skip


def _kind(row: Row) -> Kind:
    return Kind(str(row.get("cooperative_approach", "")), str(row.get("authorization_id", "")),
                str(row.get("first_transferring_party", "")), str(row.get("unit_registry", "")),
                str(row.get("metric", "")), str(row.get("vintage", "")))  # fmt: skip


def apply(held: Held, row: Row) -> int:
    """Apply one action row to ``held``; return how many ITMOs it takes out that were not
    held."""
    where = span(row)
    if where is None:
        return 0
    if adds(row):
        held.add(where, _kind(row))
    elif removes(row):
        return held.remove(where)
    return 0


def holding_rows(held: Held, section: str) -> list[Row]:
    rows = []
    for space, block in held:
        kind = block.attributes
        first, last = Span(space, block.serial_first, block.serial_last).ids()
        under = (unit_ids(kind.unit_registry, block.serial_first, block.serial_last)
                 if kind.unit_registry else {})  # fmt: skip
        rows.append({
            "cooperative_approach": kind.cooperative_approach,
            "authorization_id": kind.authorization_id,
            "first_transferring_party": kind.first_transferring_party,
            "registry": section, "first_id": first, "last_id": last, **under,
            **quantity(kind.metric, block.unit_count), "vintage": int(kind.vintage),
        })  # fmt: skip
    return rows


# --- Table 2 and 5: authorizations and their entities --------------------------------------


def granted(
    completed: Iterable[Completed], party: str
) -> Iterator[tuple[transaction_pb2.Authorization, datetime]]:
    """Each version of the Party's authorizations, with when it was recorded."""
    for done in completed:
        record = done.message.authorization
        if done.spec.type is TransactionType.AUTHORIZATION and record.authorizing_party == party:
            yield record, done.at


def _day(stamp: Any, fallback: datetime) -> date:
    return stamp.ToDatetime(tzinfo=UTC).date() if stamp.seconds else fallback.date()


def _years(first: int, last: int) -> tuple[int | str, int | str]:
    return first or "", last or ""


def authorization_row(record: transaction_pb2.Authorization, at: datetime) -> Row:
    """One version of an authorization as an AEF Table 2 row."""
    trigger = FirstTransferTrigger(record.first_transfer_definition)
    metric = "non_ghg" if record.metric.lower().startswith("non") else "ghg"
    occurred_from, occurred_to = _years(record.vintage_first, record.vintage_last)
    use_from, use_to = _years(record.use_year_first, record.use_year_last)
    return {
        "authorization_id": record.authorization_id,
        "date": _day(record.authorized_at, at),
        "cooperative_approach": record.cooperative_approach,
        "version": record.version or 1,
        "quantity": record.quantity_cap or "",
        "metric": label("metrics", metric),
        "gwp_values": record.gwp_values,
        "non_ghg_metric": record.non_ghg_metric,
        "sectors": "; ".join(record.sectors),
        "activity_types": "; ".join(record.activity_types),
        "purposes": _purpose(Purpose(record.purpose)),
        "authorized_parties": "; ".join(record.authorized_parties),
        "authorized_entities": "; ".join(entity.name for entity in record.authorized_entities),
        "occurred_from": occurred_from,
        "occurred_to": occurred_to,
        "use_from": use_from,
        "use_to": use_to,
        "terms_and_conditions": record.terms_and_conditions,
        "documentation": record.documentation,
        "first_transfer_definition": label("first_transfer_definitions", trigger.name.lower()),
        "explanatory_information": record.explanatory_information,
    }


def entity_rows(
    versions: Iterable[tuple[transaction_pb2.Authorization, datetime]],
) -> list[Row]:
    """The entities the authorizations name (AEF Table 5), once per authorization."""
    rows, seen = [], set()
    for record, at in versions:
        for entity in record.authorized_entities:
            key = (record.authorization_id, entity.name)
            if key in seen:
                continue
            seen.add(key)
            rows.append({
                "date": _day(entity.authorized_at, at), "name": entity.name,
                "country": entity.country, "identification_number": entity.identification_number,
                "cooperative_approach": record.cooperative_approach,
                "authorization_id": record.authorization_id, "conditions": entity.conditions,
                "change_and_revocation_conditions": entity.change_and_revocation_conditions,
            })  # fmt: skip
    return rows


# --- Table 1, and the whole workbook -------------------------------------------------------


def summary(party: str, year: int, section: str, prepared_by: str, facts: Facts) -> list[Row]:
    items: list[tuple[str, Any]] = [
        ("Party", party), ("Reported year", year), ("Party ITMO registry", section),
        ("Prepared by", prepared_by), ("Prepared on", datetime.now(UTC).date()),
        ("Authorizations (versions)", len(facts.versions)),
        *((f"Actions: {name}", facts.counted.get(name, 0)) for name in
          (label("action_types", key) for key in labels()["action_types"])),
        ("ITMOs held (t CO2 eq)", facts.held_ghg),
    ]  # fmt: skip
    return [{"item": item, "value": value} for item, value in items]


@dataclass(frozen=True)
class Books:
    """Whose books an export is made from: which Party an account belongs to, and the
    completed transactions up to the end of the reported year, in the order they completed
    (``completed`` gives them afresh, one at a time, each time it is called)."""

    party_of: PartyOf
    completed: Callable[[], Iterable[Completed]]
    prepared_by: str


class Rows:
    """A table's rows made afresh, one at a time, each time they are read (so that a
    workbook of any size is written in memory that does not grow with its rows), and how
    many there are."""

    def __init__(self, make: Callable[[], Iterator[Row]], count: int) -> None:
        self.make, self.count = make, count

    def __iter__(self) -> Iterator[Row]:
        return self.make()

    def __len__(self) -> int:
        return self.count


Tables = dict[str, Sequence[Row] | Rows]


@dataclass
class Facts:
    """What one pass over the books learns: the year's authorization versions, its actions
    counted by type, and what the Party holds at the end of it."""

    versions: list[tuple[transaction_pb2.Authorization, datetime]]
    counted: Counter[str]
    held: Held

    @property
    def held_ghg(self) -> int:
        return sum(block.unit_count for _, block in self.held
                   if block.attributes.metric == label("metrics", "ghg"))  # fmt: skip


def _facts(books: Books, party: str, year: int, section: str) -> Facts:
    facts = Facts([], Counter(), Holdings())
    for done in books.completed():
        if done.at.year > year:
            break
        if done.at.year == year:
            facts.versions.extend(granted([done], party))
        for row in actions([done], books.party_of, party, section):
            apply(facts.held, row)
            if done.at.year == year:
                facts.counted[row["action_type"]] += 1
    return facts


def workbook(books: Books, party: str, year: int, section: str) -> Tables:
    """Every table's rows for the Party and year, keyed as ``template.toml``. One pass over
    the books counts the actions and replays the holdings; the actions themselves are made
    again as the table is read, so that they are never all in memory."""
    facts = _facts(books, party, year, section)

    def year_actions() -> Iterator[Row]:
        in_year = (done for done in books.completed() if done.at.year == year)
        return actions(in_year, books.party_of, party, section)

    return {
        "summary": summary(party, year, section, books.prepared_by, facts),
        "authorizations": [authorization_row(record, at) for record, at in facts.versions],
        "actions": Rows(year_actions, sum(facts.counted.values())),
        "holdings": holding_rows(facts.held, section),
        "entities": entity_rows(facts.versions),
    }


def materialized(tables: Tables) -> dict[str, list[Row]]:
    """Every table's rows in lists (to keep them past the books' connection)."""
    return {key: list(rows) for key, rows in tables.items()}
