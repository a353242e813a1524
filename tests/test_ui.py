"""
The console at C{/ui/} in a real browser: Debian's chromium, headless,
driven over its DevTools protocol, against running nodes.  It sees a
service appear and turn unhealthy (and lists only that change), shows
what each check last said within one check interval, shows a SIGKILLed
member as failed, a ServicePort conflict and a problem from C{/api/health}
on top, what HAProxy leaves out, and drains and undrains from its buttons
(and says which node to ask for another host's service), and filters;
how long each member has been in its state; that the catalog's stream
is read right wherever it is cut, and a long list drawn a screenful
first, then whole.  C{bench/ui.py} runs at a tiny size.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import itertools
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from sidecar.catalog import Port, Service, Status
from sidecar.service import SidecarNode

from .inprocess import gossipPort, startNode
from .processes import REPO, freePort
from .processes import startNode as startNodeProcess
from .switches import serveSwitch
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
CHECK_INTERVAL = 2.0
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
PROBLEMS = (
    "[...document.querySelectorAll('#problems li.problem')]"
    ".map(item => item.textContent.trim()).join(' | ')"
)
NOTICE = "document.querySelector('#notice:not([hidden]) .text')?.textContent"


def texts(selector: str) -> str:
    """
    JavaScript for the texts of every element C{selector} matches, joined
    by C{" | "}.
    """
    return (
        f"[...document.querySelectorAll({json.dumps(selector)})]"
        ".map(item => item.textContent.trim()).join(' | ')"
    )


def text(selector: str) -> str:
    """
    JavaScript for the text of the first element C{selector} matches
    (C{undefined} when none does).
    """
    return f"document.querySelector({json.dumps(selector)})?.textContent.trim()"


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
        # DevTools events (by method) handled while a call waits.
        self.handlers: dict[str, Callable[[Any, Any], Awaitable[None]]] = {}

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
            handler = self.handlers.get(message.get("method", ""))
            if handler is not None:
                await handler(ws, message["params"])
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def send(self, ws: Any, method: str, **params: Any) -> None:
        """
        Send a command without waiting for its answer (from a handler,
        while L{call} waits for another).
        """
        number = next(self._ids)
        await ws.send(json.dumps({"id": number, "method": method, "params": params}))

    async def evaluate(self, ws: Any, expression: str) -> Any:
        """
        The value of the JavaScript C{expression} in the page.
        """
        result = await self.call(
            ws, "Runtime.evaluate", expression=expression, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def waitFor(
        self, ws: Any, expression: str, expected: Any, timeout: float = 15
    ) -> None:
        """
        Poll C{expression} until it gives C{expected}, for at most
        C{timeout} seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(ws, expression)
            if value == expected:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{expression} never gave {expected!r} (last: {value!r})"
                )
            await asyncio.sleep(0.05)


def chromium(profile: Path) -> tuple[subprocess.Popen[bytes], DevTools]:
    """
    A headless chromium with its profile in C{profile}, and a L{DevTools}
    session on its page.  The caller stops the process.
    """
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
    return browser, DevTools(debugPort)


def failEarly(browsing: Deferred[Any], step: Deferred[None]) -> None:
    """
    When C{browsing} fails before the browser reaches C{step} (which the
    test awaits first), fail C{step} with it rather than wait for ever.
    """

    def failed(failure: Any) -> Any:
        if not step.called:
            step.errback(failure)
            return None
        return failure

    browsing.addErrback(failed)


