"""Two hub processes on one PostgreSQL database, and double-spend attempts sent through both.

``python -m campaign.multihub --attempts 10000`` starts hubs A and B on a fresh PostgreSQL
database, with GHA01 (sending to A) and CHE01 (sending to B) as real registry processes.
GHA01 issues its units; then a client holding GHA01's credentials, as a faulty or hostile
GHA01 would, sends each attempt as two proposals over overlapping serials at the same moment,
one to each hub: an external transfer to CHE01 or a cancellation. At most one of each pair may
be accepted. Midway, hub B is killed with SIGKILL while it holds outbox claims, and hub A must
deliver what B had claimed. At the end the network settles and every campaign invariant is
checked: each serial in one place, units conserved, both registries' books equal to the
ledger, reconciliation clean, the audit trail whole.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import psycopg
from sqlalchemy import func, select

from article6.envelope import open_envelope, seal
from article6.headers import new_header
from article6.keys import SigningKey, read_key_file
from article6.node.config import load_config
from article6.pki import RegistryFiles
from article6.tls import TlsMaterial, channel_credentials, channel_options
from article6.v1 import hub_pb2_grpc, transaction_pb2, units_pb2
from campaign.invariants import FINAL, Findings, check_all
from campaign.run import Books, check_network, hub_rows, hub_statuses, read_hub
from demo.network import HUB, Network
from gateway.storage.schema import outbox

T = transaction_pb2
POSTGRES_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
SLOT = 20  # serials per attempt: the two proposals overlap inside one slot
SPARE = 100  # serials after the attempts' slots, for the transfers around the kill
FIRST_ID = 900_000_000  # transaction numbers the hostile client uses, far from GHA01's own


@dataclass
class Outcome:
    attempts: int = 0
    accepted: Counter[int] = field(default_factory=Counter)  # accepted proposals per pair
    codes: Counter[int] = field(default_factory=Counter)  # refusal codes of the losers
    kills: int = 0
    claims_at_kill: int = 0  # outbox rows claimed (by either hub) when hub B was killed
    invariants: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"a6multihub_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


class Hostile:
    """GHA01's credentials in a client that sends straight to both hubs."""

    def __init__(
        self, network: Network, hubs: list[str], account: str, target: str, attempts: int
    ) -> None:
        self.attempts = attempts
        files = RegistryFiles(network.pki, "GHA01")
        self.key = SigningKey.from_pem(files.signing_key.read_bytes())
        self.directory = read_key_file(network.pki / "keys.toml")
        credentials = channel_credentials(TlsMaterial.load(files))
        self.channels = [
            grpc.secure_channel(network.components[hub].endpoint, credentials,
                                options=channel_options(HUB))
            for hub in hubs
        ]  # fmt: skip
        self.stubs = [hub_pb2_grpc.HubStub(channel) for channel in self.channels]
        self.account, self.target = account, target
        self.authorization = network.standing_authorization("GHA01")  # the ITMOs' (issued)
        self.pool = ThreadPoolExecutor(len(hubs))

    def proposal(self, number: int, first: int, last: int, cancel: bool) -> T.TransactionProposal:
        kind = T.TRANSACTION_TYPE_CANCELLATION if cancel else T.TRANSACTION_TYPE_EXTERNAL_TRANSFER
        block = units_pb2.UnitBlock(
            serial_first=first, serial_last=last, originating_registry="GHA01", vintage=2024,
            cooperative_approach="CA0001", first_transferring_party="GHA",
            authorization_id=self.authorization, purpose=units_pb2.PURPOSE_NDC_AND_OIMP,
            unit_kind=units_pb2.UNIT_KIND_ITMO, state=units_pb2.UNIT_STATE_HELD,
        )  # fmt: skip
        transaction = T.Transaction(
            transaction_id=f"GHA01-{number}", type=kind, transferring_registry="GHA01",
            transferring_account=self.account,
            acquiring_registry="GHA01" if cancel else "CHE01",
            acquiring_account="" if cancel else self.target,
            blocks=[block], quantity=last - first + 1,
        )  # fmt: skip
        header = new_header("GHA01", HUB, datetime.now(UTC))
        return T.TransactionProposal(header=header, transaction=transaction)

    def send(self, index: int, proposal: T.TransactionProposal) -> T.Receipt:
        reply = self.stubs[index].ProposeTransaction(seal(proposal, [self.key]), timeout=30)
        opened = open_envelope(
            reply, accepted={"article6.v1.Receipt": T.Receipt}, directory=self.directory,
            recipient="GHA01", peer_identity=HUB, now=datetime.now(UTC),
        )  # fmt: skip
        receipt = opened.payload
        assert isinstance(receipt, T.Receipt)
        return receipt

    def both(self, first: T.TransactionProposal, second: T.TransactionProposal) -> list[T.Receipt]:
        futures = [self.pool.submit(self.send, i, p) for i, p in enumerate((first, second))]
        return [future.result() for future in futures]

    def close(self) -> None:
        self.pool.shutdown()
        for channel in self.channels:
            channel.close()


