"""What each account type may do, as data: the accounts a transaction may take units from and
put them in, by transaction type (and, for a use, by its purpose).

The AEF and the international registry's guidance name accounts by purpose: holding, use
towards the NDC, use for OIMP, voluntary cancellation, (mandatory) cancellation; the
mechanism registry adds its pending and Adaptation Fund accounts. Units are held and moved in
holding (and pending) accounts, and end in an account of the purpose they were used or
cancelled for. A registry refuses anything else with 4014 before it reaches the hub.
"""

from __future__ import annotations

from article6.codes import Code, Refusal
from article6.model import AccountType, Purpose, TransactionType

A = AccountType
T = TransactionType

# Accounts units may leave (everything but issuance takes them from somewhere).
SOURCES = frozenset({A.HOLDING, A.PENDING})

# Accounts units may arrive in, by transaction type; None: by the use's purpose (USE_TARGETS).
TARGETS: dict[TransactionType, frozenset[AccountType]] = {
    T.ISSUANCE: frozenset({A.HOLDING, A.PENDING}),
    T.INTERNAL_TRANSFER: frozenset({A.HOLDING, A.ADAPTATION_FUND}),
    T.EXTERNAL_TRANSFER: frozenset({A.HOLDING}),
    T.FIRST_TRANSFER: frozenset({A.HOLDING}),
    T.AUTHORIZATION: frozenset({A.HOLDING, A.PENDING}),
    T.CANCELLATION: frozenset({A.MANDATORY_CANCELLATION, A.VOLUNTARY_CANCELLATION}),
    T.VOLUNTARY_CANCELLATION: frozenset({A.VOLUNTARY_CANCELLATION}),
}
USE_TARGETS: dict[Purpose, frozenset[AccountType]] = {
    Purpose.NDC: frozenset({A.NDC_USE}),
    Purpose.OIMP: frozenset({A.OIMP_USE}),
    Purpose.IMP: frozenset({A.OIMP_USE}),
    Purpose.OP: frozenset({A.OIMP_USE}),
}


def check_source(kind: TransactionType, account_id: str, account_type: AccountType) -> None:
    """Refuse (4014) to take units for ``kind`` from an account of ``account_type``."""
    if kind is not T.ISSUANCE and account_type not in SOURCES:
        raise Refusal(
            Code.ACCOUNT_TYPE_NOT_ALLOWED,
            f"{account_id} is a {_name(account_type)} account: units leave holding accounts only",
        )


def check_target(
    kind: TransactionType, account_id: str, account_type: AccountType, use: Purpose | None
) -> None:
    """Refuse (4014) to put units into an account of ``account_type`` by ``kind``."""
    if kind is T.USE:
        allowed = USE_TARGETS.get(use or Purpose.UNSPECIFIED, frozenset())
    else:
        allowed = TARGETS.get(kind, frozenset())
    if account_type not in allowed:
        names = ", ".join(sorted(_name(t) for t in allowed)) or "none"
        raise Refusal(
            Code.ACCOUNT_TYPE_NOT_ALLOWED,
            f"{account_id} is a {_name(account_type)} account; a {kind.name.lower()} "
            f"goes to: {names}",
        )


def _name(account_type: AccountType) -> str:
    return account_type.name.lower().replace("_", " ")
