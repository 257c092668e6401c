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
    def registry_outcome(self) -> Status:
        """What a registry records for a status the hub reports: the DES clients terminate on
        3 (the hub's checks failed) and on 6 (the acquiring registry refused)."""
        if self in {Status.CHECKED_DISCREPANCY, Status.REJECTED}:
            return Status.TERMINATED
        return self


FINAL_STATUSES = frozenset({Status.COMPLETED, Status.TERMINATED, Status.REJECTED, Status.CANCELLED})


class UnitKind(enum.IntEnum):
    MITIGATION_OUTCOME = 1
    ITMO = 2
    A64ER = 3


class UnitState(enum.IntEnum):
    HELD = 1
    USED = 2
    CANCELLED = 3


class Purpose(enum.IntEnum):
    UNSPECIFIED = 0
    NDC = 1
    OIMP = 2
    NDC_AND_OIMP = 3

    def allows(self, use: Purpose) -> bool:
        """Whether units authorized for this purpose may be used for ``use``."""
        return use is not Purpose.UNSPECIFIED and (use is self or self is Purpose.NDC_AND_OIMP)


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
    using_party: str
    year_of_use: int
    purpose: Purpose


class FirstTransferTrigger(enum.IntEnum):
    """What makes a first transfer happen (2/CMA.3 annex para 2)."""

    UNSPECIFIED = 0
    INTERNATIONAL_TRANSFER = 1
    AUTHORIZATION = 2
    ISSUANCE = 3
    USE_OR_CANCELLATION = 4


@dataclass(frozen=True)
class AuthorizationSpec:
    """A Party's authorization of mitigation outcomes."""

    authorization_id: str
    authorizing_party: str
    cooperative_approach: str
    purpose: Purpose
    quantity_cap: int  # 0: no cap
    vintage_first: int
    vintage_last: int

    def covers(self, vintage: int) -> bool:
        return self.vintage_first <= vintage <= self.vintage_last


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
    def source(self) -> Holder:
        return Holder(self.transferring_registry, self.transferring_account)

    @property
    def target(self) -> Holder:
        return Holder(self.acquiring_registry, self.acquiring_account)


def spaces(blocks: tuple[UnitBlock, ...] | list[UnitBlock]) -> list[str]:
    """The serial spaces (originating registries) touched, sorted: the lock order."""
    return sorted({block.attributes.originating_registry for block in blocks})
