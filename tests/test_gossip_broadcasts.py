"""
The transmit-limited broadcast queue.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sidecar.gossip.broadcasts import BroadcastQueue, retransmitLimit


class BroadcastQueueTests(SynchronousTestCase):
    def test_retransmitLimitGrowsWithTheLogOfTheClusterSize(self) -> None:
        self.assertEqual(
            [retransmitLimit(4, n) for n in (1, 9, 10, 99, 100, 1000)],
            [4, 4, 8, 8, 12, 16],
        )

    def test_eachMessageIsSentTheLimitedNumberOfTimes(self) -> None:
        queue = BroadcastQueue(retransmitMultiplier=2)
        queue.queue("a", b"aaa")
        sent = [queue.take(0, 1400, members=5) for _ in range(4)]
        self.assertEqual(sent, [[b"aaa"], [b"aaa"], [], []])
        self.assertEqual(len(queue), 0)

    def test_leastSentThenNewestFirst(self) -> None:
        queue = BroadcastQueue()
        queue.queue("a", b"a")
        queue.take(0, 1400, members=3)
        queue.queue("b", b"b")
        queue.queue("c", b"c")
        self.assertEqual(queue.take(0, 1400, members=3), [b"c", b"b", b"a"])

    def test_newerMessageAboutTheSameSubjectReplacesTheOlder(self) -> None:
        queue = BroadcastQueue()
        queue.queue("node-a", b"alive 1")
        queue.queue("node-a", b"alive 2")
        self.assertEqual(queue.take(0, 1400, members=3), [b"alive 2"])

    def test_packsWithinTheLimitCountingOverhead(self) -> None:
        queue = BroadcastQueue()
        for subject in "abc":
            queue.queue(subject, subject.encode() * 10)
        # Each costs 10 + 2 bytes: two fit in 25, the third waits.
        self.assertEqual(
            queue.take(overhead=2, limit=25, members=3), [b"c" * 10, b"b" * 10]
        )
        self.assertEqual(queue.take(overhead=2, limit=12, members=3), [b"a" * 10])
        self.assertEqual(queue.take(overhead=2, limit=11, members=3), [])

    def test_smallMessagesStillFitAroundALargeOne(self) -> None:
        queue = BroadcastQueue()
        queue.queue("small", b"s")
        queue.queue("large", b"L" * 100)
        self.assertEqual(queue.take(0, 50, members=3), [b"s"])

    def test_oversizedMessagesAreHandedBackNotStuck(self) -> None:
        queue = BroadcastQueue()
        queue.queue("big", b"B" * 10_000)
        queue.queue("ok", b"o")
        self.assertEqual(queue.oversized(3, 1398), [b"B" * 10_000])
        self.assertEqual(queue.take(3, 1398, members=3), [b"o"])
