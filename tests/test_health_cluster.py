"""
Health end to end, over real sockets: two nodes built by L{makeService}
gossip on 127.0.1.x; a static service on one is checked against a real
HTTP server, and when that server turns unhealthy the other node sees the
service UNHEALTHY within one check interval plus gossip time, and ALIVE
again when it recovers.
"""

from __future__ import annotations

from typing import Any

import treq
from twisted.internet import defer
from twisted.trial.unittest import TestCase

from sidecar.catalog import Status
from sidecar.health.monitor import JITTER
from sidecar.service import SidecarNode

from .inprocess import gossipPort, startNode
from .processes import pollUntil
from .switches import serveSwitch

INTERVAL = 1.0
# Gossip is sent the moment a status changes; on loopback it arrives in
# milliseconds.  This allows for a slow, busy CI machine.
GOSSIP_TIME = 1.0


class HealthAcrossTheClusterTests(TestCase):
    async def test_anUnhealthyServiceIsSeenSoByTheOtherNode(self) -> None:
        switch, port = serveSwitch(self, "127.0.1.1")
        web = {
            "Service": {"Name": "web", "Ports": [{"Port": port, "ServicePort": 10080}]},
            "Check": {"Type": "HttpGet", "Args": f"http://127.0.1.1:{port}/health"},
        }
        health = ["[health]", f'interval = "{INTERVAL}s"']
        owner = startNode(
            self,
            "host-1",
            "127.0.1.1",
            ['profile = "local"'],
            targets=[web],
            moreSettings=health,
        )
        seed = f'seeds = ["127.0.1.1:{gossipPort(owner)}"]'
        other = startNode(
            self, "host-2", "127.0.1.2", ['profile = "local"', seed], targets=[]
        )

        async def otherSees(status: Status, within: float) -> None:
            def seen() -> defer.Deferred[bool | None]:
                statuses = [s.status for s in other.state.services() if s.name == "web"]
                return defer.succeed(True if statuses == [status] else None)

            await pollUntil(seen, timeout=within, every=0.01)

        await otherSees(Status.ALIVE, within=10)
        bound = INTERVAL * (1 + JITTER) + GOSSIP_TIME
        switch.code = 503
        await otherSees(Status.UNHEALTHY, within=bound)
        report = (await self.healthReport(owner))["Checks"]
        [check] = report.values()
        self.assertEqual(check["Status"], "Unhealthy")
        self.assertEqual(
            check["LastError"],
            f"HTTP 503 from http://127.0.1.1:{port}/health",
        )
        switch.code = 200
        await otherSees(Status.ALIVE, within=bound)

    async def healthReport(self, node: SidecarNode) -> Any:
        api = node.api.port.getHost()  # type: ignore[union-attr]
        response = await treq.get(
            f"http://{api.host}:{api.port}/api/checks.json", persistent=False
        )
        self.assertEqual(response.code, 200)
        return await response.json()
