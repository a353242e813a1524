"""
Docker discovery: the running containers of a Docker Engine API (Docker's,
or podman's), as services.

docker-py is blocking, so every call to the engine runs in a thread of the
reactor's pool, and its results come back to the reactor.  The engine's
event stream (read in a thread of its own) makes a started or stopped
container a service, or no longer one, within a moment; a full read of the
container list every C{resyncInterval} seconds repairs anything an event
missed.  While the engine cannot be reached, the services last seen stay
announced, the problem is logged once, and the discoverer retries with
backoff.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sidecar.backoff import Backoff
from sidecar.catalog.local import LocalService
from sidecar.health.checkers import CheckArgumentError, CheckFailed
from sidecar.interfaces import (
    IChecker,
    ICheckerFactory,
    IDiscoverer,
    IDiscoveryListener,
)
from sidecar.problems import DOCKER, Problems

from .containers import (
    DEFAULT_NAMING,
    SOURCE,
    ContainerService,
    Naming,
    serviceFromContainer,
)

# Retries after a failure: 1 s, doubling, at most 30 s.
FIRST_RETRY = 1.0
LAST_RETRY = 30.0
# Events that end a container's service, and those that may begin one.
_GONE = frozenset({"die", "stop", "destroy", "remove", "pause"})
_CHANGED = frozenset({"start", "restart", "unpause", "update", "rename"})
# How long a stop waits for the event thread to notice its stream closed.
STOP_GRACE = 5.0
# podman sends a check's bare C{health_status} event before it records the
# result (Docker sends C{health_status: healthy} after): the container is
# read again this long after such an event.
HEALTH_RECORDED = 0.5


def dockerClient(url: str) -> Any:
    """
    A docker-py low-level client for C{url}, or for docker-py's standard
    variables (C{DOCKER_HOST}, C{DOCKER_TLS_VERIFY}, C{DOCKER_CERT_PATH})
    when C{url} is empty.  Blocking: call it in a thread.
    """
    import docker
    from docker.utils import kwargs_from_env

    if url:
        return docker.APIClient(base_url=url, version="auto")
    return docker.APIClient(version="auto", **kwargs_from_env())


@implementer(IDiscoverer)
class DockerDiscoverer(Service):
    """
    Announces the running containers of an engine as services.

    @ivar lastError: the latest problem (the engine unreachable, a
        malformed label), as one line, or L{None}.
    """

    name = SOURCE
    log = Logger()

    def __init__(
        self,
        connect: Callable[[], Any],
        hostname: str,
        advertiseIP: str,
        listener: IDiscoveryListener,
        reactor: Any,
        naming: Naming = DEFAULT_NAMING,
        resyncInterval: float = 5.0,
        where: str = "the Docker engine",
        problems: Problems | None = None,
    ) -> None:
        """
        @param connect: makes a docker-py C{APIClient}; called in a thread.
        @param where: how to name the engine in the log.
        @param problems: where an engine that cannot be read is shown,
            until it answers again.
        """
        self._problems = Problems(reactor) if problems is None else problems
        self.lastError: str | None = None
        self._connect = connect
        self._hostname = hostname
        self._advertiseIP = advertiseIP
        self._listener = listener
        self._reactor = reactor
        self._naming = naming
        self._resyncInterval = resyncInterval
        self._where = where
        self._found: dict[str, ContainerService] = {}
        self._health: dict[str, str] = {}
        # The problems logged for each container, to log each one once.
        self._reported: dict[str, tuple[str, ...]] = {}
        # Each event's change is numbered; a list read that started before
        # a container's latest change must not undo that change.
        self._changes = 0
        self._changedAt: dict[str, int] = {}
        # The number of each container's latest event, so that a read for
        # an older event cannot undo a newer one.
        self._latestEvent: dict[str, int] = {}
        self._client: Any = None
        self._stream: Any = None
        self._unreachable = False
        self._resyncTimer: IDelayedCall | None = None
        self._eventsTimer: IDelayedCall | None = None
        self._resyncRetry = Backoff(FIRST_RETRY, LAST_RETRY)
        self._eventsRetry = Backoff(FIRST_RETRY, LAST_RETRY)
        self._eventsDone: Deferred[None] = succeed(None)
        self._pending: set[Deferred[Any]] = set()
        self._reading = False
        self._readAgain = False
        self._readWaiters: list[Deferred[None]] = []
        # The second read of a container after podman's health event.
        self._healthReads: dict[str, IDelayedCall] = {}

    # -- IDiscoverer ----------------------------------------------------------

    def services(self) -> Sequence[LocalService]:
        return [
            found.local
            for _, found in sorted(self._found.items())
            if found.local is not None
        ]

    def reload(self) -> Deferred[None]:
        """
        Read the whole container list now.

        @return: a Deferred that fires when what was read is announced.
        """
        return self._resync()

    def containerHealth(self, containerID: str) -> str | None:
        """
        What the engine last said of a container's own C{HEALTHCHECK}
        (C{healthy}, C{unhealthy}, C{starting}), or L{None}.
        """
        return self._health.get(containerID[:12])

    # -- the service ----------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._subscribe()
        self._resync()

    def stopService(self) -> Deferred[object]:
        super().stopService()
        timers = [self._resyncTimer, self._eventsTimer, *self._healthReads.values()]
        for timer in timers:
            if timer is not None and timer.active():
                timer.cancel()
        self._resyncTimer = self._eventsTimer = None
        self._healthReads.clear()
        stream, self._stream = self._stream, None
        if stream is not None:
            # Closing the stream's socket ends the event thread's read.
            self._inThread(stream.close).addErrback(lambda _: None)
        waits = [self._eventsDone, *self._pending]
        done: Deferred[object] = DeferredList(waits, consumeErrors=True)  # type: ignore[assignment]
        done.addTimeout(STOP_GRACE, self._reactor, onTimeoutCancel=_abandoned)
        return done

    # -- reading the engine ---------------------------------------------------

    def _inThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> Deferred[Any]:
        d = deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), f, *args, **kw
        )
        self._pending.add(d)

        def done(result: object) -> object:
            self._pending.discard(d)
            return result

        return d.addBoth(done)

    def _clientNow(self) -> Any:
        # In a thread: the client is made on first use, and made anew
        # after a failure (the engine may have moved or restarted).
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _resync(self) -> Deferred[None]:
        # One read of the list at a time; asked for during a read, another
        # follows it (what changed meanwhile may be missing from the first).
        if self._resyncTimer is not None and self._resyncTimer.active():
            self._resyncTimer.cancel()
        self._resyncTimer = None
        waiter: Deferred[None] = Deferred()
        self._readWaiters.append(waiter)
        if self._reading:
            self._readAgain = True
        else:
            self._read()
        return waiter

    def _read(self) -> None:
        self._reading, self._readAgain = True, False
        d = self._inThread(self._listAll)
        d.addCallbacks(self._listed, self._engineFailed, callbackArgs=(self._changes,))
        d.addErrback(self._bug, "reading the container list")
        d.addBoth(self._readDone)

    def _readDone(self, result: None) -> None:
        self._reading = False
        if self._readAgain and self.running:
            self._read()
            return
        waiters, self._readWaiters = self._readWaiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _listAll(self) -> tuple[list[Any], dict[str, str]]:
        client = self._clientNow()
        entries = client.containers(all=False)
        return entries, self._inspectHealth(client, entries)

    def _listOne(self, containerID: str) -> tuple[list[Any], dict[str, str]]:
        client = self._clientNow()
        entries = client.containers(all=False, filters={"id": containerID})
        return entries, self._inspectHealth(client, entries)

    def _inspectHealth(self, client: Any, entries: list[Any]) -> dict[str, str]:
        from docker.errors import NotFound

        # Only containers whose check is the engine's own need inspecting.
        health = {}
        for entry in entries:
            labels = entry.get("Labels") or {}
            if labels.get("HealthCheck") == "Docker":
                try:
                    inspected = client.inspect_container(entry["Id"])
                except NotFound:
                    continue  # gone between the list and now
                state = inspected.get("State") or {}
                status = (state.get("Health") or {}).get("Status")
                if isinstance(status, str):
                    health[entry["Id"][:12]] = status
        return health

    def _listed(self, result: tuple[list[Any], dict[str, str]], started: int) -> None:
        entries, health = result
        self._reachable()
        found = self._parse(entries)
        for containerID, changedAt in self._changedAt.items():
            if changedAt > started:  # an event since the read began wins
                found.pop(containerID, None)
                health.pop(containerID, None)
                if containerID in self._found:
                    found[containerID] = self._found[containerID]
                if containerID in self._health:
                    health[containerID] = self._health[containerID]
        self._changedAt = {}
        self._health = health
        self._replace(found)
        self._resyncRetry.succeeded()
        self._resyncIn(self._resyncInterval)

    def _engineFailed(self, failure: Failure) -> None:
        self._client = None
        problem = (
            f"cannot read containers from {self._where}: {failure.getErrorMessage()}"
        )
        if not self._unreachable:
            self.log.error(
                "{problem}; keeping the {count} service(s) last seen",
                problem=problem,
                count=len(self.services()),
            )
        self._unreachable = True
        self.lastError = problem
        self._problems.raise_(DOCKER, self._where, problem)
        self._resyncIn(self._resyncRetry.failed())

    def _resyncIn(self, delay: float) -> None:
        # A read may be asked for while a timer waits: one timer remains.
        if self._resyncTimer is not None and self._resyncTimer.active():
            self._resyncTimer.cancel()
        self._resyncTimer = None
        if self.running:
            self._resyncTimer = self._reactor.callLater(delay, self._resync)

    def _reachable(self) -> None:
        if self._unreachable:
            self.log.info("{where} answers again", where=self._where)
            self.lastError = None
            self._problems.clear(DOCKER, self._where)
        self._unreachable = False

    def _parse(self, entries: list[Any]) -> dict[str, ContainerService]:
        found = {}
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            try:
                parsed = serviceFromContainer(
                    entry, self._hostname, self._advertiseIP, self._naming
                )
            except ValueError as e:
                self._problem(f"{self._where} listed {e}")
                continue
            containerID = entry["Id"][:12]
            for problem in parsed.problems:
                if problem not in self._reported.get(containerID, ()):
                    self._problem(problem)
            self._reported[containerID] = parsed.problems
            found[containerID] = parsed
        return found

    def _problem(self, problem: str) -> None:
        self.lastError = problem
        self.log.warn("{problem}", problem=problem)

    # -- applying what was read -----------------------------------------------

    def _replace(self, found: dict[str, ContainerService]) -> None:
        before = self.services()
        self._found = found
        self._forgetProblemsOfGone()
        self._reportIfChanged(before)

    def _update(self, containerID: str, found: dict[str, ContainerService]) -> None:
        before = self.services()
        self._found.pop(containerID, None)
        self._found.update(found)
        self._reportIfChanged(before)

    def _remove(self, containerID: str) -> None:
        before = self.services()
        self._found.pop(containerID, None)
        self._health.pop(containerID, None)
        self._forgetProblemsOfGone()
        self._reportIfChanged(before)

    def _forgetProblemsOfGone(self) -> None:
        for containerID in set(self._reported) - set(self._found):
            del self._reported[containerID]

    def _reportIfChanged(self, before: Sequence[LocalService]) -> None:
        now = self.services()
        if now != before:
            self._listener.servicesDiscovered(self.name, now)

    # -- events ---------------------------------------------------------------

    def _subscribe(self) -> None:
        self._eventsTimer = None
        self._eventsDone = self._inThread(self._readEvents)
        self._eventsDone.addCallbacks(self._eventsEnded, self._eventsFailed)
        self._eventsDone.addErrback(self._bug, "reading events")

    def _readEvents(self) -> None:
        # In a thread of its own, for as long as the stream lasts.
        stream = self._connect().events(decode=True, filters={"type": "container"})
        self._reactor.callFromThread(self._subscribed, stream)
        for event in stream:
            self._reactor.callFromThread(self._event, event)

    def _subscribed(self, stream: Any) -> None:
        if not self.running:
            self._inThread(stream.close).addErrback(lambda _: None)
            return
        self._stream = stream
        self._eventsRetry.succeeded()
        self.log.info("following the container events of {where}", where=self._where)
        # Whatever happened while there was no stream is read now.
        self._resync()

    def _eventsEnded(self, result: None) -> None:
        self._again(f"the event stream of {self._where} ended")

    def _eventsFailed(self, failure: Failure) -> None:
        self._again(
            f"cannot read events from {self._where}: {failure.getErrorMessage()}"
        )

    def _again(self, problem: str) -> None:
        self._stream = None
        if not self.running:
            return
        self.log.info("{problem}; subscribing again", problem=problem)
        self._eventsTimer = self._reactor.callLater(
            self._eventsRetry.failed(), self._subscribe
        )
        # Without events, a read now tells whether the engine is there
        # (unless one is under way, or reads fail and retry on their own).
        if not self._unreachable and not self._reading:
            self._resync()

    def _event(self, event: Any) -> None:
        if not self.running or not isinstance(event, Mapping):
            return
        action = event.get("Action") or event.get("status") or ""
        actor = event.get("Actor") or {}
        fullID = event.get("id") or actor.get("ID") or ""
        if (
            not isinstance(action, str)
            or not isinstance(fullID, str)
            or len(fullID) < 12
        ):
            return
        containerID = fullID[:12]
        self._changes += 1
        self._changedAt[containerID] = self._changes
        if len(self._latestEvent) > 100_000:
            self._latestEvent.clear()  # bounded; resyncs repair the rest
        self._latestEvent[containerID] = self._changes
        if action in _GONE:
            self._remove(containerID)
        elif action in _CHANGED or action.startswith("health_status"):
            self._readOne(fullID, self._changes)
            if action == "health_status":
                self._readAgainLater(fullID)

    def _readOne(self, fullID: str, event: int) -> None:
        d = self._inThread(self._listOne, fullID)
        d.addCallback(self._listedOne, fullID[:12], event)
        d.addErrback(self._engineFailed)
        d.addErrback(self._bug, "reading a container")

    def _readAgainLater(self, fullID: str) -> None:
        containerID = fullID[:12]
        earlier = self._healthReads.pop(containerID, None)
        if earlier is not None and earlier.active():
            earlier.cancel()
        self._healthReads[containerID] = self._reactor.callLater(
            HEALTH_RECORDED, self._readRecorded, fullID
        )

    def _readRecorded(self, fullID: str) -> None:
        containerID = fullID[:12]
        del self._healthReads[containerID]
        self._readOne(fullID, self._latestEvent.get(containerID, 0))

    def _listedOne(
        self, result: tuple[list[Any], dict[str, str]], containerID: str, event: int
    ) -> None:
        entries, health = result
        self._reachable()
        if self._latestEvent.get(containerID, 0) > event:
            return  # a later event of this container has been handled
        self._health.pop(containerID, None)
        self._health.update(health)
        self._update(containerID, self._parse(entries))

    def _bug(self, failure: Failure, doing: str) -> None:
        self.log.failure("docker discovery: {doing}", failure, doing=doing)


@implementer(IChecker)
class ContainerHealthChecker:
    """
    The check of a container labelled C{HealthCheck=Docker}: what the
    engine says of the container's own C{HEALTHCHECK}.
    """

    def __init__(self, discoverer: DockerDiscoverer, containerID: str) -> None:
        self._discoverer = discoverer
        self.containerID = containerID

    def check(self) -> Deferred[str]:
        status = self._discoverer.containerHealth(self.containerID)
        if status == "healthy":
            return succeed("the container's HEALTHCHECK says healthy")
        if status is None:
            why = "the engine gives no HEALTHCHECK status for this container"
        else:
            why = f"the container's HEALTHCHECK says {status}"
        return fail(CheckFailed(why))


@implementer(ICheckerFactory)
class ContainerHealthCheckers:
    """
    The C{Docker} kind of check, for the containers of one discoverer.
    """

    name = "Docker"

    def __init__(self, discoverer: DockerDiscoverer) -> None:
        self._discoverer = discoverer

    def checkerFor(self, args: str, reactor: Any) -> IChecker:
        containerID = args.strip()
        if len(containerID) < 12:
            raise CheckArgumentError(
                f"a Docker check needs a container ID, got {args!r}"
            )
        return ContainerHealthChecker(self._discoverer, containerID)


def _abandoned(result: object, timeout: float) -> None:
    # A thread that outlives the stop is left to end on its own.
    return None
