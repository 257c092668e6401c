"""``article6.v1.InternationalRegistryAdminService``: the secretariat's operations.

Callers authenticate with a client certificate whose identity is in the registry's
``admin_identities``. Lifecycle misuse (opening a section on a request not validated...) ends
the call with FAILED_PRECONDITION; a refused proposal ends it with its numbered code, as
``article6.status`` maps codes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
import grpc.aio
from sqlalchemy import Connection

from article6.aef.workbook import export_problem, exported
from article6.blocks import Block, serial_range
from article6.codes import Refusal
from article6.identifiers import check_party_code
from article6.model import AccountType, TransactionType
from article6.node.engine import Proposal, RegistryEngine
from article6.node.service import Writer
from article6.status import abort
from article6.tls import peer_identity
from article6.unit import Unit
from article6.v1 import international_registry_pb2 as ir_pb2
from article6.v1 import international_registry_pb2_grpc as ir_grpc
from article6.wire import unit_block, unit_block_message
from international_registry import aef, sections
from international_registry.intake import intake
from international_registry.portal import procedure
from international_registry.portal import store as portal_store
from international_registry.portal.mail import Mailer, MailError

Context = grpc.aio.ServicerContext[Any, Any]
log = logging.getLogger(__name__)
T = TypeVar("T")


def _ranges(request: ir_pb2.ProposeActionRequest) -> list[Block[str] | Block[None]]:
    ranges: list[Block[str] | Block[None]] = []
    for wanted in request.ranges:
        if wanted.originating_registry:
            ranges.append(
                Block(wanted.serial_first, wanted.serial_last, wanted.originating_registry)
            )
        else:
            ranges.append(serial_range(wanted.serial_first, wanted.serial_last))
    return ranges


class SecretariatService(ir_grpc.InternationalRegistryAdminServiceServicer):
    def __init__(
        self,
        engine: RegistryEngine,
        writer: Writer,
        operators: frozenset[str],
        section_space: Callable[[str], str],
        intake_readers: frozenset[str] = frozenset(),
        mailer: Mailer | None = None,
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.operators = operators
        self.mailer = mailer  # the portal's, when the registry serves one
        self.intake_readers = intake_readers  # may call ListIntake only
        self.section_space = section_space  # a Party section's registry id (rules.py)

    async def _run(
        self,
        context: Context,
        work: Callable[[Connection], T],
        readers: frozenset[str] = frozenset(),
    ) -> T:
        """Authorize the caller, then run ``work`` in one transaction on the writer."""
        return await self._change(context, lambda unit: work(unit.connection), readers)

    async def _change(
        self,
        context: Context,
        work: Callable[[Unit], T],
        readers: frozenset[str] = frozenset(),
    ) -> T:
        """Authorize the caller, then apply ``work`` in its unit of work on the writer."""
        if peer_identity(context) not in self.operators | readers:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not an operator identity")
        try:
            return await self.writer.run(work)
        except (sections.SectionError, procedure.Refused) as error:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        except Refusal as refusal:
            await abort(context, refusal)
        raise AssertionError("unreachable")

    async def SubmitSectionRequest(
        self, request: ir_pb2.SubmitSectionRequestRequest, context: Context
    ) -> ir_pb2.SubmitSectionRequestResponse:
        focal = sections.FocalPoint(request.focal_point or "national")
        request_id = await self._run(context, lambda c: sections.submit_request(
            c, request.party, request.submitted_by, focal, list(request.administrators),
            list(request.documents),
        ))  # fmt: skip
        return ir_pb2.SubmitSectionRequestResponse(request_id=request_id)

    async def DecideSectionRequest(
        self, request: ir_pb2.DecideSectionRequestRequest, context: Context
    ) -> ir_pb2.DecideSectionRequestResponse:
        await self._run(context, lambda c: sections.decide_request(
            c, request.request_id, request.valid, request.reason
        ))  # fmt: skip
        status = (
            sections.RequestStatus.VALIDATED if request.valid else sections.RequestStatus.REJECTED
        )
        return ir_pb2.DecideSectionRequestResponse(request_id=request.request_id, status=status)

    async def OpenSection(
        self, request: ir_pb2.OpenSectionRequest, context: Context
    ) -> ir_pb2.OpenSectionResponse:
        party = await self._run(context, lambda c: sections.open_section(c, request.request_id))
        return ir_pb2.OpenSectionResponse(party=party, status=sections.SectionStatus.PROVISIONAL)

    async def VerifySection(
        self, request: ir_pb2.VerifySectionRequest, context: Context
    ) -> ir_pb2.VerifySectionResponse:
        await self._run(context, lambda c: sections.verify_section(c, request.party))
        return ir_pb2.VerifySectionResponse(
            party=request.party, status=sections.SectionStatus.VERIFIED
        )

    async def OpenAccount(
        self, request: ir_pb2.OpenAccountRequest, context: Context
    ) -> ir_pb2.OpenAccountResponse:
        kind = AccountType(request.account_type or AccountType.HOLDING.value)
        account_id = await self._run(context, lambda c: sections.open_account(
            c, self.engine.registry_id, request.party, kind, ars=request.ars,
            holder=request.holder, cooperative_approaches=frozenset(request.cooperative_approaches),
        ))  # fmt: skip
        return ir_pb2.OpenAccountResponse(account_id=account_id)

    async def ProposeAction(
        self, request: ir_pb2.ProposeActionRequest, context: Context
    ) -> ir_pb2.ProposeActionResponse:
        def propose(unit: Unit) -> str:
            proposal = Proposal(
                type=TransactionType(request.type),
                transferring_account=request.transferring_account,
                acquiring_registry=request.acquiring_registry or self.engine.registry_id,
                acquiring_account=request.acquiring_account,
                ranges=_ranges(request),
                issued=[unit_block(block) for block in request.issued],
                use=request.use if request.HasField("use") else None,
                authorization=request.authorization if request.HasField("authorization") else None,
                first_transfer=request.first_transfer
                if request.HasField("first_transfer")
                else None,
                subtype=request.subtype,
            )
            return self.engine.propose(unit, proposal)

        return ir_pb2.ProposeActionResponse(transaction_id=await self._change(context, propose))

    async def ExportAef(
        self, request: ir_pb2.ExportAefRequest, context: Context
    ) -> ir_pb2.ExportAefResponse:
        year = request.year or datetime.now(UTC).year
        problem = export_problem(request.format, request.table)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        here = self.engine.registry_id
        section = self.section_space(request.party)

        def export(connection: Connection) -> tuple[str, bytes]:
            # Made while the books are open: the actions are read as the table is written.
            tables = aef.workbook(connection, here, request.party, year, section)
            return exported(tables, request.format, request.table)

        content, workbook = await self._run(context, export)
        return ir_pb2.ExportAefResponse(content=content, workbook=workbook)

    async def ListIntake(
        self, request: ir_pb2.ListIntakeRequest, context: Context
    ) -> ir_pb2.ListIntakeResponse:
        here = self.engine.registry_id
        source = request.transferring_registry
        transactions, held = await self._run(
            context, lambda c: intake(c, here, source), readers=self.intake_readers
        )
        response = ir_pb2.ListIntakeResponse()
        for transaction_id, account, blocks in transactions:
            response.transactions.add(
                transaction_id=transaction_id, acquiring_account=account,
                blocks=[unit_block_message(block) for block in blocks],
            )  # fmt: skip
        for block in held:
            response.held.add(
                block=unit_block_message(block.with_attributes(block.attributes.unit)),
                registry=here, account_id=block.attributes.holder.account_id,
            )  # fmt: skip
        return response

    # --- the portal's secretariat steps ---------------------------------------------------

    async def PutFocalPoint(
        self, request: ir_pb2.PutFocalPointRequest, context: Context
    ) -> ir_pb2.PutFocalPointResponse:
        point = request.focal_point
        kinds = {kind.value for kind in portal_store.FocalPointKind}
        if (point.kind or "national") not in kinds or "@" not in point.email or not point.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "a focal point has a name, an e-mail address, and kind "
                                "national or additional")  # fmt: skip
        entry = portal_store.FocalPointEntry(
            point.email, check_party_code(point.party), point.name,
            portal_store.FocalPointKind(point.kind or "national"),
        )  # fmt: skip
        await self._run(context, lambda c: portal_store.put_focal_point(c, entry))
        return ir_pb2.PutFocalPointResponse()

    async def ListFocalPoints(
        self, request: ir_pb2.ListFocalPointsRequest, context: Context
    ) -> ir_pb2.ListFocalPointsResponse:
        listed = await self._run(
            context, lambda c: portal_store.list_focal_points(c, request.party)
        )
        return ir_pb2.ListFocalPointsResponse(focal_points=[
            ir_pb2.FocalPoint(party=e.party, email=e.email, name=e.name, kind=e.kind.value)
            for e in listed
        ])  # fmt: skip

    async def _portal_step(
        self, context: Context, step: Callable[[Connection, Mailer, procedure.Who], procedure.Done]
    ) -> procedure.Done:
        """A portal step as the calling operator, its e-mails sent once it has committed."""
        mailer = self.mailer
        if mailer is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "this registry serves no portal"
            )
        assert mailer is not None
        officer = procedure.Who(f"{peer_identity(context)} (admin service)", secretariat=True)
        done = await self._run(context, lambda c: step(c, mailer, officer))
        for mail in done.mails:
            try:
                await mailer.send(mail)
            except MailError as error:
                log.error("portal e-mail not sent: %s", error)
        return done

    async def VerifyIdentity(
        self, request: ir_pb2.VerifyIdentityRequest, context: Context
    ) -> ir_pb2.VerifyIdentityResponse:
        email, party = request.email, request.party
        done = await self._portal_step(context, lambda c, mailer, officer: (
            procedure.verify_identities(c, mailer, officer, email, party)))  # fmt: skip
        return ir_pb2.VerifyIdentityResponse(notices=[mail.subject for mail in done.mails])

    async def ListAccountRequests(
        self, request: ir_pb2.ListAccountRequestsRequest, context: Context
    ) -> ir_pb2.ListAccountRequestsResponse:
        rows = await self._run(context, lambda c: portal_store.list_account_requests(
            c, request.status))  # fmt: skip
        return ir_pb2.ListAccountRequestsResponse(account_requests=[
            ir_pb2.AccountRequest(
                request_id=r.request_id, party=r.party, account_type=r.account_type, ars=r.ars,
                holder=r.holder, representative_name=r.representative_name,
                representative_email=r.representative_email, requested_by=r.requested_by,
                status=r.status, reason=r.reason, account_id=r.account_id,
            ) for r in rows
        ])  # fmt: skip

    async def DecideAccountRequest(
        self, request: ir_pb2.DecideAccountRequestRequest, context: Context
    ) -> ir_pb2.DecideAccountRequestResponse:
        here = self.engine.registry_id
        done = await self._portal_step(context, lambda c, mailer, officer: (
            procedure.decide_account(c, mailer, officer, request.request_id, request.approve,
                                     request.reason, here)))  # fmt: skip
        return ir_pb2.DecideAccountRequestResponse(account_id=str(done.result or ""))
