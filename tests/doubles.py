"""
Test doubles for the catalog's seams: they record what they are told; and
a raw in-memory HTTP connection for byte-exact API tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReactorTime
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.server import Site
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
    warnings: list[str] = []

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
                "ClockSkew": None,
                "Since": "2026-01-02T03:04:05Z",
            }
            for name in self.names
        ]

    def goPeers(self) -> dict[str, Any]:
        return self.go


class RawHTTP:
    """
    One HTTP connection to C{site} over an in-memory transport, on
    C{clock}: requests go in as bytes and responses come out as bytes,
    exactly as a client would see them (no client library decodes or
    adds anything).
    """

    def __init__(self, site: Site, clock: IReactorTime) -> None:
        self.transport = StringTransport()
        self.channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.channel.callLater = clock.callLater  # type: ignore[union-attr]
        self.channel.makeConnection(self.transport)  # type: ignore[union-attr]

    def request(self, method: str, path: str, *headers: str) -> None:
        """
        Send one request, with C{headers} as C{"Name: value"} lines.
        """
        lines = [f"{method} {path} HTTP/1.1", "Host: node-a", *headers, "", ""]
        self.channel.dataReceived("\r\n".join(lines).encode("latin-1"))  # type: ignore[union-attr]

    def response(self) -> RawResponse:
        """
        The one response received since the last call.
        """
        data = self.transport.value()
        self.transport.clear()
        head, _, body = data.partition(b"\r\n\r\n")
        status, *lines = head.split(b"\r\n")
        headers: dict[bytes, list[bytes]] = {}
        for line in lines:
            name, _, value = line.partition(b":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        code = int(status.split(b" ")[1])
        return RawResponse(status, code, headers, body)

    def close(self) -> None:
        self.channel.connectionLost(Failure(ConnectionDone()))  # type: ignore[union-attr]


@dataclass(frozen=True)
class RawResponse:
    """
    A response as bytes: the status line, headers by lower-case name, and
    the body exactly as sent.
    """

    status: bytes
    code: int
    headers: dict[bytes, list[bytes]]
    body: bytes
