"""The published test vectors: checked against our code, and recomputed from the spec text
with nothing but the `cryptography` package, as an implementer in another language would."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.rpc import status_pb2  # type: ignore[import-untyped]

from article6.v1 import header_pb2
from article6.vectors import more_vectors, vectors, vectors_as_json_objects

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "test-vectors.json"


def test_the_published_json_equals_what_the_code_computes() -> None:
    assert json.loads(PUBLISHED.read_text()) == vectors_as_json_objects()


def test_the_vectors_follow_from_the_spec_alone() -> None:
    for vector in json.loads(PUBLISHED.read_text()):
        private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["seed_hex"]))
        public = private.public_key().public_bytes_raw()
        assert public.hex() == vector["public_key_hex"]
        assert hashlib.sha256(public).hexdigest() == vector["key_id"]
        payload_type = vector["payload_type"].encode()
        payload = bytes.fromhex(vector["payload_hex"])
        signing_input = b"DSSEv1 " + str(len(payload_type)).encode() + b" " + payload_type
        signing_input += b" " + str(len(payload)).encode() + b" " + payload
        assert signing_input.hex() == vector["signing_input_hex"]
        # Ed25519 is deterministic: the same key and input give the same signature.
        assert private.sign(signing_input).hex() == vector["signature_hex"]
        private.public_key().verify(bytes.fromhex(vector["signature_hex"]), signing_input)


def test_the_rfc8032_seed_gives_the_rfc8032_public_key() -> None:
    # RFC 8032 section 7.1, TEST 1.
    expected = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    assert all(vector.public_key_hex == expected for vector in vectors())


MORE = PUBLISHED.with_name("test-vectors-more.json")
US = "\x1f"
ENUMS = {  # the enum numbers of units.proto, as an implementer reads them off the .proto
    "purpose": {"PURPOSE_UNSPECIFIED": 0, "PURPOSE_NDC": 1, "PURPOSE_OIMP": 2,
                "PURPOSE_NDC_AND_OIMP": 3},
    "unit_kind": {"UNIT_KIND_MITIGATION_OUTCOME": 1, "UNIT_KIND_ITMO": 2, "UNIT_KIND_A64ER": 3},
    "state": {"UNIT_STATE_HELD": 1, "UNIT_STATE_USED": 2},
}  # fmt: skip


def test_the_more_vectors_published_equal_what_the_code_computes() -> None:
    assert json.loads(MORE.read_text()) == more_vectors()


def test_the_hash_tree_vector_follows_from_section_10_9_alone() -> None:
    tree = json.loads(MORE.read_text())["hash_tree"]
    fanout, depth = tree["fanout"], tree["depth"]
    bits = fanout.bit_length() - 1
    leaves: dict[int, list[tuple[tuple[str, int], bytes]]] = {}
    for row in tree["blocks"]:
        held, block = row["block"], row["block"]["block"]
        space, first = block["originating_registry"], int(block["serial_first"])
        key_input = f"A6K1{US}{space}{US}{first}".encode()
        assert key_input.hex() == row["key_input_hex"]
        key = int.from_bytes(hashlib.sha256(key_input).digest()[:8], "big")
        assert (f"{key:016x}", str(key)) == (row["key_hex"], row["key_decimal"])
        assert key >> (64 - depth * bits) == row["leaf_index"]
        fields = [
            space, first, int(block["serial_last"]), held["account_id"], block["vintage"],
            block.get("cooperative_approach", ""), block.get("first_transferring_party", ""),
            block.get("authorization_id", ""),
            ENUMS["purpose"][block.get("purpose", "PURPOSE_UNSPECIFIED")],
            ENUMS["unit_kind"][block["unit_kind"]], ENUMS["state"][block["state"]],
            block.get("activity_id", ""), block.get("host_party", ""), block.get("metric", ""),
        ]  # fmt: skip
        digest_input = ("A6B1" + "".join(f"{US}{value}" for value in fields)).encode()
        assert digest_input.hex() == row["digest_input_hex"]
        digest = hashlib.sha256(digest_input).digest()
        assert digest.hex() == row["digest_hex"]
        leaves.setdefault(key >> (64 - depth * bits), []).append(((space, first), digest))
    level = {
        index: hashlib.sha256(b"A6L1" + b"".join(d for _, d in sorted(held))).digest()
        for index, held in leaves.items()
    }
    assert [(i, level[i].hex(), len(leaves[i])) for i in sorted(level)] == [
        (leaf["index"], leaf["digest_hex"], leaf["block_count"]) for leaf in tree["leaves"]
    ]
    empty = bytes(32)
    for _ in range(depth):
        parents = {index >> bits for index in level}
        level = {
            parent: hashlib.sha256(
                b"A6N1" + b"".join(level.get(parent * fanout + j, empty) for j in range(fanout))
            ).digest()
            for parent in parents
        }
    assert level[0].hex() == tree["root"]["digest_hex"]


def test_account_check_digits_and_status_details_follow_from_the_spec() -> None:
    published = json.loads(MORE.read_text())
    for account in published["account_ids"]:
        text = account["registry"] + account["number"]
        digits = "".join(str(int(char, 36)) for char in text)  # A = 10 .. Z = 35
        check = f"{98 - int(digits + '00') % 97:02d}"
        assert check == account["check_digits"]
        assert account["account_id"] == f"{account['registry']}-{account['number']}-{check}"
        assert int(digits + check) % 97 == 1  # ISO 7064 MOD 97-10: the whole is 1 mod 97
    details = published["status_details"]
    status = status_pb2.Status.FromString(bytes.fromhex(details["status_hex"]))
    assert status.code == 3  # INVALID_ARGUMENT
    (detail,) = status.details
    assert detail.type_url == "type.googleapis.com/article6.v1.ResponseCode"
    code = header_pb2.ResponseCode.FromString(detail.value)
    assert (code.code, code.detail) == (details["code"], details["detail"])
