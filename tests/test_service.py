"""
The composition: it wires the configured parts together, and refuses a
configuration that asks for parts this version does not have, rather than
running without them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Status
from sidecar.catalog.local import CheckSpec
from sidecar.config import ConfigError, loadConfig
from sidecar.service import makeService

from .doubles import MemoryReactorWithUDP


class CompositionTests(SynchronousTestCase):
    def test_anUnmanagedHAProxyNeedsAReloadCommand(self) -> None:
        path = Path(self.mktemp())
        path.write_text("[haproxy]\nenabled = true\nmanage_process = false\n")
        error = self.assertRaises(
            ConfigError, makeService, loadConfig(path, environ={}), MemoryReactorClock()
        )
        self.assertEqual(error.key, "haproxy.reload_command")

    def test_aBrokenTemplateStopsTheStart(self) -> None:
        directory = Path(self.mktemp())
        directory.mkdir()
        (directory / "haproxy.cfg.j2").write_text("{% if %}\n")
        (directory / "node.toml").write_text(
            '[haproxy]\nenabled = true\ntemplate = "haproxy.cfg.j2"\n'
        )
        config = loadConfig(directory / "node.toml", environ={})
        error = self.assertRaises(
            ConfigError, makeService, config, MemoryReactorClock()
        )
        self.assertEqual(error.key, "haproxy.template")
        self.assertIn("haproxy.cfg.j2: line 1:", str(error))

    def test_staticNodeStartsAndStopsOnAMemoryReactor(self) -> None:
        reactor = MemoryReactorWithUDP()
        config = loadConfig(None, environ={}, hostname="h")
        node = makeService(config, reactor)
        node.startService()
        listening = sorted((host, port) for port, _, _, host in reactor.tcpServers)
        self.assertEqual(listening, [("0.0.0.0", 7946), ("127.0.0.1", 7777)])
        [(port, _, host, udp)] = reactor.udpServers
        self.assertEqual((host, port), ("0.0.0.0", 7946))
        self.assertIsNotNone(node.discoverers[0].lastError)  # no static.json here
        self.successResultOf(node.stopService())
        self.assertFalse(udp.listening)
        self.assertEqual(reactor.getDelayedCalls(), [])


class ReloadTests(SynchronousTestCase):
    def test_aReloadReReadsTheStaticFile(self) -> None:
        # What twistd's SIGHUP calls (tap.py), here in-process.
        directory = Path(self.mktemp())
        directory.mkdir()

        def target(name: str, port: int) -> dict[str, object]:
            return {
                "Service": {"Name": name, "Ports": [{"Port": port}]},
                "Check": {"Type": "AlwaysSuccessful"},
            }

        static = directory / "static.json"
        static.write_text(json.dumps([target("db", 5432)]))
        (directory / "node.toml").write_text(
            '[node]\nname = "h"\nbind = "127.0.0.1:7946"\n'
        )
        node = makeService(loadConfig(directory / "node.toml"), MemoryReactorWithUDP())
        node.startService()
        self.addCleanup(node.stopService)
        static.write_text(json.dumps([target("db", 5432), target("cache", 6379)]))
        self.assertEqual([s.name for s in node.state.localServices()], ["db"])
        node.reload()
        self.assertEqual(
            sorted(s.name for s in node.state.localServices()), ["cache", "db"]
        )


class HealthWiringTests(SynchronousTestCase):
    def test_theHealthSettingsReachTheMonitor(self) -> None:
        directory = Path(self.mktemp())
        directory.mkdir()
        target = {
            "Service": {"Name": "db", "Ports": [{"Port": 5432}]},
            "Check": {"Type": "AlwaysSuccessful"},
        }
        (directory / "static.json").write_text(json.dumps([target]))
        (directory / "node.toml").write_text(
            '[node]\nname = "h"\nbind = "127.0.0.1:7946"\n'
            '[health]\ninterval = "10s"\ntimeout = "2s"\n'
            'default_check_endpoint = "/healthz"\n'
        )
        reactor = MemoryReactorWithUDP()
        node = makeService(loadConfig(directory / "node.toml"), reactor)
        node.startService()
        self.addCleanup(node.stopService)
        [service] = node.state.localServices()
        self.assertEqual(service.status, Status.UNKNOWN)
        [check] = node.health.report().values()
        self.assertEqual((check["Interval"], check["Timeout"]), (10.0, 2.0))
        reactor.advance(10)  # the first check runs within one interval
        [service] = node.state.localServices()
        self.assertEqual(service.status, Status.ALIVE)
        without = replace(node.discoverers[0].services()[0], check=CheckSpec())
        self.assertEqual(
            node.health.effectiveCheck(without).args,
            "http://127.0.0.1:5432/healthz",
        )
