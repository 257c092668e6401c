"""Every console script answers --version with its release and protocol version, and --help
with a description of what it is, in plain text (no reST markup)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from article6.cli import main as article6
from gateway.__main__ import main as hub
from gateway.admin_cli import main as admin
from international_registry.__main__ import main as international
from mechanism_registry_adapter.__main__ import main as mechanism
from party_registry_stub.__main__ import main as registry

SCRIPTS: dict[str, Callable[[list[str]], int]] = {
    "article6": article6, "article6-hub": hub, "article6-admin": admin,
    "article6-registry": registry, "article6-ir": international,
    "article6-mechanism": mechanism,
}  # fmt: skip


@pytest.mark.parametrize("prog", sorted(SCRIPTS))
def test_version_and_help(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        SCRIPTS[prog](["--version"])
    assert done.value.code == 0
    assert re.fullmatch(rf"{prog} \S+ \(protocol \d+\.\d+\)\n", capsys.readouterr().out)
    with pytest.raises(SystemExit) as done:
        SCRIPTS[prog](["--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert f"usage: {prog}" in shown
    assert "``" not in shown


def test_each_registry_says_what_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    said = {}
    for prog in ("article6-registry", "article6-ir", "article6-mechanism"):
        with pytest.raises(SystemExit):
            SCRIPTS[prog](["--help"])
        said[prog] = capsys.readouterr().out.split("\n\n")[1]
    assert len(set(said.values())) == 3, said
