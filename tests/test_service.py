"""
The composition refuses a configuration that asks for parts this version
does not have, rather than running without them.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from sidecar.config import ConfigError, loadConfig
from sidecar.service import makeService

from .doubles import MemoryReactorWithUDP


class MissingPartsTests(SynchronousTestCase):
    def assertRefused(self, key: str, **environ: str) -> None:
        config = loadConfig(None, environ=environ, hostname="h")
        error = self.assertRaises(
            ConfigError, makeService, config, MemoryReactorClock()
        )
        self.assertEqual(error.key, key)
        self.assertIn("not available yet", str(error))

    def test_dockerDiscoveryIsRefused(self) -> None:
        self.assertRefused("discovery.backends", SIDECAR_DISCOVERY="static,docker")

    def test_haproxyIsRefused(self) -> None:
        self.assertRefused("haproxy.enabled", HAPROXY_DISABLE="false")

    def test_listenersAreRefused(self) -> None:
        self.assertRefused("listeners.urls", LISTENERS_URLS="http://127.0.0.1:1/")

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
