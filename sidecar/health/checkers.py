"""
The checkers: C{HttpGet} (treq; 2xx and 3xx are healthy), C{Tcp} (a
connection), C{External} (a shell command, exit 0 is healthy) and
C{AlwaysSuccessful}; and the registry that finds them, with any installed
as Twisted plugins.  A running check ends when its Deferred is cancelled,
which is how the monitor enforces timeouts.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

import treq
from hyperlink import EncodedURL
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.error import ProcessDone
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from sidecar.interfaces import IChecker, ICheckerFactory

# What an External check's output keeps for its error message.
_OUTPUT_KEPT = 4096
# After SIGTERM at the timeout, this long before SIGKILL.
KILL_GRACE = 1.0


class CheckFailed(Exception):
    """
    The service is not healthy; the message says why, in one line.
    """


class CheckArgumentError(ValueError):
    """
    A check's arguments cannot make a check; the message says why.
    """


class _Discard(Protocol):
    """
    Drops a response body unread: the status line was all a check needs,
    and a body that trickles must not hold the connection.
    """

    def connectionMade(self) -> None:
        self.transport.stopProducing()  # type: ignore[union-attr]


def _cancelsCleanly(inner: Deferred[str]) -> Deferred[str]:
    """
    C{inner}'s result, in a Deferred that fails with L{CancelledError} when
    cancelled (treq's would fail with C{ResponseNeverReceived} instead).
    """

    def forward(result: object) -> None:
        if outer.called:
            return  # cancelled: what the aborted request says is moot
        if isinstance(result, Failure):
            outer.errback(result)
        else:
            outer.callback(result)  # type: ignore[arg-type]

    def cancel(outer: Deferred[str]) -> None:
        outer.errback(CancelledError())
        inner.cancel()

    outer: Deferred[str] = Deferred(cancel)
    inner.addBoth(forward)
    return outer


def _endpointFor(reactor: Any, host: str, port: int) -> IStreamClientEndpoint:
    # HostnameEndpoint would resolve even a literal address, in a thread.
    if isIPAddress(host):
        return TCP4ClientEndpoint(reactor, host, port)
    if isIPv6Address(host):
        return TCP6ClientEndpoint(reactor, host, port)
    return HostnameEndpoint(reactor, host, port)


@implementer(IAgentEndpointFactory)
class _DirectToAddresses:
    """
    Agent's endpoints, except that a URL naming an IP address connects to
    it directly: L{HostnameEndpoint} would resolve even a literal address
    in a thread, which thousands of checks a second cannot afford.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._tls = BrowserLikePolicyForHTTPS()

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        host = uri.host.decode("ascii").strip("[]")
        endpoint = _endpointFor(self._reactor, host, uri.port)
        if uri.scheme == b"https":
            creator = self._tls.creatorForNetloc(uri.host, uri.port)
            endpoint = wrapClientTLS(creator, endpoint)
        return _Quiet(endpoint)


@implementer(IStreamClientEndpoint)
class _Quiet:
    """
    An endpoint whose factories do not log "Starting factory" and
    "Stopping factory": two info lines per check, thousands a second.
    """

    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self._endpoint = endpoint

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        protocolFactory.noisy = False
        return self._endpoint.connect(protocolFactory)


class _HttpClients:
    """
    One agent, and a treq client on it, for every check on a reactor.  Not
    persistent: each check opens a new connection, as a new client would.
    """

    def __init__(self, reactor: Any) -> None:
        self.agent = Agent.usingEndpointFactory(
            reactor,
            _DirectToAddresses(reactor),
            pool=HTTPConnectionPool(reactor, persistent=False),
        )
        self.treq = treq.client.HTTPClient(self.agent)


_CLIENTS: WeakKeyDictionary[Any, _HttpClients] = WeakKeyDictionary()


def _clientsFor(reactor: Any) -> _HttpClients:
    clients = _CLIENTS.get(reactor)
    if clients is None:
        clients = _CLIENTS[reactor] = _HttpClients(reactor)
    return clients


@implementer(IChecker)
class HttpGetChecker:
    """
    GET a URL: a 2xx or 3xx answer is healthy (redirects are not followed).
    """

    def __init__(self, url: str, reactor: Any) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CheckArgumentError(f"not an http(s) URL: {url!r}")
        self.url = url
        try:
            self._parsed = EncodedURL.from_text(url)
        except ValueError as e:
            raise CheckArgumentError(f"not an http(s) URL: {url!r}: {e}") from None
        self._ipv6 = isIPv6Address(parts.hostname)
        if self._ipv6 and not url.isascii():
            raise CheckArgumentError(f"not an http(s) URL: {url!r}: not ASCII")
        self._clients = _clientsFor(reactor)

    def check(self) -> Deferred[str]:
        d: Deferred[Any]
        if self._ipv6:
            # treq cannot send to an IPv6 literal: hyperlink's to_uri()
            # IDNA-encodes the host and fails (python-hyper/hyperlink#68).
            # The agent under it can.
            d = self._clients.agent.request(b"GET", self.url.encode())
        else:
            d = self._clients.treq.get(
                self._parsed, allow_redirects=False, unbuffered=True
            )
        judged: Deferred[str] = d.addCallbacks(self._judge, self._unreachable)
        return _cancelsCleanly(judged)

    def _unreachable(self, failure: Failure) -> str:
        raise CheckFailed(f"GET {self.url}: {failure.getErrorMessage()}")

    def _judge(self, response: Any) -> str:
        response.deliverBody(_Discard())
        if 200 <= response.code < 400:
            return f"HTTP {response.code}"
        raise CheckFailed(f"HTTP {response.code} from {self.url}")


@implementer(IChecker)
class TcpChecker:
    """
    Open a TCP connection to C{host:port}, then close it.
    """

    def __init__(self, address: str, reactor: Any) -> None:
        host, _, port = address.strip().rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise CheckArgumentError(f"not a host:port address: {address!r}")
        self._endpoint = _endpointFor(reactor, host, int(port))
        self.address = address.strip()

    def check(self) -> Deferred[str]:
        factory = Factory.forProtocol(Protocol)
        factory.noisy = False  # two log lines a check otherwise
        d: Deferred[Any] = self._endpoint.connect(factory)
        d.addCallbacks(self._connected, self._refused)
        return d

    def _connected(self, protocol: Protocol) -> str:
        protocol.transport.loseConnection()  # type: ignore[union-attr]
        return f"connected to {self.address}"

    def _refused(self, failure: Failure) -> str:
        raise CheckFailed(
            f"cannot connect to {self.address}: {failure.getErrorMessage()}"
        )


class _CheckProcess(ProcessProtocol):
    def __init__(self, reactor: Any, command: str) -> None:
        self._reactor = reactor
        self._command = command
        self.output = b""
        self.done: Deferred[str] = Deferred(self._cancel)
        self._killer: Any = None

    def outReceived(self, data: bytes) -> None:
        self.output = (self.output + data)[-_OUTPUT_KEPT:]

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        if self._killer is not None and self._killer.active():
            self._killer.cancel()
        if self.done.called:
            return
        if reason.check(ProcessDone):
            self.done.callback("exit 0")
            return
        lines = self.output.decode("utf-8", "replace").strip().splitlines()
        said = f": {lines[-1]}" if lines else ""
        self.done.errback(CheckFailed(f"{reason.getErrorMessage()}{said}"))

    def _cancel(self, d: Deferred[str]) -> None:
        # The command runs in a session of its own: signal the whole group,
        # so its children go too.
        self._signal(signal.SIGTERM)
        self._killer = self._reactor.callLater(KILL_GRACE, self._signal, signal.SIGKILL)

    def _signal(self, number: int) -> None:
        pid = self.transport.pid if self.transport is not None else None
        if pid is None:
            return
        try:
            os.killpg(pid, number)
        except ProcessLookupError:
            pass


@implementer(IChecker)
class ExternalChecker:
    """
    Run a shell command: exit status 0 is healthy.  At its timeout it gets
    SIGTERM, then SIGKILL a second later, with all its children.
    """

    def __init__(self, command: str, reactor: Any) -> None:
        if not command.strip():
            raise CheckArgumentError("an External check needs a command")
        setsid = shutil.which("setsid")
        if setsid is None:
            raise CheckArgumentError("External checks need setsid (util-linux)")
        self.command = command
        self._argv = [setsid, "/bin/sh", "-c", command]
        self._reactor = reactor

    def check(self) -> Deferred[str]:
        process = _CheckProcess(self._reactor, self.command)
        self._reactor.spawnProcess(
            process, self._argv[0], self._argv, env=dict(os.environ)
        )
        return process.done


@implementer(IChecker)
class AlwaysSuccessfulChecker:
    def check(self) -> Deferred[str]:
        return succeed("always successful")


@implementer(ICheckerFactory)
class _BuiltIn:
    """
    A factory for one built-in checker class.
    """

    def __init__(self, name: str, make: Any) -> None:
        self.name = name
        self._make = make

    def checkerFor(self, args: str, reactor: Any) -> IChecker:
        return self._make(args, reactor)  # type: ignore[no-any-return]


BUILT_IN: tuple[_BuiltIn, ...] = (
    _BuiltIn("HttpGet", HttpGetChecker),
    _BuiltIn("Tcp", TcpChecker),
    _BuiltIn("External", ExternalChecker),
    _BuiltIn("AlwaysSuccessful", lambda args, reactor: AlwaysSuccessfulChecker()),
)


class CheckerRegistry:
    """
    The kinds of check by name: the built-in ones, and those given (from
    Twisted plugins, see L{installedCheckers}); a later one of the same
    name replaces an earlier one.
    """

    def __init__(self, extra: Iterable[ICheckerFactory] = ()) -> None:
        self._factories: dict[str, Any] = {}
        factories: list[Any] = [*BUILT_IN, *extra]
        for factory in factories:
            self.add(factory)

    def add(self, factory: ICheckerFactory) -> None:
        """
        Add a kind of check, replacing any of the same name.
        """
        self._factories[factory.name] = factory

    def names(self) -> list[str]:
        return sorted(self._factories)

    def checkerFor(self, type: str, args: str, reactor: Any) -> IChecker:
        """
        @raise CheckArgumentError: for an unknown type or bad arguments.
        """
        factory = self._factories.get(type)
        if factory is None:
            known = ", ".join(self.names())
            raise CheckArgumentError(f"unknown check type {type!r} (known: {known})")
        return factory.checkerFor(args, reactor)  # type: ignore[no-any-return]


def installedCheckers(package: Any = None) -> list[ICheckerFactory]:
    """
    The L{ICheckerFactory} plugins installed in C{package} (by default
    C{twisted.plugins}).
    """
    from twisted.plugin import getPlugins

    if package is None:
        import twisted.plugins as package
    return list(getPlugins(ICheckerFactory, package))
