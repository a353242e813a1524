"""
The API's cached documents: rendered once per catalog version, shared by
every reader and watcher, with ETag, Last-Modified, 304 and gzip; and the
Go Sidecar's bytes for a client that asks for none of that.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from typing import Any

import treq
from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.http import datetimeToString

from sidecar.catalog import ServicesState
from sidecar.catalog.codec import dumps
from sidecar.catalog.documents import (
    byServiceDocument,
    serviceDocument,
    servicesDocument,
    stateDocument,
)
from sidecar.offload import inline, offloadFor
from sidecar.web.server import makeSite

from .doubles import Members, RawHTTP, RawResponse
from .test_web_api import SECOND, Health, record

START = 1_700_000_000


class CountingOffload:
    """
    An offload that counts renders; held ones wait for L{release}.
    """

    def __init__(self) -> None:
        self.renders = 0
        self.hold = False
        self.held: list[tuple[Callable[[], Any], Deferred[Any]]] = []
        self.fail = False

    def __call__(self, work: Callable[[], Any]) -> Deferred[Any]:
        self.renders += 1
        if self.fail:
            self.fail = False
            return inline(_broken)
        if self.hold:
            waiting: Deferred[Any] = Deferred()
            self.held.append((work, waiting))
            return waiting
        return inline(work)

    def release(self) -> None:
        held, self.held = self.held, []
        for work, waiting in held:
            waiting.callback(work())


def _broken() -> bytes:
    raise RuntimeError("the encoder broke")


class CachedDocumentTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.state = ServicesState("node-a", self.clock, clusterName="test-cluster")
        self.addCleanup(self.state.stop)
        now = self.state.now()
        self.state.merge(record("bbbbbbbbbbbb", "web", "node-b", now - 5 * SECOND))
        self.state.merge(record("cccccccccccc", "db", "node-b", now))
        self.members = Members("node-a", "node-b")
        self.offload = CountingOffload()
        self.site = makeSite(
            self.state,
            self.members,
            Health(),
            reactor=self.clock,
            offload=self.offload,
        )

    def exchange(self, method: str, path: str, **headers: str) -> RawResponse:
        connection = RawHTTP(self.site, self.clock)
        connection.request(
            method,
            path,
            *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
        )
        response = connection.response()
        connection.close()
        return response

    def get(
        self, path: str, **headers: str
    ) -> tuple[int, dict[bytes, list[bytes]], bytes]:
        response = self.exchange("GET", path, **headers)
        return response.code, response.headers, response.body

    def change(self) -> None:
        self.clock.advance(1)
        self.state.merge(record("dddddddddddd", "web", "node-b", self.state.now()))

    def test_withoutValidatorsTheBodiesAreTheGoBytes(self) -> None:
        expected = {
            "/api/state.json": dumps(stateDocument(self.state)),
            "/api/services.json": dumps(
                servicesDocument(self.state, self.members.names), indent=2
            ),
            "/api/services/web.json": dumps(
                serviceDocument(self.state, "web"), indent=2
            ),
        }
        for path, body in expected.items():
            code, headers, received = self.get(path)
            self.assertEqual((code, received), (200, body), path)
            self.assertNotIn(b"content-encoding", headers)
            self.assertEqual(headers[b"content-length"], [b"%d" % len(body)])
            self.assertEqual(headers[b"content-type"], [b"application/json"])

    def test_repeatedReadsRenderOnce(self) -> None:
        first = [self.get("/api/services.json")[2] for _ in range(5)]
        self.assertEqual(self.offload.renders, 1)
        self.assertEqual(len(set(first)), 1)

    def test_aChangeIsInTheNextRead(self) -> None:
        self.get("/api/state.json")
        self.get("/api/services/web.json")
        self.change()
        _, _, body = self.get("/api/state.json")
        self.assertEqual(body, dumps(stateDocument(self.state)))
        self.assertIn(b"dddddddddddd", body)
        _, _, one = self.get("/api/services/web.json")
        self.assertIn(b"dddddddddddd", one)
        self.assertEqual(self.offload.renders, 4)

    def test_aRecordThatLosesKeepsTheCache(self) -> None:
        self.get("/api/state.json")
        stale = record("bbbbbbbbbbbb", "web", "node-b", self.state.now() - 60 * SECOND)
        self.assertFalse(self.state.merge(stale))
        self.get("/api/state.json")
        self.assertEqual(self.offload.renders, 1)

    def test_aMembershipChangeRendersServicesAgainButNotState(self) -> None:
        self.get("/api/services.json")
        self.get("/api/state.json")
        self.members.names = ["node-a", "node-b", "node-c"]
        _, _, body = self.get("/api/services.json")
        self.assertIn(b'"node-c"', body)
        self.get("/api/state.json")
        self.assertEqual(self.offload.renders, 3)

    def test_readersDuringARenderShareIt(self) -> None:
        self.offload.hold = True
        connections = [RawHTTP(self.site, self.clock) for _ in range(3)]
        for connection in connections:
            connection.request("GET", "/api/state.json")
            self.assertEqual(connection.transport.value(), b"")
        self.assertEqual(self.offload.renders, 1)
        self.offload.release()
        for connection in connections:
            response = connection.response()
            self.assertEqual(response.body, dumps(stateDocument(self.state)))
            connection.close()

    def test_aClientGoneBeforeTheRenderIsNotWritten(self) -> None:
        self.offload.hold = True
        connection = RawHTTP(self.site, self.clock)
        connection.request("GET", "/api/state.json")
        connection.close()
        connection.transport.clear()
        self.offload.release()
        self.assertEqual(connection.transport.value(), b"")

    def test_aFailedRenderIs500AndTheNextReadTriesAgain(self) -> None:
        self.offload.fail = True
        code, _, body = self.get("/api/state.json")
        self.assertEqual(code, 500)
        self.assertEqual(
            body,
            b'{"message":"the document could not be made","status":"error"}',
        )
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        code, _, body = self.get("/api/state.json")
        self.assertEqual((code, body), (200, dumps(stateDocument(self.state))))

    def test_anUnknownNameIs404AndCached(self) -> None:
        for _ in range(2):
            code, _, body = self.get("/api/services/nope.json")
            self.assertEqual(code, 404)
            self.assertIn(b"no instances of nope found", body)
        self.assertEqual(self.offload.renders, 1)

    def test_etagAndIfNoneMatch(self) -> None:
        _, headers, body = self.get("/api/services.json")
        [etag] = headers[b"etag"]
        for header in (etag, b"W/" + etag, b'"other", ' + etag, b"*"):
            code, again, empty = self.get(
                "/api/services.json", If_None_Match=header.decode()
            )
            self.assertEqual((code, empty), (304, b""), header)
            self.assertEqual(again[b"etag"], [etag])
        code, _, full = self.get("/api/services.json", If_None_Match='"other"')
        self.assertEqual((code, full), (200, body))
        self.change()
        code, changed, newer = self.get(
            "/api/services.json", If_None_Match=etag.decode()
        )
        self.assertEqual(code, 200)
        self.assertNotEqual(changed[b"etag"], [etag])
        self.assertIn(b"dddddddddddd", newer)

    def test_theEtagIsTheSameForTheSameBytes(self) -> None:
        _, first, _ = self.get("/api/state.json")
        self.state.trustDrains("node-b", True)  # a new version, same bytes
        _, second, _ = self.get("/api/state.json")
        self.assertEqual(self.offload.renders, 2)
        self.assertEqual(first[b"etag"], second[b"etag"])

    def test_lastModifiedOnceItsSecondIsPast(self) -> None:
        _, headers, _ = self.get("/api/state.json")
        # The catalog changed at START: that second is not over yet.
        self.assertNotIn(b"last-modified", headers)
        self.clock.advance(1.5)
        _, headers, body = self.get("/api/state.json")
        self.assertEqual(headers[b"last-modified"], [datetimeToString(START)])
        since = headers[b"last-modified"][0].decode()
        code, _, empty = self.get("/api/state.json", If_Modified_Since=since)
        self.assertEqual((code, empty), (304, b""))
        self.change()
        code, _, newer = self.get("/api/state.json", If_Modified_Since=since)
        self.assertEqual(code, 200)
        self.assertIn(b"dddddddddddd", newer)

    def test_ifNoneMatchOverridesIfModifiedSince(self) -> None:
        self.clock.advance(2)
        _, headers, _ = self.get("/api/state.json")
        since = headers[b"last-modified"][0].decode()
        code, _, _ = self.get(
            "/api/state.json", If_Modified_Since=since, If_None_Match='"other"'
        )
        self.assertEqual(code, 200)

    def test_aMalformedDateIsIgnored(self) -> None:
        for date in ("yesterday", "", "Mon, 99 Foo 2024 99:99:99 GMT"):
            code, _, body = self.get("/api/state.json", If_Modified_Since=date)
            self.assertEqual((code, body), (200, dumps(stateDocument(self.state))))

    def test_gzipForAClientThatAcceptsIt(self) -> None:
        plain = self.get("/api/services.json")[2]
        code, headers, body = self.get(
            "/api/services.json", Accept_Encoding="br, gzip;q=0.8"
        )
        self.assertEqual(code, 200)
        self.assertEqual(headers[b"content-encoding"], [b"gzip"])
        self.assertEqual(headers[b"vary"], [b"Accept-Encoding"])
        self.assertEqual(headers[b"content-length"], [b"%d" % len(body)])
        self.assertEqual(gzip.decompress(body), plain)
        self.assertLess(len(body), len(plain))
        # Compressed once, not per request: one render and one gzip.
        self.get("/api/services.json", Accept_Encoding="gzip")
        self.assertEqual(self.offload.renders, 2)

    def test_noGzipWhenRefused(self) -> None:
        for header in ("gzip;q=0", "identity", "br", "*;q=0"):
            _, headers, body = self.get("/api/state.json", Accept_Encoding=header)
            self.assertNotIn(b"content-encoding", headers, header)
            self.assertEqual(body, dumps(stateDocument(self.state)))

    def test_headHasTheLengthButNoBody(self) -> None:
        full = self.get("/api/state.json")[2]
        response = self.exchange("HEAD", "/api/state.json")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers[b"content-length"], [b"%d" % len(full)])
        self.assertEqual(response.body, b"")


class WatchSharingTests(SynchronousTestCase):
    def test_everyWatcherGetsTheSameBytesOncePerVersion(self) -> None:
        clock = Clock()
        clock.advance(START)
        state = ServicesState("node-a", clock)
        self.addCleanup(state.stop)
        offload = CountingOffload()
        site = makeSite(
            state, Members("node-a"), Health(), reactor=clock, offload=offload
        )
        client = StubTreq(site.resource)
        streams: list[list[bytes]] = []
        for _ in range(3):
            response = self.successResultOf(client.get("http://node-a/api/watch"))
            received: list[bytes] = []
            treq.collect(response, received.append)
            streams.append(received)
        self.assertEqual(offload.renders, 1)
        state.merge(record("bbbbbbbbbbbb", "web", "node-b", state.now()))
        state.merge(record("cccccccccccc", "web", "node-b", state.now()))
        clock.advance(0)
        client.flush()
        self.assertEqual(offload.renders, 2)
        expected = [dumps(byServiceDocument(state))]
        for received in streams:
            self.assertEqual(received[1:], expected)
        # A version whose bytes are the same is not sent again.
        state.trustDrains("node-b", True)
        state.merge(record("bbbbbbbbbbbb", "web", "node-b", state.now() - SECOND))
        clock.advance(0)
        client.flush()
        for received in streams:
            self.assertEqual(received[1:], expected)


class OffloadTests(TestCase):
    async def test_aReactorWithThreadsRendersInItsPool(self) -> None:
        ran: list[threading.Thread] = []

        def work() -> int:
            ran.append(threading.current_thread())
            return 5

        self.assertEqual(await offloadFor(reactor)(work), 5)
        self.assertIsNot(ran[0], threading.main_thread())

    def test_aClockRendersInline(self) -> None:
        self.assertIs(offloadFor(Clock()), inline)
