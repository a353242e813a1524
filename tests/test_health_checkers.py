"""
The checkers against real things on 127.0.0.1: HTTP servers that answer
well, badly, slowly or not at all; open and closed TCP ports; shell
commands that pass, fail, hang and ignore SIGTERM.  And the registry,
with a checker installed as a Twisted plugin.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.internet.defer import TimeoutError
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface.verify import verifyObject

from sidecar.health.checkers import (
    AlwaysSuccessfulChecker,
    CheckArgumentError,
    CheckerRegistry,
    CheckFailed,
    ExternalChecker,
    HttpGetChecker,
    TcpChecker,
    installedCheckers,
)
from sidecar.interfaces import IChecker, ICheckerFactory

from .processes import REPO, pollUntil
from .switches import serveSwitch


class Answer(Resource):
    isLeaf = True

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    def render_GET(self, request):  # type: ignore[no-untyped-def]
        request.setResponseCode(self.code)
        if 300 <= self.code < 400:
            request.setHeader(b"Location", b"/elsewhere")
        return b"ok"


class Trickle(Resource):
    """Headers at once, then a body that never ends."""

    isLeaf = True

    def render_GET(self, request):  # type: ignore[no-untyped-def]
        request.setHeader(b"Content-Length", b"1000000")
        request.write(b"x")
        return NOT_DONE_YET


class Silent(Resource):
    """Never answers."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests = []

    def render_GET(self, request):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        return NOT_DONE_YET


class HttpGetTests(TestCase):
    def setUp(self) -> None:
        root = Resource()
        for code in (200, 204, 301, 404, 500):
            root.putChild(str(code).encode(), Answer(code))
        root.putChild(b"trickle", Trickle())
        self.silent = Silent()
        root.putChild(b"silent", self.silent)
        site = Site(root)
        site.log = lambda request: None  # type: ignore[method-assign]
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(self.port.stopListening)
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"

    def checker(self, path: str) -> HttpGetChecker:
        checker = HttpGetChecker(self.base + path, reactor)
        verifyObject(IChecker, checker)
        return checker

    async def test_2xxAnd3xxAreHealthy(self) -> None:
        for code in (200, 204, 301):
            self.assertEqual(await self.checker(f"/{code}").check(), f"HTTP {code}")

    async def test_otherCodesAreNot(self) -> None:
        for code in (404, 500):
            with self.assertRaises(CheckFailed) as caught:
                await self.checker(f"/{code}").check()
            self.assertIn(f"HTTP {code}", str(caught.exception))

    async def test_aHostNameIsResolved(self) -> None:
        url = f"http://localhost:{self.port.getHost().port}/200"
        self.assertEqual(await HttpGetChecker(url, reactor).check(), "HTTP 200")

    async def test_anIPv6AddressIsReachedDirectly(self) -> None:
        switch, port = serveSwitch(self, "::1")
        checker = HttpGetChecker(f"http://[::1]:{port}/", reactor)
        self.assertEqual(await checker.check(), "HTTP 200")
        self.assertEqual(switch.requests, 1)

    async def test_aCheckLogsNothing(self) -> None:
        checker = self.checker("/200")
        with capturedLogs() as events:
            await checker.check()
        self.assertEqual([formatEvent(event) for event in events], [])

    async def test_aTricklingBodyDoesNotHoldTheCheck(self) -> None:
        d = self.checker("/trickle").check()
        self.assertEqual(await d.addTimeout(5, reactor), "HTTP 200")

    async def test_aSilentServerEndsAtTheTimeout(self) -> None:
        d = self.checker("/silent").check().addTimeout(0.2, reactor)
        with self.assertRaises(TimeoutError):
            await d
        for request in self.silent.requests:
            await pollUntil(
                lambda request=request: defer.succeed(
                    True if request._disconnected else None
                ),
                timeout=5,
            )

    async def test_nothingListeningFails(self) -> None:
        await self.port.stopListening()
        with self.assertRaises(CheckFailed) as caught:
            await self.checker("/200").check()
        self.assertIn(f"GET {self.base}/200", str(caught.exception))

    def test_badURLsAreRefused(self) -> None:
        for url in ("ftp://127.0.0.1/", "not a url", "http://"):
            self.assertRaises(CheckArgumentError, HttpGetChecker, url, reactor)


