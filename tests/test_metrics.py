"""
C{/metrics} of a running node, in Prometheus's text format.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sidecar.catalog import Status
from sidecar.metrics import NodeCollector

from .inprocess import startNode
from .processes import pollUntil

# A listener that is down: nothing listens on port 1 of loopback.
DOWN = "http://127.0.0.1:1/"
LISTENER = (("listener", f"UrlListener({DOWN})"),)


class MetricsTests(TestCase):
    async def test_aNodesFigures(self) -> None:
        node = startNode(
            self,
            "host-a",
            "127.0.1.1",
            ['profile = "local"'],
            moreSettings=[
                "[health]",
                'interval = "100ms"',
                "[listeners]",
                f'urls = ["{DOWN}"]',
            ],
        )

        def checked() -> defer.Deferred[bool | None]:
            alive = [s for s in node.state.localServices() if s.status is Status.ALIVE]
            return defer.succeed(True if alive else None)

        await pollUntil(checked, timeout=10)
        # The listener that is down is a problem of the node.
        await pollUntil(
            lambda: defer.succeed(True if node.problems.counts()["listener"] else None),
            timeout=10,
        )
        api = node.api.port.getHost()  # type: ignore[union-attr]
        response = await treq.get(
            f"http://{api.host}:{api.port}/metrics", persistent=False
        )
        self.assertEqual(response.code, 200)
        [contentType] = response.headers.getRawHeaders(b"content-type")
        self.assertTrue(contentType.startswith(b"text/plain; version="), contentType)
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(await response.text())
            for sample in family.samples
        }
        self.assertEqual(samples[("sidecar_members", (("state", "alive"),))], 1)
        self.assertEqual(samples[("sidecar_services", (("status", "Alive"),))], 1)
        self.assertIn(("sidecar_gossip_packets_total", (("direction", "in"),)), samples)
        self.assertIn(("sidecar_gossip_probes_total", ()), samples)
        self.assertEqual(samples[("sidecar_gossip_streams_dropped_total", ())], 0)
        self.assertEqual(samples[("sidecar_gossip_members_refused_total", ())], 0)
        # Alone, it holds nothing to gossip but its own alive, and lost none.
        self.assertLessEqual(samples[("sidecar_gossip_broadcasts_queued", ())], 1)
        self.assertEqual(samples[("sidecar_gossip_broadcasts_pruned_total", ())], 0)
        # The node's own record, counted in what push-pull must carry.
        self.assertGreater(samples[("sidecar_catalog_bytes", ())], 100)
        self.assertEqual(node.state.size, samples[("sidecar_catalog_bytes", ())])
        self.assertGreater(
            samples[("sidecar_check_duration_seconds_count", (("result", "healthy"),))],
            0,
        )
        self.assertNotIn(("sidecar_haproxy_reloads_total", ()), samples)  # no HAProxy
        # The listener's events wait: nothing was delivered, nothing lost.
        self.assertGreater(samples[("sidecar_listener_events_waiting", LISTENER)], 0)
        self.assertEqual(
            samples[("sidecar_listener_events_delivered_total", LISTENER)], 0
        )
        for how in ("coalesced", "dropped"):
            labels = tuple(sorted((*LISTENER, ("how", how))))
            self.assertEqual(
                samples[("sidecar_listener_events_dropped_total", labels)], 0
            )
        self.assertEqual(samples[("sidecar_problems", (("kind", "listener"),))], 1)
        self.assertNotIn(("sidecar_problems", (("kind", "haproxy"),)), samples)
        # This request's own connection, and no refusal.
        self.assertEqual(samples[("sidecar_api_connections", ())], 1)
        self.assertEqual(samples[("sidecar_api_connections_refused_total", ())], 0)
        # Instances by service and status, zeros included.
        instances = "sidecar_service_instances"
        alive = (("service", "svc-host-a"), ("status", "Alive"))
        self.assertEqual(samples[(instances, alive)], 1)
        drained = (("service", "svc-host-a"), ("status", "Draining"))
        self.assertEqual(samples[(instances, drained)], 0)
        # The process's own figures, and no *_created series at all.
        self.assertGreater(samples[("process_resident_memory_bytes", ())], 0)
        self.assertGreater(samples[("process_open_fds", ())], 0)
        self.assertEqual([k for k in samples if k[0].endswith("_created")], [])


class _Reporting:
    def __init__(self, status: Any) -> None:
        self._status = status

    def status(self) -> Any:
        return self._status


class FiguresTests(SynchronousTestCase):
    """
    Each figure of the listeners and the proxy comes from the field of
    their status that it names (all different here, so that no two can be
    mixed up).
    """

    def samples(self, node: Any, part: str) -> dict[tuple[str, tuple[Any, ...]], float]:
        collector = NodeCollector(node)
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in getattr(collector, part)()
            for sample in family.samples
        }

    def test_theListenersFigures(self) -> None:
        listeners = _Reporting(
            [
                {
                    "Name": "UrlListener(a)",
                    "Delivered": 1,
                    "Failures": 2,
                    "Coalesced": 3,
                    "Dropped": 4,
                    "Waiting": 5,
                },
                {
                    "Name": "UrlListener(b)",
                    "Delivered": 6,
                    "Failures": 7,
                    "Coalesced": 8,
                    "Dropped": 9,
                    "Waiting": 10,
                },
            ]
        )
        samples = self.samples(SimpleNamespace(listeners=listeners), "_listeners")
        figures = {}
        for name in ("a", "b"):
            listener = (("listener", f"UrlListener({name})"),)
            figures[name] = [
                samples[("sidecar_listener_events_delivered_total", listener)],
                samples[("sidecar_listener_failures_total", listener)],
                samples[
                    (
                        "sidecar_listener_events_dropped_total",
                        (("how", "coalesced"), *listener),
                    )
                ],
                samples[
                    (
                        "sidecar_listener_events_dropped_total",
                        (("how", "dropped"), *listener),
                    )
                ],
                samples[("sidecar_listener_events_waiting", listener)],
            ]
        self.assertEqual(figures, {"a": [1, 2, 3, 4, 5], "b": [6, 7, 8, 9, 10]})
        self.assertEqual(len(samples), 10)

    def test_noListenersNoFigures(self) -> None:
        self.assertEqual(
            self.samples(SimpleNamespace(listeners=None), "_listeners"), {}
        )

    def test_theProxysFigures(self) -> None:
        proxy = _Reporting({"Reloads": 3, "RuntimeChanges": 5, "Refused": [{}, {}]})
        self.assertEqual(
            self.samples(SimpleNamespace(proxy=proxy), "_proxy"),
            {
                ("sidecar_haproxy_reloads_total", ()): 3,
                ("sidecar_haproxy_runtime_updates_total", ()): 5,
                ("sidecar_haproxy_refused", ()): 2,
            },
        )
