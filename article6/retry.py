"""Back-off for retried deliveries: exponential with jitter and a cap.

Durable senders (outboxes) keep the next attempt time in their database, so they need the
delay, not a retry loop: this computes it with tenacity's ``wait_exponential_jitter``.
A retry always resends the same message id (docs/PROTOCOL.md section 7).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tenacity import RetryCallState, wait_exponential_jitter


class Backoff:
    def __init__(self, initial_seconds: float, maximum_seconds: float) -> None:
        self._wait = wait_exponential_jitter(
            multiplier=initial_seconds, max=maximum_seconds, jitter=initial_seconds
        )

    def delay_seconds(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (1 for the first retry)."""
        # wait strategies read only attempt_number from the state.
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        return float(self._wait(state))


class RetryPolicy:
    """When a failed message goes again, and when it is given up (a dead letter): after
    ``give_up_after_seconds`` since it was written (registries' outages last hours), or after
    ``max_attempts`` attempts if that is set (0: no limit by count)."""

    def __init__(
        self,
        initial_seconds: float,
        maximum_seconds: float,
        give_up_after_seconds: float,
        max_attempts: int = 0,
    ) -> None:
        assert give_up_after_seconds > 0, give_up_after_seconds
        assert max_attempts >= 0, max_attempts
        self.backoff = Backoff(initial_seconds, maximum_seconds)
        self.give_up_after = timedelta(seconds=give_up_after_seconds)
        self.max_attempts = max_attempts

    def next_attempt(self, attempts: int, written_at: datetime, now: datetime) -> datetime | None:
        """After ``attempts`` failed attempts (1 for the first), when to try again; None to
        give up."""
        if self.max_attempts and attempts >= self.max_attempts:
            return None
        if now - written_at >= self.give_up_after:
            return None
        return now + timedelta(seconds=self.backoff.delay_seconds(attempts))
