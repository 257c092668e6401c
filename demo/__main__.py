"""``make demo``: a hub and two Party registries on loopback, through a realistic scenario.

Every component is its own process, talking gRPC over mutual TLS with signed envelopes and
keeping its state in SQLite. The scenario: GHA01 issues mitigation outcomes (an attempt to
mint ITMOs outright is refused), Ghana authorizes them and revises the authorization (version
2) before any first transfer; a partial first transfer to CHE01 makes ITMOs (the block
splits); a first transfer CHE01 rejects (unknown account); one while CHE01 is offline,
completed once it is back; a use in CHE01. Singapore then uses the international
registry and its ARS (authorization, first transfer). The Article 6.4 mechanism registry,
through its adapter, forwards authorized A6.4ERs into Singapore's IR account as ITMOs, an
instruction for mitigation contribution A6.4ERs is refused, and the mechanism leg reconciles.
The hub then reconciles every registry with its ledger; a block altered behind CHE01's back is
found, frozen (a use of it is refused) and resolved.
Then it prints the transactions and the holdings as the hub and as each registry see them,
and shuts everything down.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from article6.aef.check import check_workbook
from article6.aef.template import template
from article6.block_table import to_db
from article6.codes import Code
from article6.identifiers import format_account_id
from article6.model import Status, TransactionType
from article6.v1 import admin_pb2, mechanism_pb2
from article6.wire import run_status_words
from demo.mailbox import LocalSmtp
from demo.network import HUB, INTERNATIONAL, MECHANISM, OPERATOR, Network
from demo.portal import run_portal_scenario
from mechanism_registry_adapter import feed
from mechanism_registry_adapter.formats import write_json_lines

REGISTRIES = ("GHA01", "CHE01", INTERNATIONAL, MECHANISM)


def step(text: str) -> None:
    print(f"\n- {text}")


def outcome(network: Network, registry: str, transaction_id: str, acquirer: str = "") -> str:
    """The transaction's final status in ``registry``'s books; for a completed transfer, once
    the ``acquirer`` has applied it too (the next step may move the units on from there)."""
    line = network.wait_final(registry, transaction_id)
    _, status, *codes = line.split()
    if acquirer and status == "completed":
        network.wait_final(acquirer, transaction_id)
    named = [f"{code} {Code(int(code)).name}" for code in codes[0].split(",")] if codes else []
    return f"{transaction_id}: {status}" + (f" ({'; '.join(named)})" if named else "")


def local_status(network: Network, registry: str, transaction_id: str) -> str:
    for row in network.registry_json(registry, "transactions"):
        if row["transaction_id"] == transaction_id:
            return str(row["status"])
    return "unknown"


AUTHORIZATION = "GHA-2026-001"


def run_scenario(network: Network) -> dict[str, str]:
    """The Party registries' part; returns the accounts it opened, by role."""
    gha = partial(network.registry_cli, "GHA01")
    che = partial(network.registry_cli, "CHE01")
    step("Accounts: each registry opens its own")
    gha_holding = gha("open-account", "--type", "holding", "--ca", "CA0001")
    che_holding = che("open-account", "--type", "holding", "--ca", "CA0001")
    che_ndc = che("open-account", "--type", "ndc-use", "--ca", "CA0001")
    print(f"  GHA01 holding {gha_holding}; CHE01 holding {che_holding}, NDC use {che_ndc}")

    step("GHA01 issues 1,000,000 mitigation outcomes (vintage 2024, serials 1-1000000): not ITMOs")
    issued = gha("issue", "--account", gha_holding, "--vintage", "2024",
                 "--serials", "1-1000000")  # fmt: skip
    print(f"  {outcome(network, 'GHA01', issued)}")

    step("GHA01 tries to mint 100 ITMOs outright, under no authorization: refused")
    minted = gha("issue", "--kind", "itmo", "--account", gha_holding, "--ca", "CA0001",
                 "--vintage", "2024", "--serials", "2000001-2000100")  # fmt: skip
    print(f"  {outcome(network, 'GHA01', minted)}")

    step(f"Ghana authorizes them: {AUTHORIZATION} version 1, CA0001, use towards NDCs, "
         "600,000 units, vintages 2021-2030, one authorized entity")  # fmt: skip
    entity = "Volta Cookstoves Ltd;GHA;CS-2019-0042"  # name; country; identification number
    terms = ("--authorization-id", AUTHORIZATION, "--ca", "CA0001", "--purpose", "ndc",
             "--vintages", "2021-2030", "--entity", entity)  # fmt: skip
    authorized = gha("authorize", *terms, "--cap", "600000", "--from", gha_holding,
                     "--serials", "1-1000000")  # fmt: skip
    print(f"  {outcome(network, 'GHA01', authorized)}")
    step("Before any first transfer, Ghana revises it: version 2 authorizes 800,000 units for "
         "use in 2026-2035")  # fmt: skip
    revised = gha("authorize", *terms, "--version", "2", "--cap", "800000",
                  "--use-years", "2026-2035")  # fmt: skip
    print(f"  {outcome(network, 'GHA01', revised)}")
    print_authorization(network, AUTHORIZATION)

    step("GHA01 first transfers serials 1-250000 to CHE01: they become ITMOs "
         "CA0001-GHA01-GHA-1-2024 .. -250000-2024 (the block splits)")  # fmt: skip
    transfer = gha("first-transfer", "--from", gha_holding, "--to-registry", "CHE01",
                   "--to", che_holding, "--serials", "1-250000")  # fmt: skip
    print(f"  {outcome(network, 'GHA01', transfer, 'CHE01')}")

    unknown = format_account_id("CHE01", 9999)
    step(f"GHA01 first transfers serials 250001-251000 to {unknown}, which CHE01 does not have")
    refused = gha("first-transfer", "--from", gha_holding, "--to-registry", "CHE01",
                  "--to", unknown, "--serials", "250001-251000")  # fmt: skip
    print(f"  {outcome(network, 'GHA01', refused)} (CHE01 rejected it: 6; GHA01 terminated it)")

    step("CHE01 goes offline; GHA01 first transfers serials 300001-350000 to it")
    network.stop("CHE01")
    offline = gha("first-transfer", "--from", gha_holding, "--to-registry", "CHE01",
                  "--to", che_holding, "--serials", "300001-350000")  # fmt: skip
    deadline = time.monotonic() + 30
    while local_status(network, "GHA01", offline) != "checked" and time.monotonic() < deadline:
        time.sleep(0.1)
    print(f"  {offline}: {local_status(network, 'GHA01', offline)}, waiting for CHE01")
    time.sleep(2)
    step("CHE01 comes back: the hub's outbox delivers, and the transfer completes")
    network.start("CHE01")
    print(f"  {outcome(network, 'GHA01', offline, 'CHE01')}")

    step("CHE01 uses serials 1-100000 towards its NDC for 2030")
    use = che("use", "--from", che_holding, "--to", che_ndc, "--serials", "1-100000",
              "--party", "CHE", "--year", "2030")  # fmt: skip
    print(f"  {outcome(network, 'CHE01', use)}")
    return {"che_holding": che_holding, "che_ndc": che_ndc}


