"""The transaction state machine and its effects on the ledger.

Every method runs inside the caller's SQL transaction and makes exactly one state change:
status, history, ledger, locks and outbox notices commit together or not at all.

    PROPOSED -> CHECKED_DISCREPANCY -> TERMINATED   the hub's checks failed (DES 1, 3, 5)
    PROPOSED -> CHECKED -> COMPLETED                single-registry types, at once
    PROPOSED -> CHECKED -> ACCEPTED -> COMPLETED    external transfer, acquirer accepted
    CHECKED -> REJECTED                             the acquiring registry refused (DES 6)
    CHECKED -> CANCELLED                            no answer before respond_by (DES 7)

A refused proposal's receipt says 3 CHECKED_DISCREPANCY, the checks' answer; the DES
registry terminates on it, and the hub records that termination (5) in the same SQL
transaction, so the transaction is final at once and a status query answers 5.

Units of a CHECKED transaction are locked; the ledger changes only on completion, and final
states never change. Each registry involved gets a StatusNotice of the final status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import Connection

from article6 import holdings
from article6.block_table import Neighbourhood
from article6.codes import Code, Refusal
from article6.identifiers import check_registry_id, check_transaction_id
from article6.model import (
    AuthorizationSpec,
    FirstTransferTrigger,
    Held,
    LedgerBlock,
    Status,
    TransactionSpec,
    TransactionType,
    UnitBlock,
    UnitKind,
    spaces,
)
from article6.unit import Unit
from article6.v1 import transaction_pb2
from article6.wire import stored_spec, transaction_spec
from gateway.checks import DEFAULT_POLICY, Peer, Policy, check_proposal
from gateway.mailer import Mailer
from gateway.reads import LedgerReads, Reads
from gateway.storage.records import (
    AuthorizationRecord,
    TransactionRecord,
    expired_transactions,
    extend_respond_by,
    get_authorization,
    get_transaction,
    insert_transaction,
    obsolete_outbox,
    record_authorization,
    reserve,
    set_status,
)

ACQUISITION_REQUEST = "article6.v1.AcquisitionRequest"


@dataclass(frozen=True)
class Outcome:
    """What a receipt reports about a transaction."""

    transaction_id: str
    status: Status | None
    results: list[tuple[Code, str]] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.status not in {None, Status.CHECKED_DISCREPANCY} and not self.results


def _by_space(blocks: tuple[UnitBlock, ...]) -> dict[str, list[UnitBlock]]:
    grouped: dict[str, list[UnitBlock]] = {}
    for block in blocks:
        grouped.setdefault(block.attributes.originating_registry, []).append(block)
    return grouped


class Lifecycle:
    def __init__(
        self,
        mailer: Mailer,
        acceptance_timeout: timedelta,
        on_final: Callable[[TransactionRecord], None] | None = None,
        policy: Policy = DEFAULT_POLICY,
    ) -> None:
        self.mailer = mailer
        self.acceptance_timeout = acceptance_timeout
        self.on_final = on_final  # told of each transaction made final, after the commit
        self.policy = policy

    # --- proposal ------------------------------------------------------------------------

    def propose(
        self,
        unit: Unit,
        sender: str,
        message: transaction_pb2.Transaction,
        peers: Mapping[str, Peer],
        now: datetime,
        reads: Reads | None = None,
    ) -> Outcome:
        """Check a proposal and record it as TERMINATED (answered CHECKED_DISCREPANCY), CHECKED
        or (single registry) COMPLETED. ``reads``: read ahead for its batch (gateway.reads)."""
        try:
            check_transaction_id(message.transaction_id, sender)
        except Refusal as refusal:
            return Outcome(message.transaction_id, None, [(refusal.code, refusal.detail)])
        reads = reads or Reads.alone(unit.connection)
        if reads.record(message.transaction_id) is not None:
            detail = f"{message.transaction_id} was proposed before"
            return Outcome(message.transaction_id, None, [(Code.TRANSACTION_ID_REUSED, detail)])
        record = TransactionRecord(
            transaction_id=message.transaction_id,
            type=message.type,
            proposer=sender,
            transferring_registry=_recordable(message.transferring_registry),
            acquiring_registry=_recordable(message.acquiring_registry),
            quantity=message.quantity if message.quantity < 2**63 else -1,  # -1: see the body
            status=Status.PROPOSED,
            results=[],
            body=message.SerializeToString(deterministic=True),
            proposed_at=now,
            status_at=now,
            respond_by=None,
        )
        try:
            spec = transaction_spec(message)
            check_proposal(spec, sender, peers, self.policy)
            unit.lock_spaces(spaces(spec.blocks))
            _check_authorizations(unit.connection, spec, peers[sender])
            neighbourhoods = self._check_ledger(spec, reads)
        except Refusal as refusal:
            results = [(refusal.code, refusal.detail)]
            terminated = replace(record, status=Status.TERMINATED, results=results)
            path = [Status.PROPOSED, Status.CHECKED_DISCREPANCY]
            insert_transaction(unit, terminated, path, reads.ledger.insert_transaction)
            self._finished(unit, terminated)
            return Outcome(record.transaction_id, Status.CHECKED_DISCREPANCY, results)
        # An authorization's version is recorded before what its binding first transfers counts.
        _record_authorization(unit, spec, message, sender, now)
        _reserve(unit, spec, +1)
        if spec.crosses_registries:
            return self._await_acquirer(unit, record, spec, message, now, reads.ledger)
        self._apply(reads.ledger, spec, neighbourhoods)
        completed = replace(record, status=Status.COMPLETED)
        path = [Status.PROPOSED, Status.CHECKED]
        insert_transaction(unit, completed, path, reads.ledger.insert_transaction)
        self._finished(unit, completed)
        self._notify(unit, completed, spec.registries, now)
        return Outcome(record.transaction_id, Status.COMPLETED)

    def _check_ledger(
        self, spec: TransactionSpec, reads: Reads
    ) -> list[tuple[Neighbourhood[Held], list[UnitBlock]]]:
        """Refuse unless the ledger allows the proposal; return what was read, for reuse."""
        checked = []
        # Frozen serials first (whatever the proposal says of them, they wait), then the
        # ledger; a locked unit is always held, so locks are checked last.
        for space, wanted in _by_space(spec.blocks).items():
            held_back = reads.frozen(space, wanted)
            if held_back:
                numbers = ", ".join(str(number) for number in held_back[:5])
                raise Refusal(Code.UNITS_FROZEN, f"{space} serials frozen by discrepancy {numbers}")
            neighbourhood = reads.ledger.neighbourhood(space, wanted)
            present = neighbourhood.overlapping(wanted)
            if spec.type is TransactionType.ISSUANCE:
                if present:
                    block = present[0]
                    raise Refusal(
                        Code.SERIALS_ALREADY_ISSUED,
                        f"{space} serials {block.serial_first}-{block.serial_last} exist",
                    )
            else:
                holdings.check_held(wanted, present, spec.source)
            locked_by = reads.ledger.lockers(space, wanted)
            if locked_by:
                raise Refusal(Code.UNITS_LOCKED, f"locked by {', '.join(locked_by)}")
            checked.append((neighbourhood, wanted))
        return checked

    def _await_acquirer(
        self,
        unit: Unit,
        record: TransactionRecord,
        spec: TransactionSpec,
        message: transaction_pb2.Transaction,
        now: datetime,
        book: LedgerReads,
    ) -> Outcome:
        respond_by = now + self.acceptance_timeout
        checked = replace(record, status=Status.CHECKED, respond_by=respond_by)
        insert_transaction(unit, checked, [Status.PROPOSED], book.insert_transaction)
        book.lock(record.transaction_id, spec.blocks)
        request = transaction_pb2.AcquisitionRequest(transaction=message)
        request.respond_by.FromDatetime(respond_by)
        self.mailer.post(unit, spec.acquiring_registry, request, spec.transaction_id, now)
        return Outcome(record.transaction_id, Status.CHECKED)

    def _apply(
        self,
        book: LedgerReads,
        spec: TransactionSpec,
        neighbourhoods: list[tuple[Neighbourhood[Held], list[UnitBlock]]],
    ) -> None:
        """Change the ledger as completing ``spec`` does, on neighbourhoods read in this SQL
        transaction (under the serial spaces' locks)."""
        change = holdings.completion(spec)
        for neighbourhood, wanted in neighbourhoods:
            if spec.type is TransactionType.ISSUANCE:
                new = [holdings.holding(block, spec.target) for block in wanted]
                book.replace(neighbourhood, holdings.add(neighbourhood.blocks, new))
            else:
                _assert_held(wanted, neighbourhood.overlapping(wanted), spec)
                moved = holdings.move(neighbourhood.blocks, wanted, change)
                book.replace(neighbourhood, moved)

    # --- acquiring registry's answer -----------------------------------------------------

    def decide(
        self,
        unit: Unit,
        transaction_id: str,
        decision: Status,
        results: list[tuple[Code, str]],
        now: datetime,
        in_receipt: bool = False,
        reads: Reads | None = None,
    ) -> Outcome:
        """Apply the acquiring registry's ACCEPTED or REJECTED; a final transaction stays.
        ``in_receipt``: the decision came in the receipt to the AcquisitionRequest, which is
        marked delivered in this SQL transaction, so no copy of it is left to stop.
        ``reads``: read ahead for its batch (gateway.reads)."""
        assert decision in {Status.ACCEPTED, Status.REJECTED}
        reads = reads or Reads.alone(unit.connection)
        record = reads.record(transaction_id)
        assert record is not None, transaction_id
        if record.status.final:
            detail = f"{transaction_id} is already {record.status.name.lower()}"
            return Outcome(
                transaction_id, record.status, [(Code.TRANSACTION_ALREADY_FINAL, detail)]
            )
        spec = stored_spec(record.body)
        unit.lock_spaces(spaces(spec.blocks))
        if decision is Status.REJECTED:
            results = results or [(Code.ACQUIRING_REGISTRY_REFUSED, "")]
            self._end(unit, reads.ledger, record, Status.REJECTED, results, now, in_receipt)
            return Outcome(transaction_id, Status.REJECTED)
        self._complete(unit, reads.ledger, record, spec, now, in_receipt)
        return Outcome(transaction_id, Status.COMPLETED)

    def _complete(
        self,
        unit: Unit,
        book: LedgerReads,
        record: TransactionRecord,
        spec: TransactionSpec,
        now: datetime,
        in_receipt: bool,
    ) -> None:
        """Accepted, and so completed, in the same SQL transaction."""
        neighbourhoods = [
            (book.neighbourhood(space, wanted), wanted)
            for space, wanted in _by_space(spec.blocks).items()
        ]
        with book.writing():
            self._apply(book, spec, neighbourhoods)
            book.unlock(record.transaction_id, spec.blocks)
        if not in_receipt:
            obsolete_outbox(unit, record.transaction_id, ACQUISITION_REQUEST)
        record = set_status(
            unit, record, Status.COMPLETED, now, path=[Status.ACCEPTED], write=book.change_status
        )
        self._finished(unit, record)
        self._notify(unit, record, spec.registries, now)

    def _end(
        self,
        unit: Unit,
        book: LedgerReads,
        record: TransactionRecord,
        status: Status,
        results: list[tuple[Code, str]],
        now: datetime,
        in_receipt: bool = False,
    ) -> None:
        """Reject (the acquirer's refusal) or cancel: release the locks (and any first-transfer
        reservation) and tell both registries."""
        spec = stored_spec(record.body)
        book.unlock(record.transaction_id, spec.blocks)
        _reserve(unit, spec, -1)
        if not in_receipt:
            obsolete_outbox(unit, record.transaction_id, ACQUISITION_REQUEST)
        record = set_status(unit, record, status, now, results, write=book.change_status)
        self._finished(unit, record)
        registries = {record.transferring_registry, record.acquiring_registry}
        self._notify(unit, record, frozenset(registries), now)

    def _finished(self, unit: Unit, record: TransactionRecord) -> None:
        if self.on_final is not None:
            unit.after_commit(partial(self.on_final, record))

    def _notify(
        self,
        unit: Unit,
        record: TransactionRecord,
        registries: frozenset[str],
        now: datetime,
    ) -> None:
        for registry in sorted(registries):
            notice = status_notice(record)
            # The registry's leg confirmation comes back in its receipt (gateway.delivery):
            # one message fewer each way than Hub.SubmitReconciliation.
            notice.confirm_in_receipt = record.status is Status.COMPLETED
            self.mailer.post(unit, registry, notice, record.transaction_id, now)

    # --- time-outs -----------------------------------------------------------------------

    def offered(self, unit: Unit, transaction_id: str, at: datetime) -> None:
        """The AcquisitionRequest was first sent at ``at``: the acquiring registry has its
        whole acceptance time-out from then, however long the request waited to go."""
        extend_respond_by(unit.connection, transaction_id, at + self.acceptance_timeout)

    def cancel_expired(self, unit: Unit, now: datetime, limit: int = 100) -> list[tuple[str, str]]:
        """Cancel external transfers whose acquiring registry did not answer in time; return
        each one's id and acquiring registry."""
        cancelled = []
        for transaction_id in expired_transactions(unit.connection, now, limit):
            record = get_transaction(unit.connection, transaction_id)
            assert record is not None
            results = [(Code.TRANSACTION_TIMED_OUT, f"no answer by {record.respond_by}")]
            self._end(unit, LedgerReads(unit.connection), record, Status.CANCELLED, results, now)
            cancelled.append((transaction_id, record.acquiring_registry))
        return cancelled


def _check_authorizations(connection: Connection, spec: TransactionSpec, sender: Peer) -> None:
    """The checks that need the hub's record of authorizations."""
    first_transferred = spec.first_transferred()
    if spec.type is TransactionType.AUTHORIZATION:
        assert spec.authorization is not None
        binds = bool(spec.blocks)
        reserved = _check_version(connection, spec.authorization, sender, binds)
        binding = first_transferred.get(spec.authorization.authorization_id, 0)
        _check_quantity(spec.authorization, reserved, binding)
        return  # what its binding first transfers was checked with the version
    if spec.type is TransactionType.ISSUANCE and spec.authorization is not None:
        known = get_authorization(connection, spec.authorization.authorization_id)
        if known is not None and (known.grant, known.registry) != (
            spec.authorization,
            sender.registry_id,
        ):
            raise Refusal(
                Code.AUTHORIZATION_ID_REUSED,
                f"{spec.authorization.authorization_id} is recorded with other terms",
            )
    if spec.type is TransactionType.USE:
        _check_use_timeframe(connection, spec)
    for authorization_id, quantity in first_transferred.items():
        record = get_authorization(connection, authorization_id)
        if record is None:
            raise Refusal(Code.AUTHORIZATION_UNKNOWN, authorization_id)
        _check_first_transfer(spec, record, quantity, sender)


def _check_version(
    connection: Connection, granted: AuthorizationSpec, sender: Peer, binds: bool
) -> int:
    """Version 1 is new; each later version follows the recorded one, from its registry, and
    changes only what the units bound to it do not carry, and never what was first
    transferred. Outcomes are bound under the current version by restating it exactly (no
    new version). Returns the units first transferred under it so far."""
    record = get_authorization(connection, granted.authorization_id)
    if record is not None and granted.version == record.grant.version and binds:
        _check_restated(granted, record, sender)
        return record.reserved
    if granted.version == 1:
        if record is not None:
            raise Refusal(Code.AUTHORIZATION_ID_REUSED, granted.authorization_id)
        reserved = 0
    else:
        if record is None:
            raise Refusal(Code.AUTHORIZATION_UNKNOWN, granted.authorization_id)
        if record.grant.revoked:
            raise Refusal(Code.AUTHORIZATION_REVOKED, f"{granted.authorization_id} is revoked")
        if granted.version != record.grant.version + 1 or record.registry != sender.registry_id:
            raise Refusal(
                Code.AUTHORIZATION_VERSION_INVALID,
                f"{granted.authorization_id} is at version {record.grant.version}, recorded by "
                f"{record.registry}; version {granted.version} proposed by {sender.registry_id}",
            )
        if granted.terms_fixed_across_versions != record.grant.terms_fixed_across_versions:
            raise Refusal(Code.AUTHORIZATION_TERMS_FIXED, granted.authorization_id)
        reserved = record.reserved
    if granted.quantity_cap and granted.quantity_cap < reserved:
        raise Refusal(
            Code.AUTHORIZATION_BELOW_FIRST_TRANSFERRED,
            f"{granted.authorization_id}: {reserved} already first transferred, "
            f"{granted.quantity_cap} authorized",
        )
    return reserved


def _check_restated(granted: AuthorizationSpec, record: AuthorizationRecord, sender: Peer) -> None:
    """Binding outcomes under the current version: its registry, its terms exactly."""
    if record.grant.revoked:
        raise Refusal(Code.AUTHORIZATION_REVOKED, f"{granted.authorization_id} is revoked")
    terms = replace(granted, authorized_entities=(), authorized_parties=())  # kept in the body
    if granted.version == 1 and terms != record.grant:  # a new authorization, not a restatement
        raise Refusal(Code.AUTHORIZATION_ID_REUSED, granted.authorization_id)
    if record.registry != sender.registry_id or terms != record.grant:
        raise Refusal(
            Code.AUTHORIZATION_VERSION_INVALID,
            f"to bind outcomes under {granted.authorization_id} version {granted.version}, "
            "restate that version exactly, from the registry that recorded it",
        )


def _check_quantity(grant: AuthorizationSpec, reserved: int, quantity: int) -> None:
    """First transferred so far (or pending) plus ``quantity`` stays within the authorized
    quantity, whichever version set it."""
    if grant.quantity_cap and reserved + quantity > grant.quantity_cap:
        raise Refusal(
            Code.AUTHORIZATION_CAP_EXCEEDED,
            f"{grant.authorization_id}: {reserved} of {grant.quantity_cap} already first "
            f"transferred, {quantity} more asked",
        )


def _check_first_transfer(
    spec: TransactionSpec, record: AuthorizationRecord, quantity: int, sender: Peer
) -> None:
    """A first transfer under a recorded authorization: at an event it defines, by its Party,
    of units it covers, within its quantity."""
    grant = record.grant
    authorization_id = grant.authorization_id
    party = spec.first_transferring_party
    if grant.revoked:
        raise Refusal(Code.AUTHORIZATION_REVOKED, f"{authorization_id} is revoked")
    if party != grant.authorizing_party:
        raise Refusal(
            Code.FIRST_TRANSFERRING_PARTY_MISMATCH,
            f"{authorization_id} was granted by {grant.authorizing_party}",
        )
    assert spec.first_transfer is not None
    _check_event(spec, grant, sender)
    for block in spec.blocks:
        unit = block.attributes
        if unit.authorization_id != authorization_id:
            continue
        if not grant.covers(unit.vintage):
            raise Refusal(
                Code.VINTAGE_OUTSIDE_AUTHORIZATION,
                f"vintage {unit.vintage} outside {grant.vintage_first}-{grant.vintage_last}",
            )
        if (unit.cooperative_approach, unit.purpose) != (grant.cooperative_approach, grant.purpose):
            raise Refusal(
                Code.COOPERATIVE_APPROACH_MISMATCH,
                f"serials {block.serial_first}-{block.serial_last} are not bound to "
                f"{authorization_id} ({grant.cooperative_approach}, {grant.purpose.name})",
            )
    _check_quantity(grant, record.reserved, quantity)


def _check_event(spec: TransactionSpec, grant: AuthorizationSpec, sender: Peer) -> None:
    """The event is one the authorization defines as first transfer (2/CMA.3 annex para 2):
    the first international transfer for use towards an NDC, the Party's recorded definition
    for OIMP. Authorized A6.4ERs become ITMOs when they leave the mechanism registry. An
    international transfer leaves for another registry, or, in the international registry
    (which keeps many Parties' sections), for another Party's section."""
    assert spec.first_transfer is not None
    trigger = spec.first_transfer.trigger
    international = spec.crosses_registries or sender.kind == "international"
    if trigger is FirstTransferTrigger.INTERNATIONAL_TRANSFER and not international:
        raise Refusal(Code.FIRST_TRANSFER_TRIGGER_INVALID, "the units do not leave the Party")
    a64ers = any(b.attributes.unit_kind is UnitKind.A64ER for b in spec.blocks)
    if trigger not in grant.first_transfer_at and not a64ers:
        defined = ", ".join(sorted(t.name.lower() for t in grant.first_transfer_at))
        raise Refusal(
            Code.FIRST_TRANSFER_TRIGGER_INVALID,
            f"{grant.authorization_id} ({grant.purpose.name}) is first transferred by "
            f"{defined}, not {trigger.name.lower()}",
        )


def _check_use_timeframe(connection: Connection, spec: TransactionSpec) -> None:
    """A use towards an NDC falls within each authorization's timeframe of use."""
    assert spec.use is not None
    if not spec.use.year_of_use:
        return
    for authorization_id in sorted({b.attributes.authorization_id for b in spec.blocks} - {""}):
        record = get_authorization(connection, authorization_id)
        if record is not None and not record.grant.covers_use_in(spec.use.year_of_use):
            grant = record.grant
            raise Refusal(
                Code.USE_OUTSIDE_AUTHORIZATION,
                f"{authorization_id} covers use in {grant.use_year_first or '..'}-"
                f"{grant.use_year_last or '..'}, not {spec.use.year_of_use}",
            )


def _record_authorization(
    unit: Unit,
    spec: TransactionSpec,
    message: transaction_pb2.Transaction,
    sender: str,
    now: datetime,
) -> None:
    """Keep an authorization's new version (type 11), or the host Party's authorization of
    A6.4ERs on first sight (the mechanism registry's issuance)."""
    granted = spec.authorization
    if granted is None:
        return
    known = get_authorization(unit.connection, granted.authorization_id)
    if known is not None and known.grant.version == granted.version:
        return  # the mechanism's next issuance, or outcomes bound under the current version
    body = message.authorization.SerializeToString(deterministic=True)
    record_authorization(unit, granted, body, sender, spec.transaction_id, now)


def _reserve(unit: Unit, spec: TransactionSpec, sign: int) -> None:
    """Count a first transfer against its authorizations' quantities (+1), or give it back
    (-1)."""
    for authorization_id, quantity in spec.first_transferred().items():
        reserve(unit.connection, authorization_id, sign * quantity)


def _assert_held(
    wanted: list[UnitBlock], present: list[LedgerBlock], spec: TransactionSpec
) -> None:
    """Units checked at proposal and locked since are still held: an invariant, not a check."""
    try:
        holdings.check_held(wanted, present, spec.source)
    except Refusal as refusal:
        raise AssertionError(f"{spec.transaction_id}: locked units changed: {refusal}") from None


def status_notice(record: TransactionRecord) -> transaction_pb2.StatusNotice:
    notice = transaction_pb2.StatusNotice(
        transaction_id=record.transaction_id,
        status=transaction_pb2.TransactionStatus.ValueType(record.status.value),
        transaction=transaction_pb2.Transaction.FromString(record.body),
    )
    for code, detail in record.results:
        notice.results.add(code=code.value, detail=detail)
    notice.status_at.FromDatetime(record.status_at)
    return notice


def _recordable(registry: str) -> str:
    """A registry id as a rejected proposal is recorded: a malformed one (too long, a NUL...)
    stays only in the recorded body, so that a hostile value can never fail the recording."""
    try:
        return check_registry_id(registry)
    except Refusal:
        return ""
