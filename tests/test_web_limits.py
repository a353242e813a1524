"""
The API's bounds on a request: its body (kept in memory, refused 413 past
L{MAX_BODY} before it is read, whether it says its length or comes in
chunks) and its head (refused past L{MAX_HEADER_BYTES}); the node goes on
answering.
"""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import ServicesState
from sidecar.web.limits import MAX_BODY, MAX_HEADER_BYTES
from sidecar.web.server import makeSite

from .doubles import Members, RawHTTP
from .test_web_api import Drains, Health, oneRemoteService

DRAIN = "/api/services/bbbbbbbbbbbb/drain"


class LimitsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock, self.state = oneRemoteService(self)
        self.drains = Drains(self.state)
        self.site = makeSite(
            self.state,
            Members("node-a"),
            Health(),
            drains=self.drains,
            reactor=self.clock,
        )

    def assertStillAnswers(self) -> None:
        connection = RawHTTP(self.site, self.clock)
        connection.request("GET", "/api/health")
        self.assertEqual(connection.response().code, 200)

    def test_aBodyThatSaysItIsTooLongIsRefusedBeforeItIsRead(self) -> None:
        connection = RawHTTP(self.site, self.clock)
        with capturedLogs() as events:
            connection.request("POST", DRAIN, f"Content-Length: {200 * 1024 * 1024}")
            connection.channel.dataReceived(b"x" * 100_000)  # type: ignore[union-attr]
        response = connection.response()
        self.assertEqual(response.code, 413)
        self.assertEqual(
            json.loads(response.body)["message"],
            f"request body over {MAX_BODY} bytes refused",
        )
        self.assertTrue(connection.transport.disconnecting)
        self.assertEqual(self.drains.calls, [])
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertStillAnswers()

    def test_aChunkedBodyIsRefusedOnceItPassesTheBound(self) -> None:
        connection = RawHTTP(self.site, self.clock)
        connection.request("POST", DRAIN, "Transfer-Encoding: chunked")
        chunk = b"%x\r\n%s\r\n" % (32 * 1024, b"x" * 32 * 1024)
        for _ in range(3):
            connection.channel.dataReceived(chunk)  # type: ignore[union-attr]
        connection.channel.dataReceived(b"0\r\n\r\n")  # type: ignore[union-attr]
        self.assertEqual(connection.response().code, 413)
        self.assertTrue(connection.transport.disconnecting)
        self.assertEqual(self.drains.calls, [])

    def test_aSmallBodyIsTakenInMemory(self) -> None:
        connection = RawHTTP(self.site, self.clock)
        connection.request(
            "POST", DRAIN, "Content-Type: application/json", "Content-Length: 2"
        )
        connection.channel.dataReceived(b"{}")  # type: ignore[union-attr]
        self.assertEqual(connection.response().code, 202)
        self.assertEqual(self.drains.calls, [("drain", "bbbbbbbbbbbb")])

    def test_headersPastTheBoundAreRefused(self) -> None:
        connection = RawHTTP(self.site, self.clock)
        lines = [f"X-{i}: " + "y" * 6000 for i in range(3)]
        connection.request("GET", "/api/health", *lines)
        self.assertEqual(connection.response().code, 400)
        self.assertTrue(connection.transport.disconnecting)
        # One line over the bound is not even answered.
        connection = RawHTTP(self.site, self.clock)
        connection.request("GET", "/api/health", "X-Big: " + "y" * MAX_HEADER_BYTES)
        self.assertEqual(connection.transport.value(), b"")
        self.assertTrue(connection.transport.disconnecting)
        self.assertStillAnswers()

    def test_tooManyHeaderLinesAreRefused(self) -> None:
        connection = RawHTTP(self.site, self.clock)
        connection.request("GET", "/api/health", *[f"X-{i}: y" for i in range(101)])
        self.assertEqual(connection.response().code, 400)


class MalformedUIPathTests(SynchronousTestCase):
    def test_aPathNoFileCanHaveIs400AndNothingIsLogged(self) -> None:
        clock = Clock()
        state = ServicesState("node-a", clock)
        self.addCleanup(state.stop)
        site = makeSite(state, Members("node-a"), Health(), reactor=clock)
        for path in ("/ui/%00", "/ui/a%00b.js", "/ui/%ff", "/ui/%00/x"):
            connection = RawHTTP(site, clock)
            with capturedLogs() as events:
                connection.request("GET", path)
            self.assertEqual(connection.response().code, 400, path)
            self.assertEqual(
                [e for e in events if e["log_level"] >= LogLevel.warn], [], path
            )
        connection = RawHTTP(site, clock)
        connection.request("GET", "/ui/nothing.js")
        self.assertEqual(connection.response().code, 404)
