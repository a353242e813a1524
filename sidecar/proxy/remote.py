"""
L{RemoteCatalog}: another node's catalog as its C{/api/watch} stream
delivers it, for a HAProxy that follows a Sidecar from outside (the
C{sidecar-haproxy} plugin).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from sidecar.catalog import Service, Status
from sidecar.catalog.codec import DecodeError, decodeStateServices, dumps
from sidecar.catalog.interfaces import ICatalog, ICatalogObserver
from sidecar.catalog.state import ChangeEvent


@implementer(ICatalog)
class RemoteCatalog:
    """
    The records of the last state document received.  A document that is
    not a valid state is logged and ignored: what was last received
    stands.
    """

    log = Logger()

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._records: dict[tuple[str, str], Service] = {}
        self._observers: list[ICatalogObserver] = []
        self.documents = 0
        self.lastError: str | None = None

    def services(self) -> Iterator[Service]:
        return iter(list(self._records.values()))

    def addObserver(self, observer: ICatalogObserver) -> None:
        self._observers.append(observer)

    def removeObserver(self, observer: ICatalogObserver) -> None:
        self._observers.remove(observer)

    def received(self, document: Any) -> None:
        """
        A state document (C{/api/watch?by_service=false}) arrived.
        """
        try:
            records = decodeStateServices(dumps(document))
        except DecodeError as e:
            self.lastError = f"not a Sidecar state: {e}"
            self.log.warn("ignoring a document: {problem}", problem=self.lastError)
            return
        self.lastError = None
        self.documents += 1
        now = round(self._clock.seconds() * 1_000_000_000)
        before = self._records
        self._records = {(r.hostname, r.id): r for r in records}
        for key, record in self._records.items():
            old = before.get(key)
            if old is None or not old.sameContentAs(record):
                previous = Status.UNKNOWN if old is None else old.status
                self._tell(ChangeEvent(record, previous, now))
        for key in before.keys() - self._records.keys():
            gone = before[key].tombstone(now)
            self._tell(ChangeEvent(gone, before[key].status, now))

    def _tell(self, event: ChangeEvent) -> None:
        for observer in list(self._observers):
            try:
                observer.serviceChanged(event)
            except Exception:
                self.log.failure("a catalog observer failed")
