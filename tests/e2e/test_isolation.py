"""One registry never hurts another, through real processes: a silent registry with a
backlog, a long outage, and a second process on a taken database or port."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.isolation import SILENT, flood, pending_to, silent_listener
from bench.network import bench_for
from demo.network import HUB, Network, free_port
from tests.e2e.helpers import (
    accounts,
    assert_ledgers_agree,
    final,
    local_holdings,
    transfer,
    wait_for,
)
from tests.e2e.test_network import dead_letters
from tests.e2e.test_operations import total

BACKLOG = 300


@pytest.fixture
def three(tmp_path: Path) -> Iterator[Network]:
    """GHA01, CHE01 and SGP01, with short deadlines so that silence shows quickly."""
    delivery = {"rpc_timeout_seconds": 2.0, "backoff_max_seconds": 1.0,
                "breaker_max_open_seconds": 2.0}  # fmt: skip
    registries = ("GHA01", "CHE01", SILENT)
    with Network(tmp_path, registries=registries, delivery=delivery).running() as network:
        yield network


def breaker(network: Network, registry: str) -> float:
    return total(network.scrape(HUB), "a6_delivery_breaker_state", registry=registry)


async def silent_with_backlog(network: Network, silence: contextlib.ExitStack) -> None:
    """SGP01 falls silent (a listener that never answers takes its port), then its fast
    sender proposes ``BACKLOG`` issuances, each answered by a completion notice to it."""
    bench = bench_for(network)  # SGP01's account and authorization, while it runs
    try:
        network.stop(SILENT)
        silence.enter_context(silent_listener(network.components[SILENT].endpoint))
        await flood(bench, BACKLOG)
    finally:
        await bench.close()


def test_a_silent_registry_with_a_backlog_holds_up_no_one_else_and_gets_it_all_back(
    three: Network,
) -> None:
    network = three
    gha, che = accounts(network)
    with contextlib.ExitStack() as silence:
        asyncio.run(silent_with_backlog(network, silence))
        # Its breaker opens: the hub stops paying a deadline per batch to it.
        wait_for(lambda: breaker(network, SILENT) == 2, 60, "SGP01's breaker to open")
        # Unrelated transfers go through meanwhile, none of them waiting behind SGP01.
        for serials in ("1-10", "11-20", "21-30"):
            assert final(network, "GHA01", transfer(network, gha, che, serials)) == (
                "completed", []
            )  # fmt: skip
        assert pending_to(network, SILENT) >= BACKLOG
        tried = total(network.scrape(HUB), "a6_delivery_attempts_total", registry=SILENT)
        assert tried < BACKLOG / 2, f"{tried} attempts for {BACKLOG} messages"
    # It comes back: every waiting message reaches it, none was given up.
    network.start(SILENT)
    wait_for(lambda: pending_to(network, SILENT) == 0, 120, "SGP01's backlog to be delivered")
    assert dead_letters(network) == []
    assert breaker(network, SILENT) == 0
    assert len(local_holdings(network, SILENT)) == BACKLOG
    assert_ledgers_agree(network, settle_seconds=30)


# An outage of 30 minutes with every delivery setting scaled down 60 times (30 s standing
# for 30 min): retries for 72 "hours" (72 min), at most 0.5 s apart (30 s), the breaker
# probing at most every 1 s (60 s), and a 90 s acceptance time-out counted from the first
# attempt. With the settings before, messages were dead letters after 12 attempts.
OUTAGE_SECONDS = 30.0
SCALED = {"give_up_after_seconds": 72 * 60.0, "backoff_initial_seconds": 0.05,
          "backoff_max_seconds": 0.5, "breaker_open_seconds": 0.1,
          "breaker_max_open_seconds": 1.0, "rpc_timeout_seconds": 2.0}  # fmt: skip


def test_a_registry_down_for_a_scaled_half_hour_loses_nothing_and_completes_everything(
    tmp_path: Path,
) -> None:
    network = Network(tmp_path, acceptance_timeout_seconds=90.0, delivery=SCALED)
    with network.running():
        gha, che = accounts(network)
        network.stop("CHE01")
        pending = [transfer(network, gha, che, f"{n * 100 + 1}-{n * 100 + 100}") for n in range(5)]
        wait_for(lambda: breaker(network, "CHE01") == 2, 30, "CHE01's breaker to open")
        time.sleep(OUTAGE_SECONDS)
        assert dead_letters(network) == []
        network.start("CHE01")
        for transaction_id in pending:
            assert final(network, "GHA01", transaction_id) == ("completed", [])
        wait_for(lambda: pending_to(network, "CHE01") == 0, 60, "CHE01's messages")
        assert dead_letters(network) == []
        assert sum(row[3] - row[2] + 1 for row in local_holdings(network, "CHE01")) == 500
        assert_ledgers_agree(network, settle_seconds=30)


def serve(network: Network, config: Path, module: str = "gateway") -> str:
    """Start a second server; it must stop at once with exit 1, its reason the last line on
    stderr (after its JSON log lines, and gRPC's own report of a failed bind)."""
    command = [sys.executable, "-m", module, "serve", "--config", str(config)]
    done = subprocess.run(command, cwd=network.folder, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1, done.stderr
    *_, line = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr, done.stderr
    return line


def test_a_second_process_on_a_taken_database_or_port_stops_with_one_line(
    network: Network,
) -> None:
    hub_toml = network.folder / "hub.toml"
    line = serve(network, hub_toml)
    assert line.startswith("article6-hub: database "), line
    assert "hub.db is in use by hub HUB (pid " in line

    elsewhere = network.folder / "hub-2.toml"
    text = hub_toml.read_text().replace('database = "hub.db"', 'database = "hub2.db"')
    text = re.sub(r'^metrics_listen = ".*"$', f'metrics_listen = "127.0.0.1:{free_port()}"',
                  text, flags=re.MULTILINE)  # fmt: skip
    elsewhere.write_text(text)
    listen = network.components[HUB].endpoint
    assert serve(network, elsewhere) == (
        f"article6-hub: cannot listen on {listen}: in use, or not an address of this host"
    )
    metrics = network.metrics[HUB]  # taken by the running hub
    text = hub_toml.read_text().replace('database = "hub.db"', 'database = "hub3.db"')
    for key in ("listen", "admin_listen"):
        text = re.sub(rf'^{key} = ".*"$', f'{key} = "127.0.0.1:{free_port()}"', text,
                      flags=re.MULTILINE)  # fmt: skip
    third = network.folder / "hub-3.toml"
    third.write_text(text)
    line = serve(network, third)
    assert line.startswith(f"article6-hub: cannot serve metrics on {metrics}: "), line
    line = serve(network, network.config("GHA01"), "party_registry_stub")
    assert "gha01.db is in use by registry GHA01 (pid " in line
    # The first ones never noticed.
    assert all(component.running for component in network.components.values())
