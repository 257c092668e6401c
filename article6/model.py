"""Domain types shared by the hub and the registries, free of wire and storage code.

The enums repeat the numbers of ``protos/article6/v1`` so that domain logic needs no
generated code; a test keeps both in step. ``article6.wire`` converts at the edge.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from article6.blocks import Block


class TransactionType(enum.IntEnum):
    ISSUANCE = 1
    EXTERNAL_TRANSFER = 3
    CANCELLATION = 4
    USE = 5
    INTERNAL_TRANSFER = 10
    AUTHORIZATION = 11
    FIRST_TRANSFER = 12
    VOLUNTARY_CANCELLATION = 13


class Status(enum.IntEnum):
    """Transaction status, with the Kyoto DES numbers and meanings (protocol 2.0).

    The hub sets 2 or 3 after its checks; 3 (its checks failed) ends in 5 TERMINATED, the
    initiating registry's termination. The acquiring registry answers 8 ACCEPTED or 6 REJECTED
    (its refusal, final). The hub sets 4 COMPLETED, and 7 CANCELLED on a time-out. As in the
    Kyoto DES clients, a registry told 3 or 6 about its own proposal terminates it.
    """

    PROPOSED = 1
    CHECKED = 2
    CHECKED_DISCREPANCY = 3
    COMPLETED = 4
    TERMINATED = 5
    REJECTED = 6
    CANCELLED = 7
    ACCEPTED = 8

    @property
    def final(self) -> bool:
        return self in FINAL_STATUSES

    @property
    def meaning(self) -> str:
        """The DES name of the status, and who sets it."""
        return _MEANINGS[self]

    @property
    def registry_outcome(self) -> Status:
        """What a registry records for a status the hub reports: the DES clients terminate on
        3 (the hub's checks failed) and on 6 (the acquiring registry refused)."""
        if self in {Status.CHECKED_DISCREPANCY, Status.REJECTED}:
            return Status.TERMINATED
        return self


FINAL_STATUSES = frozenset({Status.COMPLETED, Status.TERMINATED, Status.REJECTED, Status.CANCELLED})
_MEANINGS = {
    Status.PROPOSED: "proposed",
    Status.CHECKED: "checked (no discrepancy)",
    Status.CHECKED_DISCREPANCY: "checked (discrepancy): the hub's checks failed",
    Status.COMPLETED: "completed",
    Status.TERMINATED: "terminated by the proposing registry",
    Status.REJECTED: "rejected by the acquiring registry",
    Status.CANCELLED: "cancelled by the hub (time-out)",
    Status.ACCEPTED: "accepted by the acquiring registry",
}


class UnitKind(enum.IntEnum):
    MITIGATION_OUTCOME = 1
    ITMO = 2
    A64ER = 3


class UnitState(enum.IntEnum):
    HELD = 1
    USED = 2
    CANCELLED = 3


class Purpose(enum.IntEnum):
    """Authorized purposes, as the AEF lists them (NDC, OIMP, IMP, OP and the combinations
    with NDC). OIMP, "other international mitigation purposes" (2/CMA.3 annex), is
    international mitigation purposes (IMP) together with other purposes (OP)."""

    UNSPECIFIED = 0
    NDC = 1
    OIMP = 2
    NDC_AND_OIMP = 3
    IMP = 4
    OP = 5
    NDC_AND_IMP = 6
    NDC_AND_OP = 7

    @property
    def components(self) -> frozenset[str]:
        """The elementary purposes: "ndc", "imp" and "op"."""
        return _COMPONENTS[self]

    @property
    def includes_oimp(self) -> bool:
        """Whether any part is for OIMP, where the Party defines the first transfer."""
        return bool(self.components & {"imp", "op"})

    @property
    def is_use(self) -> bool:
        """Whether a use may be declared for this purpose: one of NDC, OIMP, IMP or OP."""
        return self in {Purpose.NDC, Purpose.OIMP, Purpose.IMP, Purpose.OP}

    def allows(self, use: Purpose) -> bool:
        """Whether units authorized for this purpose may be used for ``use`` (a use for OIMP
        needs some OIMP part authorized; a use for IMP or OP, that part)."""
        return use.is_use and bool(use.components & self.components)


_COMPONENTS = {
    Purpose.UNSPECIFIED: frozenset(),
    Purpose.NDC: frozenset({"ndc"}),
    Purpose.OIMP: frozenset({"imp", "op"}),
    Purpose.NDC_AND_OIMP: frozenset({"ndc", "imp", "op"}),
    Purpose.IMP: frozenset({"imp"}),
    Purpose.OP: frozenset({"op"}),
    Purpose.NDC_AND_IMP: frozenset({"ndc", "imp"}),
    Purpose.NDC_AND_OP: frozenset({"ndc", "op"}),
}


class AccountType(enum.IntEnum):
    HOLDING = 1
    NDC_USE = 2
    OIMP_USE = 3
    VOLUNTARY_CANCELLATION = 4
    MANDATORY_CANCELLATION = 5
    PENDING = 6
    ADAPTATION_FUND = 7


@dataclass(frozen=True)
class UnitAttributes:
    """Everything about a unit except its serial number."""

    originating_registry: str
    vintage: int
    cooperative_approach: str
    first_transferring_party: str
    authorization_id: str
    purpose: Purpose
    unit_kind: UnitKind
    state: UnitState
    activity_id: str = ""
    host_party: str = ""
    metric: str = ""

    def with_state(self, state: UnitState) -> UnitAttributes:
        return replace(self, state=state)


@dataclass(frozen=True, order=True)
class Holder:
    """Where units are held: an account of a registry."""

    registry: str
    account_id: str


@dataclass(frozen=True)
class Held:
    """Ledger attributes: who holds the units, and what they are."""

    holder: Holder
    unit: UnitAttributes


UnitBlock = Block[UnitAttributes]
LedgerBlock = Block[Held]


@dataclass(frozen=True)
class UseDetails:
    """Who uses or cancels units, and for what (AEF Table 3)."""

    using_party: str
    year_of_use: int
    purpose: Purpose
    entity: str = ""


class FirstTransferTrigger(enum.IntEnum):
    """What makes a first transfer happen (2/CMA.3 annex para 2)."""

    UNSPECIFIED = 0
    INTERNATIONAL_TRANSFER = 1
    AUTHORIZATION = 2
    ISSUANCE = 3
    USE_OR_CANCELLATION = 4


@dataclass(frozen=True)
class AuthorizedEntity:
    """An entity a Party authorizes (AEF Table 5)."""

    name: str
    country: str
    identification_number: str


@dataclass(frozen=True)
class AuthorizationSpec:
    """One version of a Party's authorization of mitigation outcomes: the terms the rules
    need (the full AEF Table 2 record travels in the wire message and is kept as sent)."""

    authorization_id: str
    authorizing_party: str
    cooperative_approach: str
    purpose: Purpose
    quantity_cap: int  # 0: no cap
    vintage_first: int
    vintage_last: int
    first_transfer_definition: FirstTransferTrigger = FirstTransferTrigger.UNSPECIFIED
    version: int = 1
    use_year_first: int = 0  # 0: open
    use_year_last: int = 0  # 0: open
    revoked: bool = False
    authorized_entities: tuple[AuthorizedEntity, ...] = ()
    authorized_parties: tuple[str, ...] = ()

    def covers(self, vintage: int) -> bool:
        return self.vintage_first <= vintage <= self.vintage_last

    def covers_use_in(self, year: int) -> bool:
        return (not self.use_year_first or self.use_year_first <= year) and (
            not self.use_year_last or year <= self.use_year_last
        )

    @property
    def first_transfer_at(self) -> frozenset[FirstTransferTrigger]:
        """The events that first transfer its outcomes: the first international transfer for
        use towards an NDC; for OIMP, the event the Party defined. Authorized for both, the
        outcomes are first transferred by whichever of these comes first."""
        events = set()
        if "ndc" in self.purpose.components:
            events.add(FirstTransferTrigger.INTERNATIONAL_TRANSFER)
        if self.purpose.includes_oimp:
            events.add(self.first_transfer_definition)
        return frozenset(events)

    @property
    def terms_fixed_across_versions(self) -> tuple[object, ...]:
        """What a new version may not change: the units bound to the authorization carry it."""
        return (
            self.authorization_id,
            self.authorizing_party,
            self.cooperative_approach,
            self.purpose,
            self.first_transfer_definition,
        )


@dataclass(frozen=True)
class FirstTransferSpec:
    first_transferring_party: str
    trigger: FirstTransferTrigger


@dataclass(frozen=True)
class TransactionSpec:
    """A proposed transaction as the domain sees it."""

    transaction_id: str
    type: TransactionType
    transferring_registry: str
    transferring_account: str
    acquiring_registry: str
    acquiring_account: str
    blocks: tuple[UnitBlock, ...]
    quantity: int
    use: UseDetails | None = None
    subtype: str = ""
    authorization: AuthorizationSpec | None = None
    first_transfer: FirstTransferSpec | None = None

    @property
    def registries(self) -> frozenset[str]:
        return frozenset({self.transferring_registry, self.acquiring_registry} - {""})

    @property
    def crosses_registries(self) -> bool:
        """Whether the units leave for another registry, through its acceptance."""
        return self.acquiring_registry != self.transferring_registry

    @property
    def first_transferring_party(self) -> str:
        """The Party this transaction first transfers units for, or "" if it is no first
        transfer: a first transfer (type 12); an issuance, use or cancellation carrying its
        ``FirstTransfer``; an authorization whose first-transfer definition is the
        authorization itself, for the outcomes it binds."""
        if self.type is TransactionType.AUTHORIZATION:
            granted = self.authorization
            if (
                granted is None
                or FirstTransferTrigger.AUTHORIZATION not in granted.first_transfer_at
            ):
                return ""
            return granted.authorizing_party
        if self.first_transfer is None or self.type not in FIRST_TRANSFER_TYPES:
            return ""
        return self.first_transfer.first_transferring_party

    def first_transferred(self) -> dict[str, int]:
        """Units this transaction first transfers, by authorization id: what counts against
        each authorization's quantity."""
        if not self.first_transferring_party:
            return {}
        if self.type is TransactionType.AUTHORIZATION:
            assert self.authorization is not None
            return {self.authorization.authorization_id: self.quantity} if self.blocks else {}
        quantities: dict[str, int] = {}
        for block in self.blocks:
            unit = block.attributes
            if unit.unit_kind is not UnitKind.A64ER or self.type is TransactionType.FIRST_TRANSFER:
                quantities[unit.authorization_id] = (
                    quantities.get(unit.authorization_id, 0) + block.unit_count
                )
        return quantities

    @property
    def source(self) -> Holder:
        return Holder(self.transferring_registry, self.transferring_account)

    @property
    def target(self) -> Holder:
        return Holder(self.acquiring_registry, self.acquiring_account)


FIRST_TRANSFER_TYPES = frozenset(
    {
        TransactionType.FIRST_TRANSFER,
        TransactionType.ISSUANCE,
        TransactionType.USE,
        TransactionType.CANCELLATION,
        TransactionType.VOLUNTARY_CANCELLATION,
    }
)


def spaces(blocks: tuple[UnitBlock, ...] | list[UnitBlock]) -> list[str]:
    """The serial spaces (originating registries) touched, sorted: the lock order."""
    return sorted({block.attributes.originating_registry for block in blocks})
