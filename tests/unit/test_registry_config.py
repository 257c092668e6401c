"""A registry's config file is checked whole when it is read: each mistake an operator can
make stops the command with one line naming the file and the key or path, exit status 2, and
no traceback; ``check-config`` says a good file is valid."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from demo.network import INTERNATIONAL, Network
from international_registry.__main__ import main as international
from party_registry_stub.__main__ import main as registry


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Network:
    network = Network(tmp_path_factory.mktemp("configs"), registries=("GHA01", INTERNATIONAL))
    network.write()
    return network


def check(
    main: Callable[[list[str]], int], config: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    status = main(["check-config", "--config", str(config)])
    captured = capsys.readouterr()
    return status, (captured.err or captured.out).strip()


def edited(network: Network, registry: str, tmp_path: Path, change: Callable[[str], str]) -> Path:
    original = network.config(registry)
    copy = original.with_name(f"edited-{tmp_path.name}.toml")
    copy.write_text(change(original.read_text()))
    return copy


def test_a_good_config_is_valid(network: Network, capsys: pytest.CaptureFixture[str]) -> None:
    status, said = check(registry, network.config("GHA01"), capsys)
    assert status == 0
    assert said.endswith(f"valid (GHA01, listening on {said.split('listening on ')[1]}")
    assert check(international, network.config(INTERNATIONAL), capsys)[0] == 0


MISTAKES = [
    ("GHA01", lambda t: t.replace("listen =", "listn =", 1), r"\[registry\] unknown keys: listn"),
    ("GHA01", lambda t: t + "\n[delivry]\nmax_attempts = 3\n", r"unknown tables: delivry"),
    ("GHA01", lambda t: t.replace("backoff_max_seconds = 2.0", 'backoff_max_seconds = "sixty"'),
     r"\[delivery\] backoff_max_seconds must be a number >= 0, not 'sixty'"),
    ("GHA01", lambda t: t.replace('registry_id = "GHA01"', 'registry_id = "GHA02"'),
     r"registry_id GHA02 but tls_certificate .* is GHA01's"),
    ("GHA01", lambda t: t.replace("tls.key", "tls.kee"), r"\[registry\] tls_key: no such file"),
    ("GHA01", lambda t: t.replace('hub_id = "HUB"\n', ""), r"\[registry\] hub_id is missing"),
    ("GHA01", lambda t: t + "\nnot toml at all\n", r"not valid TOML"),
    (INTERNATIONAL, lambda t: t.replace("admin_listen", "admin_lisen"),
     r"\[international\] unknown keys: admin_lisen"),
    (INTERNATIONAL, lambda t: t.replace("smtp_port =", "smtp_prot ="),
     r"\[portal\] unknown keys: smtp_prot"),
]  # fmt: skip


@pytest.mark.parametrize(("registry_id", "change", "said"), MISTAKES)
def test_each_mistake_is_one_line_naming_it(
    network: Network, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    registry_id: str, change: Callable[[str], str], said: str,
) -> None:  # fmt: skip
    main = international if registry_id == INTERNATIONAL else registry
    config = edited(network, registry_id, tmp_path, change)
    status, message = check(main, config, capsys)
    assert status == 2
    assert "\n" not in message
    assert message.startswith(f"article6-{'ir' if main is international else 'registry'}: ")
    assert str(config) in message
    assert re.search(said, message), message


def test_a_missing_config_file_is_named(
    network: Network, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = network.folder / "nowhere.toml"
    assert check(registry, missing, capsys) == (2, f"article6-registry: {missing}: no such file")
