"""
Test doubles for the catalog's seams: they record what they are told.
"""

from __future__ import annotations

from collections.abc import Sequence

from zope.interface import implementer

from sidecar.catalog import ChangeEvent, IBroadcaster, ICatalogObserver, Service


@implementer(ICatalogObserver)
class RecordingObserver:
    """
    Keeps every change event, in order.
    """

    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []

    def serviceChanged(self, event: ChangeEvent) -> None:
        self.events.append(event)


@implementer(IBroadcaster)
class RecordingBroadcaster:
    """
    Keeps every batch of records it is asked to send.
    """

    def __init__(self) -> None:
        self.batches: list[list[Service]] = []

    def broadcast(self, services: Sequence[Service]) -> None:
        self.batches.append(list(services))

    @property
    def records(self) -> list[Service]:
        return [record for batch in self.batches for record in batch]
