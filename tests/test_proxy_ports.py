"""
L{bindProbe}: whether HAProxy could bind a ServicePort, tried on real
loopback sockets; what a node's configuration makes it admit, and which
template its proxy renders.
"""

from __future__ import annotations

import os
import socket

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import ServicesState
from sidecar.config import Config, ConfigError, loadConfig
from sidecar.proxy.build import admission, makeProxy
from sidecar.proxy.model import Admission, ProxyModel
from sidecar.proxy.ports import bindProbe
from sidecar.proxy.template import ProxyTemplate, TemplateSettings

from .processes import freePort

BIND_IP = "127.0.0.168"


class BindProbeTests(SynchronousTestCase):
    def hold(self, host: str, reusePort: bool) -> int:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        if reusePort:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((host, 0))
        s.listen()
        return int(s.getsockname()[1])

    def test_aFreePortCanBeBound(self) -> None:
        self.assertIsNone(bindProbe(BIND_IP)(freePort(BIND_IP, udp=False)))

    def test_aPortHeldByAnotherProgramCannot(self) -> None:
        probe = bindProbe(BIND_IP)
        self.assertEqual(probe(self.hold(BIND_IP, reusePort=False)), "in use")
        # A listener on every address (as the gossip port may be) too.
        self.assertEqual(probe(self.hold("0.0.0.0", reusePort=False)), "in use")

    def test_aPortHAProxyServesCan(self) -> None:
        # HAProxy's listeners share their ports (SO_REUSEPORT).
        self.assertIsNone(bindProbe(BIND_IP)(self.hold(BIND_IP, reusePort=True)))


class AdmissionFromConfigTests(SynchronousTestCase):
    def admission(self, lines: str) -> Admission:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(lines)
        return admission(loadConfig(path, environ={}, hostname="this-host"))

    def test_aNodesOwnPortsAreReservedAndItsHostIsLocal(self) -> None:
        found = self.admission(
            '[node]\nname = "host-a"\nbind = "127.0.1.1:7946"\n'
            '[api]\nlisten = "127.0.0.1:7777"\n'
            '[haproxy]\nbind_ip = "127.0.0.168"\nstats_listen = "127.0.0.1:3212"\n'
        )
        self.assertEqual(found.localHost, "host-a")
        self.assertEqual(found.bindIP, "127.0.0.168")
        self.assertEqual(
            found.reservedPorts,
            frozenset({7946, 7777, 3212}),
        )
        self.assertFalse(found.loopbackTargets)

    def test_loopbackTargetsOnlyWhenAllowed(self) -> None:
        found = self.admission(
            '[haproxy]\nstats_listen = ""\nallow_loopback_targets = true\n'
        )
        self.assertTrue(found.loopbackTargets)
        self.assertEqual(found.localHost, "this-host")


class MakeProxyTests(SynchronousTestCase):
    SETTINGS = TemplateSettings(BIND_IP, "/run/sidecar/haproxy.sock", "")

    def config(self, lines: str) -> tuple[Config, str]:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(lines)
        return loadConfig(path, environ={}, hostname="this-host"), path

    def rendered(self, config: Config) -> str:
        clock = Clock()
        state = ServicesState("this-host", clock)
        self.addCleanup(state.stop)
        proxy = makeProxy(config, state, None, clock)
        return proxy.writer.template.render(ProxyModel(), self.SETTINGS)  # type: ignore[attr-defined,no-any-return]

    def test_theConfiguredTemplateIsTheOneRendered(self) -> None:
        template = os.path.abspath(self.mktemp())
        with open(template, "w") as f:
            f.write("# our own, for {{ bind_ip }}\n")
        config, _ = self.config(f'[haproxy]\ntemplate = "{template}"\n')
        self.assertEqual(self.rendered(config), f"# our own, for {BIND_IP}\n")

    def test_withoutATemplateTheBuiltInOneIsRendered(self) -> None:
        config, _ = self.config("[haproxy]\n")
        self.assertEqual(
            self.rendered(config),
            ProxyTemplate.default().render(ProxyModel(), self.SETTINGS),
        )

    def test_aTemplateThatCannotBeReadIsAnErrorOfTheConfigFile(self) -> None:
        config, path = self.config('[haproxy]\ntemplate = "/nonexistent/t.j2"\n')
        clock = Clock()
        error = self.assertRaises(
            ConfigError, makeProxy, config, ServicesState("h", clock), None, clock
        )
        self.assertIn(path, str(error))
        self.assertIn("haproxy.template", str(error))

    def test_anUnmanagedHAProxyWithoutAReloadCommandIsAnErrorOfTheConfigFile(
        self,
    ) -> None:
        config, path = self.config("[haproxy]\nmanage_process = false\n")
        clock = Clock()
        error = self.assertRaises(
            ConfigError, makeProxy, config, ServicesState("h", clock), None, clock
        )
        self.assertEqual(
            str(error),
            f"{path}: haproxy.reload_command: "
            "a HAProxy this node does not manage needs a reload command",
        )
