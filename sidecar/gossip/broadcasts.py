"""
A transmit-limited broadcast queue, as memberlist's: every message is sent
a bounded number of times, least-sent and newest first, and a newer message
about the same subject replaces an older one still queued.  Pure.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field


def retransmitLimit(multiplier: int, members: int) -> int:
    """
    How many times a message is sent: C{multiplier * ceil(log10(N + 1))}.
    """
    return multiplier * math.ceil(math.log10(members + 1))


@dataclass(order=True)
class _Queued:
    transmits: int
    newestFirst: int
    subject: Hashable = field(compare=False)
    message: bytes = field(compare=False)


class BroadcastQueue:
    """
    Messages waiting to be piggybacked on gossip.

    @param retransmitMultiplier: memberlist's C{RetransmitMult} (4 on a LAN).
    """

    def __init__(self, retransmitMultiplier: int = 4) -> None:
        self._multiplier = retransmitMultiplier
        self._queued: dict[Hashable, _Queued] = {}
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._queued)

    def queue(self, subject: Hashable, message: bytes) -> None:
        """
        Queue C{message}; it replaces any message queued about C{subject}.
        """
        self._sequence += 1
        self._queued[subject] = _Queued(0, -self._sequence, subject, message)

    def take(self, overhead: int, limit: int, members: int) -> list[bytes]:
        """
        The messages to send now, within C{limit} bytes where each costs its
        length plus C{overhead}; each taken message counts one transmit and
        is dropped once it reaches the retransmit limit for C{members}.
        """
        chosen: list[bytes] = []
        used = 0
        maximum = retransmitLimit(self._multiplier, members)
        for entry in sorted(self._queued.values()):
            cost = len(entry.message) + overhead
            if used + cost > limit:
                continue
            used += cost
            chosen.append(entry.message)
            entry.transmits += 1
            if entry.transmits >= maximum:
                del self._queued[entry.subject]
        return chosen

    def oversized(self, overhead: int, limit: int) -> list[bytes]:
        """
        Remove and return the messages that can never fit one packet, so
        that the caller sends them another way (over TCP) rather than
        letting them block the queue.
        """
        big = [e for e in self._queued.values() if len(e.message) + overhead > limit]
        for entry in big:
            del self._queued[entry.subject]
        return [entry.message for entry in big]
