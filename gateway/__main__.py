"""``article6-hub serve --config hub.toml``: run the hub."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from article6.logs import configure_logging
from gateway.config import load_config
from gateway.server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="article6-hub", description="The Article 6 hub.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_command = commands.add_parser("serve", help="serve registries and operators")
    serve_command.add_argument("--config", required=True, type=Path)
    serve_command.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging("hub", args.log_level)
    asyncio.run(serve(load_config(args.config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
