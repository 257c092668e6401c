"""``article6.v1.MechanismIntakeService``: the mechanism registry's calls on its adapter.

Callers authenticate with a client certificate whose identity is in ``[mechanism]
intake_identities``. Refusals of an instruction travel in its outcome (state REFUSED with
numbered codes), never as gRPC errors: only a caller that may not call at all, or a request
beyond the limits, ends the RPC with a status.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import grpc.aio

from article6.node.service import Writer
from article6.tls import peer_identity
from article6.v1 import mechanism_pb2
from article6.v1 import mechanism_pb2_grpc as mechanism_grpc
from mechanism_registry_adapter import book
from mechanism_registry_adapter.intake import Intake, outcome_message

Context = grpc.aio.ServicerContext[Any, Any]
PAGE_DEFAULT, PAGE_MAX = 500, 5000


class IntakeService(mechanism_grpc.MechanismIntakeServiceServicer):
    def __init__(self, intake: Intake, writer: Writer, callers: frozenset[str]) -> None:
        self.intake = intake
        self.writer = writer
        self.callers = callers

    async def _authorize(self, context: Context) -> None:
        if peer_identity(context) not in self.callers:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not an intake identity")

    async def SubmitInstruction(
        self, request: mechanism_pb2.SubmitInstructionRequest, context: Context
    ) -> mechanism_pb2.SubmitInstructionResponse:
        await self._authorize(context)
        today = datetime.now(UTC).date()
        taken = await self.writer.run(
            lambda unit: self.intake.submit(unit, request.instruction, today)
        )
        if taken.record is not None:
            outcome = outcome_message(taken.record)
        else:  # refused before it could be recorded (no usable id, or the id is taken)
            outcome = mechanism_pb2.InstructionOutcome(
                instruction_id=taken.instruction_id,
                state=mechanism_pb2.INSTRUCTION_STATE_REFUSED,
            )
            for code, detail in taken.results:
                outcome.results.add(code=code, detail=detail)
        return mechanism_pb2.SubmitInstructionResponse(outcome=outcome, replayed=taken.replayed)

    async def GetInstruction(
        self, request: mechanism_pb2.GetInstructionRequest, context: Context
    ) -> mechanism_pb2.GetInstructionResponse:
        await self._authorize(context)
        record = await self.writer.run(
            lambda unit: book.get(unit.connection, request.instruction_id)
        )
        if record is None:
            return mechanism_pb2.GetInstructionResponse(found=False)
        return mechanism_pb2.GetInstructionResponse(found=True, outcome=outcome_message(record))

    async def ListOutcomes(
        self, request: mechanism_pb2.ListOutcomesRequest, context: Context
    ) -> mechanism_pb2.ListOutcomesResponse:
        await self._authorize(context)
        limit = min(request.limit or PAGE_DEFAULT, PAGE_MAX)
        after = min(request.after_sequence, 2**62)
        records = await self.writer.run(
            lambda unit: book.changed_after(unit.connection, after, limit)
        )
        outcomes = [outcome_message(record) for record in records]
        last = outcomes[-1].sequence if outcomes else request.after_sequence
        return mechanism_pb2.ListOutcomesResponse(outcomes=outcomes, last_sequence=last)
