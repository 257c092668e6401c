"""A circuit breaker for deliveries to one peer.

Closed, messages go as they come. After ``failures`` batches in a row fail at the transport
(the peer is down, silent or unreachable: no answer at all, as opposed to an answer that
refuses), it opens: nothing is sent to the peer for ``open_seconds``, so the sender stops
paying a full RPC deadline per message to a peer that is not there. Then it is half open: one
probe goes; an answer closes it, a failure opens it again for twice as long, up to
``max_open_seconds``. Its messages meanwhile stay in the outbox, due, and go once it closes.

Pure state with an injected clock: the delivery loop asks, and tells it what happened.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from article6.limits import STILL_FAILING_LOG_SECONDS


class BreakerState(enum.IntEnum):
    """Exported as a gauge: 0 closed, 1 half open, 2 open."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True)
class BreakerSettings:
    failures: int = 3  # batches failing in a row that open it
    open_seconds: float = 1.0  # the first pause; doubled after each failed probe
    max_open_seconds: float = 60.0

    def __post_init__(self) -> None:
        assert self.failures >= 1, self
        assert 0 < self.open_seconds <= self.max_open_seconds, self


@dataclass
class Breaker:
    settings: BreakerSettings = field(default_factory=BreakerSettings)
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = BreakerState.CLOSED
    failed_in_row: int = 0
    pause: float = 0.0  # the current open period
    open_until: float = 0.0
    failing_since: float | None = None  # when the first failure of this run was seen
    probing: bool = False  # a probe is out (half open)
    warned_at: float = -STILL_FAILING_LOG_SECONDS  # when ``record`` last returned a warning

    def allows(self) -> bool:
        """Whether a batch may go now; half open, only one probe at a time."""
        if self.state is BreakerState.OPEN and self.clock() >= self.open_until:
            self.state = BreakerState.HALF_OPEN
        if self.state is BreakerState.CLOSED:
            return True
        return self.state is BreakerState.HALF_OPEN and not self.probing

    def resting(self) -> bool:
        """Open, and not yet time to probe: nothing should be queued or claimed for it."""
        return self.state is BreakerState.OPEN and self.clock() < self.open_until

    def probe(self) -> bool:
        """Called when a batch goes: True if it is a probe (it should carry one message)."""
        if self.state is BreakerState.HALF_OPEN:
            assert not self.probing, self
            self.probing = True
            return True
        return False

    def answered(self) -> bool:
        """The peer answered (whatever it said). True if this closed the breaker."""
        was_open = self.state is not BreakerState.CLOSED
        self.state, self.failed_in_row, self.pause = BreakerState.CLOSED, 0, 0.0
        self.probing, self.failing_since = False, None
        return was_open

    def failed(self) -> bool:
        """A batch got no answer at all. True if this opened the breaker."""
        now = self.clock()
        if self.failing_since is None:
            self.failing_since = now
        self.failed_in_row += 1
        was = self.state
        if was is BreakerState.HALF_OPEN or (
            was is BreakerState.CLOSED and self.failed_in_row >= self.settings.failures
        ):
            self.pause = min(
                self.settings.max_open_seconds,
                2 * self.pause if self.pause else self.settings.open_seconds,
            )
            self.state, self.open_until, self.probing = BreakerState.OPEN, now + self.pause, False
        return was is BreakerState.CLOSED and self.state is BreakerState.OPEN

    def failing_for(self) -> float:
        """Seconds since this run of failures began (0 when the peer answers)."""
        return 0.0 if self.failing_since is None else self.clock() - self.failing_since

    def record(self, answered: bool, reason: str, peer: str) -> str | None:
        """Tell it how a batch to ``peer`` went; a line worth a warning log, when the peer
        started failing, is still failing (every ``STILL_FAILING_LOG_SECONDS``) or is back."""
        if answered:
            failing_for = self.failing_for()
            if self.answered():
                return f"delivery to {peer} restored after {failing_for:.0f} s"
            return None
        now, opened = self.clock(), self.failed()
        if opened:  # the first opening of a run of failures
            self.warned_at = now
            return f"delivery to {peer} failing ({reason}); its messages wait in the outbox"
        if self.state is BreakerState.CLOSED or now - self.warned_at < STILL_FAILING_LOG_SECONDS:
            return None
        self.warned_at = now
        return f"delivery to {peer} still failing after {self.failing_for():.0f} s ({reason})"
