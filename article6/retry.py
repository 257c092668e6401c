"""Back-off for retried deliveries: exponential with jitter and a cap.

Durable senders (outboxes) keep the next attempt time in their database, so they need the
delay, not a retry loop: this computes it with tenacity's ``wait_exponential_jitter``.
A retry always resends the same message id (docs/PROTOCOL.md section 7).
"""

from __future__ import annotations

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
