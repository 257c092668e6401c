"""The hub's checks of a proposed transaction that need no ledger: form, routing, authority.

Pure functions over ``article6.model`` types. Each raises ``Refusal`` with the code of the
first check that fails, in a fixed order (data integrity, then routing, then type-specific
Article 6 checks), so a registry always sees the same code for the same proposal. The checks
against the ledger and the recorded authorizations follow in ``gateway.lifecycle``.

The Article 6.2 rules (decision 2/CMA.3 annex, 6/CMA.4 annex I; docs/DOMAIN.md): an ITMO
comes into being only by first transfer of authorized outcomes, at the event the
authorization defines, so an issuance of ITMOs is refused unless it is that first transfer
(the authorization defines issuance as the first transfer for OIMP); outcomes are of vintage
2021 or later (``Policy.first_vintage``); a registry acting for one Party authorizes, first
transfers, uses and cancels only as that Party.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from article6.blocks import find_overlaps
from article6.codes import Code, Refusal
from article6.identifiers import (
    PARTY_CODE,
    PARTY_REGISTRY_ID,
    account_registry,
    check_account_id,
    check_cooperative_approach_id,
    check_party_code,
    check_registry_id,
    check_transaction_id,
    check_year,
)
from article6.limits import MAX_BLOCKS_PER_TRANSACTION
from article6.model import (
    AuthorizationSpec,
    FirstTransferTrigger,
    Purpose,
    TransactionSpec,
    TransactionType,
    UnitBlock,
    UnitKind,
    UnitState,
)

# Types whose acquiring account must be named (the others may leave units where they are).
NAMED_TARGET_TYPES = frozenset(
    {TransactionType.ISSUANCE, TransactionType.EXTERNAL_TRANSFER, TransactionType.INTERNAL_TRANSFER}
)


@dataclass(frozen=True)
class Peer:
    """What the checks need to know of a registry in the directory."""

    registry_id: str
    cooperative_approaches: frozenset[str]
    suspended: bool
    kind: str = "party"
    party: str = ""  # the one Party it acts for; "" for the IR (many) and the mechanism


@dataclass(frozen=True)
class Policy:
    """Rule parameters the sources fix but a deployment may need to state (``[rules]``)."""

    first_vintage: int = 2021  # Article 6.2 outcomes from 2021 on (2/CMA.3 annex)


DEFAULT_POLICY = Policy()


def check_proposal(
    spec: TransactionSpec, sender: str, peers: Mapping[str, Peer], policy: Policy = DEFAULT_POLICY
) -> None:
    """Refuse a proposal that is malformed, misrouted or beyond the sender's authority."""
    check_transaction_id(spec.transaction_id, sender)
    _check_blocks(spec, policy)
    _check_routing(spec, sender, peers)
    peer = peers[sender]
    if spec.type is TransactionType.ISSUANCE:
        _check_issuance(spec, sender, peer, frozenset(peers))
    if spec.type is TransactionType.AUTHORIZATION:
        _check_authorization(spec, peer, policy)
    if spec.type is TransactionType.FIRST_TRANSFER:
        _check_first_transfer(spec, peer)
    if spec.type is TransactionType.USE:
        _check_use(spec, peer)
    if spec.type in CANCELLATIONS:
        _check_cancellation(spec, peer)
    if spec.type is TransactionType.EXTERNAL_TRANSFER:
        _check_not_outcomes(spec)


CANCELLATIONS = frozenset({TransactionType.CANCELLATION, TransactionType.VOLUNTARY_CANCELLATION})


def _check_blocks(spec: TransactionSpec, policy: Policy) -> None:
    if not spec.blocks and spec.type is TransactionType.AUTHORIZATION and spec.quantity == 0:
        return  # an authorization, or a new version of one, that binds no outcomes
    if not spec.blocks:
        raise Refusal(Code.REQUIRED_FIELD_MISSING, "no blocks")
    if len(spec.blocks) > MAX_BLOCKS_PER_TRANSACTION:
        raise Refusal(
            Code.TOO_MANY_BLOCKS, f"{len(spec.blocks)} blocks, limit {MAX_BLOCKS_PER_TRANSACTION}"
        )
    if spec.quantity <= 0:
        raise Refusal(Code.QUANTITY_NOT_POSITIVE, f"quantity {spec.quantity}")
    total = sum(block.unit_count for block in spec.blocks)
    if total != spec.quantity:
        raise Refusal(Code.QUANTITY_MISMATCH, f"quantity {spec.quantity}, blocks hold {total}")
    for block in spec.blocks:
        _check_block(block, policy)
    by_space: dict[str, list[UnitBlock]] = {}
    for block in spec.blocks:
        by_space.setdefault(block.attributes.originating_registry, []).append(block)
    for blocks in by_space.values():
        overlaps = find_overlaps(blocks)
        if overlaps:
            left, right = overlaps[0]
            raise Refusal(
                Code.BLOCKS_OVERLAP,
                f"serials {left.serial_first}-{left.serial_last} and "
                f"{right.serial_first}-{right.serial_last} overlap",
            )


