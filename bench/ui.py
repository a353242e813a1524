"""
Console benchmark: how long headless chromium takes to put C{/ui/} on
screen for a big catalog, and to redraw each of its tabs.

    PYTHONPATH=. .tox/py3/bin/python bench/ui.py [SERVICES] [--instances 3]
        [--hosts 100] [--loads 10] [--tabs 5] [--screenshot PATH]

A whole node (L{sidecar.makeService}) runs in this process on 127.0.0.1
and is given SERVICES service names with C{--instances} instances each,
spread over C{--hosts} hosts, merged into its catalog as gossip would
(every seventh instance Unhealthy, every 47th Draining, each name on
its own ServicePort, a name's instances on different hosts).  Debian's
chromium, headless, opens C{/ui/} in a new tab, then reloads it
C{--loads} times; then, that tab gone, opens it in C{--tabs} more tabs,
one at a time, each after a change to the catalog.  The page itself
measures (C{window.sidecarConsole}):

- first render: from the start of navigation to the catalog on screen
  (the first document of C{/api/watch} drawn: a screenful of services,
  the first 60), in the new tab (chromium starts a renderer process for
  it, and the node encodes the catalog for its first request), p50 and
  max over the reloads, and p50 and max over the more tabs (a renderer
  each, the browser's cache warm, the node encoding the changed
  catalog);
- catalog received: from the start of navigation to the first document
  of C{/api/watch} parsed, in the new tab and p50 over the reloads (the
  node's share, and the page's until it asks);
- every row drawn: until the whole list is drawn too (a frame later), in
  the new tab and p50 over the reloads;
- the first render's own script time, p50 over the reloads;
- the redraw of each tab (Services, Hosts, Members, HAProxy, Changes) when
  clicked, and of the Services tab after a change to the catalog;
- the page's DOM nodes and JavaScript heap.

Nothing is asserted: the figures are for reading.  C{--screenshot} saves
the Services tab as a PNG.  Chromium and the node are stopped when the
benchmark ends, on an error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import statistics
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cluster import printRows
from twisted.internet import defer, reactor, task
from twisted.internet.threads import blockingCallFromThread, deferToThread

from sidecar import makeService
from sidecar.catalog import Port, Service, Status
from sidecar.config import loadConfig
from tests.test_ui import DevTools, chromium

SECOND = 1_000_000_000
TABS = ("services", "hosts", "members", "haproxy", "events")
STATS = "JSON.stringify(window.sidecarConsole)"


@dataclass
class Figures:
    """
    What one run measured, in milliseconds (nodes and MiB aside).
    """

    newTab: float
    newTabCatalog: float
    newTabWhole: float
    laterTabs: list[float]
    firstRenders: list[float]
    wholeRenders: list[float]
    catalogReceived: float
    firstRenderScript: float
    tabs: dict[str, float]
    afterChange: float
    domNodes: int
    heapMiB: float

    def rows(self, arguments: argparse.Namespace) -> list[tuple[str, str]]:
        instances = arguments.services * arguments.instances
        return [
            ("services", f"{arguments.services}"),
            ("instances", f"{instances} on {arguments.hosts} hosts"),
            ("reloads", f"{len(self.firstRenders)}"),
            ("first render, new tab", f"{self.newTab:.0f} ms"),
            ("catalog received, new tab", f"{self.newTabCatalog:.0f} ms"),
            ("every row drawn, new tab", f"{self.newTabWhole:.0f} ms"),
            (
                f"first render, {len(self.laterTabs)} more tabs p50",
                f"{statistics.median(self.laterTabs):.0f} ms",
            ),
            ("first render, more tabs max", f"{max(self.laterTabs):.0f} ms"),
            ("first render p50", f"{statistics.median(self.firstRenders):.0f} ms"),
            ("first render max", f"{max(self.firstRenders):.0f} ms"),
            ("every row drawn p50", f"{statistics.median(self.wholeRenders):.0f} ms"),
            ("catalog received p50", f"{self.catalogReceived:.0f} ms"),
            ("first render script", f"{self.firstRenderScript:.0f} ms"),
            *((f"{tab} tab redraw", f"{ms:.0f} ms") for tab, ms in self.tabs.items()),
            ("redraw after a change", f"{self.afterChange:.0f} ms"),
            ("DOM nodes", f"{self.domNodes}"),
            ("JS heap", f"{self.heapMiB:.1f} MiB"),
        ]


def records(services: int, instances: int, hosts: int, now: float) -> list[Service]:
    """
    The catalog the benchmark gives its node.
    """
    made = []
    for n in range(services * instances):
        name = n % services
        status = (
            Status.DRAINING
            if n % 47 == 46
            else Status.UNHEALTHY
            if n % 7 == 6
            else Status.ALIVE
        )
        made.append(
            Service(
                id=f"{n:012x}",
                name=f"svc-{name:04d}",
                image=f"registry.example/svc-{name:04d}:1.{n % 3}",
                hostname=f"host-{(n + n // services) % hosts:03d}",
                ports=(Port("tcp", 20000 + n % 40000, 10000 + name, "127.0.0.1"),),
                created=round((now - 3600 - n) * SECOND),
                updated=round((now - n % 600) * SECOND),
                status=status,
            )
        )
    return made


async def measure(
    arguments: argparse.Namespace, workdir: Path, screenshot: Path | None = None
) -> Figures:
    """
    Run a node with the benchmark's catalog and measure the page on it.
    """
    (workdir / "static.json").write_text("[]")
    (workdir / "node.toml").write_text(
        '[node]\nname = "ui-bench"\nbind = "127.0.0.1:0"\n'
        '[api]\nlisten = "127.0.0.1:0"\n[log]\nlevel = "warn"\n'
    )
    node = makeService(loadConfig(workdir / "node.toml"), reactor)
    node.startService()
    browser = None
    try:
        now = reactor.seconds()  # type: ignore[attr-defined]
        catalog = records(arguments.services, arguments.instances, arguments.hosts, now)
        for record in catalog:
            node.state.merge(record)
        port = node.api.port.getHost().port  # type: ignore[union-attr]
        browser, devtools = chromium(workdir / "chromium")
        changed: defer.Deferred[None] = defer.Deferred()
        change = Service(
            id="000000000000",
            name="svc-0000",
            image="registry.example/svc-0000:1.0",
            hostname="host-000",
            ports=(Port("tcp", 20000, 10000, "127.0.0.1"),),
            created=round((now - 3600) * SECOND),
            updated=round(reactor.seconds() * SECOND) + SECOND,  # type: ignore[attr-defined]
            status=Status.UNHEALTHY,
        )
        changed.addCallback(lambda _: node.state.merge(change))
        # The first instance turns Unhealthy: svc-0000 then has one more.
        unhealthy = 1 + sum(
            r.name == change.name and r.status is Status.UNHEALTHY for r in catalog
        )
        last = catalog[-1]

        def refresh(n: int) -> None:
            """
            Change the catalog, from the browsing thread: its last record
            refreshed, as a node refreshes its records now and then.
            """
            blockingCallFromThread(
                reactor,
                node.state.merge,
                replace(last, updated=last.updated + n * SECOND),
            )

        return await deferToThread(
            asyncio.run,
            _browse(
                devtools,
                port,
                arguments,
                Changes(changed, unhealthy, refresh),
                screenshot,
            ),
        )
    finally:
        if browser is not None:
            browser.terminate()
            browser.wait(10)
        await node.stopService()


@dataclass
class Changes:
    """
    How the browsing thread changes the node's catalog: C{change} turns an
    instance of svc-0000 Unhealthy (that service then has C{unhealthy});
    C{refresh(n)} changes the catalog for the C{n}th more tab.
    """

    change: defer.Deferred[None]
    unhealthy: int
    refresh: Callable[[int], None]


async def _browse(
    devtools: DevTools,
    port: int,
    arguments: argparse.Namespace,
    changes: Changes,
    screenshot: Path | None,
) -> Figures:
    import websockets

    loads = arguments.loads

    url = f"http://127.0.0.1:{port}/ui/#services"
    async with websockets.connect(devtools.pageURL(), max_size=None) as ws:
        await devtools.call(ws, "Page.enable")
        await devtools.call(
            ws, "Emulation.setDeviceMetricsOverride", width=1600, height=1000,
            deviceScaleFactor=1, mobile=False,
        )  # fmt: skip
        firsts = []
        for load in range(loads + 1):
            # Forget the last page's figures, so that only the new one's count.
            await devtools.evaluate(ws, "window.sidecarConsole = null")
            if load == 0:
                await devtools.call(ws, "Page.navigate", url=url)
            else:
                await devtools.call(ws, "Page.reload", ignoreCache=True)
            await devtools.waitFor(
                ws, "typeof window.sidecarConsole?.wholeRender", "number", timeout=60
            )
            firsts.append(await _stats(devtools, ws))
        if screenshot is not None:
            shot = await devtools.call(ws, "Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        tabs = {}
        for tab in (*TABS[1:], TABS[0]):
            renders = (await _stats(devtools, ws))["renders"]
            await devtools.evaluate(
                ws, f"document.querySelector('button[data-tab={tab}]').click()"
            )
            await devtools.waitFor(
                ws, f"window.sidecarConsole.renders > {renders}", True
            )
            tabs[tab] = (await _stats(devtools, ws))["lastRenderMs"]
        reactor.callFromThread(changes.change.callback, None)  # type: ignore[attr-defined]
        await devtools.waitFor(
            ws,
            "document.querySelector('.svc[data-name=\"svc-0000\"] .n.Unhealthy')"
            "?.textContent",
            f"{changes.unhealthy} unhealthy",
            timeout=30,
        )
        afterChange = (await _stats(devtools, ws))["lastRenderMs"]
        nodes = await devtools.evaluate(ws, "document.getElementsByTagName('*').length")
        heap = await devtools.call(ws, "Runtime.getHeapUsage")
        # This tab leaves: it would have the node encode each change for it.
        await devtools.call(ws, "Page.navigate", url="about:blank")
    laterTabs = []
    for n in range(1, arguments.tabs + 1):
        changes.refresh(n)
        laterTabs.append(await _laterTab(devtools, url))
    newTab, reloads = firsts[0], firsts[1:]
    return Figures(
        newTab=newTab["firstRender"],
        newTabCatalog=newTab["firstDocument"],
        newTabWhole=newTab["wholeRender"],
        laterTabs=laterTabs,
        firstRenders=[f["firstRender"] for f in reloads],
        wholeRenders=[f["wholeRender"] for f in reloads],
        catalogReceived=statistics.median(f["firstDocument"] for f in reloads),
        firstRenderScript=statistics.median(f["firstRenderMs"] for f in reloads),
        tabs=tabs,
        afterChange=afterChange,
        domNodes=nodes,
        heapMiB=heap["usedSize"] / 2**20,
    )


async def _laterTab(devtools: DevTools, url: str) -> float:
    """
    The first render of C{url} in a tab opened in the running browser (its
    own renderer, the browser's cache warm), then closed.
    """
    import websockets

    base = f"http://127.0.0.1:{devtools.port}/json"
    opening = urllib.request.Request(f"{base}/new?about:blank", method="PUT")
    with urllib.request.urlopen(opening, timeout=10) as answer:
        target = json.loads(answer.read())
    try:
        async with websockets.connect(
            target["webSocketDebuggerUrl"], max_size=None
        ) as ws:
            await devtools.call(ws, "Page.navigate", url=url)
            await devtools.waitFor(
                ws, "typeof window.sidecarConsole?.wholeRender", "number", timeout=60
            )
            return float((await _stats(devtools, ws))["firstRender"])
    finally:
        with urllib.request.urlopen(f"{base}/close/{target['id']}", timeout=10):
            pass


async def _stats(devtools: DevTools, ws: Any) -> Any:
    return json.loads(await devtools.evaluate(ws, STATS))


def parseArguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("services", type=int, nargs="?", default=1000)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--tabs", type=int, default=5)
    parser.add_argument("--screenshot", type=Path, default=None)
    arguments = parser.parse_args(argv)
    if (
        min(
            arguments.services,
            arguments.instances,
            arguments.hosts,
            arguments.loads,
            arguments.tabs,
        )
        < 1
    ):
        parser.error(
            "SERVICES, --instances, --hosts, --loads and --tabs must be at least 1"
        )
    return arguments


async def run(arguments: argparse.Namespace) -> Figures:
    workdir = Path(tempfile.mkdtemp(prefix="sidecar-ui-bench-"))
    try:
        return await measure(arguments, workdir, arguments.screenshot)
    finally:
        shutil.rmtree(workdir, True)


def main() -> None:
    arguments = parseArguments(sys.argv[1:])

    async def report(_: Any) -> None:
        figures = await run(arguments)
        printRows(figures.rows(arguments))

    task.react(lambda r: defer.ensureDeferred(report(r)))


if __name__ == "__main__":
    main()
