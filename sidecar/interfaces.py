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
    "ICheckObserver",
    "IChecker",
    "ICheckerFactory",
    "IDiscoverer",
    "IDiscoveryListener",
    "IDrainControl",
    "IHealthReport",
    "IMembership",
    "IProxyReport",
    "IProxyWriter",
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

    def serviceChanged(source, service):  # type: ignore[no-untyped-def]
        """
        One service that C{source} last reported has changed (its status,
        say); the others are as they were.  Cheaper than reporting the
        whole set again when one of thousands changes.

        @param service: a L{sidecar.catalog.local.LocalService} with the ID
            of one that C{source} reported.
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
    seeded = Attribute(
        "Whether this node was given seeds, so that it expects peers (bool)."
    )
    warnings = Attribute(
        "What the operator should fix in how this node gossips, one line "
        "each (list of str): gossip open to other hosts without a key."
    )

    def memberNames():  # type: ignore[no-untyped-def]
        """
        @return: the names of the live members, this node included.
        """

    def members():  # type: ignore[no-untyped-def]
        """
        @return: every member this node knows, itself included, as JSON
            objects: C{{"Name", "Address", "Port", "State", "Incarnation",
            "Meta", "ProtocolVersions", "ClockSkew", "Since"}}; C{State} is
            C{alive}, C{suspect}, C{failed} or C{left}; C{ClockSkew} is the
            member's clock minus ours in seconds, or null when not known;
            C{Since} is when it entered its state (RFC 3339).
        """

    def goPeers():  # type: ignore[no-untyped-def]
        """
        @return: the Go Sidecars among the live members, and the records
            kept from them because Go could not relay them:
            C{{"Members": [names], "RelayLimit": bytes, "Withheld":
            [{"Hostname", "ID", "Name", "Bytes"}]}}, with C{"Advice"} (what
            to do) when C{Withheld} is not empty.
        """


class IChecker(Interface):
    """
    One service's health check, ready to run.
    """

    def check():  # type: ignore[no-untyped-def]
        """
        Run the check once.

        @return: a L{Deferred} that fires with a one-line description when
            the service is healthy, and fails with
            L{sidecar.health.checkers.CheckFailed} (saying why) when it is
            not.  Cancelling it must end the check: close its connections,
            kill its processes.
        """


class ICheckerFactory(Interface):
    """
    A kind of check, named in a label or the static file (C{HttpGet},
    C{Tcp}, ...).  To add a kind of check, install one as a Twisted plugin:
    an object that provides this interface and
    L{twisted.plugin.IPlugin}, in a module of a C{twisted/plugins/}
    directory on the path.
    """

    name = Attribute("The check type as labels and the static file name it.")

    def checkerFor(args, reactor):  # type: ignore[no-untyped-def]
        """
        @param args: the check's argument string.
        @param reactor: the reactor to run on.
        @return: an L{IChecker}.
        @raise sidecar.health.checkers.CheckArgumentError: when C{args}
            cannot make a check (one line saying why).
        """


class IHealthReport(Interface):
    """
    What this node's health checks last said, for the API.
    """

    def report():  # type: ignore[no-untyped-def]
        """
        @return: by service ID, a JSON object: C{{"Name", "Check": {"Type",
            "Args", "Rendered"}, "Interval", "Timeout", "Status", "Suppressed",
            "LastResult", "LastError", "LastChecked", "LastDuration"}}.
            C{Rendered}, only there when C{Args} was a template, is what
            it rendered to.  C{Status} is the label (C{Alive},
            C{Unhealthy}, C{Unknown});
            C{LastChecked} is an RFC 3339 time or C{None}; durations are in
            seconds.
        """


class ICheckObserver(Interface):
    """
    Told of every health check that ends (for metrics and benchmarks).
    """

    def checkEnded(serviceID, started, duration, healthy):  # type: ignore[no-untyped-def]
        """
        @param serviceID: whose check it was.
        @param started: when it started, in the monitor's clock's seconds.
        @param duration: how long it ran, in seconds (timed out: the
            timeout).
        @param healthy: whether it passed.
        """


class IProxyWriter(Interface):
    """
    Brings a proxy (HAProxy) in line with a
    L{sidecar.proxy.model.ProxyModel}.
    """

    exited = Attribute(
        "A callable with no arguments, set by whoever drives the writer: "
        "called when a proxy process the writer started ends by itself."
    )

    def apply(model):  # type: ignore[no-untyped-def]
        """
        @return: an awaitable that gives how the change was made (for
            HAProxy: C{"unchanged"}, C{"runtime"} or C{"reload"}), or
            fails with L{sidecar.proxy.haproxy.ProxyError} when the proxy
            refused it, in which case what ran before keeps running.
        """

    def status():  # type: ignore[no-untyped-def]
        """
        @return: a JSON object describing the proxy for the API.
        """

    def stop():  # type: ignore[no-untyped-def]
        """
        Stop a proxy process this writer started, if any.

        @return: an awaitable that ends when it has.
        """


class IProxyReport(Interface):
    """
    What the local proxy is doing, for the API.
    """

    def status():  # type: ignore[no-untyped-def]
        """
        @return: a JSON object: the writer's L{IProxyWriter.status} and
            C{"Updates"}, C{"Conflicts"} (one line each), C{"KeptBackends"}
            and C{"Frontends"} (C{{"Name", "Service", "ServicePort",
            "Mode", "Servers"}}).
        """


class IDrainControl(Interface):
    """
    Takes this node's own services out of the proxies and back.
    """

    def drain(serviceID):  # type: ignore[no-untyped-def]
        """
        @return: the service as it is now published (DRAINING).
        @raise KeyError: when no local service has that ID.
        """

    def undrain(serviceID):  # type: ignore[no-untyped-def]
        """
        @return: the service with its health-checked status.
        @raise KeyError: when no local service has that ID.
        """
