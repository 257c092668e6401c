"""Payload headers: making them, and the checks every receiver runs on them.

Freshness (``sent_at`` within 300 s) is checked apart from the rest because a receiver asks its
idempotency record first: a replay of a message it already recorded is answered from the
record however old, and only a new message must be fresh. That is what keeps at-least-once
delivery with long back-off safe.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from article6.codes import Code, Refusal
from article6.identifiers import MESSAGE_ID
from article6.v1 import header_pb2

PROTOCOL_MAJOR = 2
PROTOCOL_MINOR = 0
CLOCK_SKEW = timedelta(seconds=300)


def new_message_id() -> str:
    return str(uuid.uuid4())


def new_header(
    sender: str, recipient: str, sent_at: datetime, message_id: str | None = None
) -> header_pb2.Header:
    """A header for a new message.

    Store ``message_id`` before the first send and reuse it on every retry.
    """
    assert sent_at.tzinfo is not None
    header = header_pb2.Header(
        message_id=message_id or new_message_id(),
        sender=sender,
        recipient=recipient,
        protocol_version=header_pb2.ProtocolVersion(major=PROTOCOL_MAJOR, minor=PROTOCOL_MINOR),
    )
    header.sent_at.FromDatetime(sent_at.astimezone(UTC))
    return header


def check_header(
    header: header_pb2.Header,
    *,
    signer: str,
    recipient: str,
    known_registries: Collection[str],
) -> None:
    """Refuse a header that is malformed, of another version, not from the signer, or not for us."""
    if not MESSAGE_ID.fullmatch(header.message_id):
        raise Refusal(Code.MESSAGE_ID_INVALID, f"message id {header.message_id!r}")
    _check_version(header)
    if header.sender not in known_registries:
        raise Refusal(Code.SENDER_UNKNOWN, f"sender {header.sender!r} is not in the directory")
    if header.sender != signer:
        raise Refusal(
            Code.KEY_REGISTRY_MISMATCH,
            f"sender {header.sender} signed with a key of {signer}",
        )
    if header.recipient != recipient:
        raise Refusal(Code.RECIPIENT_WRONG, f"addressed to {header.recipient!r}, not {recipient}")
    if not header.HasField("sent_at"):
        raise Refusal(Code.SENT_AT_MISSING)


def _check_version(header: header_pb2.Header) -> None:
    if not header.HasField("protocol_version"):
        raise Refusal(Code.PROTOCOL_VERSION_MISSING)
    version = header.protocol_version
    if version.major != PROTOCOL_MAJOR:
        raise Refusal(
            Code.PROTOCOL_MAJOR_UNSUPPORTED, f"major {version.major}, supported {PROTOCOL_MAJOR}"
        )
    if version.minor > PROTOCOL_MINOR:
        raise Refusal(
            Code.PROTOCOL_MINOR_UNSUPPORTED,
            f"minor {version.minor}, supported up to {PROTOCOL_MINOR}",
        )


def check_fresh(header: header_pb2.Header, now: datetime) -> None:
    """Refuse a new message whose ``sent_at`` is more than 300 s from ``now``.

    Computed on the raw fields: a peer's Timestamp may lie outside what a datetime can hold
    (seconds near 2^63, nanos out of range), and that is a refusal, not an error."""
    stamp = header.sent_at
    if not 0 <= stamp.nanos < 1_000_000_000:
        raise Refusal(Code.CLOCK_SKEW, f"sent_at has nanos {stamp.nanos}, not a valid timestamp")
    skew = abs(stamp.seconds + stamp.nanos / 1e9 - now.timestamp())
    if skew > CLOCK_SKEW.total_seconds():
        raise Refusal(Code.CLOCK_SKEW, f"sent_at is {skew:.0f} s from the receiver's clock")
