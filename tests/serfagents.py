"""
Real C{serf agent} processes as gossip peers for a test, with bounded
waits: HashiCorp's serf speaks the memberlist protocol our gossip layer
implements, so it is the reference peer.  Every agent binds to 127.0.0.1
only.  Use L{startSerfAgent} (which registers the cleanup) or create a
L{SerfAgent}, call L{SerfAgent.start} and pass L{SerfAgent.cleanup} to
C{addCleanup}.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from twisted.internet import defer, protocol, reactor
from twisted.internet.error import ProcessExitedAlready, ProcessTerminated
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from .processes import freePort, pollUntil

T = TypeVar("T")
HOST = "127.0.0.1"
SERF_MISSING = "serf is not installed: no `serf` executable on PATH"
# A bound on every serf CLI call (members, join, event, leave).
COMMAND_TIMEOUT = 10.0


def serfExecutable() -> str | None:
    """
    The path of the C{serf} executable on C{PATH}, or L{None}.
    """
    return shutil.which("serf")


def serfAvailable() -> bool:
    """
    Whether a C{serf} executable is on C{PATH}.
    """
    return serfExecutable() is not None


def serfSkipReason() -> str | None:
    """
    Why serf tests must be skipped (for a C{skip} attribute), or L{None}
    when serf is available.
    """
    return None if serfAvailable() else SERF_MISSING


class SerfCommandError(RuntimeError):
    """
    A C{serf} CLI command exited with a non-zero code; the message holds
    its output.
    """


class SerfAgent(protocol.ProcessProtocol):
    """
    One C{serf agent} process on 127.0.0.1.

    C{ready} fires (with the agent) once its RPC answers, or fails when the
    agent exits first or after the start timeout.  C{ended} fires with the
    exit code, or minus the signal number when a signal ended it.  Each
    access to either gives a new Deferred, so any number of waiters may
    await them.  C{output} collects stdout and stderr (serf logs to stdout).
    """

    def __init__(
        self,
        name: str,
        *,
        encrypt: str | None = None,
        join: Sequence[str] = (),
        profile: str = "lan",
        tags: Mapping[str, str] | None = None,
        port: int | None = None,
        rpcPort: int | None = None,
        logLevel: str = "debug",
        extraArguments: Sequence[str] = (),
    ) -> None:
        """
        @param name: the node name (C{-node}).
        @param encrypt: a base64 gossip key (C{-encrypt}), 16, 24 or 32
            bytes once decoded.
        @param join: C{host:port} addresses to join on start (C{-join});
            serf exits when it can join none of them.
        @param profile: C{lan}, C{wan} or C{local} timing.
        @param tags: C{-tag key=value} pairs.
        @param port: the gossip port (TCP and UDP); a free one by default.
        @param rpcPort: the RPC port; a free one by default.
        """
        self.name = name
        self.encrypt = encrypt
        self.joinAddresses = list(join)
        self.profile = profile
        self.tags = dict(tags or {})
        self.port = port if port is not None else freePort()
        self.rpcPort = rpcPort if rpcPort is not None else freePort(udp=False)
        self.logLevel = logLevel
        self.extraArguments = list(extraArguments)
        self.output = b""
        self.started = False
        self._ready: _Outcome[SerfAgent] = _Outcome()
        self._ended: _Outcome[int | None] = _Outcome()

    def __repr__(self) -> str:
        return f"<SerfAgent {self.name} at {self.address} rpc {self.rpcAddress}>"

    @property
    def address(self) -> str:
        """
        The gossip address, C{127.0.0.1:port}, as C{join} takes it.
        """
        return f"{HOST}:{self.port}"

    @property
    def rpcAddress(self) -> str:
        return f"{HOST}:{self.rpcPort}"

    @property
    def ready(self) -> defer.Deferred[SerfAgent]:
        """
        Fires with this agent once its RPC answers; fails if it exits
        first or does not answer within the start timeout.
        """
        return self._ready.wait()

    @property
    def ended(self) -> defer.Deferred[int | None]:
        """
        Fires with the exit code (minus the signal number if a signal
        ended the agent); with L{None} at once if it was never started.
        """
        if not self.started:
            return defer.succeed(None)
        return self._ended.wait()

    @property
    def exitCode(self) -> int | None:
        """
        The exit code once the agent has ended, else L{None}.
        """
        result = self._ended.result
        return result if isinstance(result, int) else None

    @property
    def running(self) -> bool:
        return self.started and not self._ended.done

    def arguments(self) -> list[str]:
        """
        The C{serf agent} command line.
        """
        arguments = [
            "serf",
            "agent",
            f"-node={self.name}",
            f"-bind={self.address}",
            f"-advertise={self.address}",
            f"-rpc-addr={self.rpcAddress}",
            f"-profile={self.profile}",
            f"-log-level={self.logLevel}",
        ]
        if self.encrypt is not None:
            arguments.append(f"-encrypt={self.encrypt}")
        arguments += [f"-join={address}" for address in self.joinAddresses]
        for key, value in self.tags.items():
            arguments += ["-tag", f"{key}={value}"]
        return arguments + self.extraArguments

    def start(self, timeout: float = 20) -> defer.Deferred[SerfAgent]:
        """
        Spawn the agent; return C{ready}, which fails after C{timeout}
        seconds (the agent is then killed).
        """
        executable = serfExecutable()
        if executable is None:
            raise RuntimeError(SERF_MISSING)
        self.started = True
        reactor.spawnProcess(  # type: ignore[attr-defined]
            self, executable, self.arguments(), env=dict(os.environ)
        )
        waiting = defer.Deferred.fromCoroutine(self._waitForRPC(timeout))
        waiting.addCallbacks(self._becameReady, self._failedToStart)
        return self.ready

    async def _waitForRPC(self, timeout: float) -> None:
        async def answers() -> bool | None:
            if self._ended.done:
                raise RuntimeError(f"the agent exited with {self.exitCode}")
            _, _, code = await self._serf("members", check=False)
            return True if code == 0 else None

        await pollUntil(answers, timeout=timeout, every=0.1)

    def _becameReady(self, _: object) -> None:
        if not self._ready.done:
            self._ready.succeed(self)

    def _failedToStart(self, reason: Failure) -> None:
        if self._ready.done:
            return
        self.kill()
        self._ready.fail(
            RuntimeError(
                f"serf agent {self.name} did not start ({reason.getErrorMessage()})"
                f":\n{self.output.decode(errors='replace')}"
            )
        )

    # ProcessProtocol

    def outReceived(self, data: bytes) -> None:
        self.output += data

    def errReceived(self, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason: Failure) -> None:
        code: int | None = 0
        ended = reason.value
        if isinstance(ended, ProcessTerminated):
            code = ended.exitCode
            if code is None and ended.signal is not None:
                code = -ended.signal
        self._ended.succeed(code)

    # The CLI

    async def _serf(
        self, *arguments: str, check: bool = True, timeout: float = COMMAND_TIMEOUT
    ) -> tuple[bytes, bytes, int]:
        """
        Run C{serf <arguments> -rpc-addr=<ours>}; its stdout, stderr and
        exit code.  With C{check}, a non-zero code raises
        L{SerfCommandError}.
        """
        executable = serfExecutable()
        assert executable is not None, SERF_MISSING
        command, *rest = arguments
        running = getProcessOutputAndValue(
            executable,
            [command, f"-rpc-addr={self.rpcAddress}", *rest],
            env=dict(os.environ),
        )
        running.addTimeout(timeout, reactor)
        out, err, code = await running
        if check and code != 0:
            raise SerfCommandError(
                f"serf {' '.join(arguments)} exited with {code}: "
                f"{(out + err).decode(errors='replace').strip()}"
            )
        return out, err, code

    def members(self) -> defer.Deferred[list[dict[str, Any]]]:
        """
        The members this agent knows, as C{serf members -format=json}
        lists them: dicts with C{name}, C{addr} (C{"ip:port"}), C{port},
        C{tags}, C{status} (C{alive}, C{leaving}, C{left}, C{failed}) and
        C{protocol}.
        """

        async def members() -> list[dict[str, Any]]:
            out, _, _ = await self._serf("members", "-format=json")
            listed: list[dict[str, Any]] = json.loads(out)["members"]
            return listed

        return defer.Deferred.fromCoroutine(members())

    def member(self, name: str) -> defer.Deferred[dict[str, Any] | None]:
        """
        This agent's entry for the member C{name}, or L{None}.
        """

        async def member() -> dict[str, Any] | None:
            for entry in await self.members():
                if entry["name"] == name:
                    return entry
            return None

        return defer.Deferred.fromCoroutine(member())

    def waitForStatus(
        self, name: str, status: str = "alive", timeout: float = 20
    ) -> defer.Deferred[dict[str, Any]]:
        """
        Poll until this agent lists C{name} with C{status}; fire with its
        entry, or fail with L{TimeoutError} after C{timeout} seconds.
        """

        async def listed() -> dict[str, Any] | None:
            entry = await self.member(name)
            return entry if entry and entry["status"] == status else None

        return defer.Deferred.fromCoroutine(
            pollUntil(listed, timeout=timeout, every=0.1)
        )

    def join(self, *addresses: str) -> defer.Deferred[bytes]:
        """
        C{serf join} the C{host:port} addresses; fire with serf's output,
        or fail with L{SerfCommandError} when no join succeeded.
        """

        async def join() -> bytes:
            out, _, _ = await self._serf("join", *addresses)
            return out

        return defer.Deferred.fromCoroutine(join())

    def userEvent(
        self, name: str, payload: bytes | str = b"", coalesce: bool = True
    ) -> defer.Deferred[bytes]:
        """
        Broadcast a user event with C{serf event}.
        """
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8", errors="surrogateescape")
        arguments = [] if coalesce else ["-coalesce=false"]

        async def event() -> bytes:
            out, _, _ = await self._serf("event", *arguments, name, payload)
            return out

        return defer.Deferred.fromCoroutine(event())

    # The log

    def logLines(self, pattern: str | None = None) -> list[str]:
        """
        The agent's output lines so far, those matching the regular
        expression C{pattern} when one is given.
        """
        lines = self.output.decode(errors="replace").splitlines()
        if pattern is None:
            return lines
        return [line for line in lines if re.search(pattern, line)]

    def waitForLog(self, pattern: str, timeout: float = 10) -> defer.Deferred[str]:
        """
        Fire with the first output line matching C{pattern}, polling until
        one appears; fail with L{TimeoutError} after C{timeout} seconds.
        """

        async def found() -> str | None:
            lines = self.logLines(pattern)
            return lines[0] if lines else None

        return defer.Deferred.fromCoroutine(pollUntil(found, timeout=timeout))

    # Ending

    def signal(self, name: str) -> None:
        """
        Send signal C{name} (C{"KILL"}, C{"TERM"}, C{"INT"}) unless the
        agent has ended.
        """
        if self.running:
            try:
                self.transport.signalProcess(name)  # type: ignore[union-attr]
            except ProcessExitedAlready:
                pass

    def kill(self) -> defer.Deferred[int | None]:
        """
        SIGKILL the agent: peers see it fail, not leave.  Fire C{ended}.
        """
        self.signal("KILL")
        return self.ended

    def stop(
        self, graceful: bool = True, timeout: float = 15
    ) -> defer.Deferred[int | None]:
        """
        End the agent: with C{graceful}, C{serf leave} (peers then list it
        as C{left}); otherwise SIGTERM.  If it has not ended after
        C{timeout} seconds, SIGKILL it.  Fire with its exit code.
        """

        async def stop() -> int | None:
            if self.running:
                if graceful:
                    try:
                        await self._serf("leave", timeout=timeout)
                    except Exception:
                        self.signal("TERM")
                else:
                    self.signal("TERM")
                deadline = reactor.callLater(  # type: ignore[attr-defined]
                    timeout, self.signal, "KILL"
                )
                try:
                    await self.ended
                finally:
                    if deadline.active():
                        deadline.cancel()
            return await self.ended

        return defer.Deferred.fromCoroutine(stop())

    def cleanup(self) -> defer.Deferred[int | None]:
        """
        For C{TestCase.addCleanup}: kill the agent if it still runs and
        wait until it has ended.
        """
        return self.kill()


class _Outcome(Generic[T]):
    """
    A result that comes once and that any number of waiters may await:
    each L{wait} is a new Deferred, so one waiter's callbacks cannot change
    what another gets.
    """

    def __init__(self) -> None:
        self.done = False
        self.result: T | Failure | None = None
        self._waiters: list[defer.Deferred[T]] = []

    def wait(self) -> defer.Deferred[T]:
        if not self.done:
            waiter: defer.Deferred[T] = defer.Deferred()
            self._waiters.append(waiter)
            return waiter
        if isinstance(self.result, Failure):
            return defer.fail(self.result)
        return defer.succeed(self.result)  # type: ignore[arg-type]

    def succeed(self, result: T) -> None:
        self._fire(result)

    def fail(self, reason: BaseException) -> None:
        self._fire(Failure(reason))

    def _fire(self, result: T | Failure) -> None:
        self.done = True
        self.result = result
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)


async def startSerfAgent(
    case: TestCase, name: str, timeout: float = 20, **options: Any
) -> SerfAgent:
    """
    Start a L{SerfAgent} (C{options} as its constructor takes them), make
    C{case} kill it on cleanup, and return it once it is ready.
    """
    agent = SerfAgent(name, **options)
    case.addCleanup(agent.cleanup)
    await agent.start(timeout=timeout)
    return agent


async def startSerfCluster(
    case: TestCase, names: Iterable[str], timeout: float = 20, **options: Any
) -> list[SerfAgent]:
    """
    Start one agent per name, join every later one to the first, and wait
    until the first lists them all as alive.
    """
    agents = [await startSerfAgent(case, name, timeout, **options) for name in names]
    if len(agents) > 1:
        await agents[0].join(*(agent.address for agent in agents[1:]))
        for agent in agents[1:]:
            await agents[0].waitForStatus(agent.name, "alive", timeout)
    return agents


__all__ = [
    "COMMAND_TIMEOUT",
    "HOST",
    "SERF_MISSING",
    "SerfAgent",
    "SerfCommandError",
    "serfAvailable",
    "serfExecutable",
    "serfSkipReason",
    "startSerfAgent",
    "startSerfCluster",
]
