"""
Rate limits for what arrives from the network: L{RateLimitedLog}, one
warning per period for a recurring problem, so that a flood of bad input
cannot flood the log; L{PerSourceBudget}, how much of something each
source may do.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger


class RateLimitedLog:
    """
    At most one log line per C{period} seconds for a recurring problem; the
    lines in between are counted and reported with the next one.
    """

    def __init__(self, log: Logger, clock: IReactorTime, period: float = 10.0):
        self._log = log
        self._clock = clock
        self._period = period
        self._last: float | None = None
        self._suppressed = 0

    def info(self, format: str, **fields: object) -> None:
        """
        As L{warn}, at the info level: for what is expected now and then.
        """
        if self._due():
            self._log.info(
                format + " ({suppressed} similar suppressed)",
                suppressed=self._suppressed,
                **fields,
            )
            self._suppressed = 0

    def warn(self, format: str, **fields: object) -> None:
        if self._due():
            self._log.warn(
                format + " ({suppressed} similar suppressed)",
                suppressed=self._suppressed,
                **fields,
            )
            self._suppressed = 0

    def failure(self, format: str, **fields: Any) -> None:
        """
        Log the exception being handled, with its traceback, if one is due.
        """
        if self._due():
            self._log.failure(
                format + " ({suppressed} similar suppressed)",
                suppressed=self._suppressed,
                **fields,
            )
            self._suppressed = 0

    def _due(self) -> bool:
        now = self._clock.seconds()
        if self._last is not None and now - self._last < self._period:
            self._suppressed += 1
            return False
        self._last = now
        return True


class PerSourceBudget:
    """
    A token bucket for each source (an IP address, say): each may spend
    C{burst} at once and earns C{rate} a second back.  At most C{sources}
    buckets are kept; beyond that, sources with a full bucket are
    forgotten (they lose nothing), and if none is, a new source gets no
    budget until some is: a flood from many addresses stays bounded too.
    """

    def __init__(
        self, clock: IReactorTime, burst: float, rate: float, sources: int = 1024
    ) -> None:
        self._clock = clock
        self._burst = burst
        self._rate = rate
        self._sources = sources
        self._buckets: dict[str, tuple[float, float]] = {}

    def spend(self, source: str) -> bool:
        """
        Take one token from C{source}'s bucket.

        @return: whether there was one to take.
        """
        now = self._clock.seconds()
        if source not in self._buckets and len(self._buckets) >= self._sources:
            self._forgetFull(now)
            if len(self._buckets) >= self._sources:
                return False
        tokens, then = self._buckets.get(source, (self._burst, now))
        tokens = min(self._burst, tokens + (now - then) * self._rate)
        if tokens < 1:
            self._buckets[source] = (tokens, now)
            return False
        self._buckets[source] = (tokens - 1, now)
        return True

    def _forgetFull(self, now: float) -> None:
        for source, (tokens, then) in list(self._buckets.items()):
            if tokens + (now - then) * self._rate >= self._burst:
                del self._buckets[source]
