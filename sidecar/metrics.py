"""
C{/metrics}: the node in Prometheus's text format (prometheus_client).
Most figures are read from the node's parts when scraped; check durations
are a histogram fed by the health monitor.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from twisted.web.resource import Resource
from twisted.web.server import Request
from zope.interface import implementer

from sidecar.catalog import Service, Status
from sidecar.interfaces import ICheckObserver

if TYPE_CHECKING:
    from sidecar.service import SidecarNode


@implementer(ICheckObserver)
class CheckDurations:
    """
    Check durations and results, as the health monitor reports them.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.histogram = Histogram(
            "sidecar_check_duration_seconds",
            "How long health checks took.",
            ["result"],
            registry=None,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 3, 10),
        )
        registry.register(WithoutCreated(self.histogram))  # type: ignore[arg-type]

    def checkEnded(
        self, serviceID: str, started: float, duration: float, healthy: bool
    ) -> None:
        result = "healthy" if healthy else "unhealthy"
        self.histogram.labels(result).observe(duration)


class WithoutCreated:
    """
    A collector's metrics without their C{*_created} series: a creation
    time per label set that no dashboard or alert uses, and that
    prometheus_client can otherwise only drop for the whole process.
    """

    def __init__(self, collector: Any) -> None:
        self._collector = collector

    def collect(self) -> Iterator[Metric]:
        for metric in self._collector.collect():
            metric.samples = [
                s for s in metric.samples if not s.name.endswith("_created")
            ]
            yield metric


