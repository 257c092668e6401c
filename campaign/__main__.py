"""``python -m campaign [--seed S] [--transfers N] [--kills K]``: run the crash campaign.

Prints the seed first (replay a run with it) and the figures last; exits 1 if any invariant
failed. ``--hub-database`` takes a PostgreSQL URL to run the hub on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import platform
import secrets
import sys
import tempfile
from pathlib import Path

from campaign.run import Campaign, Figures, Settings


def report(settings: Settings, figures: Figures) -> str:
    kills = ", ".join(f"{name} {count}" for name, count in sorted(figures.kills.items()))
    outcomes = ", ".join(f"{name} {count:,}" for name, count in sorted(figures.outcomes.items()))
    lines = [
        f"seed                  {settings.seed}",
        f"machine               {platform.node()} ({platform.machine()}), Python "
        f"{platform.python_version()}",
        f"hub database          {'PostgreSQL' if '://' in settings.hub_database else 'SQLite'}",
        f"proposals queued      {figures.proposed:,} "
        f"(and {figures.refused_locally:,} refused by their own registry)",
        f"kills (SIGKILL)       {sum(figures.kills.values())}: {kills or '-'}",
        f"hub outcomes          {outcomes}",
        f"invariants checked    {figures.invariants} "
        f"(incl. {figures.reconciliations} reconciliations and the audit trail)",
        f"audit trail           {figures.audit_entries}",
        f"wall time             {figures.seconds:,.0f} s",
        f"result                {'PASS' if not figures.failures else 'FAIL'}",
    ]
    lines += [f"  FAILED: {failure}" for failure in figures.failures]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m campaign", description=__doc__)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--transfers", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--hub-database", default="hub.db")
    parser.add_argument("--folder", type=Path, help="keep the network here (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--check-stopped", action="store_true",
        help="take up the network in --folder left by an interrupted run: settle, then check",
    )  # fmt: skip
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    print(f"crash campaign, seed {seed}: {args.transfers:,} proposals, {args.kills} kills",
          flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="a6-campaign-") as temporary:
        folder = args.folder or Path(temporary)
        settings = Settings(seed, args.transfers, args.kills, folder, args.hub_database,
                            progress=lambda line: print(line, flush=True))  # fmt: skip
        campaign = Campaign(settings)
        figures = campaign.check_stopped() if args.check_stopped else campaign.run()
    print(report(settings, figures))
    if args.json:
        args.json.write_text(json.dumps({
            "seed": seed, "proposed": figures.proposed, "kills": dict(figures.kills),
            "outcomes": dict(figures.outcomes), "invariants": figures.invariants,
            "seconds": figures.seconds, "failures": figures.failures,
        }, indent=2))  # fmt: skip
    return 0 if not figures.failures else 1


if __name__ == "__main__":
    sys.exit(main())
