"""The international registry's rules: what its sections' accounts accept and may propose.

**Provisional status.** A section opened provisionally (identity not yet verified), and every
account in it, may do only what the registry's policy lists. The default lets a provisional
section **hold and acquire** units (so that nothing sent to it is lost) and be issued into,
but not move units out, use, cancel, authorize or first transfer them until verified: the
actions that dispose of units wait for identity. Refused locally with 5009, before anything
reaches the hub. Configure with ``provisional_may`` (see ``international_registry.__main__``).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from article6.codes import Code, Refusal
from article6.model import FirstTransferTrigger, TransactionSpec, TransactionType
from article6.node.config import RegistryConfig
from article6.node.engine import Proposal, check_account_accepts
from international_registry.sections import SectionStatus, get_account, section_status

ACTIONS = {
    TransactionType.ISSUANCE: "issue",
    TransactionType.EXTERNAL_TRANSFER: "transfer",
    TransactionType.INTERNAL_TRANSFER: "transfer",
    TransactionType.USE: "use",
    TransactionType.CANCELLATION: "cancel",
    TransactionType.VOLUNTARY_CANCELLATION: "cancel",
    TransactionType.AUTHORIZATION: "authorize",
    TransactionType.FIRST_TRANSFER: "first-transfer",
}
ALL_ACTIONS = frozenset({*ACTIONS.values(), "acquire"})
PROVISIONAL_DEFAULT = frozenset({"acquire", "issue"})


class SectionRules:
    def __init__(self, registry_id: str, provisional_may: Iterable[str] = PROVISIONAL_DEFAULT):
        allowed = frozenset(provisional_may)
        unknown = allowed - ALL_ACTIONS
        if unknown:
            raise ValueError(f"unknown actions in provisional_may: {sorted(unknown)}")
        self.registry_id = registry_id
        self.provisional_may = allowed

    def _allow(self, connection: Connection, party: str, action: str) -> None:
        status = section_status(connection, party)
        if status is None:
            raise Refusal(Code.ACCOUNT_CLOSED, f"{party} has no open section")
        if status is SectionStatus.PROVISIONAL and action not in self.provisional_may:
            raise Refusal(
                Code.SECTION_PROVISIONAL,
                f"the section of {party} is provisional: it may not {action} until verified",
            )

    def check_acquisition(self, connection: Connection, spec: TransactionSpec) -> None:
        account = get_account(connection, spec.acquiring_account)
        check_account_accepts(self.registry_id, spec, account)
        assert account is not None
        self._allow(connection, account.party, "acquire")

    def check_proposal(self, connection: Connection, proposal: Proposal) -> None:
        own = (
            proposal.acquiring_account
            if proposal.type is TransactionType.ISSUANCE
            else (proposal.transferring_account)
        )
        account = get_account(connection, own)
        if account is None:
            raise Refusal(Code.TRANSFERRING_ACCOUNT_NOT_FOUND, own)
        self._allow(connection, account.party, ACTIONS[proposal.type])
        if proposal.type is TransactionType.FIRST_TRANSFER:
            self._check_first_transfer(connection, proposal, account.party)

    def _check_first_transfer(self, connection: Connection, proposal: Proposal, party: str) -> None:
        """Inside this registry, a first international transfer goes to another Party's section."""
        first = proposal.first_transfer
        international = first is not None and (
            first.trigger == FirstTransferTrigger.INTERNATIONAL_TRANSFER.value
        )
        if not international or proposal.acquiring_registry != self.registry_id:
            return
        target = get_account(connection, proposal.acquiring_account)
        if target is None:
            raise Refusal(Code.ACQUIRING_ACCOUNT_NOT_FOUND, proposal.acquiring_account)
        if target.party == party:
            raise Refusal(
                Code.FIRST_TRANSFER_TRIGGER_INVALID,
                f"{proposal.acquiring_account} is in {party}'s own section: not international",
            )


def from_config(config: RegistryConfig) -> SectionRules:
    """The rules, with the policy of the config file's ``[international]`` table."""
    settings = config.document.get("international", {})
    return SectionRules(config.registry_id, settings.get("provisional_may", PROVISIONAL_DEFAULT))
