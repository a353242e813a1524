"""
L{EventClock}: a virtual clock, as L{twisted.internet.task.Clock}, that
keeps its calls in a heap and runs each at its own exact time.

C{Clock} sorts its whole list of calls at every C{callLater} and runs every
call due within an C{advance} at the advance's end time; with thousands of
nodes in one process (bench/simulate.py) that sorting dominates, and a
packet's 2 ms latency would be rounded up to the step.  Here scheduling is
O(log n) and time moves from event to event.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from itertools import count

from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer


@implementer(IReactorTime)
class EventClock:
    """
    Virtual time: calls run in order of their time, then of scheduling.
    """

    def __init__(self) -> None:
        self.rightNow = 0.0
        # (time, sequence, call); an entry whose call was cancelled, has
        # run, or was reset is skipped (or pushed again) when it comes up.
        self._heap: list[tuple[float, int, DelayedCall]] = []
        self._sequence = count()

    def seconds(self) -> float:
        return self.rightNow

    def callLater(
        self,
        delay: float,
        callable: Callable[..., object],
        *args: object,
        **kwargs: object,
    ) -> DelayedCall:
        call = DelayedCall(
            self.rightNow + delay,
            callable,
            args,
            kwargs,
            lambda call: None,
            self._push,
            self.seconds,
        )
        self._push(call)
        return call

    def getDelayedCalls(self) -> list[DelayedCall]:
        live = {id(call): call for _, _, call in self._heap if call.active()}
        return list(live.values())

    def advance(self, amount: float) -> None:
        """
        Move C{amount} seconds on, running every call due meanwhile at its
        own time (calls they schedule within the span run too).
        """
        self.advanceTo(self.rightNow + amount)

    def advanceTo(self, when: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= when:
            time, _, call = heapq.heappop(heap)
            if call.cancelled or call.called:
                continue
            if call.getTime() != time:
                # Reset or delayed since: it runs at its new time.
                if call.getTime() > time:
                    self._push(call)
                continue
            self.rightNow = max(self.rightNow, time)
            call.called = 1
            call.func(*call.args, **call.kw)
        self.rightNow = max(self.rightNow, when)

    def _push(self, call: DelayedCall) -> None:
        heapq.heappush(self._heap, (call.getTime(), next(self._sequence), call))
