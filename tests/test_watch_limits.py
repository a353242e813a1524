"""
The bounds on C{/api/watch}: at most C{maxWatchers} streams at once (one
more is refused 503 with C{Retry-After}), and a client that reads nothing
for L{STALL} seconds is cut, so it holds no document for good; the others
keep their streams.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from sidecar.web.server import makeSite
from sidecar.web.watch import STALL

from .doubles import Members, RawHTTP
from .test_web_api import Health, oneRemoteService


class WatchLimitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock, self.state = oneRemoteService(self)
        self.site = makeSite(
            self.state, Members("node-a"), Health(), reactor=self.clock, maxWatchers=2
        )

    def watch(self) -> RawHTTP:
        connection = RawHTTP(self.site, self.clock)
        connection.request("GET", "/api/watch")
        self.clock.advance(0)
        return connection

    def test_oneWatcherOverTheCapIsRefusedUntilOneLeaves(self) -> None:
        first, second = self.watch(), self.watch()
        self.assertEqual(first.response().code, 200)
        self.assertEqual(second.response().code, 200)
        third = self.watch()
        refused = third.response()
        self.assertEqual(refused.code, 503)
        self.assertEqual(refused.headers[b"retry-after"], [b"1"])
        self.assertEqual(
            json.loads(refused.body),
            {
                "message": "too many watchers of this node's API; retry later",
                "status": "error",
            },
        )
        self.assertEqual(len(self.site.watchers), 2)
        first.close()
        self.assertEqual(self.watch().response().code, 200)

    def test_aWatcherThatReadsNothingIsCutAndTheOthersStay(self) -> None:
        stalled, reading = self.watch(), self.watch()
        stalled.transport.clear()
        # Its TCP buffer is full: the transport pauses the stream.
        stalled.transport.producer.pauseProducing()  # type: ignore[union-attr]
        self.clock.advance(STALL - 1)
        self.assertEqual(len(self.site.watchers), 2)
        self.assertFalse(stalled.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(stalled.transport.disconnected)
        self.assertEqual(len(self.site.watchers), 1)
        self.assertFalse(reading.transport.disconnecting)

    def test_aWatcherThatCatchesUpInTimeStays(self) -> None:
        slow = self.watch()
        producer = slow.transport.producer
        producer.pauseProducing()  # type: ignore[union-attr]
        self.clock.advance(STALL - 1)
        producer.resumeProducing()  # type: ignore[union-attr]
        self.clock.advance(STALL * 2)
        self.assertFalse(slow.transport.disconnecting)
        self.assertEqual(len(self.site.watchers), 1)
