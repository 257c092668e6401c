"""Published signing test vectors, computed from fixed inputs.

The seed is the secret key of RFC 8032 section 7.1 test 1, so an implementer can first check
their Ed25519 library against the RFC and then their envelope code against these vectors.
``docs/test-vectors.json`` and the table in ``docs/PROTOCOL.md`` are rendered from here
(``make docs``); a test checks both against this code and against an independent computation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from article6.envelope import pae, sign_envelope
from article6.headers import new_header
from article6.keys import SigningKey
from article6.v1 import transaction_pb2, units_pb2

RFC8032_TEST1_SEED = bytes.fromhex(
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
)


@dataclass(frozen=True)
class Vector:
    """One test vector; every byte string in lowercase hex."""

    name: str
    seed_hex: str
    public_key_hex: str
    key_id: str
    payload_type: str
    payload_hex: str
    signing_input_hex: str
    signature_hex: str
    envelope_hex: str


def example_proposal() -> transaction_pb2.TransactionProposal:
    """An external transfer of 500 ITMOs from GHA01 to CHE01, as a vector payload."""
    header = new_header(
        "GHA01",
        "HUB",
        datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC),
        message_id="0b7e6d2a-3c1f-4e8a-9d5b-2f6c8a1e4b70",
    )
    block = units_pb2.UnitBlock(
        serial_first=1001,
        serial_last=1500,
        originating_registry="GHA01",
        vintage=2024,
        cooperative_approach="CA0001",
        first_transferring_party="GHA",
        authorization_id="GHA-AUTH-2024-01",
        purpose=units_pb2.PURPOSE_NDC,
        unit_kind=units_pb2.UNIT_KIND_ITMO,
        state=units_pb2.UNIT_STATE_HELD,
    )
    transaction = transaction_pb2.Transaction(
        transaction_id="GHA01-1",
        type=transaction_pb2.TRANSACTION_TYPE_EXTERNAL_TRANSFER,
        transferring_registry="GHA01",
        transferring_account="GHA01-1001-57",
        acquiring_registry="CHE01",
        acquiring_account="CHE01-2001-37",
        blocks=[block],
        quantity=500,
    )
    return transaction_pb2.TransactionProposal(header=header, transaction=transaction)


def _vector(name: str, payload_type: str, payload: bytes) -> Vector:
    key = SigningKey.from_seed(RFC8032_TEST1_SEED)
    envelope = sign_envelope(payload_type, payload, [key])
    return Vector(
        name=name,
        seed_hex=RFC8032_TEST1_SEED.hex(),
        public_key_hex=key.public_raw.hex(),
        key_id=key.key_id,
        payload_type=payload_type,
        payload_hex=payload.hex(),
        signing_input_hex=pae(payload_type, payload).hex(),
        signature_hex=envelope.signatures[0].sig.hex(),
        envelope_hex=envelope.SerializeToString(deterministic=True).hex(),
    )


def vectors() -> list[Vector]:
    proposal = example_proposal()
    return [
        _vector(
            "transaction-proposal",
            proposal.DESCRIPTOR.full_name,
            proposal.SerializeToString(deterministic=True),
        ),
        _vector("empty-payload", "article6.v1.StatusQuery", b""),
    ]


def vectors_as_json_objects() -> list[dict[str, str]]:
    return [asdict(vector) for vector in vectors()]
