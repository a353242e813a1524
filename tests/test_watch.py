"""
C{/api/watch} over real HTTP, the stream splitter, and the remote catalog
that a HAProxy companion builds from the stream.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

import treq
from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from sidecar.catalog import ChangeEvent, Port, Service, ServicesState, Status
from sidecar.catalog.codec import dumps
from sidecar.catalog.documents import stateDocument
from sidecar.catalog.interfaces import ICatalogObserver
from sidecar.proxy.remote import RemoteCatalog
from sidecar.web import watch, watchclient
from sidecar.web.server import APIService, makeSite
from sidecar.web.watchclient import (
    DocumentSplitter,
    StreamError,
    WatchClient,
    splitDocuments,
)

from .doubles import Members
from .processes import pollUntil
from .switches import serve
from .test_web_api import Health

SECOND = 1_000_000_000


def record(
    serviceID: str, status: Status = Status.ALIVE, updated: int = SECOND
) -> Service:
    return Service(
        id=serviceID,
        name="web",
        image="img",
        hostname="host-b",
        ports=(Port("tcp", 8080, 10001, "127.0.1.2"),),
        updated=updated,
        status=status,
    )


class SplitTests(SynchronousTestCase):
    def test_documentsOneAfterTheOther(self) -> None:
        self.assertEqual(
            splitDocuments('{"a": 1}{"b": [2]}\n {"c"'),
            ([{"a": 1}, {"b": [2]}], '{"c"'),
        )

    def test_nothingYet(self) -> None:
        self.assertEqual(splitDocuments(""), ([], ""))
        self.assertEqual(splitDocuments('{"a": "unfinished'), ([], '{"a": "unfinished'))

    def test_garbage(self) -> None:
        error = self.assertRaises(
            StreamError, splitDocuments, '{"a": 1} nonsense {"b": 2}'
        )
        self.assertIn("not JSON: 'nonsense", str(error))

    def test_chunksEndingAnywhere(self) -> None:
        stream = dumps({"a": "<é>", "b": [1, {"c": "}"}]}) * 3
        for size in (1, 2, 3, 7):
            splitter = DocumentSplitter()
            decoder = codecs.getincrementaldecoder("utf-8")()
            documents = []
            for offset in range(0, len(stream), size):
                chunk = stream[offset : offset + size]
                documents += splitter.feed(decoder.decode(chunk))
            self.assertEqual(documents, [{"a": "<é>", "b": [1, {"c": "}"}]}] * 3)

    def test_aBrokenDocument(self) -> None:
        error = self.assertRaises(StreamError, DocumentSplitter().feed, '{"a": nope}')
        self.assertIn("not JSON at offset 6", str(error))


class WatchTests(TestCase):
    def serve(self, state: ServicesState) -> tuple[APIService, Any]:
        api = APIService(
            reactor,  # type: ignore[arg-type]
            makeSite(state, Members("host-a"), Health(), reactor=reactor),
            "127.0.0.1",
            0,
        )
        api.startService()
        self.addCleanup(api.stopService)
        return api, api.port.getHost()  # type: ignore[union-attr]

    async def test_theCatalogAtOnceThenAfterEachChangeThenTheEndAtStop(self) -> None:
        state = ServicesState("host-a", reactor)  # type: ignore[arg-type]
        self.addCleanup(state.stop)
        api, address = self.serve(state)
        received: list[Any] = []
        pending = [""]

        def collect(data: bytes) -> None:
            documents, pending[0] = splitDocuments(pending[0] + data.decode())
            received.extend(documents)

        response = await treq.get(
            f"http://127.0.0.1:{address.port}/api/watch?by_service=false",
            unbuffered=True,
            persistent=False,
        )
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"application/json"]
        )
        done = treq.collect(response, collect)

        async def documents(count: int) -> None:
            await pollUntil(
                lambda: defer.succeed(True if len(received) >= count else None),
                timeout=5,
            )

        await documents(1)
        self.assertEqual(received[0]["Servers"], {})
        now = round(reactor.seconds() * SECOND)  # type: ignore[attr-defined]
        state.merge(record("b1", updated=now))
        await documents(2)
        self.assertEqual(list(received[1]["Servers"]["host-b"]["Services"]), ["b1"])
        self.assertEqual(received[1], stateDocument(state))
        await api.stopService()
        await done  # the stream ends with the node

    async def test_everyWatcherHasAChangeWithin100ms(self) -> None:
        state = ServicesState("host-a", reactor)  # type: ignore[arg-type]
        self.addCleanup(state.stop)
        api, address = self.serve(state)
        arrivals: list[list[float]] = [[] for _ in range(5)]
        done = []
        for seen in arrivals:
            response = await treq.get(
                f"http://127.0.0.1:{address.port}/api/watch",
                unbuffered=True,
                persistent=False,
            )

            def collect(data: bytes, seen: list[float] = seen) -> None:
                for _ in splitDocuments(data.decode())[0]:
                    seen.append(reactor.seconds())  # type: ignore[attr-defined]

            done.append(treq.collect(response, collect))
        await pollUntil(
            lambda: defer.succeed(True if all(arrivals) else None), timeout=5
        )
        changed = reactor.seconds()  # type: ignore[attr-defined]
        state.merge(record("b1", updated=round(changed * SECOND)))
        await pollUntil(
            lambda: defer.succeed(
                True if all(len(seen) == 2 for seen in arrivals) else None
            ),
            timeout=5,
            every=0.005,
        )
        delays = [seen[1] - changed for seen in arrivals]
        self.assertLess(max(delays), 0.1, delays)
        await api.stopService()
        await defer.DeferredList(done)

    async def test_byServiceIsTheDefault(self) -> None:
        state = ServicesState("host-a", reactor)  # type: ignore[arg-type]
        self.addCleanup(state.stop)
        state.merge(record("b1", updated=round(reactor.seconds() * SECOND)))  # type: ignore[attr-defined]
        api, address = self.serve(state)
        received: list[Any] = []
        response = await treq.get(
            f"http://127.0.0.1:{address.port}/api/watch",
            unbuffered=True,
            persistent=False,
        )
        done = treq.collect(
            response, lambda data: received.extend(splitDocuments(data.decode())[0])
        )
        await pollUntil(lambda: defer.succeed(True if received else None), timeout=5)
        self.assertEqual(list(received[0]), ["web"])
        self.assertEqual(received[0]["web"][0]["ID"], "b1")
        await api.stopService()
        await done


class Silent(Resource):
    """
    A watch endpoint that sends one document and a heartbeat (so that its
    client expects more) and then nothing, ever.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Any] = []

    def render_GET(self, request):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        request.write(b'{"Servers": {}}\n')
        return NOT_DONE_YET


