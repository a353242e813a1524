"""
C{/metrics} as Prometheus itself sees it: C{promtool check metrics} finds
nothing to lint, and a real C{prometheus} scrapes a node and answers
queries of its figures.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import treq
from twisted.internet import defer, reactor
from twisted.internet.error import ConnectError
from twisted.trial.unittest import TestCase

from sidecar.catalog import Status
from sidecar.demo.processes import ChildProcess
from sidecar.service import SidecarNode

from .inprocess import startNode
from .processes import freePort, pollUntil

# A listener that is down (nothing listens on port 1 of loopback): the
# listener families and a problem carry labelled samples.
DOWN = "http://127.0.0.1:1/"


REPO = Path(__file__).resolve().parent.parent


def _skipReason(program: str) -> str | None:
    if shutil.which(program) is None:
        return f"{program} is not installed (Debian package prometheus)"
    return None


def _startNode(case: TestCase) -> SidecarNode:
    """
    A node with every optional part whose figures C{/metrics} shows: a
    listener, and a HAProxy it does not manage (reloaded by C{true}, so
    that no HAProxy runs), on the loopback proxy address.
    """
    directory = Path(case.mktemp())
    directory.mkdir()
    return startNode(
        case,
        "host-a",
        "127.0.1.1",
        ['profile = "local"'],
        moreSettings=[
            "[health]",
            'interval = "100ms"',
            "[listeners]",
            f'urls = ["{DOWN}"]',
            "[haproxy]",
            "enabled = true",
            "manage_process = false",
            'reload_command = "true"',
            'bind_ip = "127.0.0.168"',
            f'config_file = "{directory / "haproxy.cfg"}"',
            f'admin_socket = "{directory / "admin.sock"}"',
            'stats_listen = ""',
        ],
    )


def _apiURL(node: SidecarNode) -> str:
    api = node.api.port.getHost()  # type: ignore[union-attr]
    return f"http://{api.host}:{api.port}"


async def _checked(node: SidecarNode) -> None:
    """
    Wait until the node's service has been checked, so that the check
    histogram has samples.
    """

    def alive() -> defer.Deferred[bool | None]:
        records = node.state.localServices()
        return defer.succeed(
            True if any(s.status is Status.ALIVE for s in records) else None
        )

    await pollUntil(alive, timeout=10)


async def _promtool(*arguments: str, text: bytes = b"") -> tuple[int | None, str]:
    """
    C{promtool} with C{arguments} and C{text} on its input: its exit code
    and what it said.
    """
    child = ChildProcess()
    promtool = shutil.which("promtool")
    assert promtool is not None
    reactor.spawnProcess(  # type: ignore[attr-defined]
        child, promtool, [promtool, *arguments], env=dict(os.environ)
    )
    child.transport.write(text)  # type: ignore[union-attr]
    child.transport.closeStdin()  # type: ignore[union-attr]
    code = await child.ended.addTimeout(10, reactor)
    return code, child.describe()


class PromtoolTests(TestCase):
    skip = _skipReason("promtool")

    async def test_promtoolFindsNothingToLint(self) -> None:
        """
        Every family a node exports (gossip, catalog, checks, API,
        listeners, HAProxy, problems, process) passes promtool's lint:
        names, help, units and counters' C{_total}.
        """
        node = _startNode(self)
        await _checked(node)
        response = await treq.get(f"{_apiURL(node)}/metrics", persistent=False)
        text = await response.content()
        # The families this lint covers are all there.
        for family in (
            b"# TYPE sidecar_haproxy_reloads_total counter",
            b"# TYPE sidecar_listener_events_delivered_total counter",
            b"# TYPE sidecar_check_duration_seconds histogram",
            b"# TYPE sidecar_service_instances gauge",
            b"# TYPE process_cpu_seconds_total counter",
        ):
            self.assertIn(family, text)
        self.assertEqual(await _promtool("check", "metrics", text=text), (0, ""))

    async def test_promtoolReportsAProblem(self) -> None:
        """
        The harness above can fail: a counter without C{_total} is
        reported, with its name.
        """
        code, said = await _promtool(
            "check",
            "metrics",
            text=b"# HELP sidecar_things Things.\n"
            b"# TYPE sidecar_things counter\n"
            b"sidecar_things 1\n",
        )
        self.assertNotEqual(code, 0)
        self.assertIn("sidecar_things", said)

    async def test_theDocumentedAlertsAreValidRules(self) -> None:
        """
        The example alerting rules of docs/operations.md pass C{promtool
        check rules}: valid YAML, valid PromQL.
        """
        rules = Path(self.mktemp())
        rules.write_text(_documentedRules())
        code, said = await _promtool("check", "rules", str(rules))
        self.assertEqual(code, 0, said)
        self.assertIn("SUCCESS: 8 rules found", said)


def _documentedRules() -> str:
    """
    The YAML block of docs/operations.md's example alerting rules,
    unindented from its list item.
    """
    text = (REPO / "docs" / "operations.md").read_text()
    start = text.index("  ```yaml\n", text.index("Example Prometheus alerting rules"))
    start += len("  ```yaml\n")
    block = text[start : text.index("  ```\n", start)]
    return textwrap.dedent(block)


class Prometheus(ChildProcess):
    """
    A C{prometheus} server that scrapes C{target} (C{host:port}) every
    second, with its own storage in C{directory}, its web API on loopback.
    """

    def __init__(self, directory: Path, target: str) -> None:
        super().__init__()
        self.port = freePort(udp=False)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {"job_name": "sidecar", "static_configs": [{"targets": [target]}]}
            ],
        }
        # JSON is YAML.
        (directory / "prometheus.yml").write_text(json.dumps(config))
        self.arguments = [
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]

    def start(self) -> None:
        prometheus = shutil.which("prometheus")
        assert prometheus is not None
        reactor.spawnProcess(  # type: ignore[attr-defined]
            self, prometheus, [prometheus, *self.arguments], env=dict(os.environ)
        )

    async def get(self, path: str, **query: str) -> Any:
        """
        The C{data} of Prometheus's HTTP API answer to C{path}, or L{None}
        while it does not answer (not listening yet, or C{503} while it
        starts).
        """
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urlencode(query)}"
        try:
            response = await treq.get(url, persistent=False)
        except ConnectError:
            return None
        if response.code != 200:
            await response.content()
            return None
        return (await response.json()).get("data")


class ScrapeTests(TestCase):
    skip = _skipReason("prometheus")

    async def test_prometheusScrapesANode(self) -> None:
        """
        Prometheus scrapes a node's C{/metrics}: the target is up, and a
        node's figure is queryable with its labels.
        """
        node = _startNode(self)
        await _checked(node)
        directory = Path(self.mktemp())
        directory.mkdir()
        api = node.api.port.getHost()  # type: ignore[union-attr]
        prometheus = Prometheus(directory, f"{api.host}:{api.port}")
        prometheus.start()

        async def stop() -> None:
            await prometheus.stop().addTimeout(10, reactor)

        self.addCleanup(stop)

        async def up() -> list[Any] | None:
            data = await prometheus.get("targets")
            targets = data["activeTargets"] if data else []
            if [t["health"] for t in targets] == ["up"]:
                return targets  # type: ignore[no-any-return]
            return None

        try:
            [target] = await pollUntil(up, timeout=15, every=0.2)
        except TimeoutError:
            self.fail(f"the target never came up:\n{prometheus.describe()}")
        self.assertEqual(target["scrapeUrl"], f"{_apiURL(node)}/metrics")

        async def instances() -> list[Any] | None:
            data = await prometheus.get(
                "query",
                query='sidecar_service_instances{service="svc-host-a",status="Alive"}',
            )
            return (data or {}).get("result") or None

        [sample] = await pollUntil(instances, timeout=10, every=0.2)
        self.assertEqual(sample["metric"]["job"], "sidecar")
        self.assertEqual(sample["value"][1], "1")
