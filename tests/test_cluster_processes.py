"""
Real node processes (C{twistd -n sidecar}) gossiping over 127.0.1.x: they
form a cluster, see each other's static services, detect a SIGKILLed node
(its services are tombstoned), and see a node stopped by SIGTERM or
SIGINT leave.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import treq
from twisted.trial.unittest import TestCase

from .processes import NodeProcess, freePort, pollUntil, startNode


class ClusterProcessTests(TestCase):
    async def startCluster(self, count: int) -> list[tuple[NodeProcess, str]]:
        hosts = [f"127.0.1.{n}" for n in range(1, count + 1)]
        ports = [freePort(host) for host in hosts]
        seed = f"{hosts[0]}:{ports[0]}"
        nodes = []
        for n, (host, port) in enumerate(zip(hosts, ports, strict=True), start=1):
            directory = Path(self.mktemp()).resolve()
            directory.mkdir()
            (directory / "static.json").write_text(
                json.dumps(
                    [{"Service": {"Name": f"svc-{n}", "Ports": [{"Port": 9000}]}}]
                )
            )
            (directory / "node.toml").write_text(
                f'[node]\nname = "proc-{n}"\nbind = "{host}:{port}"\n'
                f'seeds = ["{seed}"]\nprofile = "local"\n'
                f'[api]\nlisten = "{host}:0"\n'
            )
            node = startNode(str(directory / "node.toml"))
            self.addCleanup(self.kill, node)
            apiPort = await node.listening
            nodes.append((node, f"http://{host}:{apiPort}/api"))
        return nodes

    async def kill(self, node: NodeProcess) -> None:
        if not node.ended.called:
            node.transport.signalProcess(signal.SIGKILL)  # type: ignore[union-attr]
        await node.ended

    async def get(self, url: str) -> Any:
        response = await treq.get(url, persistent=False, timeout=5)
        return await response.json()

    async def memberStates(self, api: str) -> dict[str, str]:
        body = await self.get(f"{api}/members.json")
        return {m["Name"]: m["State"] for m in body["Members"]}

    async def waitForStates(self, apis: list[str], expected: dict[str, str]) -> None:
        async def seen() -> bool | None:
            for api in apis:
                states = await self.memberStates(api)
                if any(states.get(k) != v for k, v in expected.items()):
                    return None
            return True

        await pollUntil(seen, timeout=30, every=0.2)

    async def test_processesFormAClusterAndDetectFailureAndLeave(self) -> None:
        nodes = await self.startCluster(4)
        apis = [api for _, api in nodes]
        names = {f"proc-{n}": "alive" for n in range(1, 5)}
        await self.waitForStates(apis, names)

        async def allServices() -> bool | None:
            for api in apis:
                body = await self.get(f"{api}/services.json")
                if sorted(body["Services"]) != ["svc-1", "svc-2", "svc-3", "svc-4"]:
                    return None
            return True

        await pollUntil(allServices, timeout=10, every=0.2)

        killed, _ = nodes[3]
        killed.transport.signalProcess(signal.SIGKILL)  # type: ignore[union-attr]
        await killed.ended
        await self.waitForStates(apis[:3], {"proc-4": "failed"})
        for api in apis[:3]:
            body = await self.get(f"{api}/services/svc-4.json")
            [record] = body["Services"]["svc-4"]
            self.assertEqual(record["Status"], 1)  # TOMBSTONE

        stopped, _ = nodes[2]
        self.assertEqual(await stopped.stop(), -signal.SIGTERM)
        await self.waitForStates(apis[:2], {"proc-3": "left", "proc-1": "alive"})

        interrupted, _ = nodes[1]
        interrupted.transport.signalProcess(signal.SIGINT)  # type: ignore[union-attr]
        await interrupted.ended
        await self.waitForStates(apis[:1], {"proc-2": "left"})
