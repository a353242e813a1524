"""
What a service's check results make of its status: the Go Sidecar's rules
(UNKNOWN until the first result, UNHEALTHY after C{fall} failures in a row,
ALIVE again on a success) with flap damping, so that a service that keeps
changing its mind is held UNHEALTHY instead of being announced at every
check.  Pure: time is passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sidecar.catalog import Status


@dataclass(frozen=True)
class Damping:
    """
    Route-flap damping, as routers do it: every change between ALIVE and
    UNHEALTHY adds C{penalty}, which halves every C{halfLife} seconds.  At
    C{suppress} the service is held UNHEALTHY; it is released once the
    penalty has fallen to C{reuse} (and its checks pass).
    """

    penalty: float = 1.0
    suppress: float = 3.0
    reuse: float = 1.5
    halfLife: float = 30.0


DAMPING = Damping()


class HealthMachine:
    """
    One service's health.

    @ivar status: the status to publish: L{Status.UNKNOWN}, L{Status.ALIVE}
        or L{Status.UNHEALTHY}.
    @ivar suppressed: whether flapping holds it UNHEALTHY.
    """

    def __init__(self, fall: int = 1, damping: Damping = DAMPING) -> None:
        if fall < 1:
            raise ValueError(f"fall must be at least 1, not {fall}")
        self._fall = fall
        self._damping = damping
        self._failures = 0
        self._raw = Status.UNKNOWN
        self._penalty = 0.0
        self._penaltyAt = 0.0
        self.suppressed = False
        self.status = Status.UNKNOWN

    def record(self, healthy: bool, now: float) -> bool:
        """
        Take one check result, at C{now} seconds.

        @return: whether the published C{status} changed.
        """
        before = self._raw
        if healthy:
            self._failures = 0
            self._raw = Status.ALIVE
        else:
            self._failures += 1
            if self._failures >= self._fall:
                self._raw = Status.UNHEALTHY
        penalty = self._decayed(now)
        if {before, self._raw} == {Status.ALIVE, Status.UNHEALTHY}:
            penalty += self._damping.penalty
        self._penalty, self._penaltyAt = penalty, now
        if penalty >= self._damping.suppress:
            self.suppressed = True
        elif self.suppressed and penalty <= self._damping.reuse:
            self.suppressed = False
        published = Status.UNHEALTHY if self.suppressed else self._raw
        changed = published is not self.status
        self.status = published
        return changed

    def _decayed(self, now: float) -> float:
        elapsed = max(0.0, now - self._penaltyAt)
        return self._penalty * math.pow(0.5, elapsed / self._damping.halfLife)
