"""``--help`` for every console script: each option described, with its default and unit.

Options that mean the same in every command (``--config``, ``--serials``, ``--json``, ...) are
described once here, in ``COMMON``; an option described where it is added keeps its own text.
``finish`` applies both to a parser and all its subcommands, and a test walks every script to
check that no option is left without a description.
"""

from __future__ import annotations

import argparse

COMMON: dict[str, str] = {
    "--config": "the process's TOML config file (docs/RUNNING.md)",
    "--json": "print JSON instead of text",
    "--serials": "serial numbers FIRST-LAST, both included, e.g. 1-1000 (repeat for more blocks)",
    "--from": "the account the units are taken from (its id, e.g. GHA01-1001-42)",
    "--to": "the account the units go to (its id in the acquiring registry)",
    "--to-registry": "the acquiring registry's id, e.g. CHE01",
    "--account": "the account the units are issued into (its id)",
    "--ca": "the cooperative approach's id, e.g. CA0001",
    "--authorization-id": "the authorization's id (unique per authorizing Party)",
    "--purpose": "the use the outcomes are authorized for (ndc, oimp, ...: docs/DOMAIN.md)",
    "--vintage": "the units' vintage (a year)",
    "--year": "a year",
    "--voluntary": "a voluntary cancellation (towards no NDC and no OIMP)",
    "--log-level": "the least severe log level written to stderr",
    "--timeout": "seconds to wait before giving up",
    "--limit": "show at most this many, newest first",
    "--registry": "only this registry (its id, e.g. GHA01)",
    "--hub-id": "the hub's registry id (the name in its TLS certificate)",
    "--trigger": "the event that is the outcomes' first transfer (docs/DOMAIN.md)",
    "--type": "the account or transaction type",
    "--party": "the Party (ISO 3166-1 alpha-3, e.g. GHA)",
    "--format": "the output's format",
    "--status": "only transactions in this status",
    "--reason": "why, in words (kept in the audit trail)",
    "transaction_id": "the transaction's id, e.g. GHA01-42",
    "request_id": "the request's id, e.g. SOR-0001 or ACR-0001",
    "registry_id": "the registry's id, e.g. CHE01",
    "registry": "the registry's id, e.g. CHE01",
    "run_id": "the reconciliation run's id",
    "email": "the focal point's e-mail address",
    "party": "the Party (ISO 3166-1 alpha-3, e.g. SGP)",
    "account": "the account's id",
    "authorization_id": "the authorization's id",
    "discrepancy_id": "the discrepancy's number (article6-admin discrepancies)",
    "instruction_id": "the mechanism registry's instruction id",
    "file": "the file to read",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions kept as written (their examples are laid out), and each option's default
    shown after its help when it has one worth showing (not None, not a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        shown = default not in (None, False, argparse.SUPPRESS) and not isinstance(
            action, argparse._StoreTrueAction | argparse._StoreFalseAction
        )
        if shown and action.option_strings and "default" not in text:
            text += " (default: %(default)s)"
        return text


def finish(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give ``parser`` and every subcommand's parser the formatter, and the COMMON description
    to each option that has none."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                finish(sub)
            continue
        if action.help is None:
            name = action.option_strings[-1] if action.option_strings else action.dest
            action.help = COMMON.get(name)
    return parser


def undescribed(parser: argparse.ArgumentParser, path: str = "") -> list[str]:
    """Options and arguments of ``parser`` and its subcommands with no description."""
    path = path or parser.prog
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += undescribed(sub, f"{path} {name}")
        elif not action.help:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing
