"""Signed envelopes: sealing a payload, and opening one from a peer.

Signing input is the DSSE pre-authentication encoding (PAE)::

    "DSSEv1" SP LEN(payload_type) SP payload_type SP LEN(payload) SP payload

with LEN the byte length in ASCII decimal and SP one space. Signatures are Ed25519.

``open_envelope`` runs the receiver's checks in a fixed order, so each kind of tampering is
refused with its own code and nothing is parsed before it is authenticated:

1. size limit, then the Envelope's own bytes;
2. the payload type is one the RPC accepts;
3. signatures: 1 to 4; each well formed; at least one from a known key, valid now, that
   verifies; a signature by a known key that does not verify refuses the envelope; all
   verifying keys belong to one registry, the signer;
4. only now the payload is parsed, and its header checked (version, sender is the signer,
   recipient is us);
5. the TLS client identity must be the signer.

Freshness of ``sent_at`` is left to the caller (see ``article6.headers``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from article6.codes import Code, Refusal
from article6.headers import check_header, new_header
from article6.keys import KEY_ID, SIGNATURE_BYTES, KeyDirectory, SigningKey
from article6.limits import MAX_ENVELOPE_BYTES, MAX_SIGNATURES
from article6.v1 import envelope_pb2, header_pb2

M = TypeVar("M", bound=Message)


def pae(payload_type: str, payload: bytes) -> bytes:
    """The DSSE v1 pre-authentication encoding: the exact bytes that are signed."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def sign_envelope(
    payload_type: str, payload: bytes, keys: Sequence[SigningKey]
) -> envelope_pb2.Envelope:
    assert keys, "an envelope needs at least one signature"
    signing_input = pae(payload_type, payload)
    return envelope_pb2.Envelope(
        payload_type=payload_type,
        payload=payload,
        signatures=[
            envelope_pb2.Signature(key_id=key.key_id, sig=key.sign(signing_input)) for key in keys
        ],
    )


def seal(message: Message, keys: Sequence[SigningKey]) -> envelope_pb2.Envelope:
    """Serialize ``message`` (deterministically) and sign it into an envelope."""
    return sign_envelope(
        message.DESCRIPTOR.full_name, message.SerializeToString(deterministic=True), keys
    )


def seal_new(
    message: Message, sender: str, recipient: str, key: SigningKey, at: datetime
) -> envelope_pb2.Envelope:
    """``message`` stamped with a new header (a new message id) from ``sender`` to
    ``recipient`` at ``at``, and signed with ``key``."""
    header: header_pb2.Header = getattr(message, "header")  # noqa: B009 (field of any payload)
    header.CopyFrom(new_header(sender, recipient, at))
    return seal(message, [key])


def reseal(
    envelope: envelope_pb2.Envelope,
    payload_class: type[Message],
    keys: Sequence[SigningKey],
    sent_at: datetime,
) -> envelope_pb2.Envelope:
    """The same message, same message id, with ``sent_at`` re-stamped and signed again: for a
    retry refused as stale (1036), which proves the receiver never recorded it."""
    payload = payload_class.FromString(envelope.payload)
    header: header_pb2.Header = getattr(payload, "header")  # noqa: B009 (field of any payload)
    header.sent_at.FromDatetime(sent_at)
    return seal(payload, keys)


def payload_sha256(envelope: envelope_pb2.Envelope) -> bytes:
    return hashlib.sha256(envelope.payload).digest()


@dataclass(frozen=True)
class Opened:
    """An authenticated, parsed payload."""

    envelope: envelope_pb2.Envelope
    payload: Message
    header: header_pb2.Header
    signer: str

    @cached_property
    def digest(self) -> bytes:
        """The payload's SHA-256: computed once, for the inbox and the receipt alike."""
        return payload_sha256(self.envelope)


def read_envelope(raw: bytes, max_bytes: int = MAX_ENVELOPE_BYTES) -> envelope_pb2.Envelope:
    """Parse raw request bytes into an Envelope, refusing oversized or malformed input."""
    return read_message(raw, envelope_pb2.Envelope, max_bytes)


