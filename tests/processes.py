"""
Running a real C{twistd -n sidecar} process for a test, with bounded waits.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from twisted.internet import defer, protocol, reactor, task
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.python.failure import Failure

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
TWISTD = ["-c", "from twisted.scripts.twistd import run; run()"]
_API_LINE = re.compile(rb"status API on http://([^:/]+):(\d+)/api/")


def twistdEnvironment() -> dict[str, str]:
    """
    The test's environment, without the Go Sidecar's variables (which
    would override the test's configuration), and with this checkout first
    on the path so that its plugin and package are the ones run.
    """
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIDECAR_", "HAPROXY_", "LISTENERS_", "STATIC_"))
        and k != "DOCKER_URL"
    }
    environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    )
    return environ


class NodeProcess(protocol.ProcessProtocol):
    """
    A twistd sidecar process.  C{listening} fires with the API's port once
    the node logs it; C{ended} fires with the exit code, or with
    C{-SIGTERM} when the process ended by re-raising a handled SIGTERM.
    """

    def __init__(self) -> None:
        self.output = b""
        self.errors = b""
        self.listening: defer.Deferred[int] = defer.Deferred()
        self.ended: defer.Deferred[int | None] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        port = _apiPort(self.output)
        if port is not None and not self.listening.called:
            self.listening.callback(port)

    def errReceived(self, data: bytes) -> None:
        self.errors += data

    def stop(self) -> defer.Deferred[int | None]:
        """
        Send SIGTERM unless the process has ended; fire with its exit code.
        """
        if not self.ended.called:
            try:
                self.transport.signalProcess("TERM")  # type: ignore[union-attr]
            except ProcessExitedAlready:
                pass
        return self.ended

    def processEnded(self, reason: Failure) -> None:
        # twistd ends by re-raising the SIGTERM it handled, as daemons do.
        code = 0 if reason.check(ProcessDone) else reason.value.exitCode
        if code is None and reason.value.signal == signal.SIGTERM:
            code = -signal.SIGTERM
        if not self.listening.called:
            self.listening.errback(
                RuntimeError(
                    f"twistd exited ({code}) before listening:\n"
                    f"{self.output.decode()}{self.errors.decode()}"
                )
            )
        self.ended.callback(code)


def _apiPort(output: bytes) -> int | None:
    """
    The API's port from the node's log, in text or JSON lines.
    """
    match = _API_LINE.search(output)
    if match:
        return int(match.group(2))
    for line in output.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if str(event.get("log_format", "")).startswith("status API on"):
            return int(event["port"])
    return None


def startNode(configPath: str, timeout: float = 30) -> NodeProcess:
    """
    Start C{twistd -n sidecar --config=configPath}; C{listening} times out
    after C{timeout} seconds.
    """
    node = NodeProcess()
    reactor.spawnProcess(  # type: ignore[attr-defined]
        node,
        sys.executable,
        [
            sys.executable,
            *TWISTD,
            "-n",
            "--pidfile=",
            "sidecar",
            f"--config={configPath}",
        ],
        env=twistdEnvironment(),
        path=str(Path(configPath).parent),
    )
    node.listening.addTimeout(timeout, reactor)
    node.ended.addTimeout(timeout * 2, reactor)
    return node


async def pollUntil(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 10, every: float = 0.05
) -> T:
    """
    Call C{probe} every C{every} seconds until it returns something other
    than L{None}, and return that; fail after C{timeout} seconds.
    """
    deadline = reactor.seconds() + timeout  # type: ignore[attr-defined]
    while True:
        result = await probe()
        if result is not None:
            return result
        if reactor.seconds() > deadline:  # type: ignore[attr-defined]
            raise TimeoutError(f"no result from {probe!r} within {timeout} s")
        await task.deferLater(reactor, every)  # type: ignore[arg-type]


def freePort(host: str = "127.0.0.1", udp: bool = True, attempts: int = 50) -> int:
    """
    A port that is free on C{host} for TCP and, when C{udp}, for UDP too:
    memberlist listens on the same port number with both.  (Another
    process may still take it before the agent binds; that race is rare.)
    """
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port: int = tcp.getsockname()[1]
            if not udp:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
                try:
                    datagram.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no port free for both TCP and UDP on {host}")
