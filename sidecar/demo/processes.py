"""
Child processes with bounded waits: a C{twistd -n sidecar} node, any other
program, and the few helpers that waiting on real processes needs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from twisted.internet import defer, protocol, reactor, task
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.python.failure import Failure

from ..config import KEYS

T = TypeVar("T")
TWISTD = ["-c", "from twisted.scripts.twistd import run; run()"]
# The interpreter's arguments that run a node in the foreground; append
# --config=FILE.
TWISTD_SIDECAR = [*TWISTD, "-n", "--pidfile=", "sidecar"]
_API_LINE = re.compile(rb"status API on http://([^:/]+):(\d+)/api/")
# Keep this much of a child's output: enough to show why it failed.
_KEPT_OUTPUT = 1 << 20


# Where this package is imported from: a checkout (which holds the twistd
# plugin too) or site-packages.
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)


def nodeEnvironment() -> dict[str, str]:
    """
    This process's environment for a node or a demo service: without the
    variables that would override a node's configuration file (the Go
    Sidecar's), and with this package's own directory first on the path,
    so that children run this very code, installed or not.
    """
    overrides = {key.env for key in KEYS if key.env is not None}
    environ = {k: v for k, v in os.environ.items() if k not in overrides}
    environ["PYTHONPATH"] = os.pathsep.join(
        [PACKAGE_ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    )
    return environ


class ChildProcess(protocol.ProcessProtocol):
    """
    A child process: its output is kept (the last megabyte of each
    stream); once it has ended, C{exited} is true and C{exitCode} its exit
    code, or C{-signal} when a signal ended it.
    """

    def __init__(self) -> None:
        self.output = b""
        self.errors = b""
        self.exited = False
        self.exitCode: int | None = None
        self._waiting: list[defer.Deferred[int | None]] = []

    @property
    def ended(self) -> defer.Deferred[int | None]:
        """
        A new Deferred that fires with the exit code once the process has
        ended: each caller may time out or cancel its own.
        """
        if self.exited:
            return defer.succeed(self.exitCode)
        waiting: defer.Deferred[int | None] = defer.Deferred(self._waiting.remove)
        self._waiting.append(waiting)
        return waiting

    @property
    def pid(self) -> int | None:
        return getattr(self.transport, "pid", None)

    def outReceived(self, data: bytes) -> None:
        self.output = (self.output + data)[-_KEPT_OUTPUT:]

    def errReceived(self, data: bytes) -> None:
        self.errors = (self.errors + data)[-_KEPT_OUTPUT:]

    def signal(self, name: str | int) -> None:
        """
        Send a signal unless the process has ended.
        """
        if not self.exited:
            try:
                self.transport.signalProcess(name)  # type: ignore[union-attr]
            except ProcessExitedAlready:
                pass

    def stop(self) -> defer.Deferred[int | None]:
        """
        Send SIGTERM unless the process has ended; fire with its exit code.
        """
        self.signal("TERM")
        return self.ended

    def processEnded(self, reason: Failure) -> None:
        ended: Any = reason.value
        code = 0 if reason.check(ProcessDone) else ended.exitCode
        if code is None and ended.signal is not None:
            code = -ended.signal
        self.exited, self.exitCode = True, code
        waiting, self._waiting = self._waiting, []
        for each in waiting:
            each.callback(code)

    def describe(self) -> str:
        """
        What it wrote, for an error message.
        """
        return (self.output + self.errors).decode("utf-8", "replace")


class ListeningProcess(ChildProcess, Generic[T]):
    """
    A child that says on its output when it listens: C{listening} fires
    with what L{heard} finds there, or fails if the process ends first.
    """

    def __init__(self) -> None:
        super().__init__()
        self.listening: defer.Deferred[T] = defer.Deferred()

    def heard(self, output: bytes) -> T | None:
        """
        What the output so far says of where it listens, or L{None} while
        it says nothing.
        """
        raise NotImplementedError

    def outReceived(self, data: bytes) -> None:
        super().outReceived(data)
        if not self.listening.called:
            said = self.heard(self.output)
            if said is not None:
                self.listening.callback(said)

    def processEnded(self, reason: Failure) -> None:
        if not self.listening.called:
            code = getattr(reason.value, "exitCode", None)
            self.listening.errback(
                RuntimeError(f"exited ({code}) before listening:\n{self.describe()}")
            )
        super().processEnded(reason)


class NodeProcess(ListeningProcess[int]):
    """
    A twistd sidecar process.  C{listening} fires with the API's port once
    the node logs it; C{ended} fires with C{-SIGTERM} when the process
    ended by re-raising a handled SIGTERM, as daemons do.
    """

    def heard(self, output: bytes) -> int | None:
        return _apiPort(output)


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
        if str(event.get("message", "")).startswith("status API on"):
            return int(event["port"])
    return None


def spawn(child: ChildProcess, argv: Sequence[str], path: str) -> None:
    """
    Start C{argv} as C{child} in directory C{path}, with L{nodeEnvironment}.
    """
    reactor.spawnProcess(  # type: ignore[attr-defined]
        child, argv[0], list(argv), env=nodeEnvironment(), path=path
    )


def startNode(configPath: str, timeout: float = 30) -> NodeProcess:
    """
    Start C{twistd -n sidecar --config=configPath} in the configuration's
    directory; C{listening} times out after C{timeout} seconds.
    """
    node = NodeProcess()
    spawn(
        node,
        [sys.executable, *TWISTD_SIDECAR, f"--config={configPath}"],
        str(Path(configPath).parent),
    )
    node.listening.addTimeout(timeout, reactor)
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
    process may still take it before it is bound; that race is rare.)
    """
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port: int = tcp.getsockname()[1]
            if not udp or portIsFree(host, port, tcp=False, udp=True):
                return port
    raise RuntimeError(f"no port free for both TCP and UDP on {host}")


def portIsFree(host: str, port: int, tcp: bool = True, udp: bool = False) -> bool:
    """
    Whether C{port} can be bound on C{host} right now, for TCP when C{tcp}
    and for UDP when C{udp}.
    """
    return bindProblem(host, port, tcp, udp) is None


def bindProblem(
    host: str, port: int, tcp: bool = True, udp: bool = False
) -> str | None:
    """
    Why C{port} cannot be bound on C{host} right now (for TCP when C{tcp},
    for UDP when C{udp}), or L{None} when it can.
    """
    kinds = [socket.SOCK_STREAM] * tcp + [socket.SOCK_DGRAM] * udp
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as probe:
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as e:
                protocol = "TCP" if kind == socket.SOCK_STREAM else "UDP"
                return f"{host}:{port} ({protocol}): {e.strerror}"
    return None


def _children() -> dict[int, list[int]]:
    """
    Every process's children, from Linux's C{/proc}.
    """
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = entry.read_text()
        except OSError:
            continue
        # The command name, in parentheses, may hold spaces.
        fields = stat[stat.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    return children


def descendants(pid: int) -> list[int]:
    """
    The processes started by C{pid}, and by those (empty where Linux's
    C{/proc} is missing).
    """
    children = _children()
    found: list[int] = []
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(children.get(child, []))
    return found


def killTrees(roots: Sequence[int]) -> None:
    """
    SIGKILL C{roots} and every process they started, all at once, as when
    a machine dies: each is first stopped (SIGSTOP), so that none can fork
    a process that escapes, until no new one turns up.
    """
    found: set[int] = set()
    while True:
        tree = set(roots).union(*(descendants(root) for root in roots))
        if tree <= found:
            break
        for pid in tree - found:
            _signal(pid, signal.SIGSTOP)
        found |= tree
    for pid in found:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass
