"""
L{tests.eventclock.EventClock}, the heap-ordered virtual clock of the
simulated network.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from .eventclock import EventClock


class EventClockTests(SynchronousTestCase):
    def test_interface(self) -> None:
        self.assertTrue(verifyObject(IReactorTime, EventClock()))

    def test_eachCallAtItsOwnTime(self) -> None:
        """
        Calls run in order of time, then of scheduling, each seeing its own
        time; calls they schedule within the span run too.
        """
        clock = EventClock()
        seen: list[tuple[str, float]] = []

        def note(name: str) -> None:
            seen.append((name, clock.seconds()))

        clock.callLater(0.3, note, "c")
        clock.callLater(0.1, note, "a")
        clock.callLater(0.1, note, "b")
        clock.callLater(0.2, lambda: clock.callLater(0.05, note, "nested"))
        clock.advance(1.0)
        self.assertEqual(seen, [("a", 0.1), ("b", 0.1), ("nested", 0.25), ("c", 0.3)])
        self.assertEqual(clock.seconds(), 1.0)

    def test_notYetDue(self) -> None:
        clock = EventClock()
        seen: list[float] = []
        clock.callLater(2.0, lambda: seen.append(clock.seconds()))
        clock.advance(1.0)
        self.assertEqual(seen, [])
        clock.advance(1.0)
        self.assertEqual(seen, [2.0])

    def test_cancelled(self) -> None:
        clock = EventClock()
        seen: list[str] = []
        call = clock.callLater(1.0, seen.append, "x")
        self.assertEqual(clock.getDelayedCalls(), [call])
        call.cancel()
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(2.0)
        self.assertEqual(seen, [])

    def test_resetAndDelay(self) -> None:
        """
        A call reset earlier or later, or delayed, runs at its new time,
        once.
        """
        clock = EventClock()
        seen: list[tuple[str, float]] = []
        early = clock.callLater(5.0, lambda: seen.append(("early", clock.seconds())))
        late = clock.callLater(1.0, lambda: seen.append(("late", clock.seconds())))
        delayed = clock.callLater(
            1.0, lambda: seen.append(("delayed", clock.seconds()))
        )
        early.reset(2.0)
        late.reset(3.0)
        delayed.delay(3.5)
        clock.advance(10.0)
        self.assertEqual(seen, [("early", 2.0), ("late", 3.0), ("delayed", 4.5)])
