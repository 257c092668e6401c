"""Refusals in the log: each (peer, code) at once, then one summing line per interval."""

from __future__ import annotations

import logging

import pytest

from article6.codes import Code, Refusal
from article6.limits import REFUSAL_LOG_PAIRS
from article6.refusals import RefusalLog


def test_the_first_refusal_of_a_peer_and_code_is_logged_and_the_rest_summed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    refusals = RefusalLog(logging.getLogger("test.refusals"), inbound=True, clock=lambda: now[0])
    suspended = Refusal(Code.REGISTRY_SUSPENDED, "CHE01 is suspended")
    with caplog.at_level(logging.WARNING, "test.refusals"):
        for second in range(0, 75, 5):  # one every 5 s for 75 s
            now[0] = float(second)
            refusals(suspended, "CHE01")
        refusals(Refusal(Code.CLOCK_SKEW, "11 minutes off"), "CHE01")
        refusals(Refusal(Code.CERTIFICATE_IDENTITY_MISMATCH), None)
    assert [r.getMessage() for r in caplog.records] == [
        "refused a message from CHE01: 1040 REGISTRY_SUSPENDED: CHE01 is suspended",
        "refused 12 messages from CHE01 in the last 60 s, the last: "
        "1040 REGISTRY_SUSPENDED: CHE01 is suspended",
        "refused a message from CHE01: 1036 CLOCK_SKEW: 11 minutes off",
        "refused a message from an unidentified caller: 1027 CERTIFICATE_IDENTITY_MISMATCH",
    ]
    assert [r.__dict__["peer"] for r in caplog.records] == ["CHE01", "CHE01", "CHE01", None]
    assert [r.__dict__["codes"] for r in caplog.records][:3] == [[1040], [1040], [1036]]


def test_refusals_by_a_peer_say_who_refused_and_memory_stays_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusals = RefusalLog(logging.getLogger("test.refusals"), inbound=False)
    with caplog.at_level(logging.WARNING, "test.refusals"):
        refusals(Refusal(Code.SIGNATURE_INVALID, "no key"), "hub")
        for n in range(REFUSAL_LOG_PAIRS + 10):
            refusals(Refusal(Code.CLOCK_SKEW), f"R{n}")
    assert caplog.records[0].getMessage() == (
        "hub refused a message of ours: 1023 SIGNATURE_INVALID: no key"
    )
    assert len(refusals._seen) == REFUSAL_LOG_PAIRS
