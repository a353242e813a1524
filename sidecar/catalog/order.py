"""
The order of records: which of two records for one instance supersedes
the other, and the Go Sidecar's grouping of records by service name,
oldest first.
"""

from __future__ import annotations

from collections.abc import Iterable

from .codec import encodeService
from .service import Service


def recordOrder(service: Service) -> tuple[int, int, bytes]:
    """
    The total order in which records for one (hostname, ID) supersede each
    other: C{Updated} first; a tie goes to the higher status, then to the
    larger encoding, so every node picks the same winner.
    """
    return (service.updated, int(service.status), encodeService(service))


def _stamps(service: Service) -> tuple[int, int]:
    return (service.updated, int(service.status))


def groupByName(services: Iterable[Service]) -> dict[str, list[Service]]:
    """
    C{services} grouped by name, names sorted, each group in
    L{recordOrder} (the Go Sidecar's C{ByService}, oldest first).  Records
    are encoded for the tie-break only where their stamps tie: encoding
    every record would cost more than the rest of a document.
    """
    groups: dict[str, list[Service]] = {}
    for service in services:
        groups.setdefault(service.name, []).append(service)
    for group in groups.values():
        group.sort(key=_stamps)
        start = 0
        while start < len(group):
            end = start + 1
            while end < len(group) and _stamps(group[end]) == _stamps(group[start]):
                end += 1
            if end - start > 1:
                group[start:end] = sorted(group[start:end], key=recordOrder)
            start = end
    return dict(sorted(groups.items()))
