"""
L{ClockSkews}: a member's clock offset from the smallest delay its own
records show over a sliding window, warned about once past a threshold.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from sidecar.gossip.skew import ClockSkews
from sidecar.problems import CLOCK_SKEW, Problems

SECOND = 1_000_000_000


class ClockSkewsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.logged: list[dict[str, object]] = []
        self.problems = Problems(self.clock)
        self.skews = ClockSkews(
            self.clock, window=120.0, warnAbove=5.0, problems=self.problems
        )
        self.skews.log = Logger(observer=self.logged.append)

    def arrive(self, hostname: str, delay: float, skew: float) -> None:
        """
        A record of C{hostname}, whose clock is C{skew} s off ours, stamped
        when it was sent and arriving C{delay} s later.
        """
        now = round(self.clock.seconds() * SECOND)
        updated = now - round(delay * SECOND) + round(skew * SECOND)
        self.skews.observe(hostname, updated, now)

    def test_unknownUntilHeardFrom(self) -> None:
        self.assertIsNone(self.skews.skew("peer"))
        self.assertEqual(self.skews.offset("peer"), 0)

    def test_theSmallestDelayBoundsTheOffset(self) -> None:
        for delay in (3.0, 0.2, 1.5, 24.0):
            self.arrive("peer", delay, skew=-120)
        self.assertEqual(self.skews.skew("peer"), -120.2)
        self.assertEqual(self.skews.offset("peer"), round(120.2 * SECOND))

    def test_aSteppedClockIsFollowedWithinTwoWindows(self) -> None:
        """
        A clock stepped forward shows at once (a smaller delay); one
        stepped back shows once the windows that saw the old clock are
        gone.
        """
        self.arrive("peer", 0.1, skew=-120)
        self.clock.advance(130)
        self.arrive("peer", 0.1, skew=0)
        self.assertEqual(self.skews.skew("peer"), -0.1)
        self.arrive("peer", 0.1, skew=-200)
        self.assertEqual(self.skews.skew("peer"), -0.1)
        self.clock.advance(130)
        self.arrive("peer", 0.1, skew=-200)
        self.assertEqual(self.skews.skew("peer"), -0.1)
        self.clock.advance(130)
        self.arrive("peer", 0.1, skew=-200)
        self.assertEqual(self.skews.skew("peer"), -200.1)
        # After a silence of two windows, only what is new counts.
        self.clock.advance(1000)
        self.arrive("peer", 0.3, skew=-300)
        self.assertEqual(self.skews.skew("peer"), -300.3)

    def test_aFarClockIsWarnedAboutOnceUntilItComesBack(self) -> None:
        for _ in range(10):
            self.arrive("peer", 0.1, skew=-120)
        self.arrive("near", 0.1, skew=-4.0)
        [warning] = self.logged
        self.assertEqual(warning["member"], "peer")
        self.assertEqual(warning["skew"], -120.1)
        self.clock.advance(300)
        self.arrive("peer", 0.1, skew=0)
        self.clock.advance(300)
        self.arrive("peer", 0.1, skew=-120)
        self.assertEqual(len(self.logged), 2)

    def test_aFarClockIsAProblemUntilItComesBackOrIsForgotten(self) -> None:
        self.arrive("peer", 0.1, skew=-120)
        self.arrive("ahead", 0.1, skew=60)
        self.arrive("near", 0.1, skew=-4.0)
        self.assertEqual(
            [(p.kind, p.subject, p.message) for p in self.problems.current()],
            [
                (
                    CLOCK_SKEW,
                    "ahead",
                    "the clock of ahead is at least 59.9 s ahead of ours",
                ),
                (
                    CLOCK_SKEW,
                    "peer",
                    "the clock of peer is at least 120.1 s behind ours",
                ),
            ],
        )
        self.clock.advance(300)
        self.arrive("peer", 0.1, skew=0)
        self.skews.forget("ahead")
        self.assertEqual(self.problems.current(), [])

    def test_forgottenMembersAreNoLongerTracked(self) -> None:
        self.arrive("peer", 0.1, skew=-120)
        self.skews.forget("peer")
        self.assertIsNone(self.skews.skew("peer"))
