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

    def test_anOversizedMessageIsFoundAfterTheQueueEmptiedAndRefilled(self) -> None:
        # The queue's length bounds must follow messages that are taken and
        # put back, or a large one would slip past oversized().
        queue = BroadcastQueue()
        queue.queue("big", b"B" * 2000)
        self.assertEqual(queue.take(0, 5000, members=3), [b"B" * 2000])
        self.assertEqual(queue.oversized(0, 1000), [b"B" * 2000])
        self.assertEqual(len(queue), 0)


class QueueBoundTests(SynchronousTestCase):
    """
    The queue never holds more than its depth, whatever is queued.
    """

    def test_pastItsDepthTheMostSentThenOldestAreDropped(self) -> None:
        queue = BroadcastQueue(maxDepth=3)
        queue.queue("sent", b"s")
        queue.take(0, 1400, members=3)
        queue.queue("old", b"o")
        queue.queue("new", b"n")
        queue.queue("newer", b"N")
        self.assertEqual((len(queue), queue.pruned), (3, 1))
        self.assertEqual(queue.take(0, 1400, members=3), [b"N", b"n", b"o"])
        queue.queue("newest", b"W")
        self.assertEqual((len(queue), queue.pruned), (3, 2))
        # "old", "new" and "newer" were sent once; the oldest of them went.
        self.assertEqual(queue.take(0, 1400, members=3), [b"W", b"N", b"n"])

    def test_endlessNewSubjectsStayWithinTheDepth(self) -> None:
        queue = BroadcastQueue(maxDepth=100)
        for n in range(10_000):
            queue.queue(("user", n), b"x" * 50)
        self.assertEqual((len(queue), queue.pruned), (100, 9_900))
        # The newest survive.
        newest = queue.take(0, 52 * 3, members=3)
        self.assertEqual(len(newest), 3)

    def test_aReplacementDoesNotCountAgainstTheDepth(self) -> None:
        queue = BroadcastQueue(maxDepth=2)
        for n in range(50):
            queue.queue("a", b"a%d" % n)
            queue.queue("b", b"b%d" % n)
        self.assertEqual((len(queue), queue.pruned), (2, 0))
        self.assertEqual(queue.take(0, 1400, members=3), [b"b49", b"a49"])

    def test_aDepthBelowOneIsRefused(self) -> None:
        with self.assertRaisesRegex(ValueError, "at least 1, not 0"):
            BroadcastQueue(maxDepth=0)

    def test_clearKeepsOnlyTheSubjectsAsked(self) -> None:
        queue = BroadcastQueue()
        for subject in ("self", "a", "b"):
            queue.queue(subject, subject.encode())
        self.assertEqual(queue.clear(keep=["self", "gone"]), 2)
        # Nothing was lost: no one could have been sent them.
        self.assertEqual((len(queue), queue.pruned), (1, 0))
        self.assertEqual(queue.take(0, 1400, members=3), [b"self"])


class TakeCostTests(SynchronousTestCase):
    """
    Taking reads the queue in order instead of sorting it: what it looks
    at grows with what fits, not with what waits.
    """

    def test_aFullPacketEndsTheScan(self) -> None:
        queue = BroadcastQueue()
        looked: list[int] = []

        class Counted(bytes):
            def __len__(self) -> int:
                looked.append(1)
                return super().__len__()

        for n in range(5000):
            queue.queue(n, Counted(b"r" * 100))
        looked.clear()
        taken = queue.take(0, 1400, members=3)
        self.assertEqual(len(taken), 14)
        # Each of the 14 taken is measured a few times (to cost it, then as
        # it moves tier); none of the 4986 left waiting is.
        self.assertLess(len(looked), 100)
