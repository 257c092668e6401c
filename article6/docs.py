"""Render the generated parts of the docs from the code that defines them.

``docs/PROTOCOL.md`` holds sections between ``<!-- generated:NAME:begin -->`` and
``<!-- generated:NAME:end -->`` markers; this module rewrites them (the response-code catalogue
and the test vectors) and writes ``docs/test-vectors.json``. ``make docs`` writes; the test
suite checks that the committed docs equal what would be written.

    python -m article6.docs --write     rewrite the docs
    python -m article6.docs --check     exit 1 if they are stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from article6.codes import CATALOGUE, Code, Family
from article6.vectors import more_vectors, vectors, vectors_as_json_objects

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "docs" / "PROTOCOL.md"
VECTORS_JSON = ROOT / "docs" / "test-vectors.json"
MORE_VECTORS_JSON = ROOT / "docs" / "test-vectors-more.json"


def render_codes() -> str:
    lines: list[str] = []
    for family in Family:
        lines += [
            f"#### {family.thousands}xxx: {family.title}",
            "",
            "| code | name | meaning | retry can help | carried as |",
            "|---:|---|---|---|---|",
        ]
        for code in (code for code in Code if code.family is family):
            info = CATALOGUE[code]
            carried = f"gRPC `{info.grpc_status}`" if info.grpc_status else "receipt / notice"
            retry = "yes" if info.retryable else "no"
            lines.append(f"| {code.value} | `{code.name}` | {info.meaning} | {retry} | {carried} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _wrap_hex(value: str, width: int = 64) -> str:
    return "\n".join(value[i : i + width] for i in range(0, len(value), width)) or "(empty)"


def render_vectors() -> str:
    parts: list[str] = []
    for vector in vectors():
        parts += [
            f"#### Vector `{vector.name}`",
            "",
            "```text",
            f"seed (RFC 8032 7.1 test 1)  {vector.seed_hex}",
            f"public key                  {vector.public_key_hex}",
            f"key_id                      {vector.key_id}",
            f"payload_type                {vector.payload_type}",
            "payload (hex)",
            _wrap_hex(vector.payload_hex),
            "signing input, PAE (hex)",
            _wrap_hex(vector.signing_input_hex),
            "signature (hex)",
            _wrap_hex(vector.signature_hex),
            "serialized Envelope (hex)",
            _wrap_hex(vector.envelope_hex),
            "```",
            "",
        ]
    return "\n".join(parts).rstrip() + "\n"


def render_vectors_json() -> str:
    return json.dumps(vectors_as_json_objects(), indent=2) + "\n"


def render_more_vectors_json() -> str:
    return json.dumps(more_vectors(), indent=2) + "\n"


def render_more_vectors() -> str:
    """The hash-tree, account-id and status-details vectors, as PROTOCOL.md shows them."""
    found: Any = more_vectors()
    tree = found["hash_tree"]
    lines = [f"Hash tree, fanout {tree['fanout']}, depth {tree['depth']}:", "", "```text"]
    for row in tree["blocks"]:
        block = row["block"]["block"]
        lines += [
            f"block {block['originating_registry']} {block['serial_first']}-"
            f"{block['serial_last']} ({row['block']['account_id']})",
            f"  key input    {row['key_input_hex']}",
            f"  key          {row['key_hex']} = {row['key_decimal']}, leaf {row['leaf_index']}",
            "  digest input",
            *(f"    {line}" for line in _wrap_hex(row["digest_input_hex"]).splitlines()),
            f"  digest       {row['digest_hex']}",
        ]
    for leaf in tree["leaves"]:
        lines.append(f"leaf ({tree['depth']}, {leaf['index']}) {leaf['digest_hex']} "
                     f"({leaf['block_count']} blocks)")  # fmt: skip
    for child in tree["root_children"]:
        lines.append(f"node (1, {child['index']}) {child['digest_hex']} "
                     f"({child['block_count']} blocks)")  # fmt: skip
    root = tree["root"]
    lines += [f"root (0, 0) {root['digest_hex']} ({root['block_count']} blocks)", "```", ""]
    lines += ["Account ids (section 11):", "", "```text"]
    lines += [f"{a['registry']} {a['number']:>12}  check digits {a['check_digits']}  "
              f"{a['account_id']}" for a in found["account_ids"]]  # fmt: skip
    status = found["status_details"]
    lines += ["```", "", f"A refusal's `google.rpc.Status` (section 8): code {status['code']}, "
              f"gRPC {status['grpc_status']}, detail \"{status['detail']}\":", "", "```text",
              _wrap_hex(status["status_hex"]), "```", ""]  # fmt: skip
    return "\n".join(lines)


SECTIONS: dict[str, Callable[[], str]] = {
    "response-codes": render_codes,
    "test-vectors": render_vectors,
    "more-vectors": render_more_vectors,
}


def render_document(text: str) -> str:
    """``text`` with every generated section replaced by its current rendering."""
    for name, render in SECTIONS.items():
        pattern = re.compile(
            rf"(<!-- generated:{name}:begin -->\n).*?(<!-- generated:{name}:end -->)", re.DOTALL
        )
        if not pattern.search(text):
            raise ValueError(f"section markers for {name!r} are missing")
        body = render()
        text = pattern.sub(_replacement(body), text)
    return text


def _replacement(body: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        return match[1] + body + match[2]

    return replace


def stale_files() -> list[Path]:
    stale = []
    if PROTOCOL.read_text() != render_document(PROTOCOL.read_text()):
        stale.append(PROTOCOL)
    for path, render in ((VECTORS_JSON, render_vectors_json),
                         (MORE_VECTORS_JSON, render_more_vectors_json)):  # fmt: skip
        if not path.exists() or path.read_text() != render():
            stale.append(path)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the generated sections")
    mode.add_argument("--check", action="store_true", help="exit 1 if the docs are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run `make docs`)", file=sys.stderr)
        return 1 if stale else 0
    PROTOCOL.write_text(render_document(PROTOCOL.read_text()))
    VECTORS_JSON.write_text(render_vectors_json())
    MORE_VECTORS_JSON.write_text(render_more_vectors_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