def print_authorization(network: Network, authorization_id: str) -> None:
    """Every version of an authorization, as the hub keeps them (admin GetAuthorization)."""
    with network.admin() as admin:
        found = admin.GetAuthorization(
            admin_pb2.GetAuthorizationRequest(authorization_id=authorization_id), timeout=10
        )
    for version in found.versions:
        granted = version.authorization
        uses = (
            f"{granted.use_year_first}-{granted.use_year_last}"
            if granted.use_year_first
            else "open"
        )
        entities = ", ".join(e.name for e in granted.authorized_entities)
        print(f"  version {granted.version} ({version.transaction_id}): "
              f"{granted.quantity_cap:,} units, vintages {granted.vintage_first}-"
              f"{granted.vintage_last}, use {uses}; entities: {entities}")  # fmt: skip
    print(f"  first transferred so far: {found.summary.first_transferred:,}")


def open_sgp_section(network: Network) -> tuple[str, str]:
    """The secretariat opens Singapore's section; returns its ARS and IR holding accounts."""
    ir = partial(network.registry_cli, INTERNATIONAL)
    step("Singapore asks the secretariat to open its Party section in the international registry")
    request = ir(
        "request-section", "--party", "SGP", "--submitted-by", "SGP national focal point",
        "--administrator", "Party Section Administrator 1",
        "--administrator", "Party Section Administrator 2",
        "--document", "nomination letter", "--document", "identity documents",
    )  # fmt: skip
    print(f"  {ir('validate-request', request)}; {ir('open-section', request)}")
    ars = ir("open-account", "--party", "SGP", "--type", "holding", "--ars")
    holding = ir("open-account", "--party", "SGP", "--type", "holding", "--ca", "CA0001")
    print(f"  accounts: ARS {ars}, IR holding {holding}")
    step("While provisional, the section may hold and receive, but not authorize")
    try:
        ir("authorize", "--from", ars, "--serials", "1-10", "--authorization-id", "SGP-X",
           "--ca", "CA0001", "--vintages", "2024", "--party", "SGP")  # fmt: skip
    except RuntimeError as refusal:
        print(f"  {str(refusal).split('refused: ', 1)[-1]}")
    print(f"  {ir('verify-section', 'SGP')}: identity verified")
    return ars, holding


