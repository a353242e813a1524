"""
L{Reports}: what each discoverer last reported, kept by a listener that
must combine several discoverers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from twisted.logger import Logger

from sidecar.catalog.local import LocalService


class Reports:
    """
    The services each source (discoverer) reported, in the order the
    sources first reported.  When two sources report one service ID, the
    first source's report is the one used: the Go Sidecar's rule.
    """

    log = Logger()

    def __init__(self) -> None:
        self._bySource: dict[str, dict[str, LocalService]] = {}

    def replace(self, source: str, services: Sequence[LocalService]) -> None:
        """
        C{source}'s whole set, replacing what it reported before.
        """
        self._bySource[source] = {local.service.id: local for local in services}

    def change(self, source: str, service: LocalService) -> bool:
        """
        One service of C{source}'s set changed.

        @return: whether C{source} had reported it; a change to a service
            it never reported is logged and ignored.
        """
        found = self._bySource.get(source, {})
        serviceID = service.service.id
        if serviceID not in found:
            self.log.warn(
                "{source} changed service {id}, which it never reported",
                source=source,
                id=serviceID,
            )
            return False
        found[serviceID] = service
        return True

    def wanted(self) -> dict[str, LocalService]:
        """
        Every service some source reports, by ID.
        """
        merged: dict[str, LocalService] = {}
        for found in self._bySource.values():
            for serviceID, local in found.items():
                merged.setdefault(serviceID, local)
        return merged

    def supplier(self, serviceID: str) -> LocalService | None:
        """
        The report of C{serviceID} that counts, or L{None}.
        """
        for found in self._bySource.values():
            if serviceID in found:
                return found[serviceID]
        return None

    def reportsOf(self, serviceID: str) -> Iterator[tuple[str, LocalService]]:
        """
        Each source that reports C{serviceID}, with its report.
        """
        for source, found in self._bySource.items():
            if serviceID in found:
                yield source, found[serviceID]