def run(attempts: int, seed: int, folder: Path, database: str) -> Outcome:
    rng = random.Random(seed)  # noqa: S311 (a replayable run, not a secret)
    outcome, started = Outcome(), time.monotonic()
    network = Network(folder, registries=("GHA01", "CHE01"), database=database,
                      delivery={"max_attempts": 1000, "backoff_max_seconds": 1.0})  # fmt: skip
    network.write()
    network.add_hub("HUB-B")
    network.point("CHE01", "HUB-B")
    hostile: Hostile | None = None
    try:
        for name in (HUB, "HUB-B", "GHA01", "CHE01"):
            network.start(name)
        source = network.registry_cli("GHA01", "open-account", "--ca", "CA0001")
        target = network.registry_cli("CHE01", "open-account", "--ca", "CA0001")
        issued = network.issue_itmos("GHA01", source, f"1-{SLOT * attempts + SPARE}")
        network.registry_cli("GHA01", "wait", issued, "--timeout", "120")
        hostile = Hostile(network, [HUB, "HUB-B"], source, target, attempts)
        for attempt in range(attempts):
            if attempt == attempts // 2:
                outcome.claims_at_kill = _kill_holding_claims(network, database, hostile, attempt)
                outcome.kills += 1
            base, size = attempt * SLOT, rng.randint(1, SLOT // 2)
            shift = rng.randint(0, size - 1)  # the second starts inside the first
            pair = [
                hostile.proposal(FIRST_ID + 2 * attempt + side, base + 1 + s, base + size + s,
                                 cancel=rng.random() < 0.7)
                for side, s in ((0, 0), (1, shift))
            ]  # fmt: skip
            receipts = hostile.both(*pair)
            accepted = sum(receipt.accepted for receipt in receipts)
            outcome.attempts += 1
            outcome.accepted[accepted] += 1
            for receipt in receipts:
                outcome.codes.update(result.code for result in receipt.results)
        _settle_and_check(network, database, outcome)
    finally:
        if hostile is not None:
            hostile.close()
        network.stop_all()
    if outcome.accepted[2]:
        outcome.failures.append(f"{outcome.accepted[2]} pairs had both proposals accepted")
    outcome.seconds = time.monotonic() - started
    return outcome


def _claimed(database: str) -> int:
    now = datetime.now(UTC)
    query = select(func.count()).where(outbox.c.state == "pending", outbox.c.claimed_until > now)
    return int(read_hub(database, lambda c: [c.execute(query).scalar_one()])[0])


def _kill_holding_claims(network: Network, database: str, hostile: Hostile, at: int) -> int:
    """Stop CHE01, so that acquisition requests to it hang in delivery under claims, send a few
    transfers, kill hub B with SIGKILL once rows are claimed, then bring everything back."""
    network.stop("CHE01")
    for offset in range(4):
        number = FIRST_ID + 10 * (at + offset) + 1_000_000
        first = SLOT * hostile.attempts + 1 + offset  # past every attempt's slot: spare serials
        proposal = hostile.proposal(number, first, first, cancel=False)
        hostile.send(offset % 2, proposal)
    deadline = time.monotonic() + 30
    while not (claims := _claimed(database)) and time.monotonic() < deadline:
        time.sleep(0.1)
    network.stop("HUB-B", kill=True)
    network.start("CHE01")
    network.start("HUB-B")
    return claims


def _settle_and_check(network: Network, database: str, outcome: Outcome) -> None:
    books = {r: Books(load_config(network.config(r))) for r in ("GHA01", "CHE01")}
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            statuses = hub_statuses(database)
            settled = all(s in FINAL for s in statuses.values()) and not any(
                b.unsettled() for b in books.values()
            )
            ledger = hub_rows(database, list(books))
            if settled and all(sorted(ledger[r]) == sorted(b.rows()) for r, b in books.items()):
                break
            time.sleep(1)
        findings = check_all(
            Findings(),
            issued={"GHA01": (1, SLOT * outcome.attempts + SPARE)},
            hub_rows=hub_rows(database, list(books)),
            local_rows={r: b.rows() for r, b in books.items()},
            hub_statuses=hub_statuses(database),
            local_statuses={r: b.statuses() for r, b in books.items()},
        )
        check_network(network, findings)
        outcome.invariants = findings.checked
        outcome.failures += findings.failures or []
    finally:
        for b in books.values():
            b.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m campaign.multihub", description=__doc__)
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="a6-multihub-") as folder, postgres_database() as url:
        outcome = run(args.attempts, args.seed, Path(folder), url)
    print(f"two hubs on one PostgreSQL database, seed {args.seed}")
    print(f"conflicting attempts  {outcome.attempts:,} (pairs of overlapping proposals)")
    print(f"accepted per pair     {dict(sorted(outcome.accepted.items()))}")
    print(f"losers' codes         {dict(outcome.codes.most_common())}")
    print(f"hub kills (SIGKILL)   {outcome.kills} (outbox rows claimed at the kill: "
          f"{outcome.claims_at_kill})")  # fmt: skip
    print(f"invariants checked    {outcome.invariants}")
    print(f"wall time             {outcome.seconds:,.0f} s")
    print(f"result                {'PASS' if not outcome.failures else 'FAIL'}")
    for failure in outcome.failures:
        print(f"  FAILED: {failure}")
    return 0 if not outcome.failures else 1


if __name__ == "__main__":
    sys.exit(main())
