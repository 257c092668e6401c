"""What every command line answers to ``--version``: the package's version and the protocol
version it speaks."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version

from article6.headers import PROTOCOL_MAJOR, PROTOCOL_MINOR

PACKAGE = "article6-gateway"


def version_text(prog: str) -> str:
    try:
        release = version(PACKAGE)
    except PackageNotFoundError:  # run from a source tree that was never installed
        release = "unknown"
    return f"{prog} {release} (protocol {PROTOCOL_MAJOR}.{PROTOCOL_MINOR})"


def add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=version_text(parser.prog))