class BrowserTests(TestCase):
    skip = chromiumSkipReason()

    def browser(self) -> DevTools:
        """
        A headless chromium of this test's own, stopped at cleanup.
        """
        profile = Path(tempfile.mkdtemp(prefix="sidecar-chromium-"))
        self.addCleanup(shutil.rmtree, profile, True)
        browser, devtools = chromium(profile)
        self.addCleanup(browser.wait, 10)
        self.addCleanup(browser.terminate)
        return devtools

    async def browse(
        self,
        node: SidecarNode,
        session: Callable[[DevTools, Any, str], Awaitable[None]],
        tab: str = "services",
    ) -> None:
        """
        Open C{node}'s console at C{tab} in a browser of this test's own
        and run C{session(devtools, ws, apiBase)} in a thread.
        """
        import websockets

        api = node.api.port.getHost()  # type: ignore[union-attr]
        base = f"http://{api.host}:{api.port}"
        devtools = self.browser()

        async def run() -> None:
            async with websockets.connect(devtools.pageURL(), max_size=None) as ws:
                await devtools.call(ws, "Page.navigate", url=f"{base}/ui/#{tab}")
                await session(devtools, ws, base)

        await deferToThread(asyncio.run, run())

    async def test_aServiceAppearsThenTurnsUnhealthy(self) -> None:
        import websockets

        node = startNode(self, "host-a", "127.0.0.1", targets=[])
        api = node.api.port.getHost()  # type: ignore[union-attr]
        devtools = self.browser()
        sawAlive: Deferred[None] = Deferred()
        screenshot = Path(self.mktemp() + ".png")
        updated = (
            "document.querySelector('tr[data-id=\"w1\"] td:nth-child(8)').textContent"
        )

        async def session() -> None:
            async with websockets.connect(devtools.pageURL(), max_size=None) as ws:
                await devtools.call(
                    ws, "Page.navigate", url=f"http://127.0.0.1:{api.port}/ui/"
                )
                await devtools.waitFor(ws, STATUS_OF_W1, "Alive")
                # What was there at load is no change.
                self.assertEqual(
                    await devtools.evaluate(ws, text("#count-events")), "0"
                )
                # Ages tick without any change to the catalog.
                before = await devtools.evaluate(ws, updated)
                await devtools.waitFor(ws, f"{updated} !== {json.dumps(before)}", True)
                reactor.callFromThread(sawAlive.callback, None)  # type: ignore[attr-defined]
                await devtools.waitFor(ws, STATUS_OF_W1, "Unhealthy")
                await devtools.waitFor(ws, text("#count-events"), "1")
                self.assertIn(
                    "shop",
                    await devtools.evaluate(ws, text('.svc[data-name="shop"] .name')),
                )
                self.assertIn(
                    "0 of 1 instance alive", await devtools.evaluate(ws, PROBLEMS)
                )
                shot = await devtools.call(ws, "Page.captureScreenshot", format="png")
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                await devtools.evaluate(
                    ws, "document.querySelector('button[data-tab=events]').click()"
                )
                await devtools.waitFor(ws, texts("#changes li b"), "shop host-b/w1")
                change = await devtools.evaluate(ws, text("#changes li"))
                self.assertTrue(
                    change.endswith("shop host-b/w1 Alive → Unhealthy"), change
                )

        browsing = deferToThread(asyncio.run, session())
        failEarly(browsing, sawAlive)

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

    async def test_theCheckColumnSaysWhatChecksJSONSaysWithinOneInterval(
        self,
    ) -> None:
        switch, port = serveSwitch(self)
        target = {
            "Service": {"Name": "web", "Ports": [{"Port": port}]},
            "Check": {"Type": "HttpGet", "Args": f"http://127.0.0.1:{port}/health"},
        }
        node = startNode(
            self,
            "host-a",
            "127.0.0.1",
            targets=[target],
            moreSettings=["[health]", f'interval = "{CHECK_INTERVAL}s"'],
        )

        async def session(devtools: DevTools, ws: Any, base: str) -> None:
            def checked() -> tuple[str, str] | None:
                with urllib.request.urlopen(f"{base}/api/checks.json") as answer:
                    [(id, check)] = json.loads(answer.read())["Checks"].items()
                if check["LastChecked"] is None:
                    return None
                said = check["LastError"] or check["LastResult"] or check["Status"]
                return id, said

            async def pageFollows(code: int) -> None:
                reactor.callFromThread(setattr, switch, "code", code)  # type: ignore[attr-defined]
                deadline = time.monotonic() + 10
                while (now := checked()) is None or (code == 503) != ("503" in now[1]):
                    self.assertLess(time.monotonic(), deadline, "never checked")
                    await asyncio.sleep(0.02)
                id, said = now
                cell = text(f'tr[data-id="{id}"] td.check .result')
                await devtools.waitFor(ws, cell, said, timeout=CHECK_INTERVAL)
                status = text(f'tr[data-id="{id}"] td.status')
                expected = "Unhealthy" if code == 503 else "Alive"
                await devtools.waitFor(ws, status, expected, timeout=CHECK_INTERVAL)

            await pageFollows(200)
            await pageFollows(503)
            await pageFollows(200)

        await self.browse(node, session)

    async def test_aKilledMemberShowsAsFailed(self) -> None:
        node = startNode(self, "ui-a", "127.0.0.1", ['profile = "local"'], targets=[])
        directory = Path(self.mktemp()).resolve()
        directory.mkdir()
        (directory / "static.json").write_text(
            json.dumps([{"Service": {"Name": "svc-b", "Ports": [{"Port": 9000}]}}])
        )
        (directory / "node.toml").write_text(
            '[node]\nname = "ui-b"\nbind = "127.0.0.1:0"\nprofile = "local"\n'
            f'seeds = ["127.0.0.1:{gossipPort(node)}"]\n'
            '[api]\nlisten = "127.0.0.1:0"\n'
        )
        other = startNodeProcess(str(directory / "node.toml"))

        async def kill() -> None:
            if not other.ended.called:
                other.transport.signalProcess(signal.SIGKILL)  # type: ignore[union-attr]
            await other.ended

        self.addCleanup(kill)
        await other.listening
        killed: Deferred[None] = Deferred()
        state = text('tr[data-name="ui-b"] .state .pill')

        def showsSince(base: str, state: str) -> str:
            """
            JavaScript: whether ui-b's "for" cell counts from the Since
            that members.json gives it now, in C{state}.
            """
            with urllib.request.urlopen(f"{base}/api/members.json") as answer:
                [member] = [
                    m
                    for m in json.loads(answer.read())["Members"]
                    if m["Name"] == "ui-b"
                ]
            self.assertEqual(member["State"], state)
            cell = "document.querySelector('tr[data-name=\"ui-b\"] td.since time')"
            return (
                f"String(Date.parse({json.dumps(member['Since'])})) === "
                f"{cell}?.dataset.t && {cell}.textContent.startsWith('for ')"
            )

        async def session(devtools: DevTools, ws: Any, base: str) -> None:
            await devtools.waitFor(ws, state, "alive", timeout=30)
            await devtools.waitFor(ws, text('tr[data-name="ui-b"] td.num'), "1")
            await devtools.waitFor(ws, showsSince(base, "alive"), True)
            reactor.callFromThread(killed.callback, None)  # type: ignore[attr-defined]
            await devtools.waitFor(ws, state, "failed", timeout=30)
            failedSince = showsSince(base, "failed")
            await devtools.waitFor(ws, failedSince, True)
            self.assertIn(
                "failed",
                await devtools.evaluate(
                    ws, "document.querySelector('tr[data-name=\"ui-b\"]').className"
                ),
            )
            await devtools.waitFor(
                ws, f"{PROBLEMS}.includes('member ui-b failed')", True
            )
            # Gossip forgets it (15 s on "local"); the page keeps it while
            # the catalog holds its services.
            await devtools.waitFor(
                ws, text('tr[data-name="ui-b"] .state'), "failed forgotten", timeout=40
            )
            # It keeps the time it failed at.
            self.assertTrue(await devtools.evaluate(ws, failedSince))
            with urllib.request.urlopen(f"{base}/api/members.json") as answer:
                members = json.loads(answer.read())["Members"]
            self.assertNotIn("ui-b", [m["Name"] for m in members])
            self.assertIn(
                "member ui-b failed, and forgotten by gossip",
                await devtools.evaluate(ws, PROBLEMS),
            )

        browsing = ensureDeferred(self.browse(node, session, tab="members"))
        failEarly(browsing, killed)
        await killed
        await kill()
        await browsing

    async def test_aConflictAndAProblemFromTheNodeShowOnTop(self) -> None:
        node = startNode(self, "host-a", "127.0.0.1", targets=[])
        now = reactor.seconds()  # type: ignore[attr-defined]
        for id, name in (("c1", "cart"), ("s1", "shop")):
            node.state.merge(
                Service(
                    id=id,
                    name=name,
                    image=f"{name}:1",
                    hostname="host-b",
                    ports=(Port("tcp", 8080, 10080, "127.0.1.2"),),
                    created=round((now - 60) * SECOND),
                    updated=round(now * SECOND),
                )
            )
        problem = {
            "Kind": "proxy",
            "Subject": "ServicePort 10090",
            "Message": "cannot bind 127.0.0.168:10090: address in use",
            "Since": "2026-01-02T03:04:05Z",
        }

        async def session(devtools: DevTools, ws: Any, base: str) -> None:
            await devtools.waitFor(
                ws,
                text('.svc[data-name="shop"] .conflict'),
                "conflict: cart (10080)",
            )
            await devtools.waitFor(
                ws, text('.svc[data-name="cart"] .conflict'), "conflict: shop (10080)"
            )
            await devtools.waitFor(
                ws,
                f"{PROBLEMS}.startsWith("
                "'conflict ServicePort 10080 claimed by cart and shop')",
                True,
            )

            # /api/health with Problems (as a node that reports them answers).
            async def withProblems(ws: Any, params: Any) -> None:
                with urllib.request.urlopen(params["request"]["url"]) as answer:
                    health = json.loads(answer.read())
                body = json.dumps({**health, "Problems": [problem]}).encode()
                await devtools.send(
                    ws,
                    "Fetch.fulfillRequest",
                    requestId=params["requestId"],
                    responseCode=200,
                    responseHeaders=[
                        {"name": "Content-Type", "value": "application/json"}
                    ],
                    body=base64.b64encode(body).decode(),
                )

            devtools.handlers["Fetch.requestPaused"] = withProblems
            await devtools.call(
                ws, "Fetch.enable", patterns=[{"urlPattern": "*/api/health*"}]
            )
            await devtools.waitFor(
                ws,
                f"{PROBLEMS}.startsWith('proxy ServicePort 10090 cannot bind "
                "127.0.0.168:10090: address in use since ')",
                True,
            )
            self.assertIn(
                "conflict ServicePort 10080", await devtools.evaluate(ws, PROBLEMS)
            )
            # The filter box keeps what matches, and says so in the address.
            await devtools.evaluate(
                ws,
                "{ const box = document.getElementById('filter'); box.value = 'car';"
                " box.dispatchEvent(new Event('input')); }",
            )
            await devtools.waitFor(ws, texts(".svc .name"), "cart")
            self.assertEqual(
                await devtools.evaluate(ws, "location.hash"), "#services?q=car"
            )

        await self.browse(node, session)

    async def test_aLongListIsFirstAScreenfulThenWhole(self) -> None:
        """
        With more services than the first draw holds, the page draws a
        screenful first and every service right after.
        """
        node = startNode(self, "host-a", "127.0.0.1", targets=[])
        now = reactor.seconds()  # type: ignore[attr-defined]
        names = [f"svc-{n:03d}" for n in range(75)]
        for n, name in enumerate(names):
            node.state.merge(
                Service(
                    id=f"i{n:03d}",
                    name=name,
                    image=f"{name}:1",
                    hostname="host-b",
                    ports=(Port("tcp", 9000 + n, 0, "127.0.1.2"),),
                    created=round((now - 60) * SECOND),
                    updated=round(now * SECOND),
                )
            )
        rows = "[...document.querySelectorAll('.svc')].map(row => row.dataset.name)"
        # How many rows the first draw of services had, seen as it happens.
        firstDraw = """
          new MutationObserver((changes, observer) => {
            const drawn = document.querySelectorAll('#view .svc').length;
            if (drawn) { window.firstDrawn = drawn; observer.disconnect(); }
          }).observe(document, { childList: true, subtree: true });
        """

        async def session(devtools: DevTools, ws: Any, base: str) -> None:
            await devtools.call(ws, "Page.enable")
            await devtools.call(
                ws, "Page.addScriptToEvaluateOnNewDocument", source=firstDraw
            )
            await devtools.call(ws, "Page.reload")
            await devtools.waitFor(ws, "window.firstDrawn", 60)
            await devtools.waitFor(
                ws, "typeof window.sidecarConsole.wholeRender", "number"
            )
            self.assertEqual(await devtools.evaluate(ws, rows), names)
            stats = await devtools.evaluate(ws, "window.sidecarConsole")
            self.assertGreaterEqual(stats["wholeRender"], stats["firstRender"])

        await self.browse(node, session)

    async def test_theCatalogStreamIsSplitWhereverItIsCut(self) -> None:
        """
        The page's reader of C{/api/watch} finds the same documents however
        the stream is cut into chunks: inside strings, escapes, braces.
        """
        node = startNode(self, "host-a", "127.0.0.1", targets=[])
        documents = [
            {"a": '}{"{', "b": {"c": [1, {"d": 2}]}},
            {"e": "\\"},
            {"f": "\u00e9\n", "g": {}},
        ]
        stream = (
            json.dumps(documents[0]) + "\n" + json.dumps(documents[1])
            + json.dumps(documents[2]) + "\n"
        )  # fmt: skip
        # Every way of cutting it in three chunks, and one character at a
        # time: the cuts whose documents differ, and the latter's.
        script = f"""(() => {{
          const text = {json.dumps(stream)};
          const read = chunks => {{
            const stream = new Documents();
            return JSON.stringify(chunks.flatMap(chunk => stream.push(chunk)));
          }};
          const whole = read([text]);
          const wrong = [];
          for (let i = 0; i <= text.length; i++) {{
            for (let j = i; j <= text.length; j++) {{
              const cut = [text.slice(0, i), text.slice(i, j), text.slice(j)];
              if (read(cut) !== whole) wrong.push([i, j]);
            }}
          }}
          return JSON.stringify({{whole, wrong, single: read([...text])}});
        }})()"""

        async def session(devtools: DevTools, ws: Any, base: str) -> None:
            await devtools.waitFor(ws, "typeof Documents", "function")
            said = json.loads(await devtools.evaluate(ws, script))
            self.assertEqual(json.loads(said["whole"]), documents)
            self.assertEqual(said["wrong"], [])
            self.assertEqual(json.loads(said["single"]), documents)

        await self.browse(node, session)

    async def test_drainAndUndrainFromTheButtons(self) -> None:
        node = startNode(self, "host-a", "127.0.0.1")
        [local] = node.state.services()
        now = reactor.seconds()  # type: ignore[attr-defined]
        node.state.merge(
            Service(
                id="r1",
                name="remote",
                image="remote:1",
                hostname="host-b",
                ports=(Port("tcp", 8080, 10080, "127.0.1.2"),),
                created=round((now - 60) * SECOND),
                updated=round(now * SECOND),
            )
        )
        statuses: list[str] = []
        status = text(f'tr[data-id="{local.id}"] td.status')
        button = f'tr[data-id="{local.id}"] button.drain'

        def catalogStatus() -> None:
            [service] = [s for s in node.state.services() if s.id == local.id]
            statuses.append(service.status.name)

        async def session(devtools: DevTools, ws: Any, base: str) -> None:
            await devtools.waitFor(ws, status, "Alive", timeout=20)
            await devtools.waitFor(ws, text(button), "Drain")
            await devtools.evaluate(ws, f"document.querySelector('{button}').click()")
            await devtools.waitFor(ws, status, "Draining")
            # The node's answer may come after the catalog's change.
            await devtools.waitFor(
                ws,
                NOTICE,
                f'Service "svc-host-a" instance "{local.id}" set to DRAINING',
            )
            reactor.callFromThread(catalogStatus)  # type: ignore[attr-defined]
            await devtools.waitFor(ws, text(button), "Undrain")
            await devtools.evaluate(ws, f"document.querySelector('{button}').click()")
            await devtools.waitFor(ws, status, "Alive")
            # The node's answer may come after the catalog's change.
            await devtools.waitFor(
                ws,
                NOTICE,
                f'Service "svc-host-a" instance "{local.id}" set to ALIVE',
            )
            reactor.callFromThread(catalogStatus)  # type: ignore[attr-defined]
            # Another host's service: this node cannot, and says who can.
            await devtools.evaluate(
                ws, "document.querySelector('tr[data-id=\"r1\"] button.drain').click()"
            )
            await devtools.waitFor(
                ws,
                f"({NOTICE} || '').startsWith('Cannot drain r1 here: it runs on host-b,"
                " and only host-b\\'s node can drain it')",
                True,
            )
            self.assertIn(
                'Not Found - Service ID "r1" not found',
                await devtools.evaluate(ws, NOTICE),
            )
            self.assertEqual(
                await devtools.evaluate(ws, text('tr[data-id="r1"] td.status')),
                "Alive",
            )
            # Hosts by services: r1 Alive on host-b, the local one on host-a.
            await devtools.evaluate(
                ws, "document.querySelector('button[data-tab=hosts]').click()"
            )
            await devtools.waitFor(
                ws, texts("table.matrix thead th[data-host] b"), "host-a | host-b"
            )
            self.assertEqual(
                await devtools.evaluate(
                    ws, texts('table.matrix tr[data-name="remote"] td')
                ),
                " | Alive",
            )
            self.assertEqual(
                await devtools.evaluate(
                    ws, texts('table.matrix tr[data-name="svc-host-a"] td')
                ),
                "Alive | ",
            )

        await self.browse(node, session)
        self.assertEqual(statuses, ["DRAINING", "ALIVE"])

    async def test_recordsHAProxyLeavesOutAreShown(self) -> None:
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
        [local] = [s for s in node.state.services() if s.hostname == "host-a"]

        async def session(devtools: DevTools, ws: Any, base: str) -> None:
            await devtools.waitFor(
                ws,
                texts("#proxy-refused li"),
                "host-b/x1: not an IP address: 'no-such-host'",
            )
            await devtools.waitFor(
                ws,
                f'{PROBLEMS}.includes("HAProxy refused 1 record left out: '
                "host-b/x1: not an IP address: 'no-such-host'\")",
                True,
            )
            await devtools.evaluate(
                ws, "document.querySelector('button[data-tab=services]').click()"
            )
            # Routable here: the local instance, not the refused one.
            await devtools.waitFor(
                ws, text('.svc[data-name="web"] .routable'), "1 / 2 alive"
            )
            await devtools.waitFor(
                ws, text(f'tr[data-id="{local.id}"] td:nth-child(9)'), "routed"
            )
            await devtools.waitFor(
                ws, text('tr[data-id="x1"] td:nth-child(9)'), "not routed"
            )

        await self.browse(node, session, tab="haproxy")