def _check_block(block: UnitBlock, policy: Policy) -> None:
    unit = block.attributes
    check_registry_id(unit.originating_registry)
    check_year(unit.vintage)
    if unit.unit_kind is not UnitKind.A64ER and unit.vintage < policy.first_vintage:
        raise Refusal(
            Code.VINTAGE_BEFORE_ARTICLE6,
            f"serials {block.serial_first}-{block.serial_last}: vintage {unit.vintage}, "
            f"Article 6.2 outcomes from {policy.first_vintage}",
        )
    if unit.unit_kind is not UnitKind.MITIGATION_OUTCOME or unit.cooperative_approach:
        check_cooperative_approach_id(unit.cooperative_approach)
    if unit.first_transferring_party:
        check_party_code(unit.first_transferring_party)
    if unit.host_party:
        check_party_code(unit.host_party)
    if unit.state is not UnitState.HELD:
        raise Refusal(Code.UNIT_STATE_INVALID, "blocks are proposed as held")


def _check_account(account_id: str, registry: str) -> None:
    check_account_id(account_id)
    if account_registry(account_id) != registry:
        raise Refusal(Code.ACCOUNT_ID_INVALID, f"account {account_id} is not of {registry}")


def _check_routing(spec: TransactionSpec, sender: str, peers: Mapping[str, Peer]) -> None:
    if spec.transferring_registry != sender:
        raise Refusal(
            Code.REGISTRY_NOT_PARTY_TO_UNITS,
            f"{sender} proposed for transferring registry {spec.transferring_registry!r}",
        )
    if spec.type is TransactionType.EXTERNAL_TRANSFER or (
        spec.type is TransactionType.FIRST_TRANSFER and spec.crosses_registries
    ):
        _check_acquirer(spec, sender, peers)
    elif spec.acquiring_registry != sender:
        raise Refusal(
            Code.ACQUIRING_REGISTRY_MISMATCH,
            f"a {spec.type.name.lower()} stays in {sender}",
        )
    if spec.type is not TransactionType.ISSUANCE and spec.blocks:  # an authorization may bind none
        _check_account(spec.transferring_account, sender)
    if spec.acquiring_account or spec.type in NAMED_TARGET_TYPES or spec.crosses_registries:
        _check_account(spec.acquiring_account, spec.acquiring_registry)


def _check_acquirer(spec: TransactionSpec, sender: str, peers: Mapping[str, Peer]) -> None:
    acquirer = peers.get(spec.acquiring_registry)
    if acquirer is None:
        raise Refusal(
            Code.ACQUIRING_REGISTRY_UNKNOWN, f"{spec.acquiring_registry!r} is not in the directory"
        )
    if acquirer.registry_id == sender:
        raise Refusal(Code.ACQUIRING_REGISTRY_SAME)
    if acquirer.suspended:
        raise Refusal(Code.ACQUIRING_REGISTRY_SUSPENDED, f"{acquirer.registry_id} is suspended")


def _check_issuance(
    spec: TransactionSpec, sender: str, issuer: Peer, directory: frozenset[str]
) -> None:
    for block in spec.blocks:
        unit = block.attributes
        if unit.originating_registry != sender and not _section_space(
            unit.originating_registry, issuer, directory
        ):
            raise Refusal(
                Code.REGISTRY_NOT_PARTY_TO_UNITS,
                f"{sender} cannot issue units originating in {unit.originating_registry}",
            )
        if unit.unit_kind is UnitKind.MITIGATION_OUTCOME:
            _check_unauthorized(block)  # outcomes are issued unauthorized, then authorized
            continue
        if unit.unit_kind is UnitKind.A64ER:
            _check_a64er(spec, block, issuer)
        if unit.unit_kind is UnitKind.ITMO:
            _check_itmo_issuance(spec, block)
        if unit.cooperative_approach not in issuer.cooperative_approaches:
            raise Refusal(
                Code.COOPERATIVE_APPROACH_NOT_AUTHORIZED,
                f"{sender} may not issue under {unit.cooperative_approach}",
            )
    if spec.authorization is not None and issuer.kind != "mechanism":
        raise Refusal(
            Code.UNIT_KIND_NOT_ALLOWED, "only the mechanism registry records an authorization"
        )
    if spec.first_transfer is not None:
        _check_party(spec.first_transfer.first_transferring_party, issuer)


