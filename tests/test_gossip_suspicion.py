"""
Lifeguard's suspicion timeouts and local-health awareness.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sidecar.gossip.profiles import LAN, LOCAL, detectionBound
from sidecar.gossip.suspicion import Awareness, suspicionTimeout, suspicionTimeouts


class SuspicionTests(SynchronousTestCase):
    def test_timeoutsGrowWithTheLogOfTheClusterSize(self) -> None:
        self.assertEqual(suspicionTimeouts(4, 6, 1, 1.0), (4.0, 24.0))
        self.assertEqual(suspicionTimeouts(4, 6, 10, 1.0), (4.0, 24.0))
        self.assertEqual(suspicionTimeouts(4, 6, 100, 1.0), (8.0, 48.0))
        self.assertEqual(suspicionTimeouts(5, 6, 1000, 0.5), (7.5, 45.0))

    def test_confirmationsShrinkTheTimeoutToTheLeast(self) -> None:
        least, most = 4.0, 24.0
        timeouts = [suspicionTimeout(least, most, 2, n) for n in range(4)]
        self.assertEqual(timeouts[0], most)
        self.assertEqual(timeouts[1], 11.381)  # 24 - log(2)/log(3) * 20
        self.assertEqual(timeouts[2], least)
        self.assertEqual(timeouts[3], least)

    def test_noExpectedConfirmationsMeansTheLeast(self) -> None:
        self.assertEqual(suspicionTimeout(4.0, 24.0, 0, 0), 4.0)

    def test_oneExpectedConfirmation(self) -> None:
        self.assertEqual(suspicionTimeout(4.0, 24.0, 1, 0), 24.0)
        self.assertEqual(suspicionTimeout(4.0, 24.0, 1, 1), 4.0)

    def test_anOddNumberOfExpectedConfirmations(self) -> None:
        # 24 - log(2)/log(4) * 20: half way on the log curve.
        self.assertEqual(suspicionTimeout(4.0, 24.0, 3, 1), 14.0)


class AwarenessTests(SynchronousTestCase):
    def test_scoreIsBoundedAndScalesTimeouts(self) -> None:
        awareness = Awareness(maximum=8)
        self.assertEqual(awareness.scale(0.5), 0.5)
        awareness.apply(3)
        self.assertEqual(awareness.scale(0.5), 2.0)
        awareness.apply(100)
        self.assertEqual(awareness.score, 7)
        awareness.apply(-100)
        self.assertEqual(awareness.score, 0)

    def test_memberlistsDefaultMaximumAndSteps(self) -> None:
        awareness = Awareness()  # memberlist's AwarenessMaxMultiplier: 8
        for delta, expected in [(1, 1), (2, 3), (1, 4), (3, 7), (3, 7)]:
            awareness.apply(delta)
            self.assertEqual(awareness.score, expected)
        awareness.apply(-2)
        self.assertEqual(awareness.score, 5)


class DetectionBoundTests(SynchronousTestCase):
    def test_roundOfProbesLongestSuspicionAndSpread(self) -> None:
        # local, 3 members: 2 others + 1 probe intervals (3 s), the longest
        # suspicion 6 x 3 x 1 s (18 s), 2 x 1 retransmissions x 0.1 s.
        self.assertAlmostEqual(detectionBound(LOCAL, 3), 3 + 18 + 0.2)
        # lan, 3 members: 3 s, 6 x 4 x 1 s, 4 x 1 x 0.2 s.
        self.assertAlmostEqual(detectionBound(LAN, 3), 3 + 24 + 0.8)
        # 100 members: 100 probe intervals, suspicion x log10(100) = 2.
        self.assertAlmostEqual(detectionBound(LOCAL, 100), 100 + 36 + 2 * 3 * 0.1)

    def test_aLoneMemberStillHasAProbeRound(self) -> None:
        self.assertAlmostEqual(detectionBound(LOCAL, 1), 2 + 18 + 2 * 1 * 0.1)
