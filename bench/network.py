"""The benchmarks' network: the hub and Party registries as processes, the hub on SQLite or on
a PostgreSQL database of its own, and a fast sender for each registry that proposes."""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, select

from article6.node.config import load_config
from article6.v1 import transaction_pb2, units_pb2
from bench.sender import Sender, Units
from campaign.multihub import POSTGRES_ADMIN, postgres_database
from demo.network import HUB, PARTIES, Network
from gateway.config import database_url
from gateway.storage.schema import transaction_history as history


@dataclass
class Bench:
    network: Network
    senders: dict[str, Sender]
    units: dict[str, Units]

    def registry_rows(self, registry: str, transaction_ids: Sequence[str]) -> dict[str, datetime]:
        """When each of these transactions completed in a registry's books (naive UTC), read
        without taking the registry's write lock."""
        path = load_config(self.network.config(registry)).database.removeprefix("sqlite:///")
        wanted = set(transaction_ids)
        query = "SELECT transaction_id, updated_at FROM transactions WHERE status = 4"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute(query).fetchall()
        return {tid: datetime.fromisoformat(at) for tid, at in rows if tid in wanted}

    def hub_history(self, transaction_ids: Sequence[str]) -> dict[str, dict[int, datetime]]:
        """When the hub recorded each status of these transactions (status value to UTC
        time), read beside the running hub."""
        url = database_url(self.network.database, self.network.folder)
        query = select(history.c.transaction_id, history.c.status, history.c.at).where(
            history.c.transaction_id.in_(sorted(set(transaction_ids)))
        )
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(query).all()
        finally:
            engine.dispose()
        found: dict[str, dict[int, datetime]] = {}
        for transaction_id, status, at in rows:
            found.setdefault(transaction_id, {})[status] = at
        return found

    async def issue(self, registry: str, blocks: list[units_pb2.UnitBlock]) -> None:
        """Issue ``blocks`` into the registry's account, through its fast sender, and wait
        until its books hold them."""
        sender, units = self.senders[registry], self.units[registry]
        raw = sender.proposal(transaction_pb2.TRANSACTION_TYPE_ISSUANCE, units, blocks)
        receipt = await sender.propose(raw)
        self.network.registry_cli(registry, "wait", receipt.transaction_id)

    def pids(self) -> dict[str, int]:
        return {
            name: component.process.pid
            for name, component in self.network.components.items()
            if component.process is not None
        }

    async def close(self) -> None:
        for sender in self.senders.values():
            await sender.close()


def postgres_reachable() -> bool:
    try:
        psycopg.connect(POSTGRES_ADMIN).close()
    except psycopg.OperationalError:
        return False
    return True


@contextlib.contextmanager
def hub_database(kind: str) -> Iterator[str]:
    """A fresh database for the hub: a SQLite file in the network's folder, or PostgreSQL."""
    if kind == "sqlite":
        yield "hub.db"
        return
    with postgres_database() as url:
        yield url


@contextlib.contextmanager
def running(registries: tuple[str, ...], database: str) -> Iterator[Network]:
    with tempfile.TemporaryDirectory(prefix="a6-bench-") as folder:
        network = Network(Path(folder), registries=registries, database=database)
        with network.running():
            yield network


def bench_for(network: Network) -> Bench:
    senders, units = {}, {}
    for registry in network.registries:
        account = network.registry_cli(registry, "open-account", "--ca", "CA0001")
        authorization = network.standing_authorization(registry)
        units[registry] = Units(registry, PARTIES[registry], account, authorization)
        senders[registry] = Sender(network.pki, registry, HUB, network.components[HUB].endpoint)
    return Bench(network, senders, units)
