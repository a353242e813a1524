"""
The web page in a real browser: Debian's chromium, headless, driven over
its DevTools protocol, loads C{/ui/} from a running node, sees a service
appear and then turn unhealthy as the catalog changes, and saves a
screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from sidecar.catalog import Port, Service, Status

from .inprocess import startNode
from .processes import freePort
from .test_haproxy import (
    BIND_IP,
    haproxySettings,
    haproxySkipReason,
    routing,
    serveNamed,
    staticTarget,
    temporaryDirectory,
)

SECOND = 1_000_000_000
# The flags this machine needs (see DEVELOPERS.md).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STATUS_OF_W1 = "document.querySelector('tr[data-id=\"w1\"] td.status')?.textContent"
PROXY_PROBLEMS = (
    "[...document.querySelectorAll('#proxy-problems li')]"
    ".map(item => item.textContent).join(' | ')"
)


def chromiumSkipReason() -> str | None:
    if shutil.which("chromium") is None:
        return "chromium is not installed (Debian package chromium)"
    try:
        import websockets  # noqa: F401
    except ImportError:
        return "websockets is not installed (pip install '.[test]')"
    return None


class DevTools:
    """
    A blocking DevTools session on one page, run in a thread.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self._ids = itertools.count(1)

    def pageURL(self, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/json/list", timeout=2
                ) as answer:
                    targets = json.loads(answer.read())
                pages = [t for t in targets if t["type"] == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("chromium's DevTools did not answer")
            time.sleep(0.05)

    async def call(self, ws: Any, method: str, **params: Any) -> Any:
        number = next(self._ids)
        await ws.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(await ws.recv())
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def waitFor(
        self, ws: Any, expression: str, expected: str, timeout: float = 15
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            result = await self.call(
                ws, "Runtime.evaluate", expression=expression, returnByValue=True
            )
            if result["result"].get("value") == expected:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression} never gave {expected!r}")
            await asyncio.sleep(0.05)


class BrowserTests(TestCase):
    skip = chromiumSkipReason()

    def browser(self) -> DevTools:
        """
        A headless chromium of this test's own, stopped at cleanup.
        """
        profile = Path(tempfile.mkdtemp(prefix="sidecar-chromium-"))
        self.addCleanup(shutil.rmtree, profile, True)
        debugPort = freePort(udp=False)
        browser = subprocess.Popen(
            [
                "chromium",
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--remote-debugging-port={debugPort}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(browser.wait, 10)
        self.addCleanup(browser.terminate)
        return DevTools(debugPort)

    async def test_aServiceAppearsThenTurnsUnhealthy(self) -> None:
        import websockets

        node = startNode(self, "host-a", "127.0.0.1", targets=[])
        api = node.api.port.getHost()  # type: ignore[union-attr]
        devtools = self.browser()
        sawAlive: Deferred[None] = Deferred()
        screenshot = Path(self.mktemp() + ".png")

        async def session() -> None:
            async with websockets.connect(devtools.pageURL(), max_size=None) as ws:
                await devtools.call(
                    ws, "Page.navigate", url=f"http://127.0.0.1:{api.port}/ui/"
                )
                await devtools.waitFor(ws, STATUS_OF_W1, "Alive")
                reactor.callFromThread(sawAlive.callback, None)  # type: ignore[attr-defined]
                await devtools.waitFor(ws, STATUS_OF_W1, "Unhealthy")
                shot = await devtools.call(ws, "Page.captureScreenshot", format="png")
                screenshot.write_bytes(base64.b64decode(shot["data"]))

        browsing = deferToThread(asyncio.run, session())

        def failedEarly(failure: Any) -> Any:
            if not sawAlive.called:
                sawAlive.errback(failure)
                return None
            return failure

        browsing.addErrback(failedEarly)

        def record(status: Status) -> Service:
            return Service(
                id="w1",
                name="shop",
                image="shop:2.1",
                hostname="host-b",
                ports=(Port("tcp", 8080, 10080, "127.0.1.2"),),
                created=round((reactor.seconds() - 90) * SECOND),  # type: ignore[attr-defined]
                updated=round(reactor.seconds() * SECOND),  # type: ignore[attr-defined]
                status=status,
            )

        node.state.merge(record(Status.ALIVE))
        await sawAlive
        node.state.merge(record(Status.UNHEALTHY))
        await browsing
        self.assertEqual(screenshot.read_bytes()[:8], b"\x89PNG\r\n\x1a\n")

    async def test_recordsHAProxyLeavesOutAreShown(self) -> None:
        import websockets

        if haproxySkipReason() is not None:
            raise self.skipTest(haproxySkipReason())
        servicePort = freePort(BIND_IP, udp=False)
        node = startNode(
            self,
            "host-a",
            "127.0.0.1",
            targets=[staticTarget(serveNamed(self, "web"), servicePort)],
            moreSettings=[*haproxySettings(temporaryDirectory(self)), "enabled = true"],
        )
        assert node.proxy is not None
        await routing(node.proxy)
        node.state.merge(
            Service(
                id="x1",
                name="web",
                image="img",
                hostname="host-b",
                ports=(Port("tcp", 8080, servicePort, "no-such-host"),),
                updated=round(reactor.seconds() * SECOND),  # type: ignore[attr-defined]
            )
        )
        api = node.api.port.getHost()  # type: ignore[union-attr]
        devtools = self.browser()

        async def session() -> None:
            async with websockets.connect(devtools.pageURL(), max_size=None) as ws:
                await devtools.call(
                    ws, "Page.navigate", url=f"http://127.0.0.1:{api.port}/ui/"
                )
                await devtools.waitFor(
                    ws,
                    PROXY_PROBLEMS,
                    "left out: host-b/x1: not an IP address: 'no-such-host'",
                )

        await deferToThread(asyncio.run, session())


class PageTests(TestCase):
    async def test_thePageIsServedAndTheRootLeadsToIt(self) -> None:
        import treq

        node = startNode(self, "host-a", "127.0.0.1", targets=[])
        base = f"http://127.0.0.1:{node.api.port.getHost().port}"  # type: ignore[union-attr]
        root = await treq.get(base + "/", allow_redirects=False, persistent=False)
        self.assertEqual(root.code, 302)
        self.assertEqual(root.headers.getRawHeaders(b"location"), [b"/ui/"])
        await root.content()
        page = await treq.get(base + "/ui/", persistent=False)
        self.assertIn("<title>sidecar</title>", await page.text())
        script = await treq.get(base + "/ui/app.js", persistent=False)
        [kind] = script.headers.getRawHeaders(b"content-type")
        self.assertIn(b"javascript", kind)
        self.assertIn("/api/watch", await script.text())
