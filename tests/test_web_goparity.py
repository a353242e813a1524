"""
The API answers as the Go Sidecar's HTTP handlers do, byte for byte where
a Go client could notice: status lines, the headers Go sets, error bodies,
drain messages, Go's 404 and 405 for paths and methods its router does not
take, the root aliases and the C{/servers} page.  The expected bytes are
read off the Go source (C{sidecarhttp/http_api.go}, C{http.go},
C{catalog/services_state.go} C{Format}, C{service.Format},
C{output.TimeAgo}; gorilla/mux 1.8 for 404/405).
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Port, Service, ServicesState, Status
from sidecar.catalog.codec import dumps
from sidecar.catalog.documents import (
    byServiceDocument,
    servicesDocument,
    stateDocument,
)
from sidecar.web.goformat import goQuote, timeAgo
from sidecar.web.routes import ALIAS_ROUTES, API_ROUTES, Match, WrongMethod, match
from sidecar.web.server import makeSite

from .doubles import Members, RawHTTP, RawResponse
from .test_web_api import SECOND, Drains, Health, record

START = 1_700_000_000
GO_NOT_FOUND = b"404 page not found\n"


class GoParityTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.state = ServicesState("node-a", self.clock, clusterName="test-cluster")
        self.addCleanup(self.state.stop)
        self.state.merge(record("bbbbbbbbbbbb", "web", "node-b", self.state.now()))
        self.members = Members("node-a", "node-b")
        self.drains = Drains(self.state)
        self.site = makeSite(
            self.state, self.members, Health(), drains=self.drains, reactor=self.clock
        )

    def send(self, method: str, path: str, *headers: str) -> RawResponse:
        connection = RawHTTP(self.site, self.clock)
        connection.request(method, path, *headers)
        response = connection.response()
        connection.close()
        return response

    def assertGoHeaders(
        self, response: RawResponse, expected: dict[bytes, bytes]
    ) -> None:
        """
        The headers Go sets are there with Go's values, and of those Go
        may set (Content-Type, the CORS pair) no other is.
        """
        for name in (
            b"content-type",
            b"access-control-allow-origin",
            b"access-control-allow-methods",
            b"x-content-type-options",
        ):
            if name in expected:
                self.assertEqual(response.headers.get(name), [expected[name]], name)
            else:
                self.assertNotIn(name, response.headers)
        self.assertEqual(
            response.headers[b"content-length"], [b"%d" % len(response.body)]
        )

    def test_noServerHeader(self) -> None:
        """
        Go's net/http names no server; neither do we (Twisted would).
        """
        for method, path in (
            ("GET", "/api/services.json"),
            ("GET", "/api/services/nope.json"),
            ("GET", "/api/x"),
            ("OPTIONS", "/api/state.json"),
            ("POST", "/api/services/nosuchid/drain"),
        ):
            self.assertNotIn(b"server", self.send(method, path).headers, path)

    def test_readsHaveGoHeaders(self) -> None:
        read = {
            b"content-type": b"application/json",
            b"access-control-allow-origin": b"*",
            b"access-control-allow-methods": b"GET",
        }
        for path in (
            "/api/state.json",
            "/api/services.json",
            "/api/services/web.json",
        ):
            response = self.send("GET", path)
            self.assertEqual(response.status, b"HTTP/1.1 200 OK", path)
            self.assertGoHeaders(response, read)

    def test_errorBodiesHaveSortedKeys(self) -> None:
        response = self.send("GET", "/api/services/nope.json")
        self.assertEqual(response.status, b"HTTP/1.1 404 Not Found")
        self.assertEqual(
            response.body, b'{"message":"no instances of nope found","status":"error"}'
        )
        self.assertGoHeaders(
            response,
            {
                b"content-type": b"application/json",
                b"access-control-allow-origin": b"*",
                b"access-control-allow-methods": b"GET",
            },
        )

    def test_errorBodiesEscapeAsGo(self) -> None:
        response = self.send("GET", "/api/services/%3Cb%3E%26.json")
        self.assertEqual(
            response.body,
            b'{"message":"no instances of \\u003cb\\u003e\\u0026 found",'
            b'"status":"error"}',
        )

    def test_invalidExtensions(self) -> None:
        body = (
            b'{"message":"Not Found - Invalid content type extension","status":"error"}'
        )
        cors = {
            b"access-control-allow-origin": b"*",
            b"access-control-allow-methods": b"GET",
        }
        # Go's state handler refuses before it sets the CORS headers; the
        # services handlers after.
        for path, headers in (
            ("/api/state.yaml", {}),
            ("/api/services.xml", cors),
            ("/api/services/web.txt", cors),
        ):
            response = self.send("GET", path)
            self.assertEqual((response.code, response.body), (404, body), path)
            self.assertGoHeaders(
                response, {b"content-type": b"application/json", **headers}
            )

    def test_drain(self) -> None:
        response = self.send("POST", "/api/services/bbbbbbbbbbbb/drain")
        self.assertEqual(response.status, b"HTTP/1.1 202 Accepted")
        self.assertEqual(
            response.body,
            b'{\n  "Message": "Service \\"web\\" instance \\"bbbbbbbbbbbb\\" '
            b'set to DRAINING"\n}',
        )
        self.assertGoHeaders(response, {b"content-type": b"application/json"})

    def test_drainOfAnUnknownID(self) -> None:
        response = self.send("POST", "/api/services/8f0ae40c6783/drain")
        self.assertEqual(response.status, b"HTTP/1.1 404 Not Found")
        self.assertEqual(
            response.body,
            b'{"message":"Not Found - Service ID \\"8f0ae40c6783\\" not found",'
            b'"status":"error"}',
        )
        self.assertGoHeaders(response, {b"content-type": b"application/json"})

    def test_pathsOfOneSegmentNoRouteTakesAre405WithNoBody(self) -> None:
        for method, path in (
            ("GET", "/api/x"),
            ("GET", "/api/state"),
            ("POST", "/api/state.json"),
            ("PUT", "/api/services.json"),
            ("POST", "/api/watch"),
            ("DELETE", "/api/services/web.json"),
            ("GET", "/api/services/bbbbbbbbbbbb/drain"),
        ):
            response = self.send(method, path)
            self.assertEqual(
                response.status, b"HTTP/1.1 405 Method Not Allowed", (method, path)
            )
            self.assertEqual(response.body, b"")
            self.assertGoHeaders(response, {})

    def test_pathsNoRouteFitsAre404PageNotFound(self) -> None:
        for path in (
            "/api/nothing/here",
            "/api/services/web",
            "/api/services/.json",
            "/api/a/b/c/d",
            "/nothing",
            "/servers/x",
        ):
            response = self.send("GET", path)
            self.assertEqual(response.status, b"HTTP/1.1 404 Not Found", path)
            self.assertEqual(response.body, GO_NOT_FOUND)
            self.assertGoHeaders(
                response,
                {
                    b"content-type": b"text/plain; charset=utf-8",
                    b"x-content-type-options": b"nosniff",
                },
            )

    def test_optionsIsCORS(self) -> None:
        response = self.send("OPTIONS", "/api/services.json")
        self.assertEqual(response.status, b"HTTP/1.1 200 OK")
        self.assertEqual(response.body, b"")
        self.assertGoHeaders(
            response,
            {
                b"access-control-allow-origin": b"*",
                b"access-control-allow-methods": b"GET",
            },
        )

    def test_rootAliases(self) -> None:
        for alias, path in (
            ("/state.json", "/api/state.json"),
            ("/services.json", "/api/services.json"),
            ("/services/web.json", "/api/services/web.json"),
            ("/state.yaml", "/api/state.yaml"),
            ("/services/nope.json", "/api/services/nope.json"),
        ):
            aliased, direct = self.send("GET", alias), self.send("GET", path)
            self.assertEqual(
                (aliased.status, aliased.body), (direct.status, direct.body), alias
            )
        self.assertEqual(
            self.send("GET", "/state.json").body, dumps(stateDocument(self.state))
        )
        self.assertEqual(
            self.send("GET", "/services.json").body,
            dumps(servicesDocument(self.state, self.members.names), indent=2),
        )
        self.assertEqual(self.send("POST", "/state.json").code, 405)
        # The root has no drain alias, as Go.
        self.assertEqual(
            self.send("POST", "/services/bbbbbbbbbbbb/drain").body, GO_NOT_FOUND
        )

    def test_rootWatchAlias(self) -> None:
        connection = RawHTTP(self.site, self.clock)
        connection.request("GET", "/watch?by_service=false")
        data = connection.transport.value()
        self.assertTrue(data.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertIn(dumps(stateDocument(self.state)), data)
        connection.close()

    def test_onlyAnExactFalseAsksForTheState(self) -> None:
        connection = RawHTTP(self.site, self.clock)
        connection.request("GET", "/api/watch?by_service=FALSE")
        self.assertIn(
            dumps(byServiceDocument(self.state)), connection.transport.value()
        )
        connection.close()

    def test_serversPage(self) -> None:
        now = self.state.now()
        self.state.merge(
            Service(
                id="cccccccccccc",
                name="db",
                image="registry.example/db:1.0",
                created=SECOND,
                hostname="node-b",
                ports=(Port("tcp", 32768, 5432, "127.0.1.2"), Port("udp", 53, 0)),
                updated=now - 70 * SECOND,
                status=Status.UNHEALTHY,
            )
        )
        self.state.merge(record("dddddddddddd", "api", "node-c", now - 3 * SECOND))
        self.clock.advance(2)
        response = self.send("GET", "/servers")
        self.assertEqual(response.status, b"HTTP/1.1 200 OK")
        self.assertEqual(response.headers[b"content-type"], [b"text/html"])
        web = "img:1"
        expected = (
            '\n \t\t\t<head>\n \t\t\t<meta http-equiv="refresh" content="4">\n'
            " \t\t\t</head>\n\t    \t<pre>"
            "Services ------------------------------\n"
            "  node-b: (2.0 secs ago)\n"
            f"      cccccccccccc {'db':<30} {'5432->32768,0->53':<15} "
            f"{'registry.example/db:1.0':<45}  {'1.2 mins ago':<15} {'Unhealthy':<9}\n"
            f"      bbbbbbbbbbbb {'web':<30} {'10001->8080':<15} "
            f"{web:<45}  {'2.0 secs ago':<15} {'Alive':<9}\n"
            "\n"
            "  node-c: (5.0 secs ago)\n"
            f"      dddddddddddd {'api':<30} {'10001->8080':<15} "
            f"{web:<45}  {'5.0 secs ago':<15} {'Alive':<9}\n"
            "\n"
            "\nCluster Hosts -------------------------\n"
            "    node-a\n"
            "    node-b\n"
            "---------------------------------------"
            "</pre>"
        )
        self.assertEqual(response.body.decode(), expected)

    def test_theAccessLogLineIsADebugEvent(self) -> None:
        with capturedLogs() as events:
            self.send("GET", "/api/state.json")
        [event] = [e for e in events if e.get("log_format") == "{line}"]
        self.assertEqual(event["log_level"], LogLevel.debug)
        self.assertIn('"GET /api/state.json HTTP/1.1" 200', formatEvent(event))

    def test_serversPageEscapesMarkup(self) -> None:
        self.state.merge(record("eeeeeeeeeeee", "<script>", "node-b", self.state.now()))
        body = self.send("GET", "/servers").body
        self.assertNotIn(b"<script>", body)
        self.assertIn(b"&lt;script>", body)


class GoFormatTests(SynchronousTestCase):
    def test_quoteAsGoStrconvQuote(self) -> None:
        for text, quoted in (
            ("go-web", '"go-web"'),
            ('a"b\\c', '"a\\"b\\\\c"'),
            ("tab\there\n", '"tab\\there\\n"'),
            ("\x00\x1f\x7f", '"\\x00\\x1f\\x7f"'),
            ("café ☕", '"café ☕"'),
            ("\u00a0\u200b\u2028", '"\\u00a0\\u200b\\u2028"'),
            ("\U000e0001", '"\\U000e0001"'),
        ):
            self.assertEqual(goQuote(text), quoted, text)

    def test_timeAgoAsGo(self) -> None:
        base = START * SECOND
        for ago, words in (
            (0, "1.0 sec ago"),
            (SECOND, "1.0 sec ago"),
            (5 * SECOND, "5.0 secs ago"),
            (5 * 60 * SECOND, "5.0 mins ago"),
            (5 * 3600 * SECOND, "5.0 hours ago"),
            (36 * 3600 * SECOND, "1.5 days ago"),
            (230 * 3600 * SECOND, "1.4 weeks ago"),
        ):
            self.assertEqual(timeAgo(base - ago, base), words, ago)
        # Both ends round to whole seconds, halves up.
        self.assertEqual(timeAgo(base - SECOND, base + 500_000_000), "2.0 secs ago")
        self.assertEqual(timeAgo(base - SECOND, base + 499_999_999), "1.0 sec ago")


class RouteTests(SynchronousTestCase):
    def test_nameAndExtensionSplitAtTheLastDot(self) -> None:
        found = match(API_ROUTES, ["services", "a.b.json"], b"GET")
        assert isinstance(found, Match)
        self.assertEqual((found.route.name, found.values), ("service", ("a.b", "json")))

    def test_partsMustNotBeEmpty(self) -> None:
        for segments in (["services", ".json"], ["services", "web."], [""], []):
            self.assertIsNone(match(API_ROUTES, segments, b"GET"), segments)
        # "state." fits only Go's OPTIONS route: a 405 for GET.
        self.assertEqual(
            match(API_ROUTES, ["state."], b"GET"), WrongMethod(frozenset({b"OPTIONS"}))
        )

    def test_theFirstFittingRouteWins(self) -> None:
        found = match(API_ROUTES, ["health"], b"HEAD")
        assert isinstance(found, Match)
        self.assertEqual(found.route.name, "health")
        self.assertIsNone(match(ALIAS_ROUTES, ["services", "x", "drain"], b"POST"))
