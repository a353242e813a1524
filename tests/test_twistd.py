"""
C{twistd -n sidecar --config=FILE} as a user runs it: a real process, a
real HTTP request, a clean stop on SIGTERM, one-line configuration errors.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import treq
from twisted.internet import reactor
from twisted.internet.protocol import Factory
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from .processes import (
    TWISTD_SIDECAR,
    NodeProcess,
    nodeEnvironment,
    pollUntil,
    startNode,
)

STATIC = [
    {
        "Service": {
            "Name": "twistd-web",
            "Image": "example/web:1",
            "Ports": [{"Type": "tcp", "Port": 18080, "ServicePort": 10001}],
        }
    }
]


async def serviceNames(port: int) -> list[str] | None:
    """
    The service names a node's API lists, or L{None} while it lists none.
    """
    response = await treq.get(
        f"http://127.0.0.1:{port}/api/services.json", persistent=False
    )
    body = await response.json()
    return sorted(body["Services"]) or None


async def runningNode(path: str) -> tuple[NodeProcess, int]:
    """
    Start a node and wait until it runs: its API lists its services, so its
    reactor and signal handlers are up.
    """
    node = startNode(path)
    try:
        port = await node.listening
        await pollUntil(lambda: serviceNames(port))
    except BaseException:
        await node.stop()
        raise
    return node, port


class TwistdTests(TestCase):
    def writeConfig(self, text: str, static: object = STATIC) -> str:
        directory = Path(self.mktemp()).resolve()
        directory.mkdir()
        (directory / "static.json").write_text(json.dumps(static))
        path = directory / "node.toml"
        path.write_text(text)
        return str(path)

    async def test_nodeServesItsStaticServiceAndStopsOnSIGTERM(self) -> None:
        path = self.writeConfig(
            '[node]\nname = "twistd-node"\nbind = "127.0.0.1:0"\n'
            '[api]\nlisten = "127.0.0.1:0"\n'
            '[discovery]\nbackends = ["static"]\nstatic_file = "static.json"\n'
        )
        node = startNode(path)
        try:
            port = await node.listening
            response = await treq.get(
                f"http://127.0.0.1:{port}/api/state.json", persistent=False
            )
            state = await response.json()
        finally:
            code = await node.stop()
        services = state["Servers"]["twistd-node"]["Services"]
        self.assertEqual([s["Name"] for s in services.values()], ["twistd-web"], state)
        self.assertEqual(state["Hostname"], "twistd-node")
        self.assertEqual(code, -signal.SIGTERM, node.errors.decode())
        self.assertIn(b"Received SIGTERM, shutting down", node.output)
        self.assertIn(b"Main loop terminated", node.output)
        self.assertIn(b"Server Shut Down", node.output)

    async def test_sighupRereadsTheStaticFile(self) -> None:
        path = self.writeConfig(
            '[node]\nname = "hup-node"\nbind = "127.0.0.1:0"\n'
            '[api]\nlisten = "127.0.0.1:0"\n'
            '[discovery]\nstatic_poll_interval = "1h"\n'
        )
        node, port = await runningNode(path)
        try:
            added = [*STATIC, {"Service": {"Name": "added-later"}}]
            (Path(path).parent / "static.json").write_text(json.dumps(added))
            node.transport.signalProcess(signal.SIGHUP)  # type: ignore[union-attr]

            async def names() -> list[str] | None:
                found = await serviceNames(port)
                return found if found and "added-later" in found else None

            self.assertEqual(await pollUntil(names), ["added-later", "twistd-web"])
        finally:
            await node.stop()

    async def test_jsonLogFormatWritesOneObjectPerLine(self) -> None:
        path = self.writeConfig(
            '[node]\nname = "json-node"\nbind = "127.0.0.1:0"\n'
            '[api]\nlisten = "127.0.0.1:0"\n'
            '[log]\nformat = "json"\n'
        )
        node, port = await runningNode(path)
        await node.stop()
        # Every line, twistd's own included, is one object with the head
        # fields first and no twisted.logger internals.
        events = [json.loads(line) for line in node.output.splitlines()]
        for event in events:
            self.assertEqual(list(event)[:4], ["time", "level", "logger", "message"])
            self.assertEqual([k for k in event if k.startswith("log_")], [])
        # Announced as Unknown, then at once with its first check's result.
        announced, *_ = [
            e for e in events if e["message"].startswith("announcing service twistd")
        ]
        self.assertEqual(announced["name"], "twistd-web")
        self.assertEqual(announced["level"], "info")
        self.assertEqual(announced["logger"], "sidecar.announce.LocalAnnouncer")
        # No object reprs ("Starting factory <... object at 0x...>").
        self.assertNotIn(b"object at 0x", node.output)
        # The API was polled, but access lines are debug events, not info.
        self.assertNotIn(b"GET /api/", node.output)

    async def assertConfigError(self, text: str, *expected: str) -> None:
        path = self.writeConfig(text)
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            [*TWISTD_SIDECAR, f"--config={path}"],
            env=nodeEnvironment(),
        )
        lines = err.decode().strip().splitlines()
        self.assertNotEqual(code, 0)
        self.assertEqual(len(lines), 1, err.decode())
        self.assertNotIn("Traceback", err.decode())
        for fragment in (path, *expected):
            self.assertIn(fragment, lines[0])

    async def test_unknownKeyExitsWithOneLineNamingFileAndKey(self) -> None:
        await self.assertConfigError(
            '[node]\nclustr_name = "x"\n', "node.clustr_name", "cluster_name"
        )

    async def test_badAddressExitsWithOneLine(self) -> None:
        await self.assertConfigError('[node]\nbind = "nowhere"\n', "node.bind")

    async def test_badDurationExitsWithOneLine(self) -> None:
        await self.assertConfigError(
            '[discovery]\nstatic_poll_interval = "soon"\n',
            "discovery.static_poll_interval",
        )

    async def test_wrongTypeExitsWithOneLine(self) -> None:
        await self.assertConfigError("[api]\nlisten = 7777\n", "api.listen")

    async def test_invalidTomlExitsWithOneLine(self) -> None:
        await self.assertConfigError("[node\nname = 1\n", "line 1")

    async def test_missingFileExitsWithOneLine(self) -> None:
        missing = str(Path(self.mktemp()) / "absent.toml")
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            [*TWISTD_SIDECAR, f"--config={missing}"],
            env=nodeEnvironment(),
        )
        self.assertNotEqual(code, 0)
        self.assertEqual(len(err.decode().strip().splitlines()), 1, err.decode())
        self.assertIn(missing, err.decode())
        self.assertIn("No such file", err.decode())

    async def test_aTakenAPIOrGossipPortExitsWithOneLine(self) -> None:
        taken = reactor.listenTCP(  # type: ignore[attr-defined]
            0, Factory(), interface="127.0.0.1"
        )
        self.addCleanup(taken.stopListening)
        port = taken.getHost().port
        for text in (
            f'[node]\nbind = "127.0.0.1:0"\n[api]\nlisten = "127.0.0.1:{port}"\n',
            f'[node]\nbind = "127.0.0.1:{port}"\n[api]\nlisten = "127.0.0.1:0"\n',
        ):
            path = self.writeConfig(text)
            out, err, code = await getProcessOutputAndValue(
                sys.executable,
                [*TWISTD_SIDECAR, f"--config={path}"],
                env=nodeEnvironment(),
            )
            self.assertNotEqual(code, 0)
            self.assertIn(f"cannot listen on 127.0.0.1:{port}", (out + err).decode())
