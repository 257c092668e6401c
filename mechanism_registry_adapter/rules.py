"""What the mechanism registry's node accepts and proposes: it takes in no units, and
proposes only what intake asks of it (recording A6.4ERs in the ledger, and first transfers
out of its pending account)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from article6.codes import Code, Refusal
from article6.model import Status, TransactionSpec, TransactionType
from article6.node.engine import Proposal, RegistryEngine
from article6.unit import Unit
from article6.v1 import transaction_pb2
from mechanism_registry_adapter.intake import Intake, Settings

PROPOSED = frozenset({TransactionType.ISSUANCE, TransactionType.FIRST_TRANSFER})


class MechanismRules:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry_id = settings.registry_id
        self.pending_account = settings.pending_account

    def check_acquisition(self, connection: Connection, spec: TransactionSpec) -> None:
        raise Refusal(
            Code.TRANSACTION_TYPE_UNSUPPORTED, "the mechanism registry does not acquire units"
        )

    def serial_space(self, connection: Connection, account_id: str) -> str:
        return self.registry_id

    def check_proposal(self, connection: Connection, proposal: Proposal) -> None:
        if proposal.type not in PROPOSED:
            raise Refusal(
                Code.TRANSACTION_TYPE_UNSUPPORTED,
                f"the mechanism registry does not propose a {proposal.type.name.lower()}",
            )
        own = (
            proposal.acquiring_account
            if proposal.type is TransactionType.ISSUANCE
            else proposal.transferring_account
        )
        if own != self.pending_account:
            raise Refusal(Code.TRANSFERRING_ACCOUNT_NOT_FOUND, f"{own} is not the pending account")

    def on_final(
        self,
        engine: RegistryEngine,
        unit: Unit,
        message: transaction_pb2.Transaction,
        status: Status,
        results: Sequence[tuple[int, str]],
    ) -> None:
        """Each instruction moves on as the hub decides its transactions."""
        Intake(engine, self.settings).on_final(unit, message, status, results)
