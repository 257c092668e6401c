"""The circuit breaker and the retry policy: when a peer is given a rest, and a message up."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from article6.batch import answered
from article6.breaker import Breaker, BreakerSettings, BreakerState
from article6.codes import Code, Refusal
from article6.config_check import ConfigError
from article6.pki import init_pki
from article6.pump import DeliveryConfig
from article6.ratelimit import Limit
from article6.retry import RetryPolicy
from article6.status import Failure
from article6.v1 import envelope_pb2
from gateway.__main__ import main as hub_main
from gateway.config import load_config


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def state(b: Breaker) -> BreakerState:
    return b.state


def breaker(clock: Clock) -> Breaker:
    return Breaker(BreakerSettings(failures=3, open_seconds=1.0, max_open_seconds=4.0), clock)


def test_three_silent_batches_open_it_and_one_probe_at_a_time_tries_again() -> None:
    clock = Clock()
    b = breaker(clock)
    assert not b.failed()
    assert not b.failed()
    assert b.allows()  # two failures are not yet a pattern
    assert b.failed()  # the third opens it
    assert state(b) is BreakerState.OPEN
    assert not b.allows()
    clock.now += 1.0
    assert b.allows()
    assert state(b) is BreakerState.HALF_OPEN
    assert b.probe()
    assert not b.allows()  # one probe at a time
    assert not b.failed()  # the probe failed: open again, for twice as long
    clock.now += 1.5
    assert not b.allows()
    clock.now += 0.5
    assert b.allows()
    assert b.probe()
    assert b.answered()  # the probe was answered: closed
    assert state(b) is BreakerState.CLOSED
    assert b.allows()
    assert not b.probe()


def test_the_pause_doubles_up_to_its_cap_and_resets_once_answered() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.failed()
    pauses = []
    for _ in range(5):
        pauses.append(b.pause)
        clock.now += b.pause
        assert b.allows()
        assert b.probe()
        b.failed()
    assert pauses == [1.0, 2.0, 4.0, 4.0, 4.0]
    b.answered()
    assert b.pause == 0.0
    assert b.failing_for() == 0.0


def test_an_answer_between_failures_keeps_it_closed() -> None:
    b = breaker(Clock())
    for _ in range(10):
        b.failed()
        b.failed()
        b.answered()
    assert state(b) is BreakerState.CLOSED


def test_it_warns_when_a_peer_starts_failing_rarely_while_it_fails_and_when_it_is_back() -> None:
    clock = Clock()
    b = breaker(clock)
    said = [b.record(False, "UNAVAILABLE: down", "CHE01") for _ in range(3)]
    assert said[:2] == [None, None]
    assert said[2] == (
        "delivery to CHE01 failing (UNAVAILABLE: down); its messages wait in the outbox"
    )
    clock.now += 60
    assert b.allows()
    assert b.probe()
    assert b.record(False, "UNAVAILABLE: down", "CHE01") is None  # not every probe
    clock.now += 600
    assert b.allows()
    assert b.probe()
    assert b.record(False, "UNAVAILABLE: down", "CHE01") == (
        "delivery to CHE01 still failing after 660 s (UNAVAILABLE: down)"
    )
    clock.now += 10
    assert b.record(True, "", "CHE01") == "delivery to CHE01 restored after 670 s"
    assert b.record(True, "", "CHE01") is None


def test_silence_is_no_answer_but_a_refusal_is_one() -> None:
    silent = Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "", None)
    down = Failure(grpc.StatusCode.UNAVAILABLE, "", None)
    refused = Failure(grpc.StatusCode.UNAVAILABLE, "", Refusal(Code.RATE_LIMITED, "slow down"))
    broken = Failure(grpc.StatusCode.INTERNAL, "", None)
    assert not answered([silent, down])
    assert answered([silent, refused])
    assert answered([broken])
    assert answered([envelope_pb2.Envelope()])
    assert not answered([])


WRITTEN = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_message_is_retried_through_a_long_outage_then_given_up() -> None:
    policy = RetryPolicy(0.2, 30.0, give_up_after_seconds=72 * 3600)
    hours = [1, 12, 48, 71]
    for hour in hours:
        now = WRITTEN + timedelta(hours=hour)
        retry_at = policy.next_attempt(10_000, WRITTEN, now)
        assert retry_at is not None
        assert now < retry_at <= now + timedelta(seconds=30 + 0.2)
    assert policy.next_attempt(10_000, WRITTEN, WRITTEN + timedelta(hours=72)) is None


@given(attempts=st.integers(1, 10_000))
def test_a_count_limit_when_set_gives_up_at_that_count(attempts: int) -> None:
    policy = RetryPolicy(0.2, 30.0, give_up_after_seconds=3600, max_attempts=12)
    retry_at = policy.next_attempt(attempts, WRITTEN, WRITTEN)
    assert (retry_at is None) == (attempts >= 12)


def test_an_open_breaker_rests_until_its_pause_is_over() -> None:
    clock = Clock()
    b = breaker(clock)
    assert not b.resting()
    for _ in range(3):
        b.failed()
    assert b.resting()  # nothing is queued or claimed for it meanwhile
    clock.now += 1.0
    assert not b.resting()  # time to probe, even before anything asks whether it allows


MINIMAL_HUB = """
[hub]
registry_id = "HUB"
listen = "127.0.0.1:7000"
admin_listen = "127.0.0.1:7001"
database = "hub.db"
ca_certificate = "pki/ca.crt"
tls_certificate = "pki/HUB/tls.crt"
tls_key = "pki/HUB/tls.key"
signing_key = "pki/HUB/signing.key"
keys = "pki/keys.toml"
"""


def hub_config(folder: Path, text: str) -> Path:
    """A hub config beside a PKI holding the files it names."""
    if not (folder / "pki").exists():
        init_pki(folder / "pki", ["HUB"])
    path = folder / "hub.toml"
    path.write_text(text)
    return path


def test_a_hub_config_without_limits_gets_the_defaults(tmp_path: Path) -> None:
    path = hub_config(tmp_path, MINIMAL_HUB)
    config = load_config(path)
    assert config.rate_limit == Limit(1000, 2000)
    assert (config.handshake_timeout_seconds, config.max_connections) == (5.0, 4096)
    assert config.delivery.give_up_after_seconds == 72 * 3600
    assert config.delivery.max_attempts == 0
    path.write_text(MINIMAL_HUB + "rate_limit_per_second = 0\n")
    assert load_config(path).rate_limit is None  # 0 turns it off, as documented


@pytest.mark.parametrize(
    "settings",
    [{"batch_size": 0}, {"batch_size": 257}, {"lanes": 0}, {"give_up_after_seconds": 0},
     {"backoff_initial_seconds": 5, "backoff_max_seconds": 1}, {"breaker_failures": 0},
     {"breaker_open_seconds": 10, "breaker_max_open_seconds": 1}, {"max_attempts": -1}],
)  # fmt: skip
def test_delivery_settings_that_cannot_work_are_refused_naming_the_key(
    settings: dict[str, float],
) -> None:
    with pytest.raises(ValueError, match=r"\[delivery\] "):
        DeliveryConfig(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(("change", "said"), [
    (lambda t: t.replace("admin_listen", "admin_lisen"), r"\[hub\] unknown keys: admin_lisen"),
    (lambda t: t + "\n[delivry]\nlanes = 2\n", r"unknown tables: delivry"),
    (lambda t: t + '\n[delivery]\nbackoff_max_seconds = "sixty"\n',
     r"\[delivery\] backoff_max_seconds must be a number >= 0, not 'sixty'"),
    (lambda t: t + "\n[delivery]\nlanes = 0\n", r"\[delivery\] lanes and breaker_failures"),
    (lambda t: t.replace("HUB/tls.key", "HUB/tls.kee"), r"\[hub\] tls_key: no such file"),
    (lambda t: t.replace('registry_id = "HUB"', 'registry_id = "HUB2"'),
     r"registry_id HUB2 but tls_certificate .* is HUB's"),
    (lambda t: t + "\n[[registries]]\nregistry_id = \"GHA01\"\nendpont = \"x\"\n",
     r"\[registries\] unknown keys: endpont"),
    (lambda t: t + "\n= broken\n", r"not valid TOML"),
])  # fmt: skip
def test_each_mistake_in_a_hub_config_names_the_file_and_the_key(
    tmp_path: Path, change: Callable[[str], str], said: str
) -> None:
    path = hub_config(tmp_path, change(MINIMAL_HUB))
    with pytest.raises(ConfigError, match=said) as refused:
        load_config(path)
    assert str(refused.value).startswith(f"{path}: ")


def test_the_hub_checks_its_config_and_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = hub_config(tmp_path, MINIMAL_HUB)
    assert hub_main(["check-config", "--config", str(good)]) == 0
    assert "valid (HUB" in capsys.readouterr().out
    bad = hub_config(tmp_path, MINIMAL_HUB.replace("listen =", "lissen =", 1))
    assert hub_main(["check-config", "--config", str(bad)]) == 2
    said = capsys.readouterr().err
    assert said.count("\n") == 1
    assert said.startswith("article6-hub: ")
