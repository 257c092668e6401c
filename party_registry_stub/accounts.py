"""The reference registry's accounts and what it accepts into them.

An account has a type (AEF account purposes), is open or closed, and may be linked to some
cooperative approaches (none: any). Acquisitions are accepted only into an open holding
account linked to the units' cooperative approach (4003, 4004, 4014, 5006), and every
proposal uses its accounts as their types allow (``article6.account_types``, 4014).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    insert,
    select,
    update,
)

from article6.account_types import check_source, check_target
from article6.codes import Code, Refusal
from article6.direct import Direct
from article6.identifiers import format_account_id
from article6.model import AccountType, Purpose, TransactionSpec, TransactionType
from article6.node import store
from article6.node.engine import Proposal, Rules, check_account_accepts

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String(40), primary_key=True),
    Column("account_type", Integer, nullable=False),
    Column("open", Boolean, nullable=False),
    Column("cooperative_approaches", Text, nullable=False),  # comma-separated; empty: any
)


@dataclass(frozen=True)
class Account:
    account_id: str
    account_type: AccountType
    open: bool
    cooperative_approaches: frozenset[str]

    def allows(self, cooperative_approach: str) -> bool:
        return (
            not self.cooperative_approaches or cooperative_approach in self.cooperative_approaches
        )


def open_account(
    connection: Connection,
    registry_id: str,
    account_type: AccountType,
    cooperative_approaches: frozenset[str] = frozenset(),
) -> str:
    """Open an account and return its id (with check digits)."""
    account_id = format_account_id(registry_id, 1000 + store.next_number(connection, "account"))
    connection.execute(
        insert(accounts).values(
            account_id=account_id,
            account_type=account_type.value,
            open=True,
            cooperative_approaches=",".join(sorted(cooperative_approaches)),
        )
    )
    return account_id


def close_account(connection: Connection, account_id: str) -> bool:
    """Close an account: it holds what it has, but acquires nothing more."""
    changed = connection.execute(
        update(accounts).where(accounts.c.account_id == account_id).values(open=False)
    )
    return changed.rowcount == 1


def get_account(connection: Connection, account_id: str) -> Account | None:
    rows = _account().rows(connection, {"id": account_id})
    if not rows:
        return None
    row = rows[0]
    approaches = frozenset(filter(None, row.cooperative_approaches.split(",")))
    return Account(row.account_id, AccountType(row.account_type), row.open, approaches)


@cache
def _account() -> Direct:
    """Built once: every acquisition asks (article6.direct)."""
    return Direct(select(accounts).where(accounts.c.account_id == bindparam("id")))


class AccountRules(Rules):
    """The reference registry's rules: acquisitions only into open, linked accounts."""

    def __init__(self, registry_id: str) -> None:
        self.registry_id = registry_id

    def check_acquisition(self, connection: Connection, spec: TransactionSpec) -> None:
        account = get_account(connection, spec.acquiring_account)
        check_account_accepts(self.registry_id, spec, account)
        assert account is not None
        check_target(spec.type, account.account_id, account.account_type, None)

    def serial_space(self, connection: Connection, account_id: str) -> str:
        return self.registry_id

    def check_proposal(self, connection: Connection, proposal: Proposal) -> None:
        """Each account used as its type allows (4014); the hub checks the rest."""
        if proposal.type is not TransactionType.ISSUANCE and proposal.transferring_account:
            source = get_account(connection, proposal.transferring_account)
            if source is None:
                raise Refusal(Code.TRANSFERRING_ACCOUNT_NOT_FOUND, proposal.transferring_account)
            check_source(proposal.type, source.account_id, source.account_type)
        if proposal.acquiring_registry != self.registry_id or not proposal.acquiring_account:
            return
        target = get_account(connection, proposal.acquiring_account)
        if target is None:
            raise Refusal(Code.ACQUIRING_ACCOUNT_NOT_FOUND, proposal.acquiring_account)
        purpose = Purpose(proposal.use.purpose) if proposal.use is not None else None
        check_target(proposal.type, target.account_id, target.account_type, purpose)
