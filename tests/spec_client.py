"""A minimal registry client written from docs/PROTOCOL.md alone.

It imports nothing of the project's protocol library: only the code protoc generates from
`protos/` (``article6.v1.*_pb2``), gRPC and the ``cryptography`` package. Everything else
(the signing input, key ids, headers, account check digits, verifying the hub's replies) is
written here again from the spec, so that a test using it proves the spec is enough to build
a registry that works with the hub.
"""

from __future__ import annotations

import hashlib
import tomllib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from google.protobuf.message import Message

from article6.v1 import envelope_pb2, header_pb2, hub_pb2_grpc, transaction_pb2

HUB = "HUB"


def pae(payload_type: str, payload: bytes) -> bytes:
    """Section 3: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in bytes."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def key_id(public_key: Ed25519PublicKey) -> str:
    """Section 4: SHA-256 of the 32-byte raw public key, lowercase hex."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def account_id(registry: str, number: int) -> str:
    """Section 11: ISO 7064 MOD 97-10 check digits over <registry><number>, A=10 ... Z=35."""
    digits = "".join(str(int(c, 36)) for c in f"{registry}{number}") + "00"
    return f"{registry}-{number}-{98 - int(digits) % 97:02d}"


class MinimalRegistry:
    """A registry that proposes transactions to the hub and asks for their status."""

    def __init__(self, registry_id: str, hub_endpoint: str, pki: Path) -> None:
        self.registry_id = registry_id
        own = pki / registry_id
        pem = (own / "signing.key").read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, Ed25519PrivateKey)
        self.key = key
        self.key_id = key_id(key.public_key())
        self.hub_keys = self._hub_keys(pki / "keys.toml")
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(pki / "ca.crt").read_bytes(),
            private_key=(own / "tls.key").read_bytes(),
            certificate_chain=(own / "tls.crt").read_bytes(),
        )
        # Section 2: verify the hub against its lowercased registry id, whatever the address.
        options = [("grpc.ssl_target_name_override", HUB.lower())]
        self.channel = grpc.secure_channel(hub_endpoint, credentials, options=options)
        self.hub = hub_pb2_grpc.HubStub(self.channel)

    @staticmethod
    def _hub_keys(path: Path) -> dict[str, Ed25519PublicKey]:
        """Section 4: the hub's keys from the key directory, checking each key id."""
        keys = {}
        for entry in tomllib.loads(path.read_text())["key"]:
            if entry["registry"] != HUB:
                continue
            public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(entry["public_key"]))
            assert key_id(public) == entry["key_id"]
            keys[entry["key_id"]] = public
        return keys

    def envelope(self, payload: Message) -> envelope_pb2.Envelope:
        """Section 5 header, then section 3 signing over the exact payload bytes."""
        header: header_pb2.Header = payload.header  # type: ignore[attr-defined]
        header.message_id = str(uuid.uuid4())
        header.sender = self.registry_id
        header.recipient = HUB
        header.sent_at.FromDatetime(datetime.now(UTC))
        header.protocol_version.major = 2
        header.protocol_version.minor = 0
        body = payload.SerializeToString(deterministic=True)
        kind = payload.DESCRIPTOR.full_name
        envelope = envelope_pb2.Envelope(payload_type=kind, payload=body)
        envelope.signatures.add(key_id=self.key_id, sig=self.key.sign(pae(kind, body)))
        return envelope

    def open(self, reply: envelope_pb2.Envelope, kind: type[Message]) -> Message:
        """Section 6, as far as a client needs it: the hub's signature, then the header."""
        if reply.payload_type != kind.DESCRIPTOR.full_name:
            raise ValueError(f"unexpected payload {reply.payload_type}")
        verified = False
        for signature in reply.signatures:
            public = self.hub_keys.get(signature.key_id)
            if public is not None:
                public.verify(signature.sig, pae(reply.payload_type, reply.payload))
                verified = True
        if not verified:
            raise ValueError("the reply is not signed by the hub")
        payload = kind.FromString(reply.payload)
        header: header_pb2.Header = payload.header  # type: ignore[attr-defined]
        if (header.sender, header.recipient) != (HUB, self.registry_id):
            raise ValueError("the reply is not from the hub to us")
        return payload

    def propose(
        self, transaction: transaction_pb2.Transaction
    ) -> tuple[envelope_pb2.Envelope, transaction_pb2.Receipt]:
        request = self.envelope(transaction_pb2.TransactionProposal(transaction=transaction))
        reply = self.hub.ProposeTransaction(request, timeout=10)
        receipt = self.open(reply, transaction_pb2.Receipt)
        assert isinstance(receipt, transaction_pb2.Receipt)
        return request, receipt

    def status(self, transaction_id: str) -> transaction_pb2.StatusAnswer:
        query = transaction_pb2.StatusQuery(transaction_id=transaction_id)
        reply = self.hub.GetTransactionStatus(self.envelope(query), timeout=10)
        answer = self.open(reply, transaction_pb2.StatusAnswer)
        assert isinstance(answer, transaction_pb2.StatusAnswer)
        return answer

    def close(self) -> None:
        self.channel.close()
