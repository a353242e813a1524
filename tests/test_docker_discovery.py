"""
Docker discovery against real Docker-API engines, Docker's own and
podman's (see L{tests.dockerengine}), with the same assertions for both:
labelled containers become services within a second of starting and stop
being services within a second of stopping, being killed or removed, with
the right IDs and ports (published on 127.0.0.1); C{SidecarDiscover=false}
is honoured; an engine restart loses nothing; malformed labels are
reported; the seed's C{HttpGet} template check and C{HealthCheck=Docker}
(through each engine's own health events) decide the status.

Each class body is a mixin, run once per engine by a subclass that skips
with the engine's reason when it is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import treq
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from sidecar.catalog import Port, Service, Status
from sidecar.catalog.local import LocalService
from sidecar.discovery.docker import DockerDiscoverer, dockerClient
from sidecar.interfaces import IDiscoveryListener
from sidecar.service import SidecarNode

from .dockerengine import (
    DockerEngine,
    EngineEvents,
    dockerEngineSkipReason,
    runContainer,
    sharedDockerEngine,
    startDockerEngine,
)
from .inprocess import startNode
from .processes import pollUntil

ADVERTISE = "127.0.0.1"
# The seed's labels.
SEED = {
    "HealthCheck": "HttpGet",
    "ServiceName": "awesome-svc",
    "ServicePort_80": "10001",
    "HealthCheckArgs": "http://{{ host }}:{{ tcp 10001 }}/",
}
# The bound for seeing a start or a stop.
WITHIN = 1.0
# What each engine calls a container's removal, and a health check's result.
REMOVED = {"docker": "destroy", "podman": "remove"}
HEALTH_EVENT = {"docker": "health_status: unhealthy", "podman": "health_status"}


@implementer(IDiscoveryListener)
class Reports:
    def __init__(self) -> None:
        self.services: list[LocalService] = []

    def servicesDiscovered(self, source: str, services: Any) -> None:
        self.services = list(services)

    def serviceChanged(self, source: str, service: LocalService) -> None:
        raise AssertionError("docker discovery reports whole sets")

    def byID(self) -> dict[str, Service]:
        return {local.service.id: local.service for local in self.services}


async def until(condition: Callable[[], bool], timeout: float) -> None:
    await pollUntil(
        lambda: defer.succeed(True if condition() else None),
        timeout=timeout,
        every=0.01,
    )


if TYPE_CHECKING:
    _Case = TestCase
else:
    _Case = object


class EngineTestsMixin(_Case):
    """
    The engine of a test class: C{engineKind} names it (see
    L{tests.dockerengine.ENGINES}).
    """

    engineKind: str

    async def engine(self) -> DockerEngine:
        """
        The shared engine of our kind, joined for this test.
        """
        return await sharedDockerEngine(self, self.engineKind)

    async def ownEngine(self) -> DockerEngine:
        """
        An engine of our kind for this test alone (to stop and start).
        """
        return await startDockerEngine(self, self.engineKind)

    async def events(self, engine: DockerEngine) -> EngineEvents:
        """
        The engine's container events from now on, closed at cleanup.
        """
        watcher = await engine.watchEvents({"type": "container"})
        self.addCleanup(watcher.close)
        return watcher


class DiscovererTestsMixin(EngineTestsMixin):
    async def discoverer(
        self, engine: DockerEngine
    ) -> tuple[DockerDiscoverer, Reports]:
        reports = Reports()
        discoverer = DockerDiscoverer(
            lambda: dockerClient(engine.url),
            "host-a",
            ADVERTISE,
            reports,
            reactor,
            resyncInterval=30.0,  # events alone must be enough
            where="the test engine",
        )
        discoverer.startService()
        self.addCleanup(discoverer.stopService)
        await until(lambda: discoverer._stream is not None, timeout=10)
        return discoverer, reports

    async def test_aStartedContainerIsAServiceWithinASecond(self) -> None:
        engine = await self.engine()
        discoverer, reports = await self.discoverer(engine)
        containerID = await runContainer(self, engine, SEED)
        await until(lambda: containerID[:12] in reports.byID(), timeout=WITHIN)
        service = reports.byID()[containerID[:12]]
        port = await engine.publishedPort(containerID)
        self.assertEqual(service.name, "awesome-svc")
        self.assertEqual(service.hostname, "host-a")
        self.assertEqual(service.image, "localhost/sidecar-test:latest")
        self.assertEqual(service.ports, (Port("tcp", port, 10001, "127.0.0.1"),))
        [local] = [s for s in reports.services if s.service.id == containerID[:12]]
        self.assertEqual(local.check.type, "HttpGet")
        self.assertIsNone(discoverer.lastError)

    async def test_aStoppedContainerIsNoLongerAServiceWithinASecond(self) -> None:
        engine = await self.engine()
        discoverer, reports = await self.discoverer(engine)
        containerID = await runContainer(self, engine, SEED)
        await until(lambda: containerID[:12] in reports.byID(), timeout=10)
        await engine.stopContainer(containerID)
        await until(lambda: containerID[:12] not in reports.byID(), timeout=WITHIN)

    async def test_aKilledContainerIsNoLongerAServiceWithinASecond(self) -> None:
        """
        A kill ends the container with C{die} (after C{kill}, which alone
        ends nothing).
        """
        engine = await self.engine()
        discoverer, reports = await self.discoverer(engine)
        containerID = await runContainer(self, engine, SEED)
        await until(lambda: containerID[:12] in reports.byID(), timeout=10)
        events = await self.events(engine)
        await engine.killContainer(containerID)
        await until(lambda: containerID[:12] not in reports.byID(), timeout=WITHIN)
        await events.waitFor("die", containerID)
        self.assertEqual(events.actions(containerID)[:2], ["kill", "die"])

    async def test_aRemovedContainerIsNoLongerAServiceWithinASecond(self) -> None:
        """
        C{rm -f} of a running container: C{kill}, C{die}, then Docker's
        C{destroy} or podman's C{remove}.
        """
        engine = await self.engine()
        discoverer, reports = await self.discoverer(engine)
        containerID = await runContainer(self, engine, SEED)
        await until(lambda: containerID[:12] in reports.byID(), timeout=10)
        events = await self.events(engine)
        await engine.removeContainer(containerID)
        await until(lambda: containerID[:12] not in reports.byID(), timeout=WITHIN)
        removed = REMOVED[self.engineKind]
        await events.waitFor(removed, containerID)
        self.assertIn("die", events.actions(containerID))
        await discoverer.reload()
        self.assertNotIn(containerID[:12], reports.byID())

    async def test_sidecarDiscoverFalseIsHonoured(self) -> None:
        engine = await self.engine()
        discoverer, reports = await self.discoverer(engine)
        hidden = await runContainer(self, engine, {**SEED, "SidecarDiscover": "false"})
        shown = await runContainer(self, engine, SEED)
        await until(lambda: shown[:12] in reports.byID(), timeout=10)
        await discoverer.reload()  # a full read lists both containers
        self.assertNotIn(hidden[:12], reports.byID())

    async def test_aMalformedLabelIsReportedAndTheRestStands(self) -> None:
        engine = await self.engine()
        discoverer, reports = await self.discoverer(engine)
        labels = {**SEED, "ServicePort_80": "web", "ProxyMode": "https"}
        containerID = await runContainer(self, engine, labels)
        await until(lambda: containerID[:12] in reports.byID(), timeout=10)
        service = reports.byID()[containerID[:12]]
        self.assertEqual(service.ports[0].servicePort, 0)
        self.assertEqual(service.proxyMode, "http")
        self.assertIsNotNone(discoverer.lastError)
        self.assertIn(f"container {containerID[:12]}: label", discoverer.lastError)

    async def test_anEngineRestartLosesNothing(self) -> None:
        engine = await self.ownEngine()
        discoverer, reports = await self.discoverer(engine)
        before = await runContainer(self, engine, SEED)
        await until(lambda: before[:12] in reports.byID(), timeout=10)
        await engine.stop()
        # While the engine is away, the services last seen stay.
        await until(lambda: discoverer.lastError is not None, timeout=10)
        self.assertIn("cannot", discoverer.lastError)
        self.assertIn(before[:12], reports.byID())
        await engine.start()
        # Subscribed again: a container started now is seen at once.
        await until(lambda: discoverer._stream is not None, timeout=35)
        after = await runContainer(self, engine, SEED)
        # An engine just restarted may be slow to send its first event:
        # still an event, well before the 30 s resync could find it.
        await until(lambda: after[:12] in reports.byID(), timeout=5 * WITHIN)
        self.assertIn(before[:12], reports.byID())
        self.assertIsNone(discoverer.lastError)


class NodeTestsMixin(EngineTestsMixin):
    async def node(self, engine: DockerEngine) -> SidecarNode:
        node = startNode(
            self,
            "host-a",
            "127.0.0.1",
            ['profile = "local"'],
            moreSettings=[
                "[discovery]",
                'backends = ["docker"]',
                f'docker_url = "{engine.url}"',
                'docker_resync_interval = "60s"',  # events alone must be enough
                "[health]",
                'interval = "200ms"',
            ],
        )
        [discoverer] = node.discoverers
        await until(lambda: discoverer._stream is not None, timeout=10)
        return node

    def status(self, node: SidecarNode, containerID: str) -> Status | None:
        record = node.state.get("host-a", containerID[:12])
        return None if record is None else record.status

    async def healthReport(self, node: SidecarNode) -> Any:
        address = node.api.port.getHost()  # type: ignore[union-attr]
        response = await treq.get(
            f"http://{address.host}:{address.port}/api/checks.json", persistent=False
        )
        return (await response.json())["Checks"]

    async def test_aStoppedEngineIsAProblemOfTheNodeUntilItIsBack(self) -> None:
        engine = await self.ownEngine()
        node = await self.node(engine)
        seed = await runContainer(self, engine, SEED)
        await until(lambda: self.status(node, seed) is Status.ALIVE, timeout=10)
        address = node.api.port.getHost()  # type: ignore[union-attr]
        health = f"http://{address.host}:{address.port}/api/health"

        async def problems() -> list[Any]:
            response = await treq.get(health, persistent=False)
            return (await response.json())["Problems"]  # type: ignore[no-any-return]

        self.assertEqual(await problems(), [])
        await engine.stop()
        await until(lambda: bool(node.problems.current()), timeout=10)
        [problem] = await problems()
        self.assertEqual(problem["Kind"], "docker")
        self.assertEqual(problem["Subject"], f"the Docker engine at {engine.url}")
        self.assertIn("cannot read containers", problem["Message"])
        # What it last saw is still announced (checked on: Docker's port
        # proxy goes with its engine, podman's stays).
        self.assertIn(self.status(node, seed), (Status.ALIVE, Status.UNHEALTHY))
        await engine.start()
        await until(lambda: not node.problems.current(), timeout=35)
        self.assertEqual(await problems(), [])

    async def test_theSeedContainerIsCheckedAliveAndTombstonedWhenStopped(
        self,
    ) -> None:
        engine = await self.engine()
        node = await self.node(engine)
        containerID = await runContainer(self, engine, SEED)
        await until(lambda: self.status(node, containerID) is Status.ALIVE, timeout=10)
        port = await engine.publishedPort(containerID)
        check = (await self.healthReport(node))[containerID[:12]]["Check"]
        self.assertEqual(check["Rendered"], f"http://127.0.0.1:{port}/")
        await engine.stopContainer(containerID)
        await until(
            lambda: self.status(node, containerID) is Status.TOMBSTONE, timeout=WITHIN
        )

    async def test_aTemplateThatCannotRenderIsShownInTheAPI(self) -> None:
        engine = await self.engine()
        node = await self.node(engine)
        labels = {**SEED, "HealthCheckArgs": "http://{{ host }}:{{ tcp 8080 }}/"}
        containerID = await runContainer(self, engine, labels)
        await until(
            lambda: self.status(node, containerID) is Status.UNHEALTHY, timeout=10
        )
        report = (await self.healthReport(node))[containerID[:12]]
        self.assertIn("no tcp port with ServicePort 8080", report["LastError"])

    async def test_anExternalCheckFromALabelIsRefusedAndNeverRuns(self) -> None:
        """
        A label (an image can carry it) must not run a command on the host:
        the check is refused, the service is unhealthy and says why, and
        the command never runs.
        """
        engine = await self.engine()
        node = await self.node(engine)
        marker = Path(self.mktemp())
        image = await engine.labelledImage(
            "sidecar-labelled",
            {
                "ServiceName": "labelled",
                "HealthCheck": "External",
                "HealthCheckArgs": f"touch {marker}",
            },
        )
        self.addCleanup(engine.removeImage, image)
        # The container has no label of its own: the image's are its.
        containerID = await runContainer(self, engine, image=image)
        await until(
            lambda: self.status(node, containerID) is Status.UNHEALTHY, timeout=10
        )
        report = (await self.healthReport(node))[containerID[:12]]
        self.assertEqual(
            report["LastError"],
            "refused: External checks from container labels are off"
            " (health.external_from_labels)",
        )
        self.assertFalse(marker.exists())

    async def test_healthCheckDockerFollowsTheContainersHealthcheck(self) -> None:
        """
        C{HealthCheck=Docker} follows the engine's verdicts as its events
        tell them (Docker's C{health_status: healthy}, podman's bare
        C{health_status}), not a later full read: the engine's check
        fails until the container's C{/www/ready.html} exists, and until
        it first passes that leaves it C{starting}.
        """
        engine = await self.engine()
        node = await self.node(engine)
        events = await self.events(engine)
        containerID = await runContainer(
            self,
            engine,
            {"ServiceName": "self-checked", "HealthCheck": "Docker"},
            healthcheck=engine.startingHealthcheck("/ready.html"),
        )
        await until(
            lambda: self.status(node, containerID) is Status.UNHEALTHY, timeout=10
        )
        report = (await self.healthReport(node))[containerID[:12]]
        self.assertEqual(
            report["LastError"], "the container's HEALTHCHECK says starting"
        )
        await engine.execute(containerID, ["touch", "/www/ready.html"])
        self.assertEqual(await engine.runHealthcheck(containerID), 0)
        await until(lambda: self.status(node, containerID) is Status.ALIVE, timeout=5)
        await engine.execute(containerID, ["rm", "/www/ready.html"])
        self.assertEqual(await engine.runHealthcheck(containerID), 1)
        await until(
            lambda: self.status(node, containerID) is Status.UNHEALTHY, timeout=5
        )
        self.assertIn(HEALTH_EVENT[self.engineKind], events.actions(containerID))


class PodmanDiscovererTests(DiscovererTestsMixin, TestCase):
    engineKind = "podman"
    skip = dockerEngineSkipReason(engineKind)


class DockerDiscovererTests(DiscovererTestsMixin, TestCase):
    engineKind = "docker"
    skip = dockerEngineSkipReason(engineKind)


class PodmanNodeTests(NodeTestsMixin, TestCase):
    engineKind = "podman"
    skip = dockerEngineSkipReason(engineKind)


class DockerNodeTests(NodeTestsMixin, TestCase):
    engineKind = "docker"
    skip = dockerEngineSkipReason(engineKind)
