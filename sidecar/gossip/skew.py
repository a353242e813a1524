"""
L{ClockSkews}: how far each member's clock is from ours, measured from the
records it sends about itself.

A record's C{Updated} is the origin's clock when it (re)announced the
record; this node's clock when the record arrives, minus that stamp, is
the offset between the two clocks (ours minus theirs) plus the time the
record spent on the way: in transit, and waiting in queues or in a peer's
catalog before being sent on.  That delay is never negative, so the
smallest difference seen is the best bound on the offset.  A member
refreshes its records every few seconds and sends them straight to us now
and then, so over a window of a couple of minutes the minimum is within a
few hundred milliseconds of the true offset.  Keeping the minimum of the
current and the previous window, rather than of all time, lets the
estimate follow a clock that is stepped: at once when it is stepped ahead
(a smaller difference), within two windows when it is stepped back.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from sidecar.problems import CLOCK_SKEW, Problems

NANOSECONDS = 1_000_000_000


@dataclass
class _Window:
    started: float
    current: int
    previous: int | None = None

    def smallest(self) -> int:
        return (
            self.current if self.previous is None else min(self.current, self.previous)
        )


class ClockSkews:
    """
    Each member's clock offset, from records that came straight from it.

    @ivar warnAbove: an offset past this many seconds, either way, is
        warned about, once until it comes back under.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        window: float = 120.0,
        warnAbove: float = 5.0,
        problems: Problems | None = None,
    ) -> None:
        """
        @param problems: where a member whose clock is far off is shown,
            until it comes back under C{warnAbove} or is forgotten.
        """
        self._clock = clock
        self._problems = Problems(clock) if problems is None else problems
        self._window = window
        self.warnAbove = warnAbove
        self._windows: dict[str, _Window] = {}
        self._warned: set[str] = set()

    def observe(self, hostname: str, updated: int, arrived: int) -> None:
        """
        A record of C{hostname}, stamped C{updated} by it, reached this node
        at C{arrived} (both nanoseconds on their clocks), sent by that host
        itself.
        """
        delay = arrived - updated
        now = self._clock.seconds()
        window = self._windows.get(hostname)
        if window is None:
            window = self._windows[hostname] = _Window(now, delay)
        elif now - window.started >= self._window:
            recent = now - window.started < 2 * self._window
            window.previous = window.current if recent else None
            window.started, window.current = now, delay
        else:
            window.current = min(window.current, delay)
        self._warnIfFar(hostname)

    def offset(self, hostname: str) -> int:
        """
        How many nanoseconds our clock is ahead of C{hostname}'s (negative:
        behind), at most: 0 when it is not known.
        """
        window = self._windows.get(hostname)
        return 0 if window is None else window.smallest()

    def skew(self, hostname: str) -> float | None:
        """
        C{hostname}'s clock minus ours, in seconds, at least (it is behind
        by this much or less); L{None} when it has sent nothing of its own.
        """
        window = self._windows.get(hostname)
        return None if window is None else -window.smallest() / NANOSECONDS

    def forget(self, hostname: str) -> None:
        """
        C{hostname} is gone: stop tracking it.
        """
        self._windows.pop(hostname, None)
        self._warned.discard(hostname)
        self._problems.clear(CLOCK_SKEW, hostname)

    def _warnIfFar(self, hostname: str) -> None:
        skew = self.skew(hostname)
        assert skew is not None
        if abs(skew) <= self.warnAbove:
            self._warned.discard(hostname)
            self._problems.clear(CLOCK_SKEW, hostname)
            return
        self._problems.raise_(
            CLOCK_SKEW,
            hostname,
            f"the clock of {hostname} is at least {abs(skew):.1f} s "
            f"{'behind' if skew < 0 else 'ahead of'} ours",
        )
        if hostname not in self._warned:
            self._warned.add(hostname)
            self.log.warn(
                "the clock of {member} is {skew:.1f} s off ours"
                " (negative: behind); its services still live and expire"
                " by this node's clock",
                member=hostname,
                skew=skew,
            )
