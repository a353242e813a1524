"""
L{LocalAnnouncer}: turns what the discoverers find on this host into this
node's own records in the catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from twisted.application.service import Service as TwistedService
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from sidecar.catalog import Service, ServicesState, Status
from sidecar.catalog.local import LocalService
from sidecar.discovery.reports import Reports
from sidecar.interfaces import IDiscoveryListener, IDrainControl

# Go Sidecars (and our nodes of old) forget a record they have not heard
# of for 80 s; refreshing well inside that window survives two lost rounds.
REFRESH_INTERVAL = 25.0
# Without such peers, records live as long as their node is a member, and
# are refreshed only this often: peers measure this node's clock from the
# records it gossips, and a fresh sample an hour keeps that going.
QUIET_REFRESH_INTERVAL = 3600.0


def _always() -> bool:
    return True


@implementer(IDiscoveryListener, IDrainControl)
class LocalAnnouncer(TwistedService):
    """
    Keeps the catalog's local records equal to the union of what every
    discoverer reports: new and changed services are announced at once,
    vanished ones are withdrawn (tombstoned), and all are refreshed every
    C{refreshInterval} seconds while C{expected} says some peer would
    otherwise expire them, else every C{quietInterval} seconds.

    When two discoverers report the same service ID, the one that reported
    it first keeps it.
    """

    log = Logger()

    def __init__(
        self,
        state: ServicesState,
        clock: IReactorTime,
        refreshInterval: float = REFRESH_INTERVAL,
        expected: Callable[[], bool] = _always,
        quietInterval: float = QUIET_REFRESH_INTERVAL,
    ) -> None:
        """
        @param expected: whether some peer now expires records it has not
            heard of for 80 s (by default, always: every peer does).
        """
        self._state = state
        self._clock = clock
        self._expected = expected
        self._quietInterval = quietInterval
        self._lastRefresh = clock.seconds()
        self._reports = Reports()
        self._drained: set[str] = set()
        self._refresh = LoopingCall(self._refreshAll)
        self._refresh.clock = clock
        self._refreshInterval = refreshInterval

    def servicesDiscovered(self, source: str, services: Sequence[LocalService]) -> None:
        self._reports.replace(source, services)
        self._reconcile()

    def serviceChanged(self, source: str, service: LocalService) -> None:
        if self._reports.change(source, service):
            if self._reports.supplier(service.service.id) is service:
                self._announceIfChanged(service.service)

    def wanted(self) -> dict[str, LocalService]:
        """
        The services discovery currently reports, by ID.
        """
        return self._reports.wanted()

    # -- IDrainControl ------------------------------------------------------

    def drain(self, serviceID: str) -> Service:
        """
        Publish a local service as DRAINING (out of every proxy, still
        running) until L{undrain}; its health checks no longer change its
        status meanwhile.

        @raise KeyError: when no local service has that ID.
        """
        local = self.wanted()[serviceID]
        self._drained.add(serviceID)
        self._announceIfChanged(local.service)
        return self._published(local.service)

    def undrain(self, serviceID: str) -> Service:
        """
        Publish a drained local service with its health-checked status
        again.

        @raise KeyError: when no local service has that ID.
        """
        local = self.wanted()[serviceID]
        self._drained.discard(serviceID)
        self._announceIfChanged(local.service)
        return local.service

    def startService(self) -> None:
        super().startService()
        self._lastRefresh = self._clock.seconds()
        self._refresh.start(self._refreshInterval, now=False)

    def stopService(self) -> None:
        if self._refresh.running:
            self._refresh.stop()
        super().stopService()

    def _reconcile(self) -> None:
        wanted = self.wanted()
        self._drained &= wanted.keys()
        for local in wanted.values():
            self._announceIfChanged(local.service)
        for record in self._state.localServices():
            if record.id not in wanted:
                self._state.withdrawLocal(record.id)
                self.log.info(
                    "service {name} {id} is gone", name=record.name, id=record.id
                )

    def _published(self, service: Service) -> Service:
        if service.id in self._drained:
            return service.withStatus(Status.DRAINING, service.updated)
        return service

    def _announceIfChanged(self, service: Service) -> None:
        service = self._published(service)
        current = self._state.get(self._state.hostname, service.id)
        if current is not None and current.sameContentAs(service):
            return
        record = self._state.announceLocal(service)
        self.log.info(
            "announcing service {name} {id} as {status}",
            name=record.name,
            id=record.id,
            status=record.status.label,
        )

    def _refreshAll(self) -> None:
        now = self._clock.seconds()
        if not self._expected() and now - self._lastRefresh < self._quietInterval:
            return
        self._lastRefresh = now
        for local in self.wanted().values():
            self._state.announceLocal(self._published(local.service))