def run_international_scenario(network: Network, accounts: dict[str, str]) -> None:
    """Singapore uses the international registry and its ARS."""
    ir = partial(network.registry_cli, INTERNATIONAL)
    che = partial(network.registry_cli, "CHE01")
    ars, holding = open_sgp_section(network)
    step("ARS: 100,000 mitigation outcomes of SGP (vintage 2024) are issued, not yet authorized")
    issued = ir("issue", "--account", ars, "--kind", "mitigation-outcome", "--vintage", "2024",
                "--serials", "1-100000")  # fmt: skip
    print(f"  {outcome(network, INTERNATIONAL, issued)}")
    step("SGP authorizes them: CA0001, use towards NDCs, cap 80,000, vintages 2021-2030")
    authorized = ir(
        "authorize", "--from", ars, "--serials", "1-100000", "--authorization-id", "SGP-2026-001",
        "--ca", "CA0001", "--purpose", "ndc", "--cap", "80000", "--vintages", "2021-2030",
        "--party", "SGP",
    )  # fmt: skip
    print(f"  {outcome(network, INTERNATIONAL, authorized)}")
    step("First transfer of serials 1-50000 to CHE01: they become ITMOs CA0001-SGP00-SGP-...-2024"
         " (SGP00: the registry id of Singapore's section)")  # fmt: skip
    first = ir("first-transfer", "--from", ars, "--serials", "1-50000", "--to-registry", "CHE01",
               "--to", accounts["che_holding"], "--party", "SGP")  # fmt: skip
    print(f"  {outcome(network, INTERNATIONAL, first, 'CHE01')}")
    step("CHE01 sends SGP00:1-10000 to SGP's IR account; SGP transfers SGP00:1-5000 back")
    back = che("transfer", "--from", accounts["che_holding"], "--to-registry", INTERNATIONAL,
               "--to", holding, "--serials", "SGP00:1-10000")  # fmt: skip
    print(f"  {outcome(network, 'CHE01', back, INTERNATIONAL)}")
    onward = ir("transfer", "--from", holding, "--to-registry", "CHE01",
                "--to", accounts["che_holding"], "--serials", "SGP00:1-5000")  # fmt: skip
    print(f"  {outcome(network, INTERNATIONAL, onward, 'CHE01')}")
    step("CHE01 uses SGP00:1-5000 towards its NDC for 2030")
    use = che("use", "--from", accounts["che_holding"], "--to", accounts["che_ndc"],
              "--serials", "SGP00:1-5000", "--party", "CHE", "--year", "2030")  # fmt: skip
    print(f"  {outcome(network, 'CHE01', use)}")