def _section_space(space: str, issuer: Peer, directory: frozenset[str]) -> bool:
    """The international registry issues each Party section's units in the section's own
    registry id (an AEF Party registry id, ISO-3 and two digits), never in another
    registry's of the directory."""
    return (
        issuer.kind == "international"
        and PARTY_REGISTRY_ID.fullmatch(space) is not None
        and space not in directory
    )


def _check_itmo_issuance(spec: TransactionSpec, block: UnitBlock) -> None:
    """An ITMO is never minted: its issuance must be the first transfer that its recorded
    authorization defines as issuance (checked against the record in gateway.lifecycle)."""
    first = spec.first_transfer
    unit = block.attributes
    where = f"serials {block.serial_first}-{block.serial_last}"
    if first is None or first.trigger is not FirstTransferTrigger.ISSUANCE:
        raise Refusal(
            Code.ITMO_ISSUANCE_NOT_FIRST_TRANSFER,
            f"{where}: ITMOs come into being by first transfer; issue mitigation outcomes, or "
            "issue under an authorization whose first-transfer definition is issuance",
        )
    if not unit.authorization_id:
        raise Refusal(Code.ITMO_ISSUANCE_NOT_FIRST_TRANSFER, f"{where}: no authorization id")
    check_party_code(first.first_transferring_party)
    if unit.first_transferring_party != first.first_transferring_party:
        raise Refusal(
            Code.FIRST_TRANSFERRING_PARTY_MISMATCH,
            f"{where}: first transferred by {first.first_transferring_party}, "
            f"marked {unit.first_transferring_party or 'with none'}",
        )


def _check_party(party: str, registry: Peer) -> None:
    """A registry acting for one Party acts only as that Party."""
    check_party_code(party)
    if registry.party and party != registry.party:
        raise Refusal(
            Code.PARTY_NOT_OF_REGISTRY, f"{registry.registry_id} acts for {registry.party}"
        )


def _check_a64er(spec: TransactionSpec, block: UnitBlock, issuer: Peer) -> None:
    """The mechanism registry mirrors authorized A6.4ERs into the ledger before their first
    transfer, with the host Party's authorization, which the hub records on first sight."""
    if issuer.kind != "mechanism":
        raise Refusal(Code.UNIT_KIND_NOT_ALLOWED, "only the mechanism registry issues A6.4ERs")
    unit = block.attributes
    granted = spec.authorization
    where = f"serials {block.serial_first}-{block.serial_last}"
    if granted is None or not unit.authorization_id or not unit.host_party:
        raise Refusal(Code.A64ER_NOT_AUTHORIZED, f"{where}: no host Party authorization")
    check_party_code(granted.authorizing_party)
    if granted.authorizing_party != unit.host_party:
        raise Refusal(
            Code.A64ER_NOT_AUTHORIZED,
            f"{where}: authorized by {granted.authorizing_party}, hosted by {unit.host_party}",
        )
    bound = (unit.authorization_id, unit.cooperative_approach, unit.purpose)
    if bound != (granted.authorization_id, granted.cooperative_approach, granted.purpose):
        raise Refusal(Code.A64ER_NOT_AUTHORIZED, f"{where} are not bound to the authorization")
    if not granted.covers(unit.vintage):
        raise Refusal(
            Code.VINTAGE_OUTSIDE_AUTHORIZATION,
            f"vintage {unit.vintage} outside {granted.vintage_first}-{granted.vintage_last}",
        )


def _check_unauthorized(block: UnitBlock) -> None:
    """Mitigation outcomes carry nothing an authorization or a first transfer gives."""
    unit = block.attributes
    bound = [
        f"{name} {value}"
        for name, value in (
            ("cooperative approach", unit.cooperative_approach),
            ("authorization", unit.authorization_id),
            ("purpose", unit.purpose.name if unit.purpose is not Purpose.UNSPECIFIED else ""),
            ("first-transferring Party", unit.first_transferring_party),
        )
        if value
    ]
    if bound:
        raise Refusal(
            Code.UNITS_ALREADY_AUTHORIZED,
            f"serials {block.serial_first}-{block.serial_last}: mitigation outcomes are issued "
            f"unauthorized, without {', '.join(bound)}",
        )


