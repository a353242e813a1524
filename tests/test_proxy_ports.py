"""
L{bindProbe}: whether HAProxy could bind a ServicePort, tried on real
loopback sockets.
"""

from __future__ import annotations

import socket

from twisted.trial.unittest import SynchronousTestCase

from sidecar.proxy.ports import bindProbe

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
