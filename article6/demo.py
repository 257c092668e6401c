"""``make demo`` for the protocol layer: a development PKI, a signed proposal, and every kind
of tampering refused with its own code.

Run with ``python -m article6.demo``; it writes its PKI under ``run/`` and prints a table.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from article6.codes import Refusal
from article6.envelope import open_envelope, read_envelope, seal
from article6.headers import check_fresh, new_header
from article6.keys import KeyDirectory, SigningKey, read_key_file
from article6.pki import RegistryFiles, init_pki
from article6.v1 import envelope_pb2, transaction_pb2
from article6.vectors import example_proposal

REGISTRIES = ("HUB", "GHA01", "CHE01")
ACCEPTED = {
    "article6.v1.TransactionProposal": transaction_pb2.TransactionProposal,
    "article6.v1.StatusQuery": transaction_pb2.StatusQuery,
}
Tamper = Callable[[envelope_pb2.Envelope], None]


def _flip_payload(envelope: envelope_pb2.Envelope) -> None:
    envelope.payload = envelope.payload.replace(b"CHE01", b"CHE02")


def _retype(envelope: envelope_pb2.Envelope) -> None:
    envelope.payload_type = "article6.v1.StatusQuery"


def _truncate(envelope: envelope_pb2.Envelope) -> None:
    envelope.signatures[0].sig = envelope.signatures[0].sig[:32]


def _unsign(envelope: envelope_pb2.Envelope) -> None:
    del envelope.signatures[:]


def _outcome(
    envelope: envelope_pb2.Envelope, directory: KeyDirectory, peer: str, now: datetime
) -> str:
    try:
        opened = open_envelope(
            read_envelope(envelope.SerializeToString()),
            accepted=ACCEPTED,
            directory=directory,
            recipient="HUB",
            peer_identity=peer,
            now=now,
        )
        check_fresh(opened.header, now)
    except Refusal as refusal:
        return f"refused {refusal.code.value} {refusal.code.name}"
    return f"accepted, signed by {opened.signer}"


def main() -> int:
    run_folder = Path("run")
    run_folder.mkdir(exist_ok=True)
    pki = Path(tempfile.mkdtemp(prefix="demo-pki-", dir=run_folder))
    init_pki(pki, REGISTRIES)
    directory = read_key_file(pki / "keys.toml")
    keys = {
        r: SigningKey.from_pem(RegistryFiles(pki, r).signing_key.read_bytes()) for r in REGISTRIES
    }
    now = datetime.now(UTC)
    print(f"Development PKI for {', '.join(REGISTRIES)} written to {pki}\n")

    def proposal(
        sender: str = "GHA01", recipient: str = "HUB", age_s: int = 0
    ) -> transaction_pb2.TransactionProposal:
        message = example_proposal()
        message.header.CopyFrom(new_header(sender, recipient, now - timedelta(seconds=age_s)))
        return message

    gha01 = [keys["GHA01"]]
    cases: list[tuple[str, envelope_pb2.Envelope, Tamper | None]] = [
        ("GHA01 proposes a transfer to CHE01", seal(proposal(), gha01), None),
        ("payload changed in transit", seal(proposal(), gha01), _flip_payload),
        ("payload type changed", seal(proposal(), gha01), _retype),
        ("signature truncated", seal(proposal(), gha01), _truncate),
        ("no signature", seal(proposal(), gha01), _unsign),
        ("signed by an unknown key", seal(proposal(), [SigningKey.generate()]), None),
        ("GHA01 signs with CHE01's key", seal(proposal(), [keys["CHE01"]]), None),
        ("GHA01's certificate sends as CHE01", seal(proposal("CHE01"), [keys["CHE01"]]), None),
        ("addressed to CHE01, not the hub", seal(proposal(recipient="CHE01"), gha01), None),
        ("sent 10 minutes ago", seal(proposal(age_s=600), gha01), None),
    ]
    width = max(len(case[0]) for case in cases)
    print("Each envelope arrives at the hub over GHA01's TLS connection:\n")
    for title, envelope, tamper in cases:
        if tamper is not None:
            tamper(envelope)
        print(f"  {title:<{width}}  {_outcome(envelope, directory, 'GHA01', now)}")
    print("\nResponse codes: `article6 codes`; the protocol: docs/PROTOCOL.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
