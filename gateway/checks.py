"""The hub's checks of a proposed transaction that need no ledger: form, routing, authority.

Pure functions over ``article6.model`` types. Each raises ``Refusal`` with the code of the
first check that fails, in a fixed order (data integrity, then routing, then type-specific
Article 6 checks), so a registry always sees the same code for the same proposal. The ledger
checks (units held, not locked) follow in ``gateway.lifecycle``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from article6.blocks import find_overlaps
from article6.codes import Code, Refusal
from article6.identifiers import (
    account_registry,
    check_account_id,
    check_cooperative_approach_id,
    check_party_code,
    check_registry_id,
    check_transaction_id,
    check_year,
)
from article6.model import (
    FirstTransferTrigger,
    Purpose,
    TransactionSpec,
    TransactionType,
    UnitBlock,
    UnitKind,
    UnitState,
)

MAX_BLOCKS = 10_000

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


def check_proposal(spec: TransactionSpec, sender: str, peers: Mapping[str, Peer]) -> None:
    """Refuse a proposal that is malformed, misrouted or beyond the sender's authority."""
    check_transaction_id(spec.transaction_id, sender)
    _check_blocks(spec)
    _check_routing(spec, sender, peers)
    if spec.type is TransactionType.ISSUANCE:
        _check_issuance(spec, sender, peers[sender])
    if spec.type is TransactionType.USE:
        _check_use(spec)
    if spec.type is TransactionType.AUTHORIZATION:
        _check_authorization(spec, peers[sender])
    if spec.type is TransactionType.FIRST_TRANSFER:
        _check_first_transfer(spec)


def _check_blocks(spec: TransactionSpec) -> None:
    if not spec.blocks:
        raise Refusal(Code.REQUIRED_FIELD_MISSING, "no blocks")
    if len(spec.blocks) > MAX_BLOCKS:
        raise Refusal(Code.TOO_MANY_BLOCKS, f"{len(spec.blocks)} blocks, limit {MAX_BLOCKS}")
    if spec.quantity <= 0:
        raise Refusal(Code.QUANTITY_NOT_POSITIVE, f"quantity {spec.quantity}")
    total = sum(block.unit_count for block in spec.blocks)
    if total != spec.quantity:
        raise Refusal(Code.QUANTITY_MISMATCH, f"quantity {spec.quantity}, blocks hold {total}")
    for block in spec.blocks:
        _check_block(block)
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


def _check_block(block: UnitBlock) -> None:
    unit = block.attributes
    check_registry_id(unit.originating_registry)
    check_year(unit.vintage)
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
    if spec.type is not TransactionType.ISSUANCE:
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


def _check_issuance(spec: TransactionSpec, sender: str, issuer: Peer) -> None:
    for block in spec.blocks:
        unit = block.attributes
        if unit.originating_registry != sender:
            raise Refusal(
                Code.REGISTRY_NOT_PARTY_TO_UNITS,
                f"{sender} cannot issue units originating in {unit.originating_registry}",
            )
        if unit.unit_kind is UnitKind.MITIGATION_OUTCOME:
            _check_unauthorized(block)  # outcomes are issued unauthorized, then authorized
            continue
        if unit.unit_kind is UnitKind.A64ER:
            _check_a64er(spec, block, issuer)
        if unit.cooperative_approach not in issuer.cooperative_approaches:
            raise Refusal(
                Code.COOPERATIVE_APPROACH_NOT_AUTHORIZED,
                f"{sender} may not issue under {unit.cooperative_approach}",
            )
    if spec.authorization is not None and issuer.kind != "mechanism":
        raise Refusal(
            Code.UNIT_KIND_NOT_ALLOWED, "only the mechanism registry records an authorization"
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
    unit = block.attributes
    if (
        unit.cooperative_approach
        or unit.authorization_id
        or unit.purpose is not Purpose.UNSPECIFIED
    ):
        raise Refusal(
            Code.UNITS_ALREADY_AUTHORIZED,
            f"serials {block.serial_first}-{block.serial_last} are bound to "
            f"{unit.cooperative_approach or unit.authorization_id or unit.purpose.name}",
        )


def _check_authorization(spec: TransactionSpec, authority: Peer) -> None:
    granted = spec.authorization
    if granted is None or not granted.authorization_id or granted.purpose is Purpose.UNSPECIFIED:
        raise Refusal(Code.REQUIRED_FIELD_MISSING, "an authorization needs its id and purpose")
    check_party_code(granted.authorizing_party)
    check_cooperative_approach_id(granted.cooperative_approach)
    if granted.cooperative_approach not in authority.cooperative_approaches:
        raise Refusal(
            Code.COOPERATIVE_APPROACH_NOT_AUTHORIZED,
            f"{authority.registry_id} may not act under {granted.cooperative_approach}",
        )
    if granted.quantity_cap < 0:
        raise Refusal(Code.QUANTITY_NOT_POSITIVE, f"quantity cap {granted.quantity_cap}")
    check_year(granted.vintage_first)
    check_year(granted.vintage_last)
    if granted.vintage_first > granted.vintage_last:
        raise Refusal(Code.VINTAGE_INVALID, "the vintage window runs backwards")
    for block in spec.blocks:
        if block.attributes.unit_kind is not UnitKind.MITIGATION_OUTCOME:
            raise Refusal(Code.UNIT_KIND_NOT_ALLOWED, "only mitigation outcomes are authorized")
        _check_unauthorized(block)
        if not granted.covers(block.attributes.vintage):
            raise Refusal(
                Code.VINTAGE_OUTSIDE_AUTHORIZATION,
                f"vintage {block.attributes.vintage} outside "
                f"{granted.vintage_first}-{granted.vintage_last}",
            )


def _check_first_transfer(spec: TransactionSpec) -> None:
    """What can be told without the authorization's record (see gateway.lifecycle)."""
    first = spec.first_transfer
    if first is None:
        raise Refusal(Code.REQUIRED_FIELD_MISSING, "a first transfer needs its Party and trigger")
    check_party_code(first.first_transferring_party)
    if first.trigger is FirstTransferTrigger.UNSPECIFIED:
        raise Refusal(Code.FIRST_TRANSFER_TRIGGER_INVALID, "trigger unset")
    for block in spec.blocks:
        unit = block.attributes
        where = f"serials {block.serial_first}-{block.serial_last}"
        if unit.unit_kind is UnitKind.ITMO or unit.first_transferring_party:
            raise Refusal(Code.ALREADY_FIRST_TRANSFERRED, f"{where} are already ITMOs")
        if not unit.authorization_id:
            raise Refusal(Code.UNITS_NOT_AUTHORIZED, f"{where} are not authorized")


def _check_use(spec: TransactionSpec) -> None:
    use = spec.use
    if use is None or use.purpose is Purpose.UNSPECIFIED or not use.using_party:
        raise Refusal(Code.USE_DETAILS_INVALID, "a use needs the using Party and its purpose")
    check_party_code(use.using_party)
    if use.purpose is Purpose.NDC:
        if not use.year_of_use:
            raise Refusal(Code.USE_DETAILS_INVALID, "a use towards an NDC needs its year of use")
        check_year(use.year_of_use)
    for block in spec.blocks:
        if not block.attributes.purpose.allows(use.purpose):
            raise Refusal(
                Code.PURPOSE_NOT_AUTHORIZED,
                f"units authorized for {block.attributes.purpose.name} used for {use.purpose.name}",
            )
