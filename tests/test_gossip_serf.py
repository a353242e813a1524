"""
serf's own messages, as far as a node in a serf cluster needs them: its
Lamport clock is followed, its messages kept from the catalog, and the
leave intent is stamped later than anything seen.
"""

from __future__ import annotations

import msgpack
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sidecar.gossip.interfaces import IGossipDelegate
from sidecar.gossip.messages import MessageType, packBody
from sidecar.gossip.serf import (
    SERF_JOIN,
    SERF_LEAVE,
    SERF_PUSH_PULL,
    SerfAwareDelegate,
    SerfClock,
)


class RecordingDelegate:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.states: list[bytes] = []

    def localState(
        self, recordLimit: int | None = None, remote: bytes | None = None
    ) -> bytes:
        return b"{}"

    def localDigest(self) -> bytes:
        return b'{"Digest":{}}'

    def mergeRemoteState(
        self, state: bytes, join: bool, source: tuple[str, int], dialed: bool
    ) -> None:
        self.states.append(state)

    def messageReceived(self, payload: bytes, source: tuple[str, int]) -> None:
        self.messages.append(payload)


class SerfClockTests(SynchronousTestCase):
    def test_theLeaveIntentIsStampedAfterEverythingSeen(self) -> None:
        clock = SerfClock("py-node")
        clock.observe(bytes([SERF_JOIN]) + packBody({"LTime": 7, "Node": "serf-1"}))
        state = {"LTime": 9, "StatusLTimes": {"py-node": 12, "serf-1": 3}}
        clock.observe(bytes([SERF_PUSH_PULL]) + packBody(state))
        intent = clock.leaveIntent()
        self.assertEqual(intent[0], MessageType.USER)
        self.assertEqual(intent[1], SERF_LEAVE)
        self.assertEqual(
            msgpack.unpackb(intent[2:], raw=False), {"LTime": 13, "Node": "py-node"}
        )

    def test_serfMessagesAreKeptFromTheCatalog(self) -> None:
        inner = RecordingDelegate()
        delegate = SerfAwareDelegate(inner, SerfClock("py-node"))
        verifyObject(IGossipDelegate, delegate)
        peer = ("127.0.1.2", 7946)
        delegate.messageReceived(bytes([SERF_JOIN]) + packBody({"LTime": 1}), peer)
        delegate.messageReceived(bytes([3]) + b"\xc1 not msgpack", peer)
        delegate.mergeRemoteState(
            bytes([SERF_PUSH_PULL]) + packBody({"LTime": 2}), True, peer, True
        )
        delegate.messageReceived(b'{"ID": "abc"}', peer)
        delegate.mergeRemoteState(b'{"Servers": {}}', False, peer, False)
        self.assertEqual(inner.messages, [b'{"ID": "abc"}'])
        self.assertEqual(inner.states, [b'{"Servers": {}}'])
        self.assertEqual(delegate.localState(), b"{}")