class BenchmarkTests(TestCase):
    skip = chromiumSkipReason()
    timeout = 120

    async def test_everyFigureComesOut(self) -> None:
        bench = str(REPO / "bench")
        if bench not in sys.path:
            sys.path.insert(0, bench)
        ui = importlib.import_module("ui")
        arguments = ui.parseArguments(
            ["3", "--instances", "2", "--hosts", "2", "--loads", "1", "--tabs", "1"]
        )
        figures = await ui.run(arguments)
        [first] = figures.firstRenders
        self.assertGreater(first, 0)
        self.assertGreater(figures.newTab, 0)
        self.assertGreater(figures.newTabCatalog, 0)
        [later] = figures.laterTabs
        self.assertGreater(later, 0)
        self.assertGreaterEqual(figures.newTabWhole, figures.newTab)
        [whole] = figures.wholeRenders
        self.assertGreaterEqual(whole, first)
        self.assertGreater(figures.catalogReceived, 0)
        self.assertGreater(figures.firstRenderScript, 0)
        self.assertEqual(
            sorted(figures.tabs), ["events", "haproxy", "hosts", "members", "services"]
        )
        for ms in figures.tabs.values():
            self.assertGreaterEqual(ms, 0)
        self.assertGreaterEqual(figures.afterChange, 0)
        self.assertGreater(figures.domNodes, 0)
        self.assertGreater(figures.heapMiB, 0)
        rows = dict(figures.rows(arguments))
        self.assertEqual(rows["instances"], "6 on 2 hosts")


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
        # Kept by the browser, asked again each time: unchanged, a 304.
        for response in (page, script):
            self.assertEqual(
                response.headers.getRawHeaders(b"cache-control"), [b"no-cache"]
            )
        [modified] = script.headers.getRawHeaders(b"last-modified")
        again = await treq.get(
            base + "/ui/app.js",
            headers={b"If-Modified-Since": [modified]},
            persistent=False,
        )
        self.assertEqual(again.code, 304)
        self.assertEqual(await again.content(), b"")
