"""
Watchers that never read, of a catalog of several MiB, on a real loopback
socket: at most C{api.max_watchers} are served, each holds a slice of the
document rather than a copy of it (the node's memory stays bounded), the
API keeps answering, and once they have read nothing for L{STALL}
seconds they are cut.
"""

from __future__ import annotations

import os
import socket

import treq
from twisted.internet import defer, reactor
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.trial.unittest import TestCase

from sidecar.catalog import Port, Service
from sidecar.web import watch

from .inprocess import startNode
from .processes import pollUntil

SECOND = 1_000_000_000
WATCHERS = 80
MAX_WATCHERS = 64
# Connections opened at once: within the listening socket's backlog.
BATCH = 20
HOSTS = 8
PER_HOST = 1800


def residentBytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class NeverReads(Protocol):
    """
    Asks for the watch stream, then reads nothing more.
    """

    def connectionMade(self) -> None:
        handle = self.transport.getHandle()  # type: ignore[union-attr]
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.transport.write(  # type: ignore[union-attr]
            b"GET /api/watch HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        self.transport.pauseProducing()  # type: ignore[union-attr]


class Watchers(ClientFactory):
    protocol = NeverReads

    def __init__(self) -> None:
        self.connected: list[NeverReads] = []

    def buildProtocol(self, addr: object) -> NeverReads:
        protocol = NeverReads()
        self.connected.append(protocol)
        return protocol

    def abortAll(self) -> None:
        for protocol in self.connected:
            if protocol.transport is not None:
                protocol.transport.abortConnection()  # type: ignore[attr-defined]


class SlowWatcherMemoryTests(TestCase):
    timeout = 120

    def makeCatalog(self) -> list[Service]:
        now = round(reactor.seconds() * SECOND)  # type: ignore[attr-defined]
        return [
            Service(
                id=f"{h:02d}{n:010d}",
                name=f"svc-{n % 300}",
                image="registry.example/team/" + "x" * 200 + f":{n}",
                created=SECOND,
                hostname=f"host-{h}",
                ports=(Port("tcp", 20000 + n, 10000 + n % 300, "10.0.0.1"),),
                updated=now,
            )
            for h in range(HOSTS)
            for n in range(PER_HOST)
        ]

    async def test_watchersThatNeverReadABigCatalog(self) -> None:
        self.patch(watch, "STALL", 10.0)
        node = startNode(self, "host-a", "127.0.0.1")
        records = self.makeCatalog()
        self.assertEqual(node.state.mergeAll(records), len(records))
        site = node.api.factory.wrappedFactory
        api = node.api.port.getHost()  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{api.port}"
        response = await treq.get(url + "/api/services.json", persistent=False)
        self.assertGreater(len(await response.content()), 5 * 1024 * 1024)
        before = residentBytes()

        watchers = Watchers()
        self.addCleanup(watchers.abortAll)
        for sent in range(BATCH, WATCHERS + 1, BATCH):
            for _ in range(BATCH):
                reactor.connectTCP("127.0.0.1", api.port, watchers)  # type: ignore[attr-defined]
            wanted = min(sent, MAX_WATCHERS)
            await pollUntil(
                lambda wanted=wanted: defer.succeed(
                    True if len(site.watchers) >= wanted else None
                ),
                timeout=30,
            )
        # Each has been sent what its buffers hold, and is paused.
        await pollUntil(
            lambda: defer.succeed(
                True if all(w._paused for w in site.watchers) else None
            ),
            timeout=30,
        )
        self.assertEqual(len(site.watchers), MAX_WATCHERS)
        grown = residentBytes() - before
        # A copy of the document each would be over 300 MiB.
        self.assertLess(grown, 64 * 1024 * 1024, f"{grown / 2**20:.0f} MiB")
        health = await treq.get(url + "/api/health", persistent=False)
        self.assertEqual(health.code, 200)
        await health.content()
        await pollUntil(
            lambda: defer.succeed(True if not site.watchers else None), timeout=30
        )
