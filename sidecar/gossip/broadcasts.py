"""
A transmit-limited broadcast queue, as memberlist's: every message is sent
a bounded number of times, least-sent and newest first, and a newer message
about the same subject replaces an older one still queued.  The queue holds
at most C{maxDepth} messages (serf's C{MaxQueueDepth}): past that, the most
sent and then the oldest are dropped, as memberlist's C{Prune} does, since
push-pull's anti-entropy carries whatever gossip loses.  Pure.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Collection, Hashable, Iterator
from dataclasses import dataclass

# Serf's default MaxQueueDepth: far more than one burst of news (a host's
# containers all starting) yet a few megabytes at most.
MAX_DEPTH = 4096


def retransmitLimit(multiplier: int, members: int) -> int:
    """
    How many times a message is sent: C{multiplier * ceil(log10(N + 1))}.
    """
    return multiplier * math.ceil(math.log10(members + 1))


@dataclass
class _Queued:
    sequence: int
    subject: Hashable
    message: bytes
    transmits: int = 0


class _Tier:
    """
    The messages sent equally often, in the order they were queued.
    """

    def __init__(self) -> None:
        self._order: list[int] = []
        self._entries: dict[int, _Queued] = {}

    def __len__(self) -> int:
        return len(self._order)

    def add(self, entry: _Queued) -> None:
        # Mostly an append: a new message is the newest.
        insort(self._order, entry.sequence)
        self._entries[entry.sequence] = entry

    def remove(self, entry: _Queued) -> None:
        del self._order[bisect_left(self._order, entry.sequence)]
        del self._entries[entry.sequence]

    def newestFirst(self) -> Iterator[_Queued]:
        return (self._entries[sequence] for sequence in reversed(self._order))

    def oldest(self) -> _Queued:
        return self._entries[self._order[0]]


class BroadcastQueue:
    """
    Messages waiting to be piggybacked on gossip.

    They are kept in tiers by how often they were sent, each tier in the
    order its messages were queued, so that taking the next messages reads
    them in order without sorting the queue: the cost of L{take} grows
    with what it takes, not with what waits.

    @param retransmitMultiplier: memberlist's C{RetransmitMult} (4 on a LAN).
    @param maxDepth: the most messages kept.
    @ivar pruned: how many messages were dropped unsent because the queue
        was at L{maxDepth}: news came faster than gossip could carry it.
    """

    def __init__(self, retransmitMultiplier: int = 4, maxDepth: int = MAX_DEPTH):
        if maxDepth < 1:
            raise ValueError(f"a broadcast queue holds at least 1, not {maxDepth}")
        self._multiplier = retransmitMultiplier
        self.maxDepth = maxDepth
        self._bySubject: dict[Hashable, _Queued] = {}
        # _tiers[n]: the messages sent n times.
        self._tiers: list[_Tier] = []
        # Bounds on the queued messages' lengths: never above the shortest,
        # never below the longest (exact when the queue is empty).
        self._shortest = 0
        self._longest = 0
        self.pruned = 0
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._bySubject)

    def queue(self, subject: Hashable, message: bytes) -> None:
        """
        Queue C{message}; it replaces any message queued about C{subject}.
        """
        old = self._bySubject.get(subject)
        if old is not None:
            self._remove(old)
        self._sequence += 1
        self._put(_Queued(self._sequence, subject, message))
        while len(self._bySubject) > self.maxDepth:
            self._remove(self._mostSentOldest())
            self.pruned += 1

    def take(self, overhead: int, limit: int, members: int) -> list[bytes]:
        """
        The messages to send now, within C{limit} bytes where each costs its
        length plus C{overhead}; each taken message counts one transmit and
        is dropped once it reaches the retransmit limit for C{members}.
        """
        chosen: list[_Queued] = []
        room = limit
        # Below this no queued message fits: stop looking.
        floor = overhead + self._shortest
        for tier in self._tiers:
            if room < floor:
                break
            for entry in tier.newestFirst():
                cost = len(entry.message) + overhead
                if cost > room:
                    continue
                room -= cost
                chosen.append(entry)
                if room < floor:
                    break
        maximum = retransmitLimit(self._multiplier, members)
        for entry in chosen:
            self._remove(entry)
            entry.transmits += 1
            if entry.transmits < maximum:
                self._put(entry)
        return [entry.message for entry in chosen]

    def oversized(self, overhead: int, limit: int) -> list[bytes]:
        """
        Remove and return the messages that can never fit one packet, so
        that the caller sends them another way (over TCP) rather than
        letting them block the queue.
        """
        if self._longest + overhead <= limit:
            return []
        entries = list(self._bySubject.values())
        big = [e for e in entries if len(e.message) + overhead > limit]
        for entry in big:
            self._remove(entry)
        self._longest = max(
            (len(e.message) for e in self._bySubject.values()), default=0
        )
        return [entry.message for entry in big]

    def clear(self, keep: Collection[Hashable] = ()) -> int:
        """
        Drop every queued message but those about the subjects C{keep}:
        for a node with no one to send them to (not counted in L{pruned}:
        nothing was lost).

        @return: how many were dropped.
        """
        kept = [self._bySubject[s] for s in keep if s in self._bySubject]
        dropped = len(self._bySubject) - len(kept)
        self._bySubject.clear()
        self._tiers.clear()
        self._shortest = self._longest = 0
        for entry in kept:
            self._put(entry)
        return dropped

    def _put(self, entry: _Queued) -> None:
        size = len(entry.message)
        self._shortest = min(self._shortest, size) if self._bySubject else size
        self._longest = max(self._longest, size)
        while len(self._tiers) <= entry.transmits:
            self._tiers.append(_Tier())
        self._tiers[entry.transmits].add(entry)
        self._bySubject[entry.subject] = entry

    def _remove(self, entry: _Queued) -> None:
        del self._bySubject[entry.subject]
        self._tiers[entry.transmits].remove(entry)
        while self._tiers and not self._tiers[-1]:
            self._tiers.pop()
        if not self._bySubject:
            self._shortest = self._longest = 0

    def _mostSentOldest(self) -> _Queued:
        # _remove keeps the last tier non-empty.
        return self._tiers[-1].oldest()