def _check_authorization(spec: TransactionSpec, authority: Peer, policy: Policy) -> None:
    granted = spec.authorization
    if granted is None or not granted.authorization_id or granted.purpose is Purpose.UNSPECIFIED:
        raise Refusal(Code.REQUIRED_FIELD_MISSING, "an authorization needs its id and purpose")
    _check_party(granted.authorizing_party, authority)
    check_cooperative_approach_id(granted.cooperative_approach)
    if granted.cooperative_approach not in authority.cooperative_approaches:
        raise Refusal(
            Code.COOPERATIVE_APPROACH_NOT_AUTHORIZED,
            f"{authority.registry_id} may not act under {granted.cooperative_approach}",
        )
    if granted.quantity_cap < 0:
        raise Refusal(Code.QUANTITY_NOT_POSITIVE, f"quantity cap {granted.quantity_cap}")
    _check_timeframe(granted, policy)
    _check_definition(granted)
    for party in granted.authorized_parties:
        check_party_code(party)
    for entity in granted.authorized_entities:
        if not entity.name.strip() or not entity.identification_number.strip():
            raise Refusal(Code.AUTHORIZED_ENTITY_INVALID, f"entity {entity.name!r}")
        if not PARTY_CODE.fullmatch(entity.country):
            raise Refusal(Code.AUTHORIZED_ENTITY_INVALID, f"{entity.name}: {entity.country!r}")
    if spec.blocks and granted.revoked:
        raise Refusal(Code.AUTHORIZATION_REVOKED, "a revocation binds no outcomes")
    for block in spec.blocks:
        _check_bound(block, granted)


def _check_timeframe(granted: AuthorizationSpec, policy: Policy) -> None:
    """The AEF timeframe: "Occurred: from .. to .." (vintages), "Use: from .. to .."."""
    check_year(granted.vintage_first)
    check_year(granted.vintage_last)
    if granted.vintage_first > granted.vintage_last:
        raise Refusal(Code.VINTAGE_INVALID, "the vintage window runs backwards")
    if granted.vintage_first < policy.first_vintage:
        raise Refusal(
            Code.VINTAGE_BEFORE_ARTICLE6,
            f"vintages from {granted.vintage_first}; Article 6.2 outcomes from "
            f"{policy.first_vintage}",
        )
    for year in (granted.use_year_first, granted.use_year_last):
        if year:
            check_year(year)
    if granted.use_year_first and granted.use_year_last < granted.use_year_first:
        raise Refusal(Code.VINTAGE_INVALID, "the timeframe of use runs backwards")


def _check_definition(granted: AuthorizationSpec) -> None:
    """The first-transfer definition suits the purpose: for OIMP the Party chooses among
    authorization, issuance, and use or cancellation (2/CMA.3 annex para 2); for use
    towards an NDC alone there is nothing to define ("NA")."""
    definition = granted.first_transfer_definition
    if granted.purpose.includes_oimp and definition not in OIMP_DEFINITIONS:
        raise Refusal(
            Code.FIRST_TRANSFER_TRIGGER_INVALID,
            f"{granted.purpose.name}: the first-transfer definition for OIMP must be "
            "authorization, issuance, or use or cancellation",
        )
    if not granted.purpose.includes_oimp and definition in OIMP_DEFINITIONS:
        raise Refusal(
            Code.FIRST_TRANSFER_TRIGGER_INVALID,
            f"{granted.purpose.name}: no OIMP purpose, so no first-transfer definition (NA)",
        )


OIMP_DEFINITIONS = frozenset(
    {
        FirstTransferTrigger.AUTHORIZATION,
        FirstTransferTrigger.ISSUANCE,
        FirstTransferTrigger.USE_OR_CANCELLATION,
    }
)


def _check_bound(block: UnitBlock, granted: AuthorizationSpec) -> None:
    """A block an authorization binds: an outcome issued unauthorized, of a covered vintage,
    that some event the authorization defines can still first transfer."""
    if block.attributes.unit_kind is not UnitKind.MITIGATION_OUTCOME:
        raise Refusal(Code.UNIT_KIND_NOT_ALLOWED, "only mitigation outcomes are authorized")
    _check_unauthorized(block)
    if not granted.covers(block.attributes.vintage):
        raise Refusal(
            Code.VINTAGE_OUTSIDE_AUTHORIZATION,
            f"vintage {block.attributes.vintage} outside "
            f"{granted.vintage_first}-{granted.vintage_last}",
        )
    if granted.first_transfer_at == {FirstTransferTrigger.ISSUANCE}:
        raise Refusal(
            Code.FIRST_TRANSFER_TRIGGER_INVALID,
            f"{granted.authorization_id} first transfers at issuance: outcomes already issued "
            "can never be first transferred under it; issue under the authorization instead",
        )


