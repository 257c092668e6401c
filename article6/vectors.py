"""Published signing test vectors, computed from fixed inputs.

The seed is the secret key of RFC 8032 section 7.1 test 1, so an implementer can first check
their Ed25519 library against the RFC and then their envelope code against these vectors.
``docs/test-vectors.json`` and the table in ``docs/PROTOCOL.md`` are rendered from here
(``make docs``); a test checks both against this code and against an independent computation.
``more_vectors`` (``docs/test-vectors-more.json``) covers what else an implementer computes
byte for byte: hash-tree keys and digests, account check digits, a refusal's status details.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from google.protobuf import json_format

from article6.codes import Code, Refusal
from article6.envelope import pae, sign_envelope
from article6.headers import new_header
from article6.identifiers import format_account_id, mod97_check_digits
from article6.keys import SigningKey
from article6.reconciliation import Tree, block_bytes, block_digest, block_key
from article6.status import grpc_status_code, status_details
from article6.v1 import transaction_pb2, units_pb2
from article6.wire import held_block

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


# --- beyond the envelope: the hash tree, account ids, refusal details ------------------------

# Blocks over which the tree vector is built: an ITMO with every attribute, a mitigation
# outcome with none (empty strings and zero enums hash as they are carried), a used block, and
# a serial above 2^53 (a double cannot hold it: 64-bit integers need care in some languages).
TREE_BLOCKS = (
    ("GHA01", 1001, 1500, 1001, 2024, "CA0001", "GHA", "GHA-AUTH-2024-01",
     units_pb2.PURPOSE_NDC, units_pb2.UNIT_KIND_ITMO, units_pb2.UNIT_STATE_HELD, "", "", ""),
    ("GHA01", 1501, 1600, 1001, 2023, "", "", "", units_pb2.PURPOSE_UNSPECIFIED,
     units_pb2.UNIT_KIND_MITIGATION_OUTCOME, units_pb2.UNIT_STATE_HELD, "", "", ""),
    ("CHE01", 1, 10, 9, 2022, "CA0001", "CHE", "CHE-AUTH-1",
     units_pb2.PURPOSE_NDC_AND_OIMP, units_pb2.UNIT_KIND_ITMO, units_pb2.UNIT_STATE_USED,
     "", "", "tCO2e"),
    ("A64MR", 9007199254740993, 9007199254741092, 1, 2025, "CA6400", "", "A64-GHA-1",
     units_pb2.PURPOSE_OIMP, units_pb2.UNIT_KIND_A64ER, units_pb2.UNIT_STATE_HELD,
     "A64-0042", "GHA", ""),
)  # fmt: skip
TREE_FANOUT, TREE_DEPTH = 4, 2
ACCOUNTS = (("GHA01", 1001), ("CHE01", 2001), ("SGP00", 1), ("KIT01", 999_999_999_999))


def tree_blocks() -> list[units_pb2.HeldBlock]:
    """The tree vector's blocks, as a registry would list them (HeldBlock messages)."""
    held = []
    for (space, first, last, account, vintage, approach, party, authorization, purpose, kind,
         state, activity, host, metric) in TREE_BLOCKS:  # fmt: skip
        block = units_pb2.UnitBlock(
            serial_first=first, serial_last=last, originating_registry=space, vintage=vintage,
            cooperative_approach=approach, first_transferring_party=party,
            authorization_id=authorization, purpose=purpose, unit_kind=kind, state=state,
            activity_id=activity, host_party=host, metric=metric,
        )  # fmt: skip
        account_id = format_account_id(space, account)
        held.append(units_pb2.HeldBlock(block=block, registry=space, account_id=account_id))
    return held


def more_vectors() -> dict[str, object]:
    """Vectors for section 10.9 (keys, block digests, a whole tree), account ids (section 11)
    and a refusal's google.rpc.Status (section 8); every byte string in lowercase hex."""
    blocks = tree_blocks()
    ledger = [held_block(message) for message in blocks]
    tree = Tree.build(ledger, TREE_FANOUT, TREE_DEPTH)
    bits = TREE_FANOUT.bit_length() - 1
    rows = []
    for message, block in zip(blocks, ledger, strict=True):
        space, first = block.attributes.unit.originating_registry, block.serial_first
        key = block_key(space, first)
        rows.append({
            "block": json_format.MessageToDict(message, preserving_proto_field_name=True),
            "key_input_hex": f"A6K1\x1f{space}\x1f{first}".encode().hex(),
            "key_hex": f"{key:016x}", "key_decimal": str(key),
            "leaf_index": key >> (64 - TREE_DEPTH * bits),
            "digest_input_hex": block_bytes(block).hex(),
            "digest_hex": block_digest(block).hex(),
        })  # fmt: skip
    leaves = [
        {"index": index, "digest_hex": digest.hex(), "block_count": count}
        for index, (digest, count) in sorted(tree.levels[TREE_DEPTH].items())
    ]
    refusal = Refusal(Code.CLOCK_SKEW, "sent_at is 700 s from the receiver's clock")
    return {
        "hash_tree": {
            "fanout": TREE_FANOUT,
            "depth": TREE_DEPTH,
            "blocks": rows,
            "leaves": leaves,
            "root_children": [
                {"index": n.index, "digest_hex": n.digest.hex(), "block_count": n.block_count}
                for n in tree.children(0, 0)
            ],
            "root": {"digest_hex": tree.root.digest.hex(), "block_count": tree.root.block_count},
        },
        "account_ids": [
            {
                "registry": registry,
                "number": str(number),
                "check_digits": mod97_check_digits(f"{registry}{number}"),
                "account_id": format_account_id(registry, number),
            }
            for registry, number in ACCOUNTS
        ],
        "status_details": {
            "code": refusal.code.value,
            "detail": refusal.detail,
            "grpc_status": grpc_status_code(refusal.code).name,
            "status_hex": status_details(refusal).hex(),
        },
    }
