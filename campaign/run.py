"""The crash campaign: stream transfers among three registries while killing the hub and the
registries with SIGKILL at random points, restart them, let the network settle, then check
every invariant (``campaign.invariants``), reconcile every registry, and verify the hub's
audit trail.

Everything random comes from one seed, so a failing run is replayed with ``--seed``. The
proposals are queued the way a registry's operator command does: in the registry's own
database, by its engine, from where the registry's serving process sends them on.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select, text

from article6.blocks import Block
from article6.codes import Refusal
from article6.model import LedgerBlock, Status, TransactionType
from article6.node import store
from article6.node.config import RegistryConfig, load_config
from article6.node.engine import Proposal, RegistryEngine
from article6.node.server import build_engine
from article6.unit import Unit
from article6.v1 import admin_pb2
from campaign.invariants import FINAL, Findings, Row, check_all
from demo.network import HUB, Network
from gateway.storage import ledger
from gateway.storage.database import Database
from gateway.storage.schema import transactions
from party_registry_stub import accounts

REGISTRIES = ("GHA01", "CHE01", "SGP01")
SERIALS = 1_000_000  # each registry issues 1..SERIALS in its own serial space
MAX_RANGE = 40  # units per proposal: 1 to this many
IN_FLIGHT = 120  # unsettled proposals the driver allows before it waits
COMPLETED = 5  # ReconciliationStatus: completed (no discrepancy)
START_DENIED = 7


@dataclass
class Settings:
    seed: int
    transfers: int
    kills: int
    folder: Path
    hub_database: str = "hub.db"
    cancel_share: float = 0.05  # of proposals: cancellations, the rest external transfers
    settle_seconds: float = 600.0
    progress: Callable[[str], None] = print


@dataclass
class Figures:
    proposed: int = 0
    refused_locally: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    invariants: int = 0
    reconciliations: int = 0
    audit_entries: str = ""
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


class Books:
    """One registry's database, opened by the driver as the registry's command line does."""

    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self.registry: RegistryEngine = build_engine(
            config, accounts.AccountRules(config.registry_id)
        )
        self.engine = store.open_database(config.database, accounts.metadata)

    def propose(self, proposals: list[Proposal]) -> tuple[int, int]:
        """Queue proposals in one SQL transaction; (queued, refused by the registry itself)."""
        queued = refused = 0
        with self.engine.begin() as connection:
            unit = Unit(connection)  # no pump here: the registry's claims what is queued
            for proposal in proposals:
                try:
                    with unit.savepoint():
                        self.registry.propose(unit, proposal)
                    queued += 1
                except Refusal:
                    refused += 1
        return queued, refused

    def unsettled(self) -> int:
        with self.engine.connect() as connection:
            # An IN list, not NOT IN, so that the status index finds the few unfinished rows.
            waiting = sorted(status.value for status in Status if not status.final)
            table = store.transactions
            query = select(func.count()).select_from(table).where(table.c.status.in_(waiting))
            return int(connection.execute(query).scalar_one())

    def statuses(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            rows = connection.execute(text("SELECT transaction_id, status FROM transactions"))
            return {row.transaction_id: row.status for row in rows}

    def rows(self) -> list[Row]:
        with self.engine.connect() as connection:
            blocks = store.all_holdings(connection, self.config.registry_id)
        return [_row(block) for block in blocks]

    def close(self) -> None:
        self.engine.dispose()


class Campaign:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.random = random.Random(settings.seed)  # noqa: S311 (a replayable run, not a secret)
        self.network = Network(
            settings.folder, registries=REGISTRIES, database=settings.hub_database,
            acceptance_timeout_seconds=30.0,
            delivery={"max_attempts": 1000, "backoff_max_seconds": 1.0},
        )  # fmt: skip
        self.figures = Figures()
        self.books: dict[str, Books] = {}
        self.accounts: dict[str, str] = {}

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> Figures:
        self.network.write()
        return self._with_network(self._set_up, self._drive)

    def check_stopped(self) -> Figures:
        """Take up a campaign's network stopped before its end (its driver interrupted), let it
        settle and check every invariant, as a finished run does. Kills are counted from the
        logs: each start after the first, up to the first graceful stop (the end of the run),
        is a restart after a kill."""
        self.network.load()
        for name, component in self.network.components.items():
            run, _, _ = component.log.read_text().partition(' stopped"')
            self.figures.kills[name] = max(0, run.count(" serving on ") - 1)
        return self._with_network(self._open_books, self._count_proposed)

    def _with_network(self, *steps: Callable[[], None]) -> Figures:
        """Start the network, run ``steps``, let it settle and check it; stop it whatever
        happens."""
        started = time.monotonic()
        try:
            self.network.start_all()
            for step in steps:
                step()
            self._settle()
            self._check()
        finally:
            self.network.stop_all()
            for books in self.books.values():
                books.close()
        self.figures.seconds = time.monotonic() - started
        return self.figures

    def _open_books(self) -> None:
        for registry in REGISTRIES:
            self.books[registry] = Books(load_config(self.network.config(registry)))

    def _count_proposed(self) -> None:
        """Proposals in the registries' books (each registry's own, less its issuance)."""
        self.figures.proposed = sum(
            tx.startswith(registry) for registry, books in self.books.items()
            for tx in books.statuses()
        ) - len(REGISTRIES)  # fmt: skip

    def _set_up(self) -> None:
        self._open_books()
        for registry in REGISTRIES:
            self.accounts[registry] = self.network.registry_cli(
                registry, "open-account", "--ca", "CA0001"
            )
            issued = self.network.issue_itmos(registry, self.accounts[registry], f"1-{SERIALS}")
            self.network.registry_cli(registry, "wait", issued, "--timeout", "120")

    def _proposal(self, registry: str) -> Proposal:
        space = self.random.choice(REGISTRIES)
        first = self.random.randint(1, SERIALS)
        last = min(SERIALS, first + self.random.randint(0, MAX_RANGE - 1))
        ranges: list[Block[str] | Block[None]] = [Block(first, last, space)]
        source = self.accounts[registry]
        if self.random.random() < self.settings.cancel_share:
            return Proposal(TransactionType.CANCELLATION, source, registry, "", ranges)
        target = self.random.choice([r for r in REGISTRIES if r != registry])
        kind = TransactionType.EXTERNAL_TRANSFER
        return Proposal(kind, source, target, self.accounts[target], ranges=ranges)

    def _drive(self) -> None:
        """Queue proposals until ``transfers`` were accepted by their registries, killing a
        component each ``transfers / kills`` of them."""
        goal, figures = self.settings.transfers, self.figures
        every = goal / max(1, self.settings.kills)
        next_kill, last_report = every, time.monotonic()
        while figures.proposed < goal:
            self._wait_for_room()
            registry = self.random.choice(REGISTRIES)
            batch = [self._proposal(registry) for _ in range(self.random.randint(4, 24))]
            queued, refused = self.books[registry].propose(batch)
            figures.proposed += queued
            figures.refused_locally += refused
            if figures.proposed >= next_kill and sum(figures.kills.values()) < self.settings.kills:
                self._kill_one()
                next_kill += every
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                self.settings.progress(
                    f"  {figures.proposed:,} proposed, {sum(figures.kills.values())} kills"
                )

    def _wait_for_room(self) -> None:
        while sum(books.unsettled() for books in self.books.values()) > IN_FLIGHT:
            time.sleep(0.05)

    def _kill_one(self) -> None:
        """SIGKILL one component at a random moment, leave it down for up to half a second
        (the others keep working: deliveries to it fail and back off), then restart it."""
        victim = self.random.choice([HUB, *REGISTRIES])
        time.sleep(self.random.uniform(0, 0.3))
        self.network.stop(victim, kill=True)
        self.figures.kills[victim] += 1
        down_for = self.random.uniform(0, 0.5)
        time.sleep(down_for)
        self.network.start(victim, timeout=60)

    # --- settling and checking --------------------------------------------------------------

    def _settle(self) -> None:
        deadline = time.monotonic() + self.settings.settle_seconds
        while time.monotonic() < deadline:
            if not self._unsettled_anywhere() and self._books_agree():
                return
            time.sleep(1.0)
        self.figures.failures.append(
            f"the network did not settle within {self.settings.settle_seconds} s"
        )

    def _unsettled_anywhere(self) -> bool:
        hub = self._hub_statuses()
        return any(status not in FINAL for status in hub.values()) or any(
            books.unsettled() for books in self.books.values()
        )

    def _books_agree(self) -> bool:
        hub = self._hub_rows()
        return all(sorted(hub[r]) == sorted(self.books[r].rows()) for r in REGISTRIES)

    def _hub_url(self) -> str:
        url = self.settings.hub_database
        return url if "://" in url else f"sqlite:///{self.network.folder / url}"

    def _hub_rows(self) -> dict[str, list[Row]]:
        return hub_rows(self._hub_url(), REGISTRIES)

    def _hub_statuses(self) -> dict[str, int]:
        return hub_statuses(self._hub_url())

    def _check(self) -> None:
        hub_statuses = self._hub_statuses()
        self.figures.outcomes = Counter(_STATUS_NAMES.get(s, str(s)) for s in hub_statuses.values())
        findings = check_all(
            Findings(),
            issued=dict.fromkeys(REGISTRIES, (1, SERIALS)),
            hub_rows=self._hub_rows(),
            local_rows={registry: books.rows() for registry, books in self.books.items()},
            hub_statuses=hub_statuses,
            local_statuses={registry: books.statuses() for registry, books in self.books.items()},
        )
        self.figures.audit_entries = check_network(self.network, findings)
        self.figures.reconciliations = len(REGISTRIES)
        self.figures.invariants = findings.checked
        self.figures.failures += findings.failures or []


def reconcile(network: Network, registry: str) -> int:
    """Run a reconciliation with ``registry`` (again while a start is denied); its status."""
    deadline = time.monotonic() + 120
    while True:
        with network.admin() as admin:
            request = admin_pb2.RunReconciliationRequest(registry=registry)
            status = int(admin.RunReconciliation(request, timeout=600).run.status)
        if status != START_DENIED or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def audit_verify(network: Network) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway", "audit-verify",
               "--config", str(network.folder / "hub.toml")]  # fmt: skip
    return subprocess.run(  # noqa: S603 (our own module, fixed arguments)
        command, capture_output=True, text=True, check=False
    )


def check_network(network: Network, findings: Findings) -> str:
    """Reconcile every registry and verify the audit trail; the verify command's verdict."""
    for registry in network.registries:
        status = reconcile(network, registry)
        findings.check(status == COMPLETED, f"reconciliation of {registry} ended {status}")
    verdict = audit_verify(network)
    findings.check(verdict.returncode == 0, f"audit trail: {verdict.stdout.strip()}")
    return verdict.stdout.strip()


def read_hub(url: str, work: Callable[[Connection], list[Any]]) -> list[Any]:
    database = Database(url)
    try:
        return database.read_now(work)
    finally:
        database.close()


def hub_rows(url: str, registries: Sequence[str]) -> dict[str, list[Row]]:
    """The hub's ledger by holding registry, read from its database (the admin API pages)."""
    rows: dict[str, list[Row]] = {registry: [] for registry in registries}
    for block in read_hub(url, ledger.blocks_of_registry):
        rows.setdefault(block.attributes.holder.registry, []).append(_row(block))
    return rows


def hub_statuses(url: str) -> dict[str, int]:
    """Every transaction's status at the hub."""
    query = select(transactions.c.transaction_id, transactions.c.status)
    return dict(read_hub(url, lambda c: [tuple(row) for row in c.execute(query)]))


def _row(block: LedgerBlock) -> Row:
    unit = block.attributes.unit
    return (block.attributes.holder.account_id, unit.originating_registry, block.serial_first,
            block.serial_last, unit.state.value)  # fmt: skip


_STATUS_NAMES = {4: "completed", 5: "terminated", 6: "rejected", 7: "cancelled"}