class NodeCollector:
    """
    Reads a node's figures when scraped.
    """

    def __init__(self, node: SidecarNode) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        node = self._node
        members = GaugeMetricFamily(
            "sidecar_members", "Cluster members by state.", labels=["state"]
        )
        byState = Counter(m["State"] for m in node.gossip.members())
        for state in ("alive", "suspect", "failed", "left"):
            members.add_metric([state], byState.get(state, 0))
        yield members
        services = GaugeMetricFamily(
            "sidecar_services", "Catalog records by status.", labels=["status"]
        )
        records = list(node.state.services())
        byStatus = Counter(s.status for s in records)
        for status in Status:
            services.add_metric([status.label], byStatus.get(status, 0))
        yield services
        yield _instances(records)
        yield from self._gossip()
        yield from self._api()
        yield from self._admission()
        yield from self._proxy()
        yield from self._listeners()
        yield self._problems()

    def _api(self) -> Iterator[Metric]:
        cap = self._node.api.factory
        yield GaugeMetricFamily(
            "sidecar_api_connections",
            "HTTP connections the API is serving.",
            value=cap.open,
        )
        yield _counter(
            "sidecar_api_connections_refused",
            "HTTP connections refused with 503 over api.max_connections.",
            cap.shed,
        )

    def _gossip(self) -> Iterator[Metric]:
        gossip = self._node.gossip
        counters = gossip.packetCounters
        cluster = gossip.cluster
        packets = CounterMetricFamily(
            "sidecar_gossip_packets", "UDP gossip packets.", labels=["direction"]
        )
        volume = CounterMetricFamily(
            "sidecar_gossip_bytes", "UDP gossip bytes.", labels=["direction"]
        )
        if counters is not None:
            packets.add_metric(["in"], counters.packetsIn)
            packets.add_metric(["out"], counters.packetsOut)
            volume.add_metric(["in"], counters.bytesIn)
            volume.add_metric(["out"], counters.bytesOut)
        yield packets
        yield volume
        if counters is not None:
            yield _counter(
                "sidecar_gossip_packets_dropped",
                "Gossip packets refused (bad, foreign or unsealed).",
                counters.dropped,
            )
        streamsDropped = gossip.streamsDropped
        if streamsDropped is not None:
            yield _counter(
                "sidecar_gossip_streams_dropped",
                "Gossip TCP streams refused (bad, over a bound, or too slow).",
                streamsDropped,
            )
        if cluster is not None:
            yield _counter(
                "sidecar_gossip_probes", "Probes sent.", cluster.prober.probes
            )
            yield _counter(
                "sidecar_gossip_probe_failures",
                "Probes that got no ack.",
                cluster.prober.failures,
            )
            yield GaugeMetricFamily(
                "sidecar_gossip_broadcasts_queued",
                "Messages waiting to be gossiped.",
                value=len(cluster.queue),
            )
            yield _counter(
                "sidecar_gossip_broadcasts_pruned",
                "Messages dropped unsent with the gossip queue at its depth: news"
                " came faster than gossip carried it (push-pull repairs it).",
                cluster.queue.pruned,
            )
            yield _counter(
                "sidecar_gossip_suspicions",
                "Members this node came to suspect.",
                cluster.members.suspicions,
            )
            yield GaugeMetricFamily(
                "sidecar_gossip_withheld_from_go",
                "Catalog records kept from Go Sidecar peers: too large for Go to "
                "relay.",
                value=len(gossip.goPeers()["Withheld"]),
            )
            yield _counter(
                "sidecar_gossip_members_refused",
                "Member news not believed (another cluster, an absurd "
                "incarnation, a full table, a source over its budget).",
                cluster.members.refused,
            )

    def _admission(self) -> Iterator[Metric]:
        gossip = self._node.gossip
        refused = CounterMetricFamily(
            "sidecar_catalog_records_refused",
            "Catalog records from peers that were refused, by reason.",
            labels=["reason"],
        )
        reasons = gossip.admission.refused + self._node.state.refused
        for reason, count in sorted(reasons.items()):
            refused.add_metric([reason], count)
        yield refused
        skews = GaugeMetricFamily(
            "sidecar_member_clock_skew_seconds",
            "Each member's clock minus ours, as its own records tell.",
            labels=["member"],
        )
        for member in gossip.members():
            if member["ClockSkew"] is not None:
                skews.add_metric([member["Name"]], member["ClockSkew"])
        yield skews
        yield GaugeMetricFamily(
            "sidecar_catalog_bytes",
            "Bytes the catalog's records take (kept within push-pull's limit).",
            value=self._node.state.size,
        )

    def _proxy(self) -> Iterator[Metric]:
        proxy = self._node.proxy
        if proxy is None:
            return
        status = proxy.status()
        yield _counter("sidecar_haproxy_reloads", "HAProxy reloads.", status["Reloads"])
        yield _counter(
            "sidecar_haproxy_runtime_updates",
            "HAProxy updates made through its runtime API, without a reload.",
            status["RuntimeChanges"],
        )
        yield GaugeMetricFamily(
            "sidecar_haproxy_refused",
            "Instances and ServicePorts left out of HAProxy (see Refused in"
            " /api/haproxy.json).",
            value=len(status["Refused"]),
        )

    def _listeners(self) -> Iterator[Metric]:
        listeners = self._node.listeners
        if listeners is None:
            return
        delivered = CounterMetricFamily(
            "sidecar_listener_events_delivered",
            "Change events a listener accepted.",
            labels=["listener"],
        )
        failures = CounterMetricFamily(
            "sidecar_listener_failures",
            "Failed deliveries to a listener (each is retried).",
            labels=["listener"],
        )
        dropped = CounterMetricFamily(
            "sidecar_listener_events_dropped",
            "Waiting events a listener that fell behind lost: coalesced into a"
            " newer event of the same service, or dropped.",
            labels=["listener", "how"],
        )
        waiting = GaugeMetricFamily(
            "sidecar_listener_events_waiting",
            "Events waiting for a listener.",
            labels=["listener"],
        )
        for listener in listeners.status():
            name = listener["Name"]
            delivered.add_metric([name], listener["Delivered"])
            failures.add_metric([name], listener["Failures"])
            dropped.add_metric([name, "coalesced"], listener["Coalesced"])
            dropped.add_metric([name, "dropped"], listener["Dropped"])
            waiting.add_metric([name], listener["Waiting"])
        yield delivered
        yield failures
        yield dropped
        yield waiting

    def _problems(self) -> Metric:
        problems = GaugeMetricFamily(
            "sidecar_problems",
            "Faults the node knows of now, by kind (see Problems in /api/health).",
            labels=["kind"],
        )
        for kind, count in sorted(self._node.problems.counts().items()):
            problems.add_metric([kind], count)
        return problems


def _instances(records: Iterable[Service]) -> GaugeMetricFamily:
    """
    Instances of each service by status, every status of a known service
    included, so that "no alive instance of X" is a zero, not an absence.
    """
    counts: dict[str, Counter[Status]] = {}
    for record in records:
        counts.setdefault(record.name, Counter())[record.status] += 1
    family = GaugeMetricFamily(
        "sidecar_service_instances",
        "Instances of each service in the catalog, by status.",
        labels=["service", "status"],
    )
    for name in sorted(counts):
        for status in Status:
            family.add_metric([name, status.label], counts[name].get(status, 0))
    return family


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


class MetricsResource(Resource):
    """
    C{GET /metrics}.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self._registry)


def installMetrics(node: SidecarNode, site: Any) -> CollectorRegistry:
    """
    Serve C{node}'s metrics at C{/metrics} of its API C{site}.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node))  # type: ignore[arg-type]
    # process_* (CPU, memory, open files) and python_info, as every
    # Prometheus client exports them.
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    node.health.addObserver(CheckDurations(registry))
    site.resource.putChild(b"metrics", MetricsResource(registry))
    return registry
