"""
The seams between sidecar's parts.  Each edge (discovery, gossip, health,
proxy, web) implements or consumes these; only L{sidecar.service} wires
concrete parts together.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

from sidecar.catalog.interfaces import IBroadcaster, ICatalogObserver

__all__ = [
    "IBroadcaster",
    "ICatalogObserver",
    "IDiscoverer",
    "IDiscoveryListener",
    "IMembership",
]


class IDiscoveryListener(Interface):
    """
    Receives what a discoverer finds on this host.
    """

    def servicesDiscovered(source, services):  # type: ignore[no-untyped-def]
        """
        The complete current set of services one discoverer sees.

        @param source: the discoverer's name (C{"static"}, C{"docker"}).
        @param services: a sequence of L{sidecar.catalog.local.LocalService};
            whatever the previous call listed and this one does not is gone.
        """


class IDiscoverer(Interface):
    """
    Finds the services running on this host.  A discoverer is also an
    L{twisted.application.service.IService}: started, it reports to its
    L{IDiscoveryListener} at once and again on every change.
    """

    name = Attribute("The backend's name, e.g. 'static' (str).")
    lastError = Attribute(
        "The most recent problem reading the source, as one line, or None."
    )

    def services():  # type: ignore[no-untyped-def]
        """
        @return: the services currently found, a sequence of
            L{sidecar.catalog.local.LocalService}.
        """

    def reload():  # type: ignore[no-untyped-def]
        """
        Read the source again now (on C{SIGHUP}, say), and report any
        change to the listener.
        """


class IMembership(Interface):
    """
    Who is in the cluster, as this node sees it.
    """

    clusterName = Attribute("The cluster's name (str).")

    def memberNames():  # type: ignore[no-untyped-def]
        """
        @return: the names of the live members, this node included.
        """

    def members():  # type: ignore[no-untyped-def]
        """
        @return: every member this node knows, itself included, as JSON
            objects: C{{"Name", "Address", "Port", "State", "Incarnation",
            "Meta", "ProtocolVersions"}}; C{State} is C{alive}, C{suspect},
            C{failed} or C{left}.
        """