def _check_first_transfer(spec: TransactionSpec, sender: Peer) -> None:
    """A first transfer (type 12) is the first international transfer. First transfer by
    authorization, issuance, use or cancellation is that transaction itself (section 10.8)."""
    first = spec.first_transfer
    if first is None:
        raise Refusal(Code.REQUIRED_FIELD_MISSING, "a first transfer needs its Party and trigger")
    _check_party(first.first_transferring_party, sender)
    if first.trigger is not FirstTransferTrigger.INTERNATIONAL_TRANSFER:
        raise Refusal(
            Code.FIRST_TRANSFER_TRIGGER_INVALID,
            f"trigger {first.trigger.name.lower()}: a first transfer by authorization, issuance, "
            "use or cancellation is that transaction itself, as the authorization defines",
        )
    _check_outcomes_first_transferred(spec)


def _check_outcomes_first_transferred(spec: TransactionSpec) -> None:
    for block in spec.blocks:
        unit = block.attributes
        where = f"serials {block.serial_first}-{block.serial_last}"
        if unit.unit_kind is UnitKind.ITMO or unit.first_transferring_party:
            raise Refusal(Code.ALREADY_FIRST_TRANSFERRED, f"{where} are already ITMOs")
        if not unit.authorization_id:
            raise Refusal(Code.UNITS_NOT_AUTHORIZED, f"{where} are not authorized")


def _check_use_details(spec: TransactionSpec, sender: Peer, required: bool) -> None:
    """The using or cancelling Party (the registry's own), its entity and the purpose."""
    use = spec.use
    if use is None:
        if required:
            raise Refusal(Code.USE_DETAILS_INVALID, "the using or cancelling Party is missing")
        return
    if not use.purpose.is_use or not use.using_party:
        raise Refusal(Code.USE_DETAILS_INVALID, "a use needs the using Party and its purpose")
    _check_party(use.using_party, sender)
    if use.purpose is Purpose.NDC and spec.type is TransactionType.USE:
        if not use.year_of_use:
            raise Refusal(Code.USE_DETAILS_INVALID, "a use towards an NDC needs its year of use")
        check_year(use.year_of_use)


def _check_use(spec: TransactionSpec, sender: Peer) -> None:
    _check_use_details(spec, sender, required=True)
    use = spec.use
    assert use is not None
    for block in spec.blocks:
        if not block.attributes.purpose.allows(use.purpose):
            raise Refusal(
                Code.PURPOSE_NOT_AUTHORIZED,
                f"units authorized for {block.attributes.purpose.name} used for {use.purpose.name}",
            )
    _check_first_transfer_by_use(spec, sender)


def _check_cancellation(spec: TransactionSpec, sender: Peer) -> None:
    voluntary = spec.type is TransactionType.VOLUNTARY_CANCELLATION
    _check_use_details(spec, sender, required=voluntary or spec.first_transfer is not None)
    _check_first_transfer_by_use(spec, sender)


def _check_first_transfer_by_use(spec: TransactionSpec, sender: Peer) -> None:
    """Authorized outcomes are used or cancelled only as ITMOs, or as the first transfer their
    authorization defines as use or cancellation (then the transaction says so)."""
    outcomes = [b for b in spec.blocks if _authorized_outcome(b)]
    first = spec.first_transfer
    if first is None:
        if outcomes:
            block = outcomes[0]
            raise Refusal(
                Code.NOT_YET_FIRST_TRANSFERRED,
                f"serials {block.serial_first}-{block.serial_last} are not yet ITMOs",
            )
        return
    _check_party(first.first_transferring_party, sender)
    if first.trigger is not FirstTransferTrigger.USE_OR_CANCELLATION:
        raise Refusal(Code.FIRST_TRANSFER_TRIGGER_INVALID, f"trigger {first.trigger.name}")
    _check_outcomes_first_transferred(spec)


def _authorized_outcome(block: UnitBlock) -> bool:
    unit = block.attributes
    return unit.unit_kind is UnitKind.MITIGATION_OUTCOME and bool(unit.authorization_id)


def _check_not_outcomes(spec: TransactionSpec) -> None:
    """Authorized outcomes leave their registry only by first transfer (type 12)."""
    for block in spec.blocks:
        if block.attributes.unit_kind is UnitKind.MITIGATION_OUTCOME:
            raise Refusal(
                Code.NOT_YET_FIRST_TRANSFERRED,
                f"serials {block.serial_first}-{block.serial_last} are mitigation outcomes: "
                "they leave the registry by first transfer",
            )