def run_mechanism_scenario(network: Network) -> None:
    """A6.4ERs from the mechanism registry arrive in Singapore's IR account as ITMOs."""
    ir = partial(network.registry_cli, INTERNATIONAL)
    mechanism = partial(network.registry_cli, MECHANISM)
    account = ir("open-account", "--party", "SGP", "--type", "holding", "--ca", "CA6400")
    step(
        "The Article 6.4 mechanism registry issues 10,000 A6.4ERs (activity A64-GHA-0001, host "
        "GHA, vintage 2025): 500 go to the Adaptation Fund, 200 are cancelled for OMGE"
    )
    record = feed.issuance("ISS-2026-0001", 1, 10_000)
    shared = feed.template(
        activity_id="A64-GHA-0001", host_party="GHA", vintage=2025,
        authorization_id="GHA-A64-0001", acquiring_account=account,
    )  # fmt: skip
    bulk = network.folder / "aer-instructions.jsonl"
    bulk.write_text(write_json_lines(feed.instructions(record, shared, 3, "AER-")))
    print(f"  net 9,300 (serials 1-9300) to forward to SGP's IR account {account}, "
          f"in 3 instructions: {bulk.name}")  # fmt: skip
    step("Bulk import into the adapter: each becomes a first transfer through the hub")
    print(f"  {mechanism('import', str(bulk))}")
    print(f"  {mechanism('wait-instructions', '--timeout', '60')}")
    for row in network.registry_json(MECHANISM, "outcomes"):
        print(f"  {row['instruction_id']}: {row['state']}, {row['quantity']:,} units, "
              f"first transfer {row['transfer_transaction_id']}")  # fmt: skip
    step("An instruction for mitigation contribution A6.4ERs (not authorized) is refused")
    refused = feed.instructions(feed.issuance("ISS-2026-0002", 20_001, 1_000), shared, 1, "MC-")[0]
    refused.authorization.kind = mechanism_pb2.AER_AUTHORIZATION_KIND_MITIGATION_CONTRIBUTION
    with network.intake() as intake:
        reply = intake.SubmitInstruction(
            mechanism_pb2.SubmitInstructionRequest(instruction=refused), timeout=10
        )
    codes = "; ".join(f"{r.code} {Code(r.code).name}" for r in reply.outcome.results)
    print(f"  {reply.outcome.instruction_id}: refused ({codes}); nothing reached the hub")
    step("The mechanism leg: what the adapter forwarded against what the IR took in and holds")
    print(f"  {mechanism('reconcile-leg')}")


def reconcile(network: Network, registry: str) -> admin_pb2.ReconciliationRun:
    """A run (tried again while completion notices to the registry are still on their way,
    which denies a start)."""
    deadline = time.monotonic() + 30
    while True:
        with network.admin() as admin:
            run = admin.RunReconciliation(
                admin_pb2.RunReconciliationRequest(registry=registry), timeout=300
            ).run
        if run.status != 7 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    print(f"  {registry:<6} {run_status_words(run.status):<20} "
          f"{run.hub_blocks:>3} blocks at the hub, {run.registry_blocks:>3} in the registry, "
          f"{run.round_trips} round trips, {run.bytes_exchanged:,} bytes")  # fmt: skip
    return run


