"""
L{RateLimitedLog}: one warning per period for a recurring problem, so that
a flood of bad input cannot flood the log.
"""

from __future__ import annotations

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

    def warn(self, format: str, **fields: object) -> None:
        now = self._clock.seconds()
        if self._last is not None and now - self._last < self._period:
            self._suppressed += 1
            return
        self._log.warn(
            format + " ({suppressed} similar suppressed)",
            suppressed=self._suppressed,
            **fields,
        )
        self._last, self._suppressed = now, 0
