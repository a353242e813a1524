"""
The demo's story end to end, with assertions: three real node processes on
127.0.1.1-3, each with a real HAProxy on 127.0.2.N, real good-svc and
awesome-svc processes; awesome-svc's calls through node 1's HAProxy see no
failure while an instance turns unhealthy and back, or is drained and
undrained, and are served again within the failure-detection bound after
node 3 is SIGKILLed.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.protocol import Factory
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import Logger
from twisted.python import usage
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from twisted.web.test.requesthelper import DummyRequest

from sidecar.demo.__main__ import explore
from sidecar.demo.apps import Call, GoodService, Options
from sidecar.demo.cluster import AWESOME_SERVICE_PORT, GOOD_SERVICE_PORT, HOSTS, Layout
from sidecar.demo.processes import portIsFree
from sidecar.demo.story import Demo

from .processes import freePort, nodeEnvironment
from .test_haproxy import haproxySkipReason

log = Logger()


def freeLayout() -> Layout:
    """
    A layout whose ports are free now on every one of its addresses.
    """
    probe = Layout()
    numbers = HOSTS
    hosts = [probe.address(n) for n in numbers] + [
        probe.proxyAddress(n) for n in numbers
    ]
    # HAProxy's frontends on 127.0.2.N use the fixed ServicePorts.
    taken = {GOOD_SERVICE_PORT, AWESOME_SERVICE_PORT}

    def everywhere(udp: bool) -> int:
        for _ in range(50):
            port = freePort(hosts[0], udp=udp)
            if port not in taken and all(portIsFree(h, port, udp=udp) for h in hosts):
                taken.add(port)
                return port
        raise RuntimeError("no port free on every demo address")

    layout = Layout(
        gossipPort=everywhere(True),
        apiPort=everywhere(False),
        goodPort=everywhere(False),
        awesomePort=everywhere(False),
    )
    problems = layout.unavailable()
    if problems:
        raise RuntimeError(f"the demo's addresses are taken: {problems}")
    return layout


class DemoTests(TestCase):
    skip = haproxySkipReason()
    timeout = 240

    async def test_theStory(self) -> None:
        # A short path: HAProxy's admin socket lives there, and a UNIX
        # socket's path has at most 107 bytes.
        directory = Path(tempfile.mkdtemp(prefix="sidecar-demo-"))
        demo = Demo(
            freeLayout(),
            directory,
            lambda line: log.info("{line}", line=line),
        )

        async def stop() -> None:
            await demo.cleanUp()
            demo.keepLogs()
            # The files and logs stay in the test's directory.
            ignore = shutil.ignore_patterns("*.sock")
            shutil.copytree(directory, self.mktemp(), ignore=ignore)
            demo.removeFiles()

        self.addCleanup(stop)
        steps = {step.key: step for step in await demo.play()}
        self.assertEqual(
            list(steps),
            ["start", "unhealthy", "healthy", "killed", "back", "drained", "undrained"],
        )

        # Routing around a sick or drained instance, and back, loses no call.
        for key in ["unhealthy", "healthy", "back", "drained", "undrained"]:
            step = steps[key]
            # Some call must span the step, or "no failure" says nothing;
            # how many depends on how fast the product is, so no more.
            self.assertTrue(step.calls, key)
            self.assertEqual(step.failures, [], key)

        # The sick and the drained instance get no call once node 1's HAProxy
        # has let them go; the one back gets none before node 1's catalog
        # can have seen it ALIVE (a change seen by polling happened after
        # the last look that did not see it).
        for key in ["unhealthy", "drained"]:
            self.assertLessEqual(steps[key].time("routed"), steps[key].time("proxy"))
        for key in ["healthy", "back", "undrained"]:
            catalog = steps[key].event("catalog")
            self.assertGreaterEqual(steps[key].time("routed"), catalog.notBefore)

        # After the SIGKILL: node 1's HAProxy routes around node 3 within the
        # failure-detection bound; a call that failed (if any) started
        # before that, and every call since has been answered.
        killed = steps["killed"]
        routedAround = killed.time("proxy")
        self.assertLessEqual(killed.time("member"), demo.bound)
        self.assertLessEqual(routedAround, demo.bound)
        for call in killed.failures:
            self.assertLessEqual(call.started - killed.began, routedAround, call)
        since = [c for c in demo.log.calls if c.started > killed.began + routedAround]
        self.assertTrue(since)
        self.assertEqual([c for c in since if c.error is not None], [])
        self.assertNoGaps(demo.log.calls, steps["unhealthy"].began)
        # The node's HAProxy runs on the demo's configuration.
        haproxyConfig = (directory / "node-1" / "haproxy.cfg").read_text()
        self.assertIn("    maxconn 256\n", haproxyConfig)

    def assertNoGaps(self, calls: list[Call], since: float) -> None:
        """
        awesome-svc kept being answered from C{since} on: never two seconds
        without an answered call.
        """
        answered = [c.started for c in calls if c.error is None and c.started >= since]
        self.assertGreater(len(answered), 100)
        gaps = [b - a for a, b in zip(answered, answered[1:], strict=False)]
        self.assertLess(max(gaps), 2.0, "awesome-svc's calls stalled")


class CommandLineTests(TestCase):
    """
    C{python -m sidecar.demo} in a process of its own: what it refuses,
    before it starts anything, each time with one message and exit
    status 1.
    """

    async def demo(
        self, *argv: str, environ: dict[str, str] | None = None
    ) -> tuple[str, str, int]:
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            ["-m", "sidecar.demo", *argv],
            env=environ or nodeEnvironment(),
        )
        return out.decode(), err.decode(), code

    async def test_anOptionItDoesNotTakeShowsTheUsage(self) -> None:
        out, err, code = await self.demo("--api-port=many")
        self.assertEqual((out, code), ("", 1))
        self.assertIn("invalid literal for int() with base 10: 'many'", err)
        self.assertIn("\npython -m sidecar.demo [--keep]\n", err)
        self.assertIn("--gossip-port", err)

    async def test_withoutHAProxyItDoesNotStart(self) -> None:
        environ = nodeEnvironment()
        environ["PATH"] = self.mktemp()  # nothing there
        out, err, code = await self.demo(environ=environ)
        self.assertEqual((out, code), ("", 1))
        self.assertEqual(
            err, "the demo needs haproxy on the PATH (apt-get install haproxy)\n"
        )

    async def test_anAddressItNeedsThatIsTakenIsNamed(self) -> None:
        if haproxySkipReason():
            raise SkipTest(haproxySkipReason())
        port = freePort("127.0.1.1", udp=False)
        holder = reactor.listenTCP(  # type: ignore[attr-defined]
            port, Factory(), interface="127.0.1.1"
        )
        self.addCleanup(holder.stopListening)
        out, err, code = await self.demo(f"--api-port={port}")
        self.assertEqual((out, code), ("", 1))
        self.assertIn("the demo cannot listen where it needs to:", err)
        self.assertIn(f"127.0.1.1:{port}", err)
        self.assertIn("(is another demo or node running?)", err)

    async def test_aTemporaryDirectoryTooLongIsRefusedAndRemoved(self) -> None:
        if haproxySkipReason():
            raise SkipTest(haproxySkipReason())
        layout = freeLayout()
        if Layout(layout.gossipPort, layout.apiPort).unavailable():
            raise SkipTest("the demo's fixed service ports are taken on 127.0.1.x")
        temporary = Path(self.mktemp()) / ("t" * 120)
        temporary.mkdir(parents=True)
        environ = nodeEnvironment()
        environ["TMPDIR"] = str(temporary)
        out, err, code = await self.demo(
            f"--gossip-port={layout.gossipPort}",
            f"--api-port={layout.apiPort}",
            environ=environ,
        )
        self.assertEqual((out, code), ("", 1))
        self.assertIn("the demo cannot run: ", err)
        self.assertIn("longer than a UNIX socket's path may be", err)
        self.assertEqual(list(temporary.iterdir()), [])


class ExploreTests(SynchronousTestCase):
    def test_whereToLookAtEachNode(self) -> None:
        lines = explore(Layout(apiPort=17777)).splitlines()
        self.assertEqual(
            lines,
            [
                f"  node-{n}: http://127.0.1.{n}:17777/ui/ "
                f"(API http://127.0.1.{n}:17777/api/), good-svc via its HAProxy: "
                f"http://127.0.2.{n}:{GOOD_SERVICE_PORT}/"
                for n in HOSTS
            ],
        )


class AppsTests(SynchronousTestCase):
    """
    The demo's two services as the story drives them (in child processes,
    which coverage does not see end).
    """

    def request(
        self, service: GoodService, method: bytes, path: bytes
    ) -> tuple[int, str]:
        request = DummyRequest(path.split(b"/")[1:])
        request.method = method
        request.path = path
        body = service.render(request)
        return request.responseCode or 200, body.decode()

    def test_goodServiceFailsAndPassesItsHealthCheckWhenTold(self) -> None:
        good = GoodService("good-1")
        self.assertEqual(self.request(good, b"GET", b"/health")[0], 200)
        self.assertEqual(self.request(good, b"POST", b"/health/fail")[0], 200)
        self.assertEqual(self.request(good, b"GET", b"/health")[0], 503)
        self.assertEqual(self.request(good, b"POST", b"/health/pass")[0], 200)
        self.assertEqual(self.request(good, b"GET", b"/health")[0], 200)
        code, body = self.request(good, b"POST", b"/health/maybe")
        self.assertEqual(code, 404)
        self.assertIn("POST /health/fail or /health/pass", body)
        self.assertEqual(self.request(good, b"GET", b"/health")[0], 200)

    def test_theCommandLineNamesWhatIsMissing(self) -> None:
        for argv, missing in [
            ([], "say which service: good or awesome"),
            (["good"], "--listen IP:PORT is required"),
            (["good", "--listen", "nowhere"], "--listen IP:PORT is required"),
            (["awesome", "--listen", "127.0.0.1:1"], "--target URL is required"),
        ]:
            error = self.assertRaises(usage.UsageError, Options().parseOptions, argv)
            self.assertEqual(str(error), missing)
