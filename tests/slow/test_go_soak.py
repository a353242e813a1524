"""
Ten quiet minutes of a mixed cluster, two Go Sidecar nodes and two of ours,
with C{twistd sidecar-haproxy} following a Go node's watch stream: no
failed probe and no suspicion on either side, every record kept, the
companion never reconnects, and a change after the quiet spell reaches its
HAProxy within a second.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from twisted.internet import reactor, task
from twisted.trial.unittest import TestCase

from sidecar.catalog import Status
from sidecar.demo.processes import TWISTD, ChildProcess, spawn
from sidecar.service import SidecarNode
from tests.gosidecar import (
    GO_GOSSIP_PORT,
    REFUTED,
    GoNode,
    goSkipReason,
    privateNetwork,
    startGoNode,
)
from tests.inprocess import gossipPort, startNode
from tests.processes import pollUntil
from tests.test_haproxy import (
    haproxySettings,
    haproxySkipReason,
    temporaryDirectory,
)

SOAK_SECONDS = 600.0
# What the Go node logs when its probes of a member fail or it declares one
# failed (memberlist's lines, through logrus).
GO_SUSPECTS = r"no acks received|as failed|Suspect .* has failed"
NAMES = ["go-1", "go-2", "ours-1", "ours-2"]


async def _async(value: object) -> object:
    return value


def textOf(path: Path) -> str:
    """
    A file's text, or nothing while it does not exist.
    """
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def counters(node: SidecarNode) -> tuple[int, int, int]:
    """
    Our node's probes, failed probes and suspicions so far.
    """
    cluster = node.gossip.cluster
    assert cluster is not None
    return cluster.prober.probes, cluster.prober.failures, cluster.members.suspicions


def goService(name: str, port: int, servicePort: int, host: str) -> dict[str, Any]:
    return {
        "Service": {
            "Name": name,
            "Ports": [
                {"Type": "tcp", "Port": port, "ServicePort": servicePort, "IP": host}
            ],
            "ProxyMode": "http",
        },
        "Check": {"Type": "AlwaysSuccessful"},
    }


class GoSoakTests(TestCase):
    skip = goSkipReason() or haproxySkipReason()
    timeout = SOAK_SECONDS + 300

    async def test_tenQuietMinutesOfTwoGoAndTwoOurs(self) -> None:
        network = privateNetwork(self)
        ours1 = startNode(self, "ours-1", "127.0.1.1")
        seed = f"127.0.1.1:{gossipPort(ours1)}"
        go1 = await startGoNode(
            self,
            [seed],
            hostname="go-1",
            services=[goService("svc-go-1", 9001, 10001, "127.0.0.1")],
        )
        host2 = await network.addHost()
        go2 = await startGoNode(
            self,
            [seed],
            hostname="go-2",
            services=[goService("svc-go-2", 9002, 10002, host2.address)],
            host=host2,
        )
        ours2 = startNode(
            self,
            "ours-2",
            "127.0.1.2",
            nodeSettings=[f'seeds = ["127.0.0.1:{GO_GOSSIP_PORT}"]'],
        )
        ours, gos = [ours1, ours2], [go1, go2]
        await self.waitUntilEveryoneHoldsEverything(ours, gos)
        companion, haproxyConfig = await self.startCompanion(go1)
        try:
            await pollUntil(
                lambda: _async(True if "svc-go-1" in textOf(haproxyConfig) else None),
                timeout=30,
            )
        except TimeoutError:
            self.fail(f"{companion.describe()}\n{textOf(haproxyConfig)}")

        before = [counters(node) for node in ours]
        goBefore = [(g.logCount(REFUTED), g.logCount(GO_SUSPECTS)) for g in gos]
        await task.deferLater(reactor, SOAK_SECONDS)  # type: ignore[arg-type]

        for node, start in zip(ours, before, strict=True):
            probes, failures, suspicions = (
                now - then for now, then in zip(counters(node), start, strict=True)
            )
            self.assertGreater(probes, SOAK_SECONDS / 2)
            self.assertEqual(failures, 0, "our probes failed")
            self.assertEqual(suspicions, 0, "we suspected")
        for go, (refuted, suspected) in zip(gos, goBefore, strict=True):
            self.assertEqual(go.logCount(REFUTED) - refuted, 0, go.describe()[-4000:])
            self.assertEqual(
                go.logCount(GO_SUSPECTS) - suspected, 0, go.describe()[-4000:]
            )
        await self.waitUntilEveryoneHoldsEverything(ours, gos, timeout=1)

        # The companion followed the quiet stream all along, and a change
        # reaches its HAProxy within a second.
        self.assertEqual(companion.output.count(b"following "), 1, companion.describe())
        [goID] = [
            i for i, r in (await go1.services()).items() if r["Name"] == "svc-go-1"
        ]
        updates = companion.output.count(b"proxy updated by")
        drained = reactor.seconds()  # type: ignore[attr-defined]
        await go1.drain(goID)
        await pollUntil(
            lambda: _async(
                True if companion.output.count(b"proxy updated by") > updates else None
            ),
            timeout=5,
            every=0.02,
        )
        self.assertLess(reactor.seconds() - drained, 1.0)  # type: ignore[attr-defined]

    async def waitUntilEveryoneHoldsEverything(
        self, ours: list[SidecarNode], gos: list[GoNode], timeout: float = 60
    ) -> None:
        """
        Until every node sees every member alive and every service alive.
        """
        services = {"svc-go-1", "svc-go-2", "svc-ours-1", "svc-ours-2"}

        async def converged() -> bool | None:
            for node in ours:
                alive = {
                    m["Name"] for m in node.gossip.members() if m["State"] == "alive"
                }
                held = {
                    s.name for s in node.state.services() if s.status is Status.ALIVE
                }
                if alive != set(NAMES) or held != services:
                    return None
            for go in gos:
                held = {
                    r["Name"]
                    for r in (await go.services()).values()
                    if r["Status"] == 0
                }
                if held != services:
                    return None
            return True

        await pollUntil(converged, timeout=timeout, every=0.5)

    async def startCompanion(self, go: GoNode) -> tuple[ChildProcess, Path]:
        """
        C{twistd -n sidecar-haproxy} following C{go}, with its HAProxy on
        L{BIND_IP}; stopped at cleanup.
        """
        directory = temporaryDirectory(self)
        config = directory / "companion.toml"
        # Every "host" of the test is this machine's loopback.
        settings = [*haproxySettings(directory), "allow_loopback_targets = true"]
        config.write_text("\n".join(settings) + "\n")
        companion = ChildProcess()
        argv = [
            sys.executable,
            *TWISTD,
            "-n",
            "--pidfile=",
            "sidecar-haproxy",
            f"--sidecar=http://{go.host}:7777",
            f"--config={config}",
        ]
        spawn(companion, argv, str(directory))
        self.addCleanup(companion.stop)
        await pollUntil(
            lambda: _async(True if b"following " in companion.output else None),
            timeout=30,
        )
        return companion, directory / "haproxy.cfg"
