"""Refusals on the wire as gRPC statuses, and back.

A refusal whose code has a gRPC status in the catalogue ends the RPC with that status. The
``grpc-status-details-bin`` trailer carries a ``google.rpc.Status`` whose details hold one
``article6.v1.ResponseCode``, so a caller in any language reads the exact numbered code.
This module is the only place where codes become gRPC statuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
import grpc.aio
from google.protobuf import any_pb2

# googleapis-common-protos ships .pyi files but no py.typed marker.
from google.rpc import status_pb2  # type: ignore[import-untyped]

from article6.codes import Code, Refusal
from article6.v1 import header_pb2

DETAILS_KEY = "grpc-status-details-bin"


def grpc_status_code(code: Code) -> grpc.StatusCode:
    """The gRPC status a refused message ends with (INVALID_ARGUMENT for business codes,
    which normally travel in receipts, if one is ever raised at the transport edge)."""
    name = code.info.grpc_status or "INVALID_ARGUMENT"
    status: grpc.StatusCode = grpc.StatusCode[name]
    return status


def status_details(refusal: Refusal) -> bytes:
    """The serialized google.rpc.Status for the details trailer."""
    detail = any_pb2.Any()
    detail.Pack(header_pb2.ResponseCode(code=refusal.code.value, detail=refusal.detail))
    status = status_pb2.Status(
        code=grpc_status_code(refusal.code).value[0], message=str(refusal), details=[detail]
    )
    serialized: bytes = status.SerializeToString()
    return serialized


def fault_details(message: str) -> bytes:
    """The serialized google.rpc.Status of a fault of ours: INTERNAL, no numbered code."""
    status = status_pb2.Status(code=grpc.StatusCode.INTERNAL.value[0], message=message)
    serialized: bytes = status.SerializeToString()
    return serialized


async def abort(context: grpc.aio.ServicerContext[Any, Any], refusal: Refusal) -> NoReturn:
    """End the current RPC with the refusal's status and numbered code."""
    await context.abort(
        grpc_status_code(refusal.code),
        str(refusal),
        trailing_metadata=((DETAILS_KEY, status_details(refusal)),),
    )


def refusal_from_error(error: grpc.RpcError) -> Refusal | None:
    """The numbered refusal an RPC error carries, or None for a plain transport error."""
    # Both grpc.Call errors and grpc.aio.AioRpcError offer trailing_metadata().
    trailing_metadata = getattr(error, "trailing_metadata", None)
    trailing = trailing_metadata() if callable(trailing_metadata) else None
    for key, value in trailing or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            return refusal_from_status(status_pb2.Status.FromString(value))
    return None


def refusal_from_status(status: Any) -> Refusal | None:
    """The numbered refusal in a google.rpc.Status's details, or None."""
    for detail in status.details:
        response = header_pb2.ResponseCode()
        if detail.Unpack(response) and response.code in _KNOWN_CODES:
            return Refusal(Code(response.code), response.detail)
    return None


@dataclass(frozen=True)
class Failure:
    """Why one message was not answered: a whole RPC's error, or one answer of a batch."""

    status: grpc.StatusCode
    message: str
    refusal: Refusal | None

    @classmethod
    def of_error(cls, error: grpc.aio.AioRpcError) -> Failure:
        return cls(error.code(), error.details() or "", refusal_from_error(error))

    @classmethod
    def of_status(cls, raw: bytes) -> Failure:
        """From a BatchAnswer's serialized google.rpc.Status."""
        status = status_pb2.Status.FromString(raw)
        code = _STATUS_CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        return cls(code, status.message, refusal_from_status(status))

    @property
    def unanswered(self) -> bool:
        """The peer said nothing at all (down, silent, unreachable), as opposed to refusing."""
        return self.refusal is None and self.status in NO_ANSWER

    @property
    def reason(self) -> str:
        """A metric label: the numbered code's name, or the gRPC status's, in lower case."""
        return (self.refusal.code.name if self.refusal else self.status.name).lower()

    def __str__(self) -> str:
        return str(self.refusal) if self.refusal else f"{self.status.name}: {self.message}"


def failure_of(refusal: Refusal) -> Failure:
    """The failure a peer's refusal is to its caller: the RPC's status and the numbered code."""
    return Failure(grpc_status_code(refusal.code), str(refusal), refusal)


NO_ANSWER = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_STATUS_CODES = {status.value[0]: status for status in grpc.StatusCode}
_KNOWN_CODES = frozenset(code.value for code in Code)
