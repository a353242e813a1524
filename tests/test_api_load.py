"""
The API under load, with real node processes on loopback: two nodes, the
first announcing 1000 services, and many concurrent readers of the first
node's API (C{wrk}).  The peer must never suspect the loaded node, the
loaded node must keep checking its services on time, and its answers must
stay right: a change shows in the next reads.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import treq
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from sidecar.catalog.timestamps import NANOSECONDS, parseTimestamp

from .processes import NodeProcess, freePort, pollUntil, startNode

SERVICES = 1000
HOSTS = ("127.0.1.1", "127.0.1.2")
NAMES = ("load-0", "load-1")
LOAD_SECONDS = 10
CHECK_INTERVAL = 2.0
# How late a check may be, beyond its interval, on a busy test machine.
CHECK_SLACK = 4.0


def staticTargets(count: int, extra: str | None = None) -> str:
    targets: list[dict[str, Any]] = [
        {
            "Service": {
                "Name": f"svc-{n % 100}",
                "Ports": [{"Port": 20000 + n, "ServicePort": 10000 + n % 100}],
            },
            "Check": {"Type": "AlwaysSuccessful"},
        }
        for n in range(count)
    ]
    if extra is not None:
        targets.append(
            {
                "Service": {"Name": extra, "Ports": [{"Port": 19999}]},
                "Check": {"Type": "AlwaysSuccessful"},
            }
        )
    return json.dumps(targets)


class APIUnderLoadTests(TestCase):
    timeout = 240

    def setUp(self) -> None:
        if shutil.which("wrk") is None:
            raise self.skipTest("wrk is not installed (Debian: apt-get install wrk)")

    async def startNodes(self) -> tuple[list[NodeProcess], list[str], Path]:
        ports = [freePort(host) for host in HOSTS]
        nodes, apis = [], []
        first = Path()
        for index, (host, port) in enumerate(zip(HOSTS, ports, strict=True)):
            directory = Path(self.mktemp()).resolve()
            directory.mkdir()
            if index == 0:
                first = directory
            (directory / "static.json").write_text(
                staticTargets(SERVICES if index == 0 else 0)
            )
            seeds = "" if index == 0 else f'seeds = ["{HOSTS[0]}:{ports[0]}"]\n'
            (directory / "node.toml").write_text(
                f'[node]\nname = "{NAMES[index]}"\nbind = "{host}:{port}"\n'
                f"{seeds}"
                f'[api]\nlisten = "{host}:0"\n'
                f'[health]\ninterval = "{CHECK_INTERVAL}s"\n'
                f'[log]\nlevel = "info"\n'
            )
            node = startNode(str(directory / "node.toml"))
            self.addCleanup(self.stop, node)
            apiPort = await node.listening
            nodes.append(node)
            apis.append(f"http://{host}:{apiPort}/api")
        return nodes, apis, first

    async def stop(self, node: NodeProcess) -> None:
        if not node.ended.called:
            await node.stop()

    async def get(self, url: str) -> Any:
        response = await treq.get(url, persistent=False, timeout=10)
        return await response.json()

    async def holdsAll(self, api: str, count: int) -> bool | None:
        state = await self.get(f"{api}/state.json")
        held = sum(len(s["Services"]) for s in state["Servers"].values())
        return True if held >= count else None

    async def test_readersNeitherStarveGossipNorChecks(self) -> None:
        nodes, apis, first = await self.startNodes()
        await pollUntil(lambda: self.holdsAll(apis[1], SERVICES), timeout=90, every=1)
        peer = nodes[1]
        heardBefore = len(peer.output)
        host, port = apis[0].split("/")[2].split(":")
        load = getProcessOutputAndValue(
            "wrk",
            [
                "-t2",
                "-c32",
                f"-d{LOAD_SECONDS}s",
                "--timeout",
                "5s",
                f"http://{host}:{port}/api/services.json",
            ],
        )
        began = time.time()

        # Meanwhile: a change on the loaded node shows in the next reads.
        staticFile = first / "static.json"
        temporary = first / "static.json.new"
        temporary.write_text(staticTargets(SERVICES, extra="added-under-load"))
        os.replace(temporary, staticFile)

        async def added() -> Any:
            response = await treq.get(
                f"{apis[0]}/services/added-under-load.json",
                persistent=False,
                timeout=10,
            )
            body = await response.content()
            return body if response.code == 200 else None

        await pollUntil(added, timeout=LOAD_SECONDS, every=0.2)
        services = await self.get(f"{apis[0]}/services.json")
        self.assertIn("added-under-load", services["Services"])
        self.assertEqual(
            sum(len(group) for group in services["Services"].values()), SERVICES + 1
        )
        state = await self.get(f"{apis[0]}/state.json")
        self.assertEqual(
            sum(len(s["Services"]) for s in state["Servers"].values()), SERVICES + 1
        )

        output, errors, code = await load
        ended = time.time()
        self.assertEqual(code, 0, errors)
        report = output.decode()
        self.assertIn("requests in", report)
        self.assertNotIn("Non-2xx", report)

        # The peer never suspected the loaded node.
        heard = peer.output[heardBefore:].decode(errors="replace")
        self.assertNotIn(f"no ack from {NAMES[0]}", heard)
        self.assertNotIn(f"member {NAMES[0]} failed", heard)
        members = await self.get(f"{apis[1]}/members.json")
        states = {m["Name"]: m["State"] for m in members["Members"]}
        self.assertEqual(states[NAMES[0]], "alive")

        # The loaded node kept checking every service on time.
        checks = (await self.get(f"{apis[0]}/checks.json"))["Checks"]
        self.assertGreaterEqual(len(checks), SERVICES)
        lastChecked = [
            parseTimestamp(check["LastChecked"]) / NANOSECONDS
            for check in checks.values()
        ]
        self.assertGreater(
            min(lastChecked),
            ended - CHECK_INTERVAL - CHECK_SLACK,
            f"load from {began:.1f} to {ended:.1f}",
        )
        self.assertGreater(ended - began, LOAD_SECONDS - 1)