class LivenessTests(TestCase):
    async def test_anIdleStreamCarriesHeartbeats(self) -> None:
        self.patch(watch, "HEARTBEAT", 0.05)
        state = ServicesState("host-a", reactor)  # type: ignore[arg-type]
        self.addCleanup(state.stop)
        api, address = WatchTests.serve(self, state)  # type: ignore[arg-type]
        chunks: list[bytes] = []
        response = await treq.get(
            f"http://127.0.0.1:{address.port}/api/watch",
            unbuffered=True,
            persistent=False,
        )
        done = treq.collect(response, chunks.append)
        await pollUntil(
            lambda: defer.succeed(True if b"".join(chunks).count(b"\n") >= 2 else None),
            timeout=5,
        )
        await api.stopService()
        await done

    async def test_aSilentStreamIsFollowedAgain(self) -> None:
        self.patch(watchclient, "SILENCE", 0.2)
        self.patch(watchclient, "FIRST_RETRY", 0.05)
        silent = Silent()
        port = serve(self, silent)
        received: list[Any] = []
        client = WatchClient(reactor, f"http://127.0.0.1:{port}/", received.append)
        client.startService()
        self.addCleanup(client.stopService)
        with capturedLogs() as events:
            await pollUntil(
                lambda: defer.succeed(True if len(silent.requests) >= 2 else None),
                timeout=5,
            )
        self.assertIn("nothing for 0.2 s", " ".join(formatEvent(e) for e in events))
        self.assertGreaterEqual(len(received), 1)
        client.stopService()
        # Every stream the client opened is closed.
        await pollUntil(
            lambda: defer.succeed(
                True if all(r._disconnected for r in silent.requests) else None
            ),
            timeout=5,
        )