def run_reconciliation_scenario(network: Network, accounts: dict[str, str]) -> None:
    """Every registry reconciles clean; then one is altered behind its back."""
    step("The hub reconciles every registry's books with its ledger (totals, then a hash tree)")
    for registry in REGISTRIES:
        reconcile(network, registry)
    database = network.folder / "che01.db"
    first = to_db(300_001)
    step("Someone changes the vintage of CHE01's block GHA01:300001-350000 in its database")
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        connection.execute("UPDATE holdings SET vintage = 2023 WHERE serial_first = ?", (first,))
    run = reconcile(network, "CHE01")
    with network.admin() as admin:
        found = admin.GetReconciliationRun(
            admin_pb2.GetReconciliationRunRequest(run_id=run.run_id), timeout=30
        ).discrepancies
    for item in found:
        block = item.block.block
        print(f"    discrepancy {item.discrepancy_id}: the {item.side} has "
              f"{block.originating_registry}:{block.serial_first}-{block.serial_last} "
              f"vintage {block.vintage}; frozen")  # fmt: skip
    step("While frozen, CHE01's use of GHA01:300001-301000 is refused")
    use = network.registry_cli(
        "CHE01", "use", "--from", accounts["che_holding"], "--to", accounts["che_ndc"],
        "--serials", "GHA01:300001-301000", "--party", "CHE", "--year", "2030",
    )  # fmt: skip
    print(f"  {outcome(network, 'CHE01', use)}")
    step("CHE01 restores its record; the operator resolves the discrepancies with a reason")
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        connection.execute("UPDATE holdings SET vintage = 2024 WHERE serial_first = ?", (first,))
    with network.admin() as admin:
        for item in found:
            admin.ResolveDiscrepancy(
                admin_pb2.ResolveDiscrepancyRequest(
                    discrepancy_id=item.discrepancy_id,
                    reason="CHE01 restored the record from its audit trail",
                ),
                timeout=30,
            )
    print(f"  {len(found)} discrepancies resolved; the serials are no longer frozen")
    reconcile(network, "CHE01")


def print_aef(network: Network) -> None:
    year = str(datetime.now(UTC).year)
    workbook = network.folder / f"SGP-{year}-AEF.xlsx"
    aef = partial(network.registry_cli, INTERNATIONAL, "aef", "--party", "SGP", "--year", year)
    print(f"\nSGP's AEF for {year} (decision 4/CMA.6), prefilled by the international registry")
    print(f"  {aef('--out', str(workbook))}")
    rows = json.loads(aef("--format", "json", "--table", "actions"))
    print(f"  Table 3, actions:\n  {'date':<10} {'action':<14} {'subtype':<31} "
          f"{'first ITMO id':<27} {'last ITMO id':<30} {'quantity':>8} from to")  # fmt: skip
    for row in rows:
        print(f"  {row['date']:<10} {row['action_type']:<14} {row['action_subtype']:<31} "
              f"{row['first_id']:<27} {row['last_id']:<30} {row['quantity'] or 0:>8,} "
              f"{row['transferring_party']}  {row['acquiring_party']}")  # fmt: skip
        if row["unit_registry"]:
            print(f"  {'':<57}from A6.4ERs {row['first_unit_id']} .. {row['last_unit_id']}")
    print("  The workbook checked cell by cell, as the AEF's syntax checkers do "
          f"(article6 aef check {workbook.name}):")  # fmt: skip
    findings = check_workbook(workbook)
    print(f"    {len(findings)} findings" if findings else "    every cell valid")
    for finding in findings:
        print(f"    {finding}")


AEF_COLUMNS = {  # the columns shown of each table: a few, for a terminal
    "summary": ("item", "value"),
    "authorizations": ("authorization_id", "date", "cooperative_approach", "quantity"),
    "actions": ("date", "action_type", "first_id", "last_id", "quantity", "transferring_party"),
    "holdings": ("first_id", "last_id", "quantity", "vintage"),
    "entities": ("name", "country", "authorization_id"),
}


def print_party_aef(network: Network) -> None:
    """CHE's AEF from its own registry, checked by the hub against its ledger: as exported
    (consistent), and a copy with one deliberate error (found)."""
    year = str(datetime.now(UTC).year)
    workbook = network.folder / f"CHE-{year}-AEF.xlsx"
    aef = partial(network.registry_cli, "CHE01", "aef", "--year", year)
    print(f"\nCHE's AEF for {year}, exported by its own registry (article6-registry aef):")
    print(f"  {aef('--out', str(workbook))}")
    for table in template().tables:
        rows = json.loads(aef("--format", "json", "--table", table.key))
        print(f"  {table.title} ({len(rows)} rows){':' if rows else ''}")
        for row in rows[:4]:
            print("    " + " | ".join(str(row[key]) for key in AEF_COLUMNS[table.key]))
    findings = check_workbook(workbook)
    print(f"  article6 aef check {workbook.name}: "
          f"{'every cell valid' if not findings else f'{len(findings)} findings'}")  # fmt: skip
    check = partial(network.admin_cli, "aef-check", "--party", "CHE", "--year", year)
    done = check(workbook.name)  # the command runs in the demo's folder
    print(f"  The hub checks it against its ledger (article6-admin aef-check, exit "
          f"{done.returncode}):\n    {(done.stdout + done.stderr).strip()}")  # fmt: skip
    wrong = network.folder / f"CHE-{year}-AEF-one-error.xlsx"
    print(f"  {with_one_error(workbook, wrong)}")
    done = check(wrong.name)
    print(f"  The hub checks that copy (exit {done.returncode}):")
    for line in (done.stdout + done.stderr).strip().splitlines():
        print(f"    {line}")


