"""Refusals in the log, by peer and code, without one line per message.

A refusal (a numbered code: bad signature, suspended registry, stale message, ...) is what an
operator looks for when ``A6RefusalSpike`` fires or a registry says its messages go nowhere, so
each one names the peer and the code. A misconfigured peer is refused thousands of times an
hour, though, so the first refusal of a (peer, code) pair is logged at once and the rest are
counted and summed up in one line at most every ``REFUSAL_LOG_SECONDS`` (when the next one
comes; the metrics hold the exact counts). Both directions use it: refusals this process sends
(``inbound``) and refusals its peers send back (``outbound``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from article6.codes import Refusal
from article6.limits import REFUSAL_DETAIL_CHARS, REFUSAL_LOG_PAIRS, REFUSAL_LOG_SECONDS

OnRefusal = Callable[[Refusal, "str | None"], None]


@dataclass
class _Seen:
    logged_at: float
    since: int = 0  # refusals since the last line


class RefusalLog:
    """Call it with each refusal and the peer's registry id (None: not identified)."""

    def __init__(
        self,
        log: logging.Logger,
        inbound: bool,
        clock: Callable[[], float] = time.monotonic,
        interval: float = REFUSAL_LOG_SECONDS,
    ) -> None:
        self.log, self.inbound, self.clock, self.interval = log, inbound, clock, interval
        self._seen: dict[tuple[str, int], _Seen] = {}

    def __call__(self, refusal: Refusal, peer: str | None) -> None:
        name, now = peer or "an unidentified caller", self.clock()
        key = (name, refusal.code.value)
        seen = self._seen.get(key)
        if seen is not None and now - seen.logged_at < self.interval:
            seen.since += 1
            return
        if seen is None and len(self._seen) >= REFUSAL_LOG_PAIRS:
            del self._seen[next(iter(self._seen))]
        self._seen[key] = _Seen(now)
        self.log.warning(
            self._line(name, refusal) if seen is None else self._summary(name, refusal, seen, now),
            extra={"peer": peer, "codes": [refusal.code.value]},
        )

    def _line(self, peer: str, refusal: Refusal) -> str:
        what = str(refusal)[:REFUSAL_DETAIL_CHARS]
        if self.inbound:
            return f"refused a message from {peer}: {what}"
        return f"{peer} refused a message of ours: {what}"

    def _summary(self, peer: str, refusal: Refusal, seen: _Seen, now: float) -> str:
        count, what = seen.since + 1, str(refusal)[:REFUSAL_DETAIL_CHARS]
        window = f"in the last {now - seen.logged_at:.0f} s"
        if self.inbound:
            return f"refused {count} messages from {peer} {window}, the last: {what}"
        return f"{peer} refused {count} messages of ours {window}, the last: {what}"


def heard_by(*listeners: OnRefusal | None) -> OnRefusal:
    """One listener calling each of ``listeners`` (metrics, the log) in turn."""
    present = [listener for listener in listeners if listener is not None]

    def hear(refusal: Refusal, peer: str | None) -> None:
        for listener in present:
            listener(refusal, peer)

    return hear
