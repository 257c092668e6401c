"""Envelope sealing and opening: each kind of tampering is refused with its own code."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from article6.codes import Code, Refusal
from article6.envelope import (
    Opened,
    open_envelope,
    pae,
    read_envelope,
    seal,
    sign_envelope,
)
from article6.headers import check_fresh, new_header
from article6.keys import DirectoryKey, KeyDirectory, SigningKey
from article6.limits import MAX_SIGNATURES
from article6.v1 import envelope_pb2, header_pb2, transaction_pb2
from article6.vectors import example_proposal

NOW = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=30)
KEYS = {registry: SigningKey.generate() for registry in ("GHA01", "CHE01", "HUB")}
ACCEPTED = {
    "article6.v1.TransactionProposal": transaction_pb2.TransactionProposal,
    "article6.v1.StatusQuery": transaction_pb2.StatusQuery,
}


def directory(*extra: DirectoryKey) -> KeyDirectory:
    keys = [DirectoryKey(registry, key.public_raw, SINCE) for registry, key in KEYS.items()]
    return KeyDirectory([*keys, *extra])


def proposal(**header_fields: object) -> transaction_pb2.TransactionProposal:
    message = example_proposal()
    message.header.sent_at.FromDatetime(NOW)
    for name, value in header_fields.items():
        setattr(message.header, name, value)
    return message


def open_as_hub(
    envelope: envelope_pb2.Envelope,
    keys: KeyDirectory | None = None,
    peer: str = "GHA01",
    now: datetime = NOW,
) -> Opened:
    return open_envelope(
        envelope,
        accepted=ACCEPTED,
        directory=keys or directory(),
        recipient="HUB",
        peer_identity=peer,
        now=now,
    )


def refused(action: Callable[[], object]) -> Code:
    with pytest.raises(Refusal) as refusal:
        action()
    return refusal.value.code


def test_a_sealed_proposal_opens_with_its_header_and_signer() -> None:
    envelope = seal(proposal(), [KEYS["GHA01"]])
    opened = open_as_hub(envelope)
    assert opened.signer == "GHA01"
    assert opened.header.message_id == "0b7e6d2a-3c1f-4e8a-9d5b-2f6c8a1e4b70"
    assert opened.payload == proposal()


def test_a_changed_payload_is_refused() -> None:
    envelope = seal(proposal(), [KEYS["GHA01"]])
    envelope.payload = envelope.payload.replace(b"CHE01", b"CHE02")
    assert refused(lambda: open_as_hub(envelope)) is Code.SIGNATURE_INVALID


def test_a_changed_payload_type_is_refused() -> None:
    envelope = seal(proposal(), [KEYS["GHA01"]])
    envelope.payload_type = "article6.v1.StatusQuery"
    assert refused(lambda: open_as_hub(envelope)) is Code.SIGNATURE_INVALID


def test_a_payload_type_the_rpc_does_not_take_is_refused() -> None:
    envelope = seal(header_pb2.Header(), [KEYS["GHA01"]])
    assert refused(lambda: open_as_hub(envelope)) is Code.PAYLOAD_TYPE_UNEXPECTED


def test_a_changed_signature_is_refused() -> None:
    envelope = seal(proposal(), [KEYS["GHA01"]])
    signature = bytearray(envelope.signatures[0].sig)
    signature[10] ^= 0x01
    envelope.signatures[0].sig = bytes(signature)
    assert refused(lambda: open_as_hub(envelope)) is Code.SIGNATURE_INVALID


def test_a_truncated_signature_is_refused() -> None:
    envelope = seal(proposal(), [KEYS["GHA01"]])
    envelope.signatures[0].sig = envelope.signatures[0].sig[:63]
    assert refused(lambda: open_as_hub(envelope)) is Code.SIGNATURE_MALFORMED


def test_an_unsigned_envelope_is_refused() -> None:
    envelope = seal(proposal(), [KEYS["GHA01"]])
    del envelope.signatures[:]
    assert refused(lambda: open_as_hub(envelope)) is Code.SIGNATURE_MISSING


def test_too_many_signatures_are_refused_before_any_is_checked() -> None:
    envelope = seal(proposal(), [KEYS["GHA01"]] * (MAX_SIGNATURES + 1))
    assert refused(lambda: open_as_hub(envelope)) is Code.SIGNATURES_TOO_MANY


def test_an_unknown_key_is_refused() -> None:
    envelope = seal(proposal(), [SigningKey.generate()])
    assert refused(lambda: open_as_hub(envelope)) is Code.KEY_UNKNOWN


def test_an_unknown_key_beside_a_valid_one_is_tolerated_for_rotation() -> None:
    envelope = seal(proposal(), [SigningKey.generate(), KEYS["GHA01"]])
    assert open_as_hub(envelope).signer == "GHA01"


def test_a_known_key_with_a_bad_signature_refuses_even_beside_a_good_one() -> None:
    envelope = seal(proposal(), [KEYS["GHA01"], KEYS["GHA01"]])
    envelope.signatures[1].sig = bytes(64)
    assert refused(lambda: open_as_hub(envelope)) is Code.SIGNATURE_INVALID


def test_a_key_outside_its_validity_window_is_refused() -> None:
    old = SigningKey.generate()
    expired = DirectoryKey("GHA01", old.public_raw, SINCE, not_after=NOW - timedelta(seconds=1))
    future = SigningKey.generate()
    not_yet = DirectoryKey("GHA01", future.public_raw, NOW + timedelta(hours=1))
    keys = directory(expired, not_yet)
    for key in (old, future):
        envelope = seal(proposal(), [key])
        with pytest.raises(Refusal) as refusal:
            open_as_hub(envelope, keys)
        assert refusal.value.code is Code.KEY_NOT_VALID_NOW


def test_a_rotated_key_is_accepted_until_its_window_ends() -> None:
    old = SigningKey.generate()
    window_end = NOW + timedelta(days=1)
    keys = directory(DirectoryKey("GHA01", old.public_raw, SINCE, not_after=window_end))
    envelope = seal(proposal(), [old])
    assert open_as_hub(envelope, keys).signer == "GHA01"
    later = window_end + timedelta(seconds=1)
    assert refused(lambda: open_as_hub(envelope, keys, now=later)) is Code.KEY_NOT_VALID_NOW


def test_a_key_of_another_registry_is_refused() -> None:
    envelope = seal(proposal(), [KEYS["CHE01"]])  # header says GHA01
    assert refused(lambda: open_as_hub(envelope)) is Code.KEY_REGISTRY_MISMATCH


def test_keys_of_two_registries_on_one_envelope_are_refused() -> None:
    envelope = seal(proposal(), [KEYS["GHA01"], KEYS["CHE01"]])
    assert refused(lambda: open_as_hub(envelope)) is Code.KEY_REGISTRY_MISMATCH


def test_a_certificate_of_another_registry_is_refused() -> None:
    envelope = seal(proposal(), [KEYS["GHA01"]])
    assert refused(lambda: open_as_hub(envelope, peer="CHE01")) is (
        Code.CERTIFICATE_IDENTITY_MISMATCH
    )


def test_an_unknown_sender_is_refused() -> None:
    envelope = seal(proposal(sender="XYZ01"), [KEYS["GHA01"]])
    assert refused(lambda: open_as_hub(envelope)) is Code.SENDER_UNKNOWN


def test_a_message_for_another_recipient_is_refused() -> None:
    envelope = seal(proposal(recipient="CHE01"), [KEYS["GHA01"]])
    assert refused(lambda: open_as_hub(envelope)) is Code.RECIPIENT_WRONG


def test_an_invalid_message_id_is_refused() -> None:
    envelope = seal(proposal(message_id="not-a-uuid"), [KEYS["GHA01"]])
    assert refused(lambda: open_as_hub(envelope)) is Code.MESSAGE_ID_INVALID


@pytest.mark.parametrize(
    ("major", "minor", "code"),
    [(1, 1, Code.PROTOCOL_MAJOR_UNSUPPORTED), (3, 0, Code.PROTOCOL_MAJOR_UNSUPPORTED),
     (2, 1, Code.PROTOCOL_MINOR_UNSUPPORTED)],
)  # fmt: skip
def test_an_unsupported_version_is_refused(major: int, minor: int, code: Code) -> None:
    message = proposal()
    message.header.protocol_version.major = major
    message.header.protocol_version.minor = minor
    envelope = seal(message, [KEYS["GHA01"]])
    assert refused(lambda: open_as_hub(envelope)) is code


def test_a_missing_version_or_sent_at_is_refused() -> None:
    message = proposal()
    message.header.ClearField("protocol_version")
    assert refused(lambda: open_as_hub(seal(message, [KEYS["GHA01"]]))) is (
        Code.PROTOCOL_VERSION_MISSING
    )
    message = proposal()
    message.header.ClearField("sent_at")
    assert refused(lambda: open_as_hub(seal(message, [KEYS["GHA01"]]))) is Code.SENT_AT_MISSING


def test_a_payload_without_header_is_refused() -> None:
    message = proposal()
    message.ClearField("header")
    assert refused(lambda: open_as_hub(seal(message, [KEYS["GHA01"]]))) is Code.HEADER_MISSING


def test_signed_garbage_is_refused_only_after_its_signature_verified() -> None:
    garbage = b"\xff\xff\xff\xff"
    envelope = sign_envelope("article6.v1.TransactionProposal", garbage, [KEYS["GHA01"]])
    assert refused(lambda: open_as_hub(envelope)) is Code.PAYLOAD_MALFORMED
    forged = sign_envelope("article6.v1.TransactionProposal", garbage, [SigningKey.generate()])
    assert refused(lambda: open_as_hub(forged)) is Code.KEY_UNKNOWN


def test_malformed_and_oversized_envelope_bytes_are_refused() -> None:
    assert refused(lambda: read_envelope(b"\x0a\xff\xff")) is Code.ENVELOPE_MALFORMED
    raw = seal(proposal(), [KEYS["GHA01"]]).SerializeToString()
    assert refused(lambda: read_envelope(raw, max_bytes=len(raw) - 1)) is Code.MESSAGE_TOO_LARGE
    assert read_envelope(raw).payload_type == "article6.v1.TransactionProposal"


@pytest.mark.parametrize("skew_seconds", [-301, 301, 86400])
def test_a_stale_or_future_message_is_refused(skew_seconds: int) -> None:
    header = new_header("GHA01", "HUB", NOW + timedelta(seconds=skew_seconds))
    assert refused(lambda: check_fresh(header, NOW)) is Code.CLOCK_SKEW


@pytest.mark.parametrize("skew_seconds", [-300, 0, 300])
def test_a_message_within_the_window_is_fresh(skew_seconds: int) -> None:
    check_fresh(new_header("GHA01", "HUB", NOW + timedelta(seconds=skew_seconds)), NOW)


@settings(max_examples=300)
@given(st.binary(max_size=2048))
def test_random_bytes_never_escape_as_anything_but_a_refusal(raw: bytes) -> None:
    with pytest.raises(Refusal) as refusal:
        open_as_hub(read_envelope(raw))
    assert refusal.value.code.value // 1000 == 1


@settings(max_examples=300)
@given(st.data())
def test_any_single_byte_change_of_a_sealed_envelope_is_refused(data: st.DataObject) -> None:
    raw = bytearray(seal(proposal(), [KEYS["GHA01"]]).SerializeToString())
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    outcome = open_or_refusal(bytes(raw))
    if isinstance(outcome, Refusal):
        assert outcome.code.value // 1000 == 1
    else:  # only a change to an unsigned part can pass, and then the payload is unchanged
        assert outcome.payload == proposal()


def open_or_refusal(raw: bytes) -> Opened | Refusal:
    try:
        return open_as_hub(read_envelope(raw))
    except Refusal as refusal:
        return refusal


def test_pae_follows_the_dsse_v1_definition() -> None:
    assert pae("t", b"") == b"DSSEv1 1 t 0 "
    assert pae("article6.v1.X", b"ab c") == b"DSSEv1 13 article6.v1.X 4 ab c"
    assert pae("é", b"\x00") == b"DSSEv1 2 \xc3\xa9 1 \x00"  # lengths count bytes


@given(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**31), 2**31 - 1))
def test_any_sent_at_a_peer_can_send_is_fresh_or_refused(seconds: int, nanos: int) -> None:
    header = new_header("GHA01", "HUB", NOW)
    header.sent_at.seconds, header.sent_at.nanos = seconds, nanos
    if 0 <= nanos < 10**9 and abs(seconds + nanos / 1e9 - NOW.timestamp()) <= 300:
        check_fresh(header, NOW)
        return
    with pytest.raises(Refusal) as refusal:
        check_fresh(header, NOW)
    assert refusal.value.code is Code.CLOCK_SKEW