def with_one_error(workbook: Path, out: Path) -> str:
    """A copy of the workbook whose first action row reports one ITMO fewer than it moved,
    as a Party's slip of the keyboard would."""
    book = load_workbook(workbook)
    sheet = book[template().table("actions").sheet]
    keys = template().table("actions").keys
    row = template().first_data_row
    last = sheet.cell(row, keys.index("last_id") + 1)
    prefix, serial, vintage = str(last.value).rsplit("-", 2)
    last.value = f"{prefix}-{int(serial) - 1}-{vintage}"
    quantity = sheet.cell(row, keys.index("quantity") + 1)
    quantity.value = int(str(quantity.value)) - 1
    book.save(out)
    return f"{out.name}: Table 3 row {row} made to report one ITMO fewer"


def print_transactions(network: Network) -> None:
    with network.admin() as admin:
        reply = admin.ListTransactions(admin_pb2.ListTransactionsRequest(), timeout=10)
    print("\nTransactions as the hub recorded them (statuses with their Kyoto DES meanings)")
    print(f"  {'id':<9} {'type':<18} {'quantity':>10}  {'from':<6} {'to':<6} {'status':<40} codes")
    for summary in reversed(reply.transactions):
        tx = summary.transaction
        codes = ", ".join(f"{r.code} {Code(r.code).name}" for r in summary.results)
        print(
            f"  {tx.transaction_id:<9} {TransactionType(tx.type).name.lower():<18} "
            f"{tx.quantity:>10,}  {tx.transferring_registry:<6} {tx.acquiring_registry:<6} "
            f"{Status(summary.status).value} {Status(summary.status).meaning:<38} {codes}"
        )


def hub_holdings(network: Network, registry: str) -> list[tuple[Any, ...]]:
    with network.admin() as admin:
        reply = admin.ListHoldings(admin_pb2.ListHoldingsRequest(registry=registry), timeout=10)
    return [
        (held.account_id, held.block.originating_registry, held.block.serial_first,
         held.block.serial_last, held.block.state)
        for held in reply.blocks
    ]  # fmt: skip


def print_holdings(network: Network) -> bool:
    print("\nHoldings: the hub's ledger and each registry's own database")
    agree = True
    states = {1: "held", 2: "used", 3: "cancelled"}
    for registry in REGISTRIES:
        hub = hub_holdings(network, registry)
        local = [
            (row["account"], row["space"], row["serial_first"], row["serial_last"],
             {"held": 1, "used": 2, "cancelled": 3}[row["state"]])
            for row in network.registry_json(registry, "holdings")
        ]  # fmt: skip
        same = sorted(hub) == sorted(local)
        agree = agree and same
        print(f"  {registry} ({'hub and registry agree' if same else 'MISMATCH'})")
        for account, space, first, last, state in sorted(hub):
            serials = f"{space}:{first}-{last}"
            print(f"    {account:<15} {serials:<22} {last - first + 1:>10,} {states[state]}")
    return agree


