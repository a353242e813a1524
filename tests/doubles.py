"""
Test doubles for the catalog's seams: they record what they are told.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import succeed
from twisted.internet.testing import MemoryReactorClock
from zope.interface import implementer

from sidecar.catalog import ChangeEvent, IBroadcaster, ICatalogObserver, Service
from sidecar.interfaces import IMembership


@implementer(ICatalogObserver)
class RecordingObserver:
    """
    Keeps every change event, in order.
    """

    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []

    def serviceChanged(self, event: ChangeEvent) -> None:
        self.events.append(event)


@implementer(IBroadcaster)
class RecordingBroadcaster:
    """
    Keeps every batch of records it is asked to send.
    """

    def __init__(self) -> None:
        self.batches: list[list[Service]] = []

    def broadcast(self, services: Sequence[Service]) -> None:
        self.batches.append(list(services))

    @property
    def records(self) -> list[Service]:
        return [record for batch in self.batches for record in batch]


class _FakeUDPPort:
    def __init__(self, host: str, port: int) -> None:
        self._address = IPv4Address("UDP", host, port)
        self.listening = True

    def getHost(self) -> IPv4Address:
        return self._address

    def stopListening(self):  # type: ignore[no-untyped-def]
        self.listening = False
        return succeed(None)


class MemoryReactorWithUDP(MemoryReactorClock):
    """
    Twisted's memory reactor, which can also pretend to listen for UDP.

    @ivar udpServers: (port, protocol, interface, fake port) for each
        C{listenUDP}.
    """

    def __init__(self) -> None:
        super().__init__()
        self.udpServers: list[tuple[int, object, str, _FakeUDPPort]] = []

    def listenUDP(  # type: ignore[no-untyped-def]
        self, port, protocol, interface="", maxPacketSize=8192
    ):
        fake = _FakeUDPPort(interface, port)
        self.udpServers.append((port, protocol, interface, fake))
        return fake


@implementer(IMembership)
class Members:
    """
    A membership of the given live members, for the API and the proxy.
    """

    clusterName = "test-cluster"
    seeded = False

    def __init__(self, *names: str) -> None:
        self.names = list(names)
        # What goPeers() says: no Go Sidecar among them.
        self.go: dict[str, Any] = {"Members": [], "RelayLimit": 1395, "Withheld": []}

    def memberNames(self) -> list[str]:
        return self.names

    def members(self) -> list[dict[str, Any]]:
        return [
            {
                "Name": name,
                "Address": "127.0.1.1",
                "Port": 7946,
                "State": "alive",
                "Incarnation": 0,
                "Meta": "",
                "ProtocolVersions": [1, 5, 4, 0, 0, 0],
            }
            for name in self.names
        ]

    def goPeers(self) -> dict[str, Any]:
        return self.go