class TcpTests(TestCase):
    async def test_anOpenPortIsHealthyAndAClosedOneIsNot(self) -> None:
        port = reactor.listenTCP(
            0, Factory.forProtocol(Protocol), interface="127.0.0.1"
        )  # type: ignore[attr-defined]
        address = f"127.0.0.1:{port.getHost().port}"
        checker = TcpChecker(address, reactor)
        self.assertEqual(await checker.check(), f"connected to {address}")
        await port.stopListening()
        with self.assertRaises(CheckFailed) as caught:
            await checker.check()
        self.assertIn(f"cannot connect to {address}", str(caught.exception))

    async def test_aCheckLogsNothing(self) -> None:
        port = reactor.listenTCP(
            0, Factory.forProtocol(Protocol), interface="127.0.0.1"
        )  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        checker = TcpChecker(f"127.0.0.1:{port.getHost().port}", reactor)
        with capturedLogs() as events:
            await checker.check()
        self.assertEqual([formatEvent(event) for event in events], [])

    def test_badAddressesAreRefused(self) -> None:
        for address in ("127.0.0.1", "127.0.0.1:0", "host:70000", ":80", "x:y"):
            self.assertRaises(CheckArgumentError, TcpChecker, address, reactor)


class ExternalTests(TestCase):
    async def test_exitZeroIsHealthy(self) -> None:
        self.assertEqual(await ExternalChecker("true", reactor).check(), "exit 0")

    async def test_anotherExitFailsWithTheLastLineOfOutput(self) -> None:
        checker = ExternalChecker(
            "echo starting; echo 'db is down' >&2; exit 3", reactor
        )
        with self.assertRaises(CheckFailed) as caught:
            await checker.check()
        self.assertIn("exit code 3", str(caught.exception))
        self.assertIn("db is down", str(caught.exception))

    async def test_aCommandThatIgnoresSIGTERMIsKilledAtItsTimeout(self) -> None:
        marker = Path(self.mktemp())
        # The shell ignores TERM and so does its child; both must go.
        command = f"trap '' TERM; echo $$ > {marker}; sleep 60 & wait"
        d = ExternalChecker(command, reactor).check()
        await pollUntil(
            lambda: defer.succeed(
                True if marker.exists() and marker.read_text().strip() else None
            )
        )
        pid = int(marker.read_text())
        with self.assertRaises(TimeoutError):
            await d.addTimeout(0.1, reactor)

        def gone() -> defer.Deferred[bool | None]:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return defer.succeed(True)
            return defer.succeed(None)

        await pollUntil(gone, timeout=5)

    def test_anEmptyCommandIsRefused(self) -> None:
        self.assertRaises(CheckArgumentError, ExternalChecker, "  ", reactor)


class RegistryTests(TestCase):
    async def test_builtInsByName(self) -> None:
        registry = CheckerRegistry()
        self.assertEqual(
            registry.names(), ["AlwaysSuccessful", "External", "HttpGet", "Tcp"]
        )
        checker = registry.checkerFor("AlwaysSuccessful", "", reactor)
        self.assertIsInstance(checker, AlwaysSuccessfulChecker)
        self.assertEqual(await checker.check(), "always successful")

    def test_anUnknownTypeIsRefusedNamingTheKnownOnes(self) -> None:
        error = self.assertRaises(
            CheckArgumentError, CheckerRegistry().checkerFor, "Ping", "", reactor
        )
        self.assertIn("unknown check type 'Ping'", str(error))
        self.assertIn("HttpGet", str(error))

    async def test_theDocumentedPluginIsFoundAndWorks(self) -> None:
        [source] = re.findall(
            r"```python\n(.*?)```", (REPO / "docs" / "health.md").read_text(), re.S
        )
        root = Path(self.mktemp()).resolve()
        package = root / "extra_checkers"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "maintenance_check.py").write_text(source)
        sys.path.insert(0, str(root))
        self.addCleanup(sys.path.remove, str(root))
        import extra_checkers  # type: ignore[import-not-found]

        self.addCleanup(sys.modules.pop, "extra_checkers")
        found = installedCheckers(extra_checkers)
        self.assertEqual([f.name for f in found], ["NotInMaintenance"])
        verifyObject(ICheckerFactory, found[0])
        registry = CheckerRegistry(found)
        flag = root / "web.maintenance"
        checker = registry.checkerFor("NotInMaintenance", str(flag), reactor)
        verifyObject(IChecker, checker)
        self.assertEqual(await checker.check(), f"no {flag}")
        flag.write_text("")
        with self.assertRaises(CheckFailed) as caught:
            await checker.check()
        self.assertEqual(str(caught.exception), f"{flag} exists: in maintenance")
        error = self.assertRaises(
            CheckArgumentError,
            registry.checkerFor,
            "NotInMaintenance",
            "web.maintenance",
            reactor,
        )
        self.assertIn("expected an absolute path", str(error))
