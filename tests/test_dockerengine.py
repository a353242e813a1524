"""
The Docker-engine harness itself: podman's Docker API runs a labelled
container of the busybox image, which serves HTTP on its published port on
127.0.0.1; the list shows its labels and ports; events arrive for run,
stop, kill and removal; a health check runs when asked; and the engine
stops and starts again on the same storage without losing the container.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING
from unittest import mock

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from . import dockerengine
from .dockerengine import (
    IMAGE,
    INDEX_BODY,
    DockerdEngine,
    busyboxExecutable,
    dockerEngineSkipReason,
    fetchWhenServing,
    httpHealthcheck,
    isStaticExecutable,
    runContainer,
    sharedDockerEngine,
    startDockerEngine,
)


def assertSubsequence(
    case: SynchronousTestCase, expected: list[str], actual: list[str]
) -> None:
    """
    Fail C{case} unless C{expected} appears in C{actual} in order, maybe
    with other items between.
    """
    remaining = iter(actual)
    if not all(item in remaining for item in expected):
        case.fail(f"{expected} is not a subsequence of {actual}")


class SharedEngineTests(TestCase):
    """
    Containers on the process's shared engine.
    """

    skip = dockerEngineSkipReason()

    async def test_labelledContainerIsListedAndServes(self) -> None:
        """
        A container run with labels and C{80/tcp} published on a port the
        engine picks serves the image's page on 127.0.0.1 at that port, and
        the list shows its labels and port; once stopped it is listed as
        exited, and only with C{all}.
        """
        engine = await sharedDockerEngine()
        labels = {"ServiceName": "harness-web", "HealthCheck": "HttpGet"}
        containerId = await runContainer(self, engine, labels)
        port = await engine.publishedPort(containerId)
        self.assertEqual(await fetchWhenServing(port), INDEX_BODY)

        [entry] = await engine.listContainers(filters={"id": containerId})
        self.assertEqual(entry["Id"], containerId)
        self.assertEqual(len(containerId), 64)
        self.assertEqual(entry["Image"], IMAGE)
        self.assertEqual(entry["Labels"], labels)
        self.assertEqual(entry["State"], "running")
        self.assertEqual(
            entry["Ports"],
            [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": port, "Type": "tcp"}],
        )
        byLabel = await engine.listContainers(
            filters={"label": "ServiceName=harness-web"}
        )
        self.assertEqual([e["Id"] for e in byLabel], [containerId])

        await engine.stopContainer(containerId)
        self.assertEqual(await engine.listContainers(filters={"id": containerId}), [])
        [stopped] = await engine.listContainers(all=True, filters={"id": containerId})
        self.assertEqual(stopped["State"], "exited")

    async def test_imageIsImportedOncePerEngine(self) -> None:
        """
        Callers of L{DockerEngine.ensureImage} at the same time share one
        import, and later callers get the cached ID.
        """
        engine = await sharedDockerEngine()
        first, second = engine.ensureImage(), engine.ensureImage()
        imageId = await first
        self.assertEqual(await second, imageId)
        self.assertEqual(await engine.ensureImage(), imageId)
        self.assertEqual(len(engine.timings["image"]), 1)
        inspected = await engine.call(engine.client().api.inspect_image, IMAGE)
        self.assertEqual(inspected["Id"], imageId)

    async def test_eventsForRunStopKillRemove(self) -> None:
        """
        The events stream gives C{create}, C{init} and C{start} for a run,
        C{die} with the exit code for a stop (SIGTERM, 143) and a kill
        (SIGKILL, 137), and C{remove}; each carries the container's labels
        and name in C{Actor.Attributes}.
        """
        engine = await sharedDockerEngine()
        events = await engine.watchEvents({"type": "container"})
        self.addCleanup(events.close)
        labels = {"ServiceName": "harness-events"}
        containerId = await runContainer(self, engine, labels)
        started = await events.waitFor("start", containerId)
        attributes = started["Actor"]["Attributes"]
        self.assertEqual(attributes["ServiceName"], "harness-events")
        self.assertEqual(attributes["image"], IMAGE)
        self.assertEqual(started["Actor"]["ID"], containerId)
        self.assertEqual(started["Type"], "container")
        self.assertEqual(started["status"], "start")
        self.assertEqual(started["time"], started["timeNano"] // 1_000_000_000)
        [listed] = await engine.listContainers(filters={"id": containerId})
        self.assertEqual(attributes["name"], listed["Names"][0].lstrip("/"))

        await engine.stopContainer(containerId)
        stopped = await events.waitFor("die", containerId)
        self.assertEqual(stopped["Actor"]["Attributes"]["containerExitCode"], "143")
        mark = len(events.events)
        await engine.startContainer(containerId)
        await events.waitFor("start", containerId, after=mark)
        await engine.killContainer(containerId)
        killed = await events.waitFor("die", containerId, after=mark)
        self.assertEqual(killed["Actor"]["Attributes"]["containerExitCode"], "137")
        await engine.removeContainer(containerId, force=False)
        await events.waitFor("remove", containerId)
        assertSubsequence(
            self,
            ["create", "init", "start", "die", "start", "kill", "die", "remove"],
            events.actions(containerId),
        )

    async def test_healthcheckRunsWhenAsked(self) -> None:
        """
        A container created with a health check is C{starting}; the engine
        runs no check by itself here, but L{DockerEngine.runHealthcheck}
        does: it is C{healthy} while the page is there and C{unhealthy}
        once it is gone (one retry), and each run emits C{health_status}.
        """
        engine = await sharedDockerEngine()
        events = await engine.watchEvents({"type": "container"})
        self.addCleanup(events.close)
        containerId = await runContainer(
            self, engine, healthcheck=httpHealthcheck(retries=1)
        )
        inspected = await engine.inspectContainer(containerId)
        self.assertEqual(inspected["Config"]["Healthcheck"]["Retries"], 1)
        self.assertEqual(await engine.healthStatus(containerId), "starting")
        await fetchWhenServing(await engine.publishedPort(containerId))

        self.assertEqual(await engine.runHealthcheck(containerId), 0)
        self.assertEqual(await engine.healthStatus(containerId), "healthy")
        code, _ = await engine.execute(containerId, ["rm", "/www/index.html"])
        self.assertEqual(code, 0)
        self.assertEqual(await engine.runHealthcheck(containerId), 1)
        self.assertEqual(await engine.healthStatus(containerId), "unhealthy")
        event = await events.waitFor("health_status", containerId)
        self.assertIn("HealthStatus", event)


if TYPE_CHECKING:
    _Case = TestCase
else:
    _Case = object


class EngineLifeTestsMixin(_Case):
    """
    Engines of the test's own, of kind C{engineKind}, stopped and started
    again.
    """

    engineKind: str

    async def test_restartKeepsRunningContainers(self) -> None:
        """
        A container keeps running while the engine is stopped (and serving,
        but for Docker's, whose port proxy goes with it), and after the
        engine starts again on the same storage it is listed as running,
        with its labels and port, and serves; the image is still there.
        So after L{DockerEngine.restart}.
        """
        engine = await startDockerEngine(self, self.engineKind)
        labels = {"ServiceName": "harness-survivor"}
        containerId = await runContainer(self, engine, labels)
        port = await engine.publishedPort(containerId)
        await fetchWhenServing(port)

        await engine.stop()
        self.assertFalse(engine.running)
        if engine.publishesWhileStopped:
            self.assertEqual(await fetchWhenServing(port), INDEX_BODY)
        await engine.start()

        [entry] = await engine.listContainers(filters={"id": containerId})
        self.assertEqual(entry["State"], "running")
        self.assertEqual(entry["Labels"], labels)
        self.assertEqual(await engine.publishedPort(containerId), port)
        self.assertEqual(await fetchWhenServing(port), INDEX_BODY)
        inspected = await engine.call(engine.client().api.inspect_image, IMAGE)
        self.assertEqual(inspected["Id"], await engine.ensureImage())

        await engine.restart()
        [entry] = await engine.listContainers(filters={"id": containerId})
        self.assertEqual(entry["State"], "running")

    async def test_eventStreamEndsWhenEngineStops(self) -> None:
        """
        An events stream ends, without an error from docker-py, when the
        engine stops; the engine stops within its bound.
        """
        engine = await startDockerEngine(self, self.engineKind)
        events = await engine.watchEvents()
        await engine.stop(timeout=10)
        ended = events.ended
        ended.addTimeout(10, reactor)
        self.assertIsNone(await ended)
        self.assertTrue(events.done)


class PodmanEngineLifeTests(EngineLifeTestsMixin, TestCase):
    engineKind = "podman"
    skip = dockerEngineSkipReason(engineKind)


class DockerEngineLifeTests(EngineLifeTestsMixin, TestCase):
    engineKind = "docker"
    skip = dockerEngineSkipReason(engineKind)


class DockerdEngineTests(TestCase):
    """
    What Docker's own engine does differently, in its own network.
    """

    skip = dockerEngineSkipReason("docker")

    async def test_itRunsInANetworkOfItsOwnThatTheTestJoins(self) -> None:
        """
        The engine's network is not the one the test began in; the test
        joins it, and the container's page answers on 127.0.0.1 there.
        """
        began = os.stat("/proc/thread-self/ns/net").st_ino
        engine = await sharedDockerEngine(self, "docker")
        assert isinstance(engine, DockerdEngine) and engine.namespace is not None
        theirs = os.stat(engine.namespace).st_ino
        self.assertNotEqual(theirs, began)
        self.assertEqual(os.stat("/proc/thread-self/ns/net").st_ino, theirs)
        containerId = await runContainer(self, engine, {"ServiceName": "joined"})
        [entry] = await engine.listContainers(filters={"id": containerId})
        port = await engine.publishedPort(containerId)
        self.assertEqual(
            entry["Ports"],
            [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": port, "Type": "tcp"}],
        )
        self.assertEqual(await fetchWhenServing(port), INDEX_BODY)

    async def test_eventsHaveDockersNames(self) -> None:
        """
        A run, a health check that passes, a stop and a removal give
        C{create}, C{start}, C{health_status: healthy}, C{kill}, C{die},
        C{stop} and C{destroy}; the engine runs the check by itself.
        """
        engine = await sharedDockerEngine(self, "docker")
        events = await engine.watchEvents({"type": "container"})
        self.addCleanup(events.close)
        containerId = await runContainer(
            self, engine, healthcheck=httpHealthcheck(interval=0.2)
        )
        self.assertEqual(await engine.runHealthcheck(containerId), 0)
        await events.waitFor("health_status: healthy", containerId)
        self.assertEqual(await engine.healthStatus(containerId), "healthy")
        await engine.stopContainer(containerId)
        stopped = await events.waitFor("die", containerId)
        self.assertEqual(stopped["Actor"]["Attributes"]["exitCode"], "143")
        await engine.removeContainer(containerId, force=False)
        await events.waitFor("destroy", containerId)
        assertSubsequence(
            self,
            ["create", "start", "health_status: healthy", "kill", "die", "stop"],
            events.actions(containerId),
        )
        self.assertEqual(events.actions(containerId)[-1], "destroy")


class SkipReasonTests(SynchronousTestCase):
    """
    L{dockerEngineSkipReason} names what is missing.
    """

    def test_missingPodman(self) -> None:
        with mock.patch.object(dockerengine, "podmanExecutable", lambda: None):
            reason = dockerEngineSkipReason()
        assert reason is not None
        self.assertIn("podman", reason)

    def test_missingDockerd(self) -> None:
        with mock.patch.object(dockerengine, "SYSTEM_PATH", "/nowhere"):
            reason = dockerEngineSkipReason("docker")
        assert reason is not None
        self.assertIn("docker.io", reason)
        self.assertIn("dockerd", reason)

    def test_staticBusybox(self) -> None:
        """
        The host's busybox, when there is one, is a static executable; the
        Python interpreter is not.
        """
        self.assertFalse(isStaticExecutable(sys.executable))
        busybox = busyboxExecutable()
        if busybox is not None and dockerEngineSkipReason() is None:
            self.assertTrue(isStaticExecutable(busybox))
