"""The international registry's rules: what its sections' accounts accept and may propose.

**Provisional status.** A section opened provisionally (identity not yet verified), and every
account in it, may do only what the registry's policy lists; so may an account that is
provisional on its own, its authorized representatives not yet verified, once its section is
verified. The default lets a provisional
section **hold and acquire** units (so that nothing sent to it is lost) and be issued into,
but not move units out, use, cancel, authorize or first transfer them until verified: the
actions that dispose of units wait for identity. Refused locally with 5009, before anything
reaches the hub. Configure with ``provisional_may`` (see ``international_registry.__main__``).

**ARS and IR accounts.** The additional registry services hold mitigation outcomes, before and
after authorization; the international registry holds ITMOs. So outcomes are issued into ARS
accounts, authorized and first transferred from them, and leave them only by first transfer
(or move between ARS accounts of the same Party); ITMOs (issued as a first transfer, or
arriving) are held in IR accounts only. Refused with 4014, as is an account used otherwise
than its type allows (``article6.account_types``).

**One Party per section.** A section acts for its Party: the authorizing, first-transferring,
using or cancelling Party is the section's own (5024).

**A registry id per section.** Units issued in a section originate in the section's own
registry id, which the AEF's ITMO ids and "Party ITMO registry" cells carry (ISO 3166-1
alpha-3 and two digits). No decision says what the international registry's id for a Party's
section is; ``section_registry_id`` (default ``"{party}00"``) states it, so that SGP's
outcomes are ``SGP00`` serials and their ITMOs ``CA0001-SGP00-SGP-1-2024``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from article6.account_types import check_source, check_target
from article6.codes import Code, Refusal
from article6.identifiers import PARTY_REGISTRY_ID
from article6.model import FirstTransferTrigger, Purpose, TransactionSpec, TransactionType, UnitKind
from article6.node.config import RegistryConfig
from article6.node.engine import Proposal, Rules, check_account_accepts
from international_registry.sections import (
    Account,
    SectionStatus,
    account_provisional,
    get_account,
    section_status,
)

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


SECTION_REGISTRY_ID_DEFAULT = "{party}00"


class SectionRules(Rules):
    def __init__(
        self,
        registry_id: str,
        provisional_may: Iterable[str] = PROVISIONAL_DEFAULT,
        section_registry_id: str = SECTION_REGISTRY_ID_DEFAULT,
    ):
        allowed = frozenset(provisional_may)
        unknown = allowed - ALL_ACTIONS
        if unknown:
            raise ValueError(f"unknown actions in provisional_may: {sorted(unknown)}")
        if not PARTY_REGISTRY_ID.fullmatch(section_registry_id.format(party="SGP")):
            raise ValueError(
                f"section_registry_id {section_registry_id!r} does not make an AEF registry id "
                "(ISO 3166-1 alpha-3 and two digits) of a Party code"
            )
        self.registry_id = registry_id
        self.provisional_may = allowed
        self.section_registry_id = section_registry_id

    def section_space(self, party: str) -> str:
        """The registry id of ``party``'s section: its units' serial space."""
        return self.section_registry_id.format(party=party)

    def serial_space(self, connection: Connection, account_id: str) -> str:
        account = get_account(connection, account_id)
        if account is None:
            raise Refusal(Code.ACQUIRING_ACCOUNT_NOT_FOUND, account_id)
        return self.section_space(account.party)

    def _allow(self, connection: Connection, party: str, action: str, account: str = "") -> None:
        """The policy for provisional sections applies to a provisional section, and to an
        account that is provisional on its own (its representatives not yet verified)."""
        status = section_status(connection, party)
        if status is None:
            raise Refusal(Code.ACCOUNT_CLOSED, f"{party} has no open section")
        if action in self.provisional_may:
            return
        if status is SectionStatus.PROVISIONAL:
            raise Refusal(
                Code.SECTION_PROVISIONAL,
                f"the section of {party} is provisional: it may not {action} until verified",
            )
        if account and account_provisional(connection, account):
            raise Refusal(
                Code.SECTION_PROVISIONAL,
                f"account {account} is provisional: it may not {action} until its "
                "representatives' identity is verified",
            )

    def check_acquisition(self, connection: Connection, spec: TransactionSpec) -> None:
        account = get_account(connection, spec.acquiring_account)
        check_account_accepts(self.registry_id, spec, account)
        assert account is not None
        self._allow(connection, account.party, "acquire", account.account_id)
        if account.ars:
            raise Refusal(
                Code.ACCOUNT_TYPE_NOT_ALLOWED, f"{account.account_id} is in the ARS: not for ITMOs"
            )
        check_target(spec.type, account.account_id, account.account_type, None)

    def check_proposal(self, connection: Connection, proposal: Proposal) -> None:
        if proposal.type is TransactionType.AUTHORIZATION and not proposal.transferring_account:
            self._check_record(connection, proposal)  # binds no outcomes: no account
            return
        issuance = proposal.type is TransactionType.ISSUANCE
        own = proposal.acquiring_account if issuance else proposal.transferring_account
        account = get_account(connection, own)
        if account is None:
            raise Refusal(Code.TRANSFERRING_ACCOUNT_NOT_FOUND, own)
        self._allow(connection, account.party, ACTIONS[proposal.type], account.account_id)
        _check_parties(proposal, account.party)
        if not issuance:
            check_source(proposal.type, account.account_id, account.account_type)
        target = self._target(connection, proposal)
        _check_ars(proposal, account, target)
        if proposal.type is TransactionType.FIRST_TRANSFER:
            self._check_first_transfer(connection, proposal, account.party)

    def _check_record(self, connection: Connection, proposal: Proposal) -> None:
        """An authorization, or a new version of one, for a section's Party."""
        if proposal.authorization is None:
            raise Refusal(Code.REQUIRED_FIELD_MISSING, "no authorization")
        self._allow(connection, proposal.authorization.authorizing_party, "authorize")

    def _target(self, connection: Connection, proposal: Proposal) -> Account | None:
        """The account units arrive in, when it is one of this registry's (checked by type)."""
        if proposal.acquiring_registry != self.registry_id or not proposal.acquiring_account:
            return None
        target = get_account(connection, proposal.acquiring_account)
        if target is None:
            raise Refusal(Code.ACQUIRING_ACCOUNT_NOT_FOUND, proposal.acquiring_account)
        purpose = Purpose(proposal.use.purpose) if proposal.use is not None else None
        check_target(proposal.type, target.account_id, target.account_type, purpose)
        return target

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
    return SectionRules(
        config.registry_id,
        settings.get("provisional_may", PROVISIONAL_DEFAULT),
        settings.get("section_registry_id", SECTION_REGISTRY_ID_DEFAULT),
    )


