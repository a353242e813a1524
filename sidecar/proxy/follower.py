"""
L{ProxyFollower}: keeps the proxy in step with the catalog.  Every change
of the catalog marks the proxy out of date; the proxy is brought up to
date at most once per C{minInterval} seconds, always with the catalog as
it is then, so a burst of changes makes one update and the last change is
never lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from zope.interface import implementer

from sidecar.catalog.interfaces import ICatalog, ICatalogObserver
from sidecar.interfaces import IMembership, IProxyReport, IProxyWriter
from sidecar.problems import (
    CONFLICT,
    HAPROXY,
    KEPT,
    REFUSED,
    Problems,
    conflictSubject,
)

from .haproxy import ProxyError
from .model import OPEN, Admission, ProxyModel, Refusal, buildModel, describeChanges

# After a failed update, the next try waits this long.
RETRY_AFTER = 10.0


@implementer(ICatalogObserver, IProxyReport)
class ProxyFollower(Service):
    """
    @ivar model: the last model applied, or L{None}.
    """

    log = Logger()

    def __init__(
        self,
        state: ICatalog,
        membership: IMembership | None,
        writer: IProxyWriter,
        reactor: Any,
        minInterval: float = 1.0,
        useHostnames: bool = False,
        ready: Deferred[Any] | None = None,
        admission: Admission = OPEN,
        problems: Problems | None = None,
    ) -> None:
        """
        @param membership: the members this node sees, to keep backends
            whose hosts go out of sight; L{None} for none of that.
        @param ready: fires when the catalog is worth applying (a remote
            catalog's first document); until then HAProxy is left alone.
        @param admission: what records may reach HAProxy; its C{now} is
            set from C{reactor} at each update.  The default admits every
            well-formed record; a node's (L{sidecar.proxy.build.admission})
            also knows its host, its own ports and what it can bind.
        @param problems: where a failed update, and the records, conflicts
            and backends an update leaves out or keeps, are shown; each
            clears when an update no longer has it.
        """
        self.model: ProxyModel | None = None
        # What the last model built left out, and why.
        self.refused: tuple[Refusal, ...] = ()
        self.updates = 0
        self._state = state
        self._membership = membership
        self.writer = writer
        self._reactor = reactor
        self._minInterval = minInterval
        self._useHostnames = useHostnames
        self._admission = admission
        self._problems = Problems(reactor) if problems is None else problems
        self._outOfDate = False
        self._timer: IDelayedCall | None = None
        self._updating: Deferred[None] | None = None
        self._lastUpdate: float | None = None
        self._reported: tuple[str, ...] = ()
        self._lastProblem: str | None = None
        self._ready = ready is None
        if ready is not None:
            ready.addCallback(self._becameReady)
        writer.exited = self._proxyExited

    def _proxyExited(self) -> None:
        # Started again after the usual interval, so that a HAProxy that
        # keeps crashing is not restarted in a tight loop.
        self._lastUpdate = self._reactor.seconds()
        self._outOfDate = True
        self._schedule()

    def _becameReady(self, result: object) -> object:
        self._ready = True
        self._schedule()
        return result

    def serviceChanged(self, event: object) -> None:
        self._outOfDate = True
        self._schedule()

    def refresh(self) -> None:
        """
        Apply the catalog again now (within the reload interval), as on
        C{SIGHUP}.
        """
        self.serviceChanged(None)

    def startService(self) -> None:
        super().startService()
        self._state.addObserver(self)
        self._outOfDate = True
        self._schedule()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._state.removeObserver(self)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        updating = self._updating or succeed(None)
        # Then a proxy process we started ends with us.
        return updating.addCallback(lambda _: ensureDeferred(self.writer.stop()))

    @property
    def upToDate(self) -> bool:
        """
        Whether the proxy does what the catalog says: no change waits.
        """
        return (
            self.model is not None
            and not self._outOfDate
            and self._updating is None
            and self._timer is None
        )

    def status(self) -> dict[str, Any]:
        model = self.model or ProxyModel()
        return {
            **self.writer.status(),
            "UpToDate": self.upToDate,
            "Updates": self.updates,
            "Conflicts": [str(c) for c in model.conflicts],
            "KeptBackends": list(model.kept),
            "Refused": [str(r) for r in self.refused],
            "Frontends": [
                {
                    "Name": f.name,
                    "Service": f.service,
                    "ServicePort": f.servicePort,
                    "Mode": f.mode,
                    "Servers": [f"{s.name} {s.address}:{s.port}" for s in f.servers],
                }
                for f in model.frontends
            ],
        }

    def _schedule(self) -> None:
        if not self.running or not self._ready:
            return
        if self._updating is not None or self._timer is not None:
            return  # an update under way or due will see this change
        now = self._reactor.seconds()
        wait = RETRY_AFTER if self._lastProblem is not None else self._minInterval
        due = now if self._lastUpdate is None else self._lastUpdate + wait
        self._timer = self._reactor.callLater(max(0.0, due - now), self._update)

    def _update(self) -> None:
        self._timer = None
        self._outOfDate = False
        self._lastUpdate = self._reactor.seconds()
        self._updating = ensureDeferred(self._apply())
        self._updating.addBoth(self._updated)

    async def _apply(self) -> None:
        liveHosts = (
            None if self._membership is None else set(self._membership.memberNames())
        )
        now = round(self._reactor.seconds() * 1_000_000_000)
        model = buildModel(
            self._state.services(),
            self._useHostnames,
            liveHosts=liveHosts,
            previous=self.model,
            admission=replace(self._admission, now=now, bindable=self._bindable()),
        )
        self.refused = model.refused
        self._report(model)
        try:
            how = await self.writer.apply(model)
        except Exception as e:
            if str(e) != self._lastProblem:
                if isinstance(e, ProxyError):
                    self.log.error("the proxy was not updated: {problem}", problem=e)
                else:
                    self.log.failure("the proxy was not updated")
            self._lastProblem = str(e)
            self._problems.raise_(HAPROXY, self._subject(), str(e))
            # Tried again later: the problem may pass (a slow reload).
            self._outOfDate = True
            return
        self._lastProblem = None
        self._problems.clear(HAPROXY, self._subject())
        previous, self.model = self.model, model
        self.updates += 1
        if how != "unchanged":
            self.log.info(
                "proxy updated by {how}: {changes}",
                how=how,
                changes=describeChanges(previous, model),
                frontends=len(model.frontends),
            )

    def _subject(self) -> str:
        return str(self.writer.status().get("ConfigFile", "proxy"))

    def _bindable(self) -> Callable[[int], str | None]:
        """
        The admission's bind probe, for ServicePorts HAProxy does not serve
        yet: those it serves can be bound (by it), and thousands of them
        are not worth a socket each at every update.
        """
        served = {f.servicePort for f in self.model.frontends} if self.model else set()
        probe = self._admission.bindable
        return lambda port: None if port in served else probe(port)

    def _updated(self, result: object) -> None:
        self._updating = None
        if self._outOfDate:
            self._schedule()

    def _report(self, model: ProxyModel) -> None:
        """
        Log what C{model} leaves out or keeps, each once while it lasts,
        and show it among the node's problems.
        """
        found = {
            CONFLICT: {
                conflictSubject(c.refused, c.servicePort): str(c)
                for c in model.conflicts
            },
            KEPT: {
                name: f"backend {name} keeps its last servers: "
                "their hosts are out of sight"
                for name in model.kept
            },
            REFUSED: {r.what: f"ignoring {r}" for r in model.refused},
        }
        problems = tuple(
            message for messages in found.values() for message in messages.values()
        )
        for problem in problems:
            if problem not in self._reported:
                self.log.warn("{problem}", problem=problem)
        self._reported = problems
        for kind, messages in found.items():
            self._problems.replaceKind(kind, messages)
