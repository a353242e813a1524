"""
L{HealthMonitor}: runs each local service's check on its interval and sets
the service's status before the announcer publishes it.  It sits between
the discoverers and the announcer: both sides speak
L{IDiscoveryListener}, so a status change goes out (and is gossiped) the
moment it happens.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredSemaphore, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sidecar.catalog import Status
from sidecar.catalog.local import CheckSpec, LocalService
from sidecar.catalog.timestamps import NANOSECONDS, formatTimestamp
from sidecar.discovery.reports import Reports
from sidecar.interfaces import (
    IChecker,
    ICheckObserver,
    IDiscoveryListener,
    IHealthReport,
)

from .checkers import CheckArgumentError, CheckerRegistry, CheckFailed
from .commands import CommandPolicy, CommandRefused
from .status import DAMPING, Damping, HealthMachine
from .templating import isTemplate, renderArgs

# A check's next run lands within this fraction of its interval either
# way, so that checks started together drift apart.
JITTER = 0.1
# The second check of a service lands anywhere within this fraction of its
# interval either way: services found together (a node starting with
# thousands) are checked at once the first time, and spread out after.
SPREAD = 0.5


@dataclass(frozen=True)
class HealthSettings:
    """
    How checks run.  The defaults are the Go Sidecar's: every 3 s, one
    failure makes a service UNHEALTHY, and a service without a check gets
    an HTTP GET of C{/version} on its first TCP port.

    @ivar timeout: how long one check may take; at most C{interval}.
    @ivar concurrency: the most checks running at once on this node.
    """

    interval: float = 3.0
    timeout: float = 3.0
    fall: int = 1
    concurrency: int = 100
    defaultEndpoint: str = "/version"
    damping: Damping = DAMPING


HEALTH_DEFAULTS = HealthSettings()


@dataclass
class _Watch:
    """
    One service's check, its machine and what it last said.
    """

    name: str
    spec: CheckSpec
    identity: object
    interval: float
    timeout: float
    checker: IChecker | None
    machine: HealthMachine
    rendered: str | None = None
    lastResult: str = ""
    lastError: str = ""
    lastStarted: float | None = None
    lastChecked: float | None = None
    lastDuration: float | None = None
    timer: IDelayedCall | None = None
    running: Deferred[object] | None = None
    runs: int = 0


@implementer(IDiscoveryListener, IHealthReport)
class HealthMonitor(Service):
    """
    Checks what the discoverers report and passes it on to C{downstream}
    with each service's health as its status.

    @param clock: times the checks; it is also the reactor that checkers
        are built on (they connect and spawn processes on it), so in
        production it is the reactor itself, and in tests a L{Clock} with
        checkers that need nothing more.
    """

    log = Logger()

    def __init__(
        self,
        downstream: IDiscoveryListener,
        clock: IReactorTime,
        registry: CheckerRegistry,
        advertiseHost: str,
        settings: HealthSettings = HEALTH_DEFAULTS,
        rng: random.Random | None = None,
        commands: CommandPolicy | None = None,
    ) -> None:
        """
        @param commands: which commands checks may run, by the discoverer
            they come from; by default none from container labels.
        """
        self._downstream = downstream
        self._commands = commands or CommandPolicy()
        self._clock = clock
        self._registry = registry
        self._advertiseHost = advertiseHost
        self._settings = settings
        self._rng = rng or random.Random()
        self._semaphore = DeferredSemaphore(settings.concurrency)
        self._reports = Reports()
        self._watches: dict[str, _Watch] = {}
        self._observers: list[ICheckObserver] = []

    # -- IDiscoveryListener -------------------------------------------------

    def servicesDiscovered(self, source: str, services: Sequence[LocalService]) -> None:
        self._reports.replace(source, services)
        wanted = self._reports.wanted()
        for serviceID in list(self._watches):
            if serviceID not in wanted:
                self._unwatch(serviceID)
        for local in wanted.values():
            self._rewatchIfChanged(local)
        self._downstream.servicesDiscovered(
            source, [self._withHealth(local) for local in services]
        )

    def serviceChanged(self, source: str, service: LocalService) -> None:
        if not self._reports.change(source, service):
            return
        if self._reports.supplier(service.service.id) is service:
            self._rewatchIfChanged(service)
        self._downstream.serviceChanged(source, self._withHealth(service))

    def addObserver(self, observer: ICheckObserver) -> None:
        """
        Tell C{observer} of every check that ends from now on.
        """
        self._observers.append(observer)

    # -- reading ------------------------------------------------------------

    def effectiveCheck(self, local: LocalService) -> CheckSpec:
        """
        The check a service gets: its own, or the Go Sidecar's default.
        """
        if local.check.type:
            return local.check
        for port in local.service.ports:
            if port.type == "tcp":
                host = port.ip or self._advertiseHost
                url = f"http://{host}:{port.port}{self._settings.defaultEndpoint}"
                return replace(local.check, type="HttpGet", args=url)
        return replace(local.check, type="AlwaysSuccessful", args="")

    def status(self, serviceID: str) -> Status | None:
        watch = self._watches.get(serviceID)
        return None if watch is None else watch.machine.status

    def report(self) -> dict[str, dict[str, Any]]:
        """
        Each checked service's check and what it last said, by service ID.
        """
        return {
            serviceID: {
                "Name": watch.name,
                "Check": _checkDocument(watch),
                "Interval": watch.interval,
                "Timeout": watch.timeout,
                "Status": watch.machine.status.label,
                "Suppressed": watch.machine.suppressed,
                "LastResult": watch.lastResult,
                "LastError": watch.lastError,
                "LastChecked": None
                if watch.lastChecked is None
                else formatTimestamp(int(watch.lastChecked * NANOSECONDS)),
                "LastDuration": None
                if watch.lastDuration is None
                else round(watch.lastDuration, 6),
            }
            for serviceID, watch in sorted(self._watches.items())
        }

    # -- the service --------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        for serviceID in self._watches:
            self._schedule(serviceID, first=True)

    def stopService(self) -> None:
        super().stopService()
        for watch in self._watches.values():
            self._quiet(watch)

    # -- internals ----------------------------------------------------------

    def _withHealth(self, local: LocalService) -> LocalService:
        status = self.status(local.service.id)
        if status is None:
            status = Status.UNKNOWN
        service = local.service.withStatus(status, local.service.updated)
        return replace(local, service=service)

    def _rewatchIfChanged(self, local: LocalService) -> None:
        serviceID = local.service.id
        spec = self.effectiveCheck(local)
        watch = self._watches.get(serviceID)
        if watch is None or watch.identity != _identity(local, spec):
            if watch is not None:
                self._unwatch(serviceID)
            self._watch(serviceID, local, spec)

    def _watch(self, serviceID: str, local: LocalService, spec: CheckSpec) -> None:
        interval = spec.interval or self._settings.interval
        watch = _Watch(
            name=local.service.name,
            spec=spec,
            identity=_identity(local, spec),
            interval=interval,
            timeout=min(spec.timeout or self._settings.timeout, interval),
            checker=None,
            machine=HealthMachine(self._settings.fall, self._settings.damping),
        )
        self._watches[serviceID] = watch
        try:
            args = renderArgs(spec.args, local.service, self._advertiseHost)
            if args != spec.args:
                watch.rendered = args
            self._commands.check(self._sourceOf(serviceID), spec.type, args)
            watch.checker = self._registry.checkerFor(spec.type, args, self._clock)
        except Exception as e:
            # A check that cannot run can never pass: the service is
            # unhealthy, and the API says why.  A plugin may raise anything.
            if isinstance(e, CommandRefused):
                watch.lastError = f"refused: {e}"
            elif isinstance(e, CheckArgumentError):
                watch.lastError = f"bad check: {e}"
            else:
                watch.lastError = f"bad check: {spec.type} failed: {e!r}"
            watch.machine.record(False, self._clock.seconds())
            self.log.warn(
                "service {name} {id}: {problem}",
                name=local.service.name,
                id=serviceID,
                problem=watch.lastError,
            )
            return
        if self.running:
            self._schedule(serviceID, first=True)

    def _sourceOf(self, serviceID: str) -> str:
        # The first source to report a service is the one whose report counts.
        return next((source for source, _ in self._reports.reportsOf(serviceID)), "")

    def _unwatch(self, serviceID: str) -> None:
        watch = self._watches.pop(serviceID)
        self._quiet(watch)

    def _quiet(self, watch: _Watch) -> None:
        if watch.timer is not None and watch.timer.active():
            watch.timer.cancel()
        watch.timer = None
        if watch.running is not None:
            watch.running.cancel()

    def _schedule(self, serviceID: str, first: bool = False) -> None:
        watch = self._watches.get(serviceID)
        if watch is None or watch.checker is None or not self.running:
            return
        watch.timer = self._clock.callLater(
            self._delay(watch, first), self._run, serviceID
        )

    def _delay(self, watch: _Watch, first: bool) -> float:
        """
        How long until C{watch}'s next check.  The first runs at once: a
        new service is ALIVE (and gossiped so) as soon as its check passes,
        not up to an interval later.  The second is spread over an interval
        (L{SPREAD}), so that services found together drift apart; the
        others come an interval apart, with L{JITTER}.
        """
        if first:
            return 0.0
        spread = SPREAD if watch.runs == 1 else JITTER
        return watch.interval * self._rng.uniform(1 - spread, 1 + spread)

    def _run(self, serviceID: str) -> None:
        watch = self._watches[serviceID]
        watch.timer = None
        watch.runs += 1
        # The semaphore bounds how many checks run at once; a check's
        # timeout starts when it runs, not while it waits its turn.
        d = self._semaphore.run(self._checkOnce, watch)
        watch.running = d
        d.addBoth(self._finished, serviceID, watch)

    def _checkOnce(self, watch: _Watch) -> Deferred[object]:
        assert watch.checker is not None
        started = watch.lastStarted = self._clock.seconds()
        d = maybeDeferred(watch.checker.check)
        d.addTimeout(watch.timeout, self._clock, onTimeoutCancel=_timedOut)

        def measured(result: object) -> object:
            watch.lastDuration = self._clock.seconds() - started
            return result

        return d.addBoth(measured)

    def _finished(self, result: object, serviceID: str, watch: _Watch) -> None:
        if self._watches.get(serviceID) is not watch or not self.running:
            return  # unwatched or stopped meanwhile: the result is moot
        watch.running = None
        try:
            self._judged(serviceID, watch, result)
            for observer in self._observers:
                observer.checkEnded(
                    serviceID,
                    watch.lastStarted,
                    watch.lastDuration,
                    not isinstance(result, Failure),
                )
        except Exception:
            # A bug downstream or in an observer must not stop the checks.
            self.log.failure("after the check of service {id}", id=serviceID)
        self._schedule(serviceID)

    def _judged(self, serviceID: str, watch: _Watch, result: object) -> None:
        healthy = not isinstance(result, Failure)
        if isinstance(result, Failure):
            if result.check(CheckFailed):
                error = result.getErrorMessage()
            else:
                error = f"check failed: {result.getErrorMessage()}"
            watch.lastError, watch.lastResult = error, ""
        else:
            watch.lastResult, watch.lastError = str(result), ""
        watch.lastChecked = self._clock.seconds()
        before = watch.machine.status
        if watch.machine.record(healthy, watch.lastChecked):
            self.log.info(
                "service {name} {id} is {status} (was {before}){why}",
                name=watch.name,
                id=serviceID,
                status=watch.machine.status.label,
                before=before.label,
                why=f": {watch.lastError}" if watch.lastError else "",
            )
            # Only this service is re-announced: thousands of services
            # must not each cost a pass over all the others.
            for source, local in self._reports.reportsOf(serviceID):
                self._downstream.serviceChanged(source, self._withHealth(local))


def _identity(local: LocalService, spec: CheckSpec) -> object:
    # What a check is built from: its spec, and for a template the service
    # it is rendered with (its ports, say), but never its status or stamp.
    if not isTemplate(spec.args):
        return spec
    service = local.service.withStatus(Status.UNKNOWN, 0)
    return (spec, service)


def _checkDocument(watch: _Watch) -> dict[str, str]:
    document = {"Type": watch.spec.type, "Args": watch.spec.args}
    if watch.rendered is not None:
        document["Rendered"] = watch.rendered
    return document


def _timedOut(result: object, timeout: float) -> Failure:
    return Failure(CheckFailed(f"timed out after {timeout:g} s"))