@implementer(ICatalogObserver)
class Events:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def serviceChanged(self, event: Any) -> None:
        self.events.append(event)


class RemoteCatalogTests(SynchronousTestCase):
    def document(self, *records: Service) -> Any:
        state = ServicesState("host-b", Clock())
        for r in records:
            state.merge(r)
        state.stop()
        return json.loads(dumps(stateDocument(state)))

    def test_changesAreEvents(self) -> None:
        catalog = RemoteCatalog(Clock())
        events = Events()
        catalog.addObserver(events)
        catalog.received(self.document(record("b1")))
        catalog.received(self.document(record("b1")))  # nothing new
        catalog.received(self.document(record("b1", Status.UNHEALTHY, 2 * SECOND)))
        catalog.received(self.document())
        self.assertEqual(
            [(e.service.id, e.previousStatus, e.service.status) for e in events.events],
            [
                ("b1", Status.UNKNOWN, Status.ALIVE),
                ("b1", Status.ALIVE, Status.UNHEALTHY),
                ("b1", Status.UNHEALTHY, Status.TOMBSTONE),
            ],
        )
        self.assertEqual(list(catalog.services()), [])

    def test_documentsAreCountedAndGoneRecordsStampedWithTheClock(self) -> None:
        clock = Clock()
        clock.advance(1_700_000_000)
        catalog = RemoteCatalog(clock)
        events = Events()
        catalog.addObserver(events)
        catalog.received(self.document(record("b1")))
        catalog.received({"Servers": {"host-b": {"Services": {"x": {"ID": 5}}}}})
        catalog.received(self.document())
        self.assertEqual(catalog.documents, 2)
        self.assertEqual(
            [(e.service.status, e.time) for e in events.events],
            [
                (Status.ALIVE, 1_700_000_000 * SECOND),
                (Status.TOMBSTONE, 1_700_000_000 * SECOND),
            ],
        )
        self.assertEqual(events.events[-1].service.updated, 1_700_000_000 * SECOND)

    def test_aDocumentThatIsNotAStateIsIgnored(self) -> None:
        catalog = RemoteCatalog(Clock())
        catalog.received(self.document(record("b1")))
        catalog.received({"Servers": {"host-b": {"Services": {"x": {"ID": 5}}}}})
        self.assertIn("not a Sidecar state", catalog.lastError or "")
        self.assertEqual([s.id for s in catalog.services()], ["b1"])


