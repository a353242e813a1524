"""
The catalog's two outward seams: who is told of changes, and who carries
records to peers.  They live here, not in L{sidecar.interfaces}, because the
catalog imports nothing else of ours.
"""

from __future__ import annotations

from zope.interface import Interface


class ICatalogObserver(Interface):
    """
    Told of every effective change to the catalog: a new instance, or a
    change to anything but its C{updated} stamp.  HAProxy, listeners and the
    API's watchers learn of changes this way.
    """

    def serviceChanged(event):  # type: ignore[no-untyped-def]
        """
        @param event: the L{sidecar.catalog.state.ChangeEvent}.

        Called synchronously from the catalog: do little, and never raise
        (an exception is logged and the other observers are still told).
        """


class IBroadcaster(Interface):
    """
    Carries service records to the other nodes (the gossip layer).
    """

    def broadcast(services):  # type: ignore[no-untyped-def]
        """
        Send these records to peers.

        @param services: a sequence of L{sidecar.catalog.service.Service}.
        """


class ICatalog(Interface):
    """
    A catalog to read and follow: a node's own L{ServicesState}, or a
    remote node's as it is received (see L{sidecar.proxy.remote}).
    """

    def services():  # type: ignore[no-untyped-def]
        """
        @return: every record, tombstones included, as an iterable of
            L{sidecar.catalog.service.Service}.
        """

    def addObserver(observer):  # type: ignore[no-untyped-def]
        """
        Tell C{observer} (an L{ICatalogObserver}) of every change.
        """

    def removeObserver(observer):  # type: ignore[no-untyped-def]
        """
        Stop telling C{observer}.
        """
