"""
Just enough of serf's own messages for a node in a serf cluster: serf
rides on memberlist user messages and decides "left" rather than "failed"
from its own leave intent, stamped with its Lamport clock.  L{SerfClock}
follows that clock in what serf sends, and writes the intent;
L{SerfAwareDelegate} keeps serf's messages away from the catalog.

A serf message is a type byte below 10 and a msgpack map; the catalog's
JSON starts with C{"{"} (123), so the two never collide.
"""

from __future__ import annotations

import msgpack
from zope.interface import implementer

from .interfaces import IGossipDelegate
from .messages import packBody, stringKeys
from .packets import encodeUserMessage

SERF_LEAVE = 0
SERF_JOIN = 1
SERF_PUSH_PULL = 2
_SERF_TYPES = range(10)


class SerfClock:
    """
    The highest serf Lamport time seen, and this node's own status time in
    serf's eyes.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.time = 0

    def observe(self, payload: bytes) -> bool:
        """
        Note the Lamport times in C{payload} if it is a serf message.

        @return: whether it was one (and so is not for the catalog).
        """
        if not payload or payload[0] not in _SERF_TYPES:
            return False
        try:
            document = stringKeys(msgpack.unpackb(payload[1:], raw=True), "serf")
        except Exception:  # msgpack raises several unrelated types
            return True  # serf's, but nothing we can read
        times = [document.get("LTime"), document.get("EventLTime")]
        if payload[0] == SERF_PUSH_PULL:
            statuses = document.get("StatusLTimes")
            if isinstance(statuses, dict):
                times.extend(statuses.values())
        for value in times:
            if isinstance(value, int) and not isinstance(value, bool):
                self.time = max(self.time, value)
        return True

    def leaveIntent(self) -> bytes:
        """
        A user message telling serf this node is leaving, stamped later
        than anything seen, so serf records "left" and not "failed".
        """
        intent = packBody({"LTime": self.time + 1, "Node": self.name})
        return encodeUserMessage(bytes([SERF_LEAVE]) + intent)


@implementer(IGossipDelegate)
class SerfAwareDelegate:
    """
    Passes everything but serf's messages to C{inner}.
    """

    def __init__(self, inner: IGossipDelegate, clock: SerfClock) -> None:
        self._inner = inner
        self._clock = clock

    def localDigest(self) -> bytes:
        return self._inner.localDigest()  # type: ignore[no-any-return]

    def localState(
        self, recordLimit: int | None = None, remote: bytes | None = None
    ) -> bytes:
        return self._inner.localState(recordLimit, remote)  # type: ignore[no-any-return]

    def mergeRemoteState(
        self, state: bytes, join: bool, source: tuple[str, int], dialed: bool
    ) -> None:
        if not self._clock.observe(state):
            self._inner.mergeRemoteState(state, join, source, dialed)

    def messageReceived(self, payload: bytes, source: tuple[str, int]) -> None:
        if not self._clock.observe(payload):
            self._inner.messageReceived(payload, source)
