"""The published test vectors: checked against our code, and recomputed from the spec text
with nothing but the `cryptography` package, as an implementer in another language would."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from article6.vectors import vectors, vectors_as_json_objects

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