def _check_parties(proposal: Proposal, party: str) -> None:
    """The Parties a proposal names are the section's own."""
    named = [
        proposal.authorization.authorizing_party if proposal.authorization else "",
        proposal.first_transfer.first_transferring_party if proposal.first_transfer else "",
        proposal.use.using_party if proposal.use else "",
    ]
    for other in named:
        if other and other != party:
            raise Refusal(Code.PARTY_NOT_OF_REGISTRY, f"the section acts for {party}, not {other}")


ARS_ACTIONS = frozenset({TransactionType.AUTHORIZATION, TransactionType.FIRST_TRANSFER})


def _check_ars(proposal: Proposal, source: Account, target: Account | None) -> None:
    """Outcomes stay in the ARS until first transferred; ITMOs are held in the IR (4014)."""
    kind = proposal.type
    if kind is TransactionType.ISSUANCE:
        itmos = any(b.attributes.unit_kind is UnitKind.ITMO for b in proposal.issued)
        if source.ars == itmos:
            raise Refusal(
                Code.ACCOUNT_TYPE_NOT_ALLOWED,
                "mitigation outcomes are issued into ARS accounts, ITMOs into IR accounts",
            )
        return
    if kind in ARS_ACTIONS and not source.ars:
        raise Refusal(
            Code.ACCOUNT_TYPE_NOT_ALLOWED,
            f"{source.account_id} is an IR account: outcomes are authorized and first "
            "transferred from the ARS",
        )
    if target is None or kind is TransactionType.AUTHORIZATION:
        return
    if kind is TransactionType.FIRST_TRANSFER and target.ars:
        raise Refusal(Code.ACCOUNT_TYPE_NOT_ALLOWED, f"{target.account_id} is in the ARS")
    moves = kind in {TransactionType.INTERNAL_TRANSFER, TransactionType.EXTERNAL_TRANSFER}
    within_ars = source.ars and target.ars and source.party == target.party
    within_ir = not source.ars and not target.ars
    if moves and not (within_ars or within_ir):
        raise Refusal(
            Code.ACCOUNT_TYPE_NOT_ALLOWED,
            "outcomes leave the ARS only by first transfer, and ITMOs stay in IR accounts",
        )