def read_message(raw: bytes, kind: type[M], max_bytes: int = MAX_ENVELOPE_BYTES) -> M:
    """Parse raw request bytes into a ``kind`` (an Envelope, or a batch of them), refusing
    oversized (1011) or malformed (1010) input."""
    if len(raw) > max_bytes:
        raise Refusal(Code.MESSAGE_TOO_LARGE, f"{len(raw)} bytes, limit {max_bytes}")
    message = kind()
    try:
        message.ParseFromString(raw)
    except DecodeError as error:
        detail = "" if kind is envelope_pb2.Envelope else f"not an {kind.DESCRIPTOR.name}"
        raise Refusal(Code.ENVELOPE_MALFORMED, detail) from error
    return message


def verify_signatures(
    envelope: envelope_pb2.Envelope, directory: KeyDirectory, now: datetime
) -> str:
    """Check the signatures (step 3 above) and return the signing registry."""
    signatures = envelope.signatures
    if not signatures:
        raise Refusal(Code.SIGNATURE_MISSING)
    if len(signatures) > MAX_SIGNATURES:
        raise Refusal(Code.SIGNATURES_TOO_MANY, f"{len(signatures)} signatures")
    signing_input = pae(envelope.payload_type, envelope.payload)
    signers: set[str] = set()
    first_reason: Refusal | None = None
    for signature in signatures:
        if not KEY_ID.fullmatch(signature.key_id) or len(signature.sig) != SIGNATURE_BYTES:
            raise Refusal(Code.SIGNATURE_MALFORMED, f"key id {signature.key_id[:64]!r}")
        try:
            key = directory.lookup(signature.key_id)
            if not key.valid_at(now):
                raise Refusal(Code.KEY_NOT_VALID_NOW, f"key {key.key_id} of {key.registry}")
        except Refusal as reason:
            first_reason = first_reason or reason
            continue
        if not key.verify(signature.sig, signing_input):
            raise Refusal(Code.SIGNATURE_INVALID, f"signature by key {key.key_id}")
        signers.add(key.registry)
    if not signers:
        assert first_reason is not None
        raise first_reason
    if len(signers) > 1:
        raise Refusal(
            Code.KEY_REGISTRY_MISMATCH, f"signed by several registries: {sorted(signers)}"
        )
    return signers.pop()


def open_envelope(
    envelope: envelope_pb2.Envelope,
    *,
    accepted: Mapping[str, type[Message]],
    directory: KeyDirectory,
    recipient: str,
    peer_identity: str,
    now: datetime,
    known_registries: Collection[str] | None = None,
) -> Opened:
    """Authenticate and parse an envelope from ``peer_identity`` (its TLS client identity).

    ``accepted`` maps the payload types this RPC takes to their message classes, each of
    which has ``Header header = 1``.
    """
    payload_class = accepted.get(envelope.payload_type)
    if payload_class is None:
        raise Refusal(Code.PAYLOAD_TYPE_UNEXPECTED, f"payload type {envelope.payload_type[:200]!r}")
    signer = verify_signatures(envelope, directory, now)
    payload = payload_class()
    try:
        payload.ParseFromString(envelope.payload)
    except DecodeError as error:
        raise Refusal(Code.PAYLOAD_MALFORMED, envelope.payload_type) from error
    if not payload.HasField("header"):
        raise Refusal(Code.HEADER_MISSING)
    header: header_pb2.Header = getattr(payload, "header")  # noqa: B009 (field of any payload)
    registries = directory.registries() if known_registries is None else known_registries
    check_header(header, signer=signer, recipient=recipient, known_registries=registries)
    if peer_identity != signer:
        raise Refusal(
            Code.CERTIFICATE_IDENTITY_MISMATCH,
            f"TLS identity {peer_identity!r} sent a message signed by {signer}",
        )
    return Opened(envelope, payload, header, signer)