def print_metrics(network: Network) -> None:
    print("\nMetrics (Prometheus text format):")
    for name, endpoint in network.metrics.items():
        print(f"  {name:<6} http://{endpoint}/metrics")
    samples = network.scrape(HUB)

    def total(name: str, **labels: str) -> float:
        return sum(
            value
            for (sample, sample_labels), value in samples.items()
            if sample == name and labels.items() <= dict(sample_labels).items()
        )

    print("  live figures at the hub:")
    print(f"    transactions completed        {total('a6_transactions', status='completed'):.0f}")
    print(f"    transactions terminated       {total('a6_transactions', status='terminated'):.0f}")
    print(f"    transactions rejected         {total('a6_transactions', status='rejected'):.0f}")
    print(f"    RPCs served                   {total('a6_rpc_requests_total'):.0f}")
    print(f"    deliveries tried / failed     {total('a6_delivery_attempts_total'):.0f} / "
          f"{total('a6_delivery_failures_total'):.0f}")  # fmt: skip
    print(f"    messages awaiting delivery    {total('a6_outbox_messages'):.0f}")


def print_audit(network: Network) -> bool:
    """The hub's audit trail: the operator's actions in it, and the verify command's verdict."""
    print("\nThe hub's audit trail (hash-chained, its head signed by the hub's key)")
    hub = ["--config", str(network.folder / "hub.toml")]
    python = [sys.executable, "-m", "gateway"]
    listing = subprocess.run(  # noqa: S603 (our own module, fixed arguments)
        [*python, "audit", *hub, "--limit", "400", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    entries = [json.loads(line) for line in listing]
    for entry in [e for e in entries if e["actor"] == OPERATOR][-3:]:
        print(f"  #{entry['seq']} {entry['actor']} {entry['action']} {entry['subject']}: "
              f"{entry['detail'].get('reason', '')}")  # fmt: skip
    verdict = subprocess.run(  # noqa: S603
        [*python, "audit-verify", *hub], capture_output=True, text=True, check=False
    )
    print(f"  {verdict.stdout.strip()}")
    print(f"  (check it yourself: .venv/bin/article6-hub audit-verify --config {hub[1]})")
    return verdict.returncode == 0


def keep_running(network: Network) -> None:
    """Leave everything serving until Ctrl-C: the portal, the metrics, the admin ports."""
    print(f"\nEverything keeps running: the portal at {network.portal_url}, the hub's admin "
          f"port at {network.admin_endpoint} (ARTICLE6_ADMIN_ENDPOINT={network.admin_endpoint} "
          f"ARTICLE6_PKI={network.pki}), the metrics above. Ctrl-C stops it all.")  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description="The network's demo.")
    after = "leave everything serving after the scenario, until Ctrl-C"
    parser.add_argument("--keep-running", action="store_true", help=after)
    args = parser.parse_args(argv)
    folder = Path("run") / datetime.now(UTC).strftime("demo-%Y%m%d-%H%M%S")
    network = Network(folder.resolve(), registries=REGISTRIES)
    network.write()
    print("Article 6 gateway demo: a hub, Party registries GHA01 and CHE01, the international")
    print("registry UNIR with its ARS, and the Article 6.4 mechanism registry's adapter A64MR,")
    print("each its own process on loopback (gRPC, mutual TLS, signed envelopes, SQLite).")
    print(f"Files: {folder}")
    agree = False
    smtp = LocalSmtp(network.folder / "mail", network.smtp_port)
    try:
        smtp.__enter__()
        network.start_all()
        accounts = run_scenario(network)
        run_international_scenario(network, accounts)
        run_mechanism_scenario(network)
        run_reconciliation_scenario(network, accounts)
        print_transactions(network)
        print_aef(network)
        print_party_aef(network)
        run_portal_scenario(network, smtp)
        agree = print_holdings(network)
        print_metrics(network)
        agree = print_audit(network) and agree
        if args.keep_running:
            keep_running(network)
        else:
            print("\n(The processes stop now; make demo KEEP=1 leaves them serving until Ctrl-C.)")
    finally:
        exits = network.stop_all()
        smtp.__exit__(None, None, None)
    clean = all(code == 0 for code in exits.values())
    stopped = "cleanly (exit code 0)" if clean else f"with exit codes {exits}"
    print(f"\nAll processes stopped {stopped}. Logs: {folder}/logs")
    return 0 if agree and clean else 1


if __name__ == "__main__":
    sys.exit(main())
