"""
A node's API over TLS with a bearer token for writes, on loopback: the
C{sidecar} command and C{sidecar-haproxy}'s watch client verify its
certificate against a private CA (service-identity checks the IP), a
client without that CA is refused, and a write without the token is 401
while reads need none.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import treq
from twisted.internet import defer, reactor
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.trial.unittest import TestCase
from twisted.web.client import ResponseNeverReceived

from sidecar.catalog import Status
from sidecar.cli import CommandFailed, Options, run
from sidecar.clienttls import agentTrusting, trusting
from sidecar.web.watchclient import WatchClient

from .certs import makeTLSFiles
from .inprocess import startNode
from .processes import pollUntil

TOKEN = "0123456789abcdef-token"


class TLSTests(TestCase):
    def setUp(self) -> None:
        directory = Path(self.mktemp()).absolute()
        directory.mkdir(parents=True)
        self.tls = makeTLSFiles(directory)
        self.tokenFile = directory / "token"
        self.tokenFile.write_text(TOKEN + "\n")
        self.node = startNode(
            self,
            "host-a",
            "127.0.0.1",
            moreSettings=[
                f'tls_cert = "{self.tls.cert}"',
                f'tls_key = "{self.tls.key}"',
                f'token_file = "{self.tokenFile}"',
            ],
        )
        address = self.node.api.port.getHost()  # type: ignore[union-attr]
        self.api = f"https://127.0.0.1:{address.port}"

    async def say(self, *argv: str) -> str:
        options = Options()
        options.parseOptions(["--api", self.api, *argv])
        out = io.StringIO()
        await run(options, out, reactor)
        return out.getvalue()

    async def alive(self) -> str:
        await pollUntil(
            lambda: defer.succeed(
                True
                if [
                    s
                    for s in self.node.state.localServices()
                    if s.status is Status.ALIVE
                ]
                else None
            ),
            timeout=10,
        )
        [service] = self.node.state.localServices()
        return service.id

    async def test_theCommandVerifiesTheNodeAndSendsTheToken(self) -> None:
        serviceID = await self.alive()
        ca = ["--ca-file", str(self.tls.ca)]
        status = await self.say(*ca, "status")
        self.assertTrue(status.startswith("host-a is up"), status)
        with self.assertRaises(CommandFailed) as caught:
            await self.say(*ca, "drain", serviceID)
        self.assertIn(
            "HTTP 401: this node's writes need its bearer token", str(caught.exception)
        )
        said = await self.say(
            *ca, "--token-file", str(self.tokenFile), "drain", serviceID
        )
        self.assertIn("set to DRAINING", said)

    async def test_aClientThatDoesNotTrustTheCAIsRefused(self) -> None:
        with self.assertRaises(CommandFailed) as caught:
            await self.say("status")
        self.assertIn("cannot reach", str(caught.exception))
        self.assertIn("certificate verify failed", str(caught.exception))
        # Nor does plain HTTP get an answer.
        plain = self.api.replace("https://", "http://")
        with self.assertRaises(ResponseNeverReceived):
            response = await treq.get(
                plain + "/api/health", persistent=False, timeout=5
            )
            await response.content()

    async def test_sidecarHAProxysWatchClientFollowsOverTLS(self) -> None:
        await self.alive()
        documents: list[Any] = []
        client = WatchClient(
            reactor,
            self.api + "/api/watch?by_service=false",
            documents.append,
            trusting(str(self.tls.ca)),
        )
        client.startService()
        self.addCleanup(client.stopService)
        await pollUntil(lambda: defer.succeed(True if documents else None), timeout=10)
        self.assertEqual(documents[0]["Hostname"], "host-a")


class Reader(Protocol):
    """
    Reads a response body until told to close its connection.
    """

    def __init__(self) -> None:
        self.closed: defer.Deferred[None] = defer.Deferred()

    def connectionLost(self, reason: object = None) -> None:
        self.closed.callback(None)

    def close(self) -> defer.Deferred[None]:
        self.transport.stopProducing()  # type: ignore[union-attr]
        return self.closed


class RawClient(Protocol):
    """
    Sends one request and reads its answer; closes once the answer's body
    is whole.
    """

    def __init__(self) -> None:
        self.received = b""
        self.closed: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(  # type: ignore[union-attr]
            b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        head, _, body = self.received.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length" and len(body) >= int(value):
                self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: object = None) -> None:
        self.closed.callback(None)


class TLSUnderTheConnectionCapTests(TestCase):
    async def test_aConnectionOverTheCapIsAnswered503OverTLS(self) -> None:
        directory = Path(self.mktemp()).absolute()
        directory.mkdir(parents=True)
        tls = makeTLSFiles(directory)
        node = startNode(
            self,
            "host-a",
            "127.0.0.1",
            moreSettings=[
                f'tls_cert = "{tls.cert}"',
                f'tls_key = "{tls.key}"',
                "max_connections = 1",
            ],
        )
        port = node.api.port.getHost().port  # type: ignore[union-attr]
        api = f"https://127.0.0.1:{port}"
        agent = agentTrusting(reactor, str(tls.ca))
        stream = await treq.get(api + "/api/watch", agent=agent, unbuffered=True)
        self.assertEqual(stream.code, 200)
        reader = Reader()
        stream.deliverBody(reader)
        self.addCleanup(reader.close)
        ca = Certificate.loadPEM(tls.ca.read_bytes())
        client = RawClient()
        reactor.connectSSL(  # type: ignore[attr-defined]
            "127.0.0.1",
            port,
            ClientFactory.forProtocol(lambda: client),
            optionsForClientTLS("127.0.0.1", trustRoot=ca),
        )
        await client.closed
        head, _, body = client.received.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 503 "), head)
        self.assertIn(b"Retry-After: 1", head)
        self.assertIn(b"too many connections", body)