class BackPressureTests(SynchronousTestCase):
    """
    A watcher whose client stops reading (its TCP buffer is full, so the
    transport pauses the channel) is sent nothing until it reads again,
    then only the newest catalog: no backlog, no heartbeat in between.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000)
        self.state = ServicesState("host-a", self.clock)  # type: ignore[arg-type]
        self.addCleanup(self.state.stop)
        site = makeSite(self.state, Members("host-a"), Health(), reactor=self.clock)
        self.channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 0))
        self.channel.callLater = self.clock.callLater  # type: ignore[union-attr]
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)  # type: ignore[union-attr]
        self.channel.dataReceived(  # type: ignore[union-attr]
            b"GET /api/watch?by_service=false HTTP/1.0\r\n\r\n"
        )
        self.clock.advance(0)
        self.addCleanup(self.clientGone)

    def clientGone(self) -> None:
        if not self.transport.disconnecting:
            self.transport.loseConnection()
            self.channel.connectionLost(Failure(ConnectionDone()))  # type: ignore[union-attr]

    def body(self) -> bytes:
        return self.transport.value().split(b"\r\n\r\n", 1)[1]

    def documents(self) -> list[Any]:
        documents, rest = splitDocuments(self.body().decode())
        self.assertEqual(rest.strip(), "")
        return documents

    def change(self, serviceID: str) -> None:
        now = round(self.clock.seconds() * SECOND)
        self.state.merge(record(serviceID, updated=now))
        self.clock.advance(0)

    def test_aClientThatReadsIsSentEveryChange(self) -> None:
        self.change("b1")
        self.change("b2")
        self.assertEqual(len(self.documents()), 3)

    def test_aPausedClientIsSentOnlyTheNewestCatalogWhenItResumes(self) -> None:
        self.assertEqual(len(self.documents()), 1)
        self.transport.producer.pauseProducing()
        self.change("b1")
        self.change("b2")
        self.clock.advance(watch.HEARTBEAT + 1)  # less than STALL
        self.assertEqual(len(self.documents()), 1)
        self.assertNotIn(b"\n", self.body())  # no heartbeat either
        self.transport.producer.resumeProducing()
        self.clock.advance(0)
        documents = self.documents()
        self.assertEqual(len(documents), 2)
        self.assertEqual(documents[1], stateDocument(self.state))
        self.assertEqual(
            sorted(documents[1]["Servers"]["host-b"]["Services"]), ["b1", "b2"]
        )

    def test_aChangeDueWhenTheClientPausesWaitsForIt(self) -> None:
        now = round(self.clock.seconds() * SECOND)
        self.state.merge(record("b1", updated=now))
        # The document is due in this turn of the reactor; the client
        # pauses before it runs.
        self.transport.producer.pauseProducing()
        self.clock.advance(0)
        self.assertEqual(len(self.documents()), 1)
        self.transport.producer.resumeProducing()
        self.clock.advance(0)
        self.assertEqual(len(self.documents()), 2)

    def test_aPausedClientWithNothingNewIsSentNothingWhenItResumes(self) -> None:
        self.transport.producer.pauseProducing()
        self.transport.producer.resumeProducing()
        self.clock.advance(0)
        self.assertEqual(len(self.documents()), 1)

    def test_heartbeatsResumeWithTheClient(self) -> None:
        self.clock.advance(watch.HEARTBEAT)
        self.assertEqual(self.body().count(b"\n"), 1)
        self.transport.producer.pauseProducing()
        self.clock.advance(watch.HEARTBEAT)
        self.assertEqual(self.body().count(b"\n"), 1)
        self.transport.producer.resumeProducing()
        self.clock.advance(watch.HEARTBEAT)
        self.assertEqual(self.body().count(b"\n"), 2)

    def test_aNotificationThatChangesNoDocumentSendsNone(self) -> None:
        # The catalog notifies only changes that show, but an observer
        # owes no such promise: a spurious notification re-renders the same
        # document (the same entity tag), which is not sent again.
        [watcher] = [o for o in self.state._observers if isinstance(o, watch.Watcher)]
        event = ChangeEvent(record("b0"), Status.UNKNOWN, SECOND)
        watcher.serviceChanged(event)
        self.clock.advance(0)
        self.assertEqual(len(self.documents()), 1)
        # A real change after it is sent as ever.
        self.change("b1")
        self.assertEqual(len(self.documents()), 2)

    def test_theNodeStoppingEndsTheStreamOnce(self) -> None:
        [watcher] = [o for o in self.state._observers if isinstance(o, watch.Watcher)]
        watcher.finish()
        self.assertTrue(self.transport.disconnecting)  # HTTP/1.0: the end
        self.assertNotIn(watcher, self.state._observers)
        watcher.finish()  # once only: a second finish is no error
        self.assertEqual(self.flushWarnings(), [])
        self.change("b1")
        self.assertEqual(len(self.documents()), 1)

    def test_aClientThatGoesAwayIsNoLongerWatching(self) -> None:
        observers = list(self.state._observers)
        self.clientGone()
        # The catalog no longer tells it of changes.
        self.assertEqual(len(self.state._observers), len(observers) - 1)
        self.change("b1")
        self.clock.advance(watch.HEARTBEAT * 2)
        self.assertEqual(len(self.documents()), 1)
        self.assertNotIn(b"\n", self.body())
        # No timer of the watcher's is left.
        self.assertEqual(
            [c for c in self.clock.getDelayedCalls() if "Watcher" in repr(c)], []
        )


class StoppableBody:
    """
    The transport of a response body: it records being stopped.
    """

    stopped = False

    def stopProducing(self) -> None:
        self.stopped = True


class QuietStreamTests(SynchronousTestCase):
    """
    A stream's silence limit, on a clock: only for a server that has shown
    it sends heartbeats (ours); the Go Sidecar's stream may be quiet for as
    long as nothing changes.
    """

    def stream(self) -> tuple[Clock, StoppableBody, list[Any], Any]:
        clock = Clock()
        received: list[Any] = []
        stream = watchclient._Stream(clock, received.append)
        body = StoppableBody()
        stream.makeConnection(body)  # type: ignore[arg-type]
        return clock, body, received, stream

    def test_aQuietStreamWithoutHeartbeatsIsKept(self) -> None:
        clock, body, received, stream = self.stream()
        stream.dataReceived(b'{"Servers": {}}')
        clock.advance(600)
        self.assertFalse(body.stopped)
        self.assertEqual(clock.getDelayedCalls(), [])
        stream.dataReceived(b'{"Servers": {"go-1": {}}}')
        self.assertEqual(received, [{"Servers": {}}, {"Servers": {"go-1": {}}}])

    def test_aStreamWithHeartbeatsIsDroppedWhenSilent(self) -> None:
        clock, body, received, stream = self.stream()
        stream.dataReceived(b'{"Servers": {}}')
        stream.dataReceived(b"\n")
        clock.advance(watchclient.SILENCE - 1)
        stream.dataReceived(b"\n")
        clock.advance(watchclient.SILENCE - 1)
        self.assertFalse(body.stopped)
        clock.advance(1)
        self.assertTrue(body.stopped)
        stream.connectionLost(None)
        failure = self.failureResultOf(stream.finished, StreamError)
        self.assertIn("nothing for 45 s", failure.getErrorMessage())

    def test_aHeartbeatInTheSameChunkAsADocumentCounts(self) -> None:
        clock, body, _, stream = self.stream()
        stream.dataReceived(b'\n{"Servers": {}}')
        clock.advance(watchclient.SILENCE)
        self.assertTrue(body.stopped)


class KeepAliveTests(TestCase):
    async def test_streamsHaveTCPKeepalive(self) -> None:
        import socket

        from twisted.internet.protocol import Factory, Protocol
        from twisted.web.client import URI, BrowserLikePolicyForHTTPS

        port = serve(self, Silent())
        endpoints = watchclient._KeepAliveEndpoints(
            reactor, BrowserLikePolicyForHTTPS()
        )
        endpoint = endpoints.endpointForURI(
            URI.fromBytes(f"http://127.0.0.1:{port}/".encode())
        )
        protocol = await endpoint.connect(Factory.forProtocol(Protocol))
        self.addCleanup(protocol.transport.loseConnection)
        handle = protocol.transport.getHandle()
        self.assertEqual(handle.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 1)
        self.assertEqual(
            handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            watchclient.KEEPALIVE_IDLE,
        )
        self.assertEqual(
            handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            watchclient.KEEPALIVE_PROBES,
        )

    def test_onlyHTTPAndHTTPSAreFollowed(self) -> None:
        from twisted.internet.endpoints import wrapClientTLS
        from twisted.web.client import URI, BrowserLikePolicyForHTTPS

        endpoints = watchclient._KeepAliveEndpoints(
            reactor, BrowserLikePolicyForHTTPS()
        )
        with self.assertRaises(StreamError):
            endpoints.endpointForURI(URI.fromBytes(b"ftp://127.0.0.1:1/"))
        tls = endpoints.endpointForURI(URI.fromBytes(b"https://127.0.0.1:1/"))
        self.assertIsInstance(
            tls,
            type(wrapClientTLS(None, None)),  # type: ignore[arg-type]
        )
