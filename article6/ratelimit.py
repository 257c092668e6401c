"""Per-caller token buckets: how many requests each caller may make, at once and over time.

A caller's bucket holds up to ``burst`` tokens and refills at ``rate`` per second; each request
takes one. Pure: the clock is passed in, so the arithmetic is tested without sleeping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    rate: float  # requests per second, sustained
    burst: float  # requests at once after a quiet spell

    def __post_init__(self) -> None:
        assert self.rate > 0, self
        assert self.burst >= 1, self


class RateLimiter:
    """Buckets by caller; a caller with no limit of its own gets ``default`` (None: unlimited)."""

    def __init__(self, default: Limit | None, limits: Mapping[str, Limit] | None = None) -> None:
        self.default = default
        self.limits = dict(limits or {})
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, at)

    @property
    def active(self) -> bool:
        return self.default is not None or bool(self.limits)

    def admit(self, caller: str, now: float) -> bool:
        """Take a token for one request by ``caller`` at ``now`` (monotonic seconds)."""
        return self._take(caller, now, 1)

    def could_admit(self, caller: str, now: float) -> bool:
        """Whether ``caller`` has a request left at ``now``, taking nothing: a batch is turned
        away whole, before it is parsed, when not even its first envelope could be admitted."""
        return self._take(caller, now, 0)

    def _take(self, caller: str, now: float, taken: int) -> bool:
        limit = self.limits.get(caller, self.default)
        if limit is None:
            return True
        tokens, at = self._buckets.get(caller, (limit.burst, now))
        tokens = min(limit.burst, tokens + max(0.0, now - at) * limit.rate)
        admitted = tokens >= 1
        self._buckets[caller] = (tokens - taken if admitted else tokens, now)
        return admitted
