"""
Real Docker-API engines for a test: Docker's own C{dockerd} (Debian's
C{docker.io}, L{DockerdEngine}) and podman's C{podman system service}
(L{PodmanEngine}), each serving the Docker Engine API (v1.41) on a Unix
socket in a temporary directory, with all of its storage (images,
containers, state, events) under that directory, and a tiny image built
without network from the host's static C{/bin/busybox}.  L{ENGINES} names
them (C{docker}, C{podman}) for tests that run against both.

Use L{startDockerEngine} for an engine of the test's own (stopped and
deleted at the test's cleanup), or L{sharedDockerEngine} for one engine of
each kind per test process, started on first use and stopped when the
process exits.  Every helper that calls the engine returns a Deferred and
runs docker-py's blocking call in a thread
(L{twisted.internet.threads.deferToThread}), so tests on the real reactor
can await it.  L{runContainer} registers the container's removal with the
test.

Reach containers only through their published ports on 127.0.0.1
(L{DockerEngine.publishedPort}, L{fetchWhenServing}): never through the
bridge addresses that the engine lists.

Docker's engine never runs in the machine's own network (its bridge and
iptables rules would change it): L{DockerdEngine} runs it in a network
namespace of its own, where its containers' ports are published, and
L{DockerEngine.join} moves the test's reactor thread into that namespace
for the rest of the test (see L{tests.netns}), so the test, its
in-process nodes and their health checks reach them at 127.0.0.1.  Its
events have Docker's names: C{create}, C{start}; C{health_status:
healthy} (or C{unhealthy}, C{starting}), only when the status changes; a
stop C{kill}, C{die}, C{stop}; a removal C{destroy}.  It runs health
checks itself, every C{interval}.

What podman does differently from Docker (measured with podman 4.3):

  - C{Ports} entries of a listed container have C{PrivatePort},
    C{PublicPort} and C{Type}, and C{IP} only for a port published on one
    address; an exited container still lists its published ports.
  - Events come from a log file that the service polls every 0.25 s: one
    arrives 5 to 250 ms after it happened.  A run gives C{create},
    C{init}, C{start}; a graceful stop C{die} (exit code 143 with the
    default init) and C{cleanup} twice, and only sometimes C{stop} first
    (always when the engine had to SIGKILL); a kill C{kill}, C{die},
    C{cleanup}; a removal C{remove} (Docker says C{destroy}).  Events that
    happen while the service is down are not sent to a stream opened
    after it is back (C{since} replays them).
  - The events stream just ends, with no exception from docker-py, when
    the service stops (1 s after SIGTERM, since the service waits for open
    streams; at once after SIGKILL).
  - Health checks are never run by the engine on these machines (podman
    schedules them with systemd timers): C{State.Health.Status} stays
    C{starting}.  L{DockerEngine.runHealthcheck} runs one, which updates
    it and emits an event whose C{Action} is just C{health_status}
    (Docker: C{health_status: healthy}), with a top-level C{HealthStatus}
    that is the status before that check.
  - Containers keep running (under C{conmon}) while the service is stopped,
    and are listed as running again after it starts.

podman's containers use C{slirp4netns} networking by default: ports are published
by a user-space proxy (C{rootlessport}) on the host, and nothing of the
host's networking changes, so engines in several test processes do not
meet.  With C{network="bridge"} (Docker's default) netavark puts the
container on the host's C{podman0} bridge with a 10.88.x.x address, adds
C{NETAVARK-*} iptables rules and turns on C{net.ipv4.ip_forward}; every
engine then takes one netavark lock in L{NETWORK_CONFIG_DIR}, because
netavark calls from two engines at once fail on the iptables chains.
That directory holds only lock files and is never deleted.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import treq
from twisted.internet import defer, reactor
from twisted.internet.error import ConnectError, ConnectingCancelledError
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import ResponseNeverReceived

from .netns import enterNetwork
from .processes import pollUntil

T = TypeVar("T")

API_VERSION = "1.41"
IMAGE_REPOSITORY = "localhost/sidecar-test"
IMAGE = f"{IMAGE_REPOSITORY}:latest"
INDEX_BODY = b"sidecar-test\n"
HTTPD_COMMAND = ("httpd", "-f", "-p", "80", "-h", "/www")
# The container's port 80, published on 127.0.0.1 at a port the engine picks.
PUBLISHED = {"80/tcp": ("127.0.0.1", None)}
BUSYBOX_APPLETS = (
    "cat",
    "cp",
    "date",
    "echo",
    "env",
    "false",
    "grep",
    "httpd",
    "id",
    "kill",
    "ls",
    "mkdir",
    "mv",
    "nc",
    "printf",
    "ps",
    "rm",
    "sh",
    "sleep",
    "test",
    "touch",
    "true",
    "wget",
)
# One second, in the nanoseconds that the Docker API counts health
# check intervals and timeouts in.
SECOND = 1_000_000_000
# A bound on every blocking Docker API call but the events stream.
CALL_TIMEOUT = 30.0
# The rlimits the machine allows, runc with cgroupfs (crun refuses its
# hybrid cgroups), events in a file, file locks under the engine's tmpdir
# rather than the host-wide shared memory segment, and exec sessions'
# conmon processes gone 2 s after the exec ends (the default is 300 s).
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
exit_command_delay = 2
"""
STORAGE_CONF = """\
[storage]
driver = "vfs"
graphroot = "{root}"
runroot = "{runroot}"
"""
# Netavark's lock (and podman's network definitions), shared by every engine
# so that two engines never run netavark at the same time.
NETWORK_CONFIG_DIR = Path(tempfile.gettempdir()) / "sidecar-docker-networks"
DEFAULT_NETWORK = "slirp4netns"
MISSING = (
    "a Docker-API engine needs {}: install podman, runc, slirp4netns, "
    "catatonit and busybox-static (Debian packages of those names)"
)
MISSING_DOCKERD = (
    "Docker's engine needs the Debian packages docker.io, iptables and busybox-static"
)
# Where Debian keeps dockerd, runc and iptables, whatever the PATH.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# DockerdEngine.startingHealthcheck's start period, in seconds: a test's length.
STARTING_PERIOD = 600.0
# The holder of DockerdEngine's network namespace: brings lo up, then waits.
HOLD_NETWORK = "ip link set lo up && exec sleep infinity"


def podmanExecutable() -> str | None:
    """
    The path of the C{podman} executable on C{PATH}, or L{None}.
    """
    return shutil.which("podman")


def runcExecutable() -> str | None:
    """
    The path of C{runc}, which is in C{/usr/sbin} on Debian and so may not
    be on a user's C{PATH}; or L{None}.
    """
    return shutil.which("runc") or next(
        (p for p in ("/usr/sbin/runc", "/usr/bin/runc") if os.access(p, os.X_OK)),
        None,
    )


def catatonitExecutable() -> str | None:
    """
    The path of C{catatonit}, the init that podman runs as a container's
    PID 1 for docker-py's C{init=True}; or L{None}.
    """
    found = "/usr/libexec/podman/catatonit"
    return found if os.access(found, os.X_OK) else shutil.which("catatonit")


def busyboxExecutable() -> str | None:
    """
    The path of the host's C{busybox}, C{/bin/busybox} when it is there,
    or L{None}.
    """
    if os.access("/bin/busybox", os.X_OK):
        return "/bin/busybox"
    return shutil.which("busybox")


def isStaticExecutable(path: str) -> bool:
    """
    Whether the ELF executable at C{path} has no program interpreter, so
    that it runs alone in an image with no C library.
    """
    with open(path, "rb") as executable:
        header = executable.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:
            return False
        order: Literal["little", "big"] = "little" if header[5] == 1 else "big"
        offset = int.from_bytes(header[32:40], order)
        size = int.from_bytes(header[54:56], order)
        count = int.from_bytes(header[56:58], order)
        executable.seek(offset)
        table = executable.read(size * count)
    interpreter = 3  # PT_INTERP
    return all(
        int.from_bytes(table[n * size : n * size + 4], order) != interpreter
        for n in range(count)
    )


def dockerdExecutable() -> str | None:
    """
    The path of Docker's C{dockerd} (in C{/usr/sbin} on Debian), or L{None}.
    """
    return shutil.which("dockerd", path=SYSTEM_PATH)


def _busyboxSkipReason() -> str | None:
    busybox = busyboxExecutable()
    if busybox is None:
        return "the test image needs a static busybox: install busybox-static"
    if not isStaticExecutable(busybox):
        return f"{busybox} is linked dynamically: install busybox-static"
    return None


def _podmanSkipReason() -> str | None:
    missing = [
        name
        for name, path in (
            ("podman", podmanExecutable()),
            ("runc", runcExecutable()),
            ("busybox", busyboxExecutable()),
            ("slirp4netns", shutil.which("slirp4netns")),
            ("catatonit", catatonitExecutable()),
        )
        if path is None
    ]
    if missing:
        return MISSING.format(" and ".join(missing))
    if os.geteuid() != 0:
        return "the Docker-API engine (rootful podman) needs root"
    return _busyboxSkipReason()


def _dockerdSkipReason() -> str | None:
    missing = [
        name
        for name in ("dockerd", "containerd", "runc", "docker-init", "iptables")
        if shutil.which(name, path=SYSTEM_PATH) is None
    ]
    if missing:
        return MISSING_DOCKERD + f" ({' and '.join(missing)} not found)"
    if os.geteuid() != 0:
        return "Docker's engine runs in a network namespace of its own: needs root"
    for tool in ("unshare", "nsenter"):
        if not Path(f"/usr/bin/{tool}").exists():
            return f"Docker's engine needs /usr/bin/{tool} (util-linux)"
    return _busyboxSkipReason()


def dockerEngineSkipReason(kind: str = "podman") -> str | None:
    """
    Why tests against the engine C{kind} (see L{ENGINES}) must be skipped
    (for a C{skip} attribute), or L{None} when what it needs is installed
    and we are root.  podman's needs podman, runc, slirp4netns, catatonit
    (the init that L{DockerEngine.runContainer} runs by default) and a
    static busybox; Docker's needs C{docker.io} (dockerd, containerd, runc,
    docker-init), iptables, util-linux's C{unshare} and C{nsenter} and a
    static busybox.  C{.ci/run} (which sets C{CI=true}) installs them and
    counts a skipped test as a failure.
    """
    return _podmanSkipReason() if kind == "podman" else _dockerdSkipReason()


def imageArchive(busybox: str | None = None, index: bytes = INDEX_BODY) -> bytes:
    """
    A root file system as a tar archive: C{/bin/busybox} with a link for
    each of L{BUSYBOX_APPLETS}, C{/www/index.html} holding C{index}, and
    empty C{/tmp}, C{/proc}, C{/sys}, C{/dev} and C{/etc}.

    @param busybox: the static busybox to copy; the host's by default.
    """
    busybox = busybox or busyboxExecutable()
    assert busybox is not None, MISSING.format("busybox")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, mode in [
            ("bin", 0o755),
            ("dev", 0o755),
            ("etc", 0o755),
            ("proc", 0o555),
            ("sys", 0o555),
            ("tmp", 0o1777),
            ("www", 0o755),
        ]:
            directory = tarfile.TarInfo(name)
            directory.type = tarfile.DIRTYPE
            directory.mode = mode
            tar.addfile(directory)
        binary = tar.gettarinfo(busybox, arcname="bin/busybox")
        binary.mode, binary.uid, binary.gid = 0o755, 0, 0
        binary.uname = binary.gname = "root"
        with open(busybox, "rb") as content:
            tar.addfile(binary, content)
        for applet in BUSYBOX_APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            link.mode = 0o777
            tar.addfile(link)
        page = tarfile.TarInfo("www/index.html")
        page.size = len(index)
        page.mode = 0o644
        tar.addfile(page, io.BytesIO(index))
    return archive.getvalue()


def httpHealthcheck(
    path: str = "/",
    port: int = 80,
    interval: float = 1.0,
    timeout: float = 1.0,
    retries: int = 1,
    startPeriod: float = 0.0,
) -> dict[str, Any]:
    """
    A C{healthcheck} for docker-py's C{containers.run}: C{wget} inside the
    container fetches C{http://127.0.0.1:port/path} (the container's own
    loopback).  podman never runs it by itself here, Docker's engine every
    C{interval}: see L{DockerEngine.runHealthcheck}.  Failures within
    C{startPeriod} seconds of the start, before a first success, leave the
    status C{starting}.
    """
    return {
        "test": [
            "CMD",
            "wget",
            "-q",
            "-O",
            "/dev/null",
            f"http://127.0.0.1:{port}{path}",
        ],
        "interval": int(interval * SECOND),
        "timeout": int(timeout * SECOND),
        "retries": retries,
        "start_period": int(startPeriod * SECOND),
    }


class DockerEngineError(RuntimeError):
    """
    The engine did not start or stop, or a C{podman} command failed; the
    message holds the end of its log.
    """


class DockerEngine:
    """
    A Docker-API engine serving on C{directory/docker.sock}, with all of its
    storage under C{directory}: what every engine has (the service process,
    clients, the test image, containers, events, the end).  L{PodmanEngine}
    and L{DockerdEngine} say how to run one; L{ENGINES} names them.

    The service runs as a plain child process (not one the reactor tracks),
    so one engine may serve many tests; containers outlive it and are there
    again after L{start} on the same directory (see L{restart}).  Call
    L{cleanup} when done: it removes every container, stops the service and
    deletes the directory.

    @ivar kind: the engine's name in L{ENGINES} (C{podman} or C{docker}).
    @ivar directory: the engine's directory.
    @ivar url: the Docker API's address, C{unix://directory/docker.sock},
        for C{docker.DockerClient(base_url=url, version=API_VERSION)}.
    @ivar timings: seconds taken by each L{start} (C{"start"}), L{stop}
        (C{"stop"}) and image import (C{"image"}).
    """

    kind = ""
    logName = "engine.log"
    # Whether published ports still answer while the service is stopped.
    publishesWhileStopped = True

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        apiVersion: str = API_VERSION,
        network: str | None = None,
    ) -> None:
        """
        @param directory: where the engine keeps everything; a new
            temporary directory by default (deleted by L{cleanup}).  Its path
            must be short: the socket's path is limited to 107 bytes.
        @param network: the C{network_mode} of L{runContainer}'s containers
            unless it is given one; the engine's own default when L{None}.
        """
        self._ownsDirectory = directory is None
        self.directory = Path(
            directory or tempfile.mkdtemp(prefix=f"sidecar-{self.kind}-")
        ).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.apiVersion = apiVersion
        self.network = network or self.defaultNetwork()
        self.socketPath = self.directory / "docker.sock"
        self.url = f"unix://{self.socketPath}"
        self.logPath = self.directory / self.logName
        self.timings: dict[str, list[float]] = {"start": [], "stop": [], "image": []}
        self._process: subprocess.Popen[bytes] | None = None
        self._client: Any = None
        self._image: str | None = None
        self._building: list[defer.Deferred[str]] | None = None
        self._watchers: list[EngineEvents] = []
        self._writeConfiguration()

    # What each engine says

    def defaultNetwork(self) -> str:
        """
        The C{network_mode} of containers unless they are given one.
        """
        raise NotImplementedError

    def _writeConfiguration(self) -> None:
        """
        Write what the service needs under L{directory} before it starts.
        """

    def serviceCommand(self) -> list[str]:
        """
        The command line that runs the service in the foreground.
        """
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """
        The service's environment: ours without any C{DOCKER_*} or
        C{CONTAINERS_*} variable, which would point it elsewhere.
        """
        return {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CONTAINERS_", "CONTAINER_", "DOCKER_"))
        }

    def join(self, case: TestCase) -> None:
        """
        Let C{case} reach what this engine publishes on 127.0.0.1 from the
        reactor's thread, until its cleanup: nothing to do for an engine
        that publishes in the machine's own network.
        """

    def inNetwork(self, argv: Sequence[str]) -> list[str]:
        """
        C{argv} as a command that runs where this engine publishes its
        ports: as it is, for an engine that publishes in the machine's own
        network.
        """
        return list(argv)

    def runHealthcheck(
        self, containerId: str, timeout: float = 30
    ) -> defer.Deferred[int]:
        """
        Have a container's health check run once more and fire with its
        exit code: 0 when it passed, 1 when it failed (the status turns
        C{unhealthy} after C{retries} failures in a row).
        """
        raise NotImplementedError

    def startingHealthcheck(self, path: str) -> dict[str, Any]:
        """
        An L{httpHealthcheck} of C{path} whose status stays C{starting}
        until it first passes, and turns C{unhealthy} at its first failure
        after that.  podman never runs it by itself here, so a plain one.
        """
        return httpHealthcheck(path)

    def _removeWithoutService(self) -> None:
        """
        Remove every container when the service is not there (blocking;
        errors ignored), if the engine has a way.
        """

    def _released(self) -> None:
        """
        Release what the engine holds beyond its directory (blocking).
        """

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<DockerEngine {self.url} {state}>"

    # The service

    @property
    def running(self) -> bool:
        """
        Whether the service process has been started and has not ended.
        """
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = 30) -> defer.Deferred[DockerEngine]:
        """
        Start the service and fire with this engine once the API answers
        C{GET /_ping}; fail with L{DockerEngineError} when the service exits
        first or does not answer within C{timeout} seconds (it is then
        killed).
        """
        return defer.Deferred.fromCoroutine(self._start(timeout))

    async def _start(self, timeout: float) -> DockerEngine:
        if self.running:
            return self
        command = self.serviceCommand()
        began = time.monotonic()
        self.socketPath.unlink(missing_ok=True)
        with open(self.logPath, "ab") as log:
            log.write(f"--- {self.kind} starting\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                command,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
            )
        process = self._process

        async def answers() -> bool | None:
            if process.poll() is not None:
                raise DockerEngineError(
                    f"the {self.kind} engine exited with {process.returncode}:"
                    f"\n{self.logTail()}"
                )
            return True if await deferToThread(self._ping) else None

        try:
            await pollUntil(answers, timeout=timeout, every=0.02)
        except TimeoutError as e:
            await self._stop(0)
            raise DockerEngineError(
                f"the Docker API did not answer within {timeout} s:\n{self.logTail()}"
            ) from e
        self.timings["start"].append(time.monotonic() - began)
        return self

    def _ping(self) -> bool:
        """
        Whether C{GET /_ping} on the socket answers 200 (blocking, bounded
        by a 2 s socket timeout).
        """
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(2)
            try:
                connection.connect(str(self.socketPath))
                connection.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                reply = connection.recv(64)
            except OSError:
                return False
        return reply.startswith(b"HTTP/1.") and reply.split(b" ", 2)[1:2] == [b"200"]

    def stop(self, timeout: float = 10) -> defer.Deferred[int | None]:
        """
        SIGTERM the service and fire with its exit code once it has ended;
        SIGKILL it if it still runs after C{timeout} seconds.  Containers
        keep running.  Fires with L{None} at once if it was not running.
        """
        return defer.Deferred.fromCoroutine(self._stop(timeout))

    async def _stop(self, timeout: float) -> int | None:
        process = self._process
        self._closeClient()
        if process is None:
            return None
        began = time.monotonic()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)

            async def ended() -> bool | None:
                return True if process.poll() is not None else None

            try:
                await pollUntil(ended, timeout=timeout, every=0.02)
            except TimeoutError:
                process.kill()
                try:
                    await pollUntil(ended, timeout=10, every=0.02)
                except TimeoutError as e:
                    raise DockerEngineError(
                        f"{self.kind} (pid {process.pid}) outlived SIGKILL"
                    ) from e
            self.timings["stop"].append(time.monotonic() - began)
        return process.returncode

    def restart(
        self, timeout: float = 30, stopTimeout: float = 10
    ) -> defer.Deferred[DockerEngine]:
        """
        L{stop} the service and L{start} it again on the same socket and
        storage; fire with this engine once the API answers.
        """

        async def restart() -> DockerEngine:
            await self._stop(stopTimeout)
            return await self._start(timeout)

        return defer.Deferred.fromCoroutine(restart())

    def logTail(self, size: int = 4000) -> str:
        """
        The end of the service's log (stdout and stderr of every start).
        """
        try:
            return self.logPath.read_bytes()[-size:].decode(errors="replace")
        except OSError:
            return ""

    # Clients

    def newClient(self, timeout: float | None = CALL_TIMEOUT) -> Any:
        """
        A new C{docker.DockerClient} for this engine, which the caller
        closes.  Its calls block: make them in a thread.
        """
        import docker

        return docker.DockerClient(
            base_url=self.url, version=self.apiVersion, timeout=timeout
        )

    def client(self) -> Any:
        """
        This engine's C{docker.DockerClient}, made on first use and closed
        by L{stop}.  Its calls block: make them in a thread, as the helpers
        here do (or with L{call}).
        """
        if self._client is None:
            self._client = self.newClient()
        return self._client

    def _closeClient(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def call(
        self, function: Callable[..., T], *arguments: Any, **keywords: Any
    ) -> defer.Deferred[T]:
        """
        Call C{function(*arguments, **keywords)}, a blocking docker-py call,
        in a thread; fire with its result.  For example
        C{engine.call(engine.client().api.inspect_image, IMAGE)}.
        """
        return deferToThread(function, *arguments, **keywords)

    # The image

    def ensureImage(self) -> defer.Deferred[str]:
        """
        Import L{IMAGE} (see L{imageArchive}) unless this engine has it, and
        fire with its ID.  Imported once per engine and directory: callers
        at the same time share one import, and it survives L{restart}.
        """
        if self._image is not None:
            return defer.succeed(self._image)
        waiter: defer.Deferred[str] = defer.Deferred()
        if self._building is None:
            self._building = [waiter]
            deferToThread(self._importImage).addBoth(self._imported)
        else:
            self._building.append(waiter)
        return waiter

    def _importImage(self) -> str:
        import docker.errors

        api = self.client().api
        try:
            found: str = api.inspect_image(IMAGE)["Id"]
            return found
        except docker.errors.ImageNotFound:
            pass
        began = time.monotonic()
        api.import_image_from_data(
            imageArchive(),
            repository=IMAGE_REPOSITORY,
            tag="latest",
            changes=["ENV PATH=/bin", f"CMD {json.dumps(list(HTTPD_COMMAND))}"],
        )
        self.timings["image"].append(time.monotonic() - began)
        imported: str = api.inspect_image(IMAGE)["Id"]
        return imported

    def _imported(self, result: str | Failure) -> None:
        waiters, self._building = self._building or [], None
        if not isinstance(result, Failure):
            self._image = result
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    def labelledImage(
        self, name: str, labels: Mapping[str, str]
    ) -> defer.Deferred[str]:
        """
        L{IMAGE} with C{labels} baked in, as a Dockerfile's C{LABEL} would
        (every container of it carries them), tagged
        C{localhost/<name>:latest}; fire with that name.  Remove it with
        L{removeImage}.
        """

        async def bake() -> str:
            base = await self.ensureImage()
            tagged = f"localhost/{name}:latest"

            def commit() -> str:
                api = self.client().api
                container = api.create_container(base, list(HTTPD_COMMAND))
                try:
                    api.commit(
                        container["Id"],
                        repository=f"localhost/{name}",
                        tag="latest",
                        changes=[
                            f"LABEL {k}={json.dumps(v)}" for k, v in labels.items()
                        ],
                    )
                finally:
                    api.remove_container(container["Id"], force=True)
                return tagged

            return await deferToThread(commit)

        return defer.Deferred.fromCoroutine(bake())

    def removeImage(self, image: str) -> defer.Deferred[None]:
        """
        Remove C{image} (one of L{labelledImage}'s), and any container of it.
        """
        return deferToThread(self.client().api.remove_image, image, force=True)

    # Containers

    def runContainer(
        self,
        labels: Mapping[str, str] | None = None,
        *,
        image: str | None = None,
        command: Sequence[str] | None = None,
        ports: Mapping[str, Any] | None = None,
        name: str | None = None,
        healthcheck: Mapping[str, Any] | None = None,
        init: bool = True,
        network: str | None = None,
        **options: Any,
    ) -> defer.Deferred[str]:
        """
        Create and start a container of L{IMAGE} (imported first if need
        be), as C{docker run -d}; fire with its ID.

        @param labels: the container's labels.
        @param image: another image than L{IMAGE} (see L{labelledImage}).
        @param command: what it runs; L{HTTPD_COMMAND} (busybox httpd
            serving L{INDEX_BODY} at C{/} on port 80) by default.
        @param ports: docker-py's C{ports}; L{PUBLISHED} (port 80 on
            127.0.0.1, at a free host port that the engine picks, see
            L{publishedPort}) by default, and C{{}} for none.
        @param healthcheck: docker-py's C{healthcheck}, for example
            L{httpHealthcheck}.
        @param init: run an init (catatonit) as PID 1, so that SIGTERM
            ends the command at once: busybox httpd as PID 1 ignores it,
            and a stop then waits its whole timeout.
        @param network: docker-py's C{network_mode}; the engine's
            C{network} (C{slirp4netns} unless it was made with another) by
            default.  Either way, reach the container only at its published
            port on 127.0.0.1.
        @param options: more keywords for docker-py's C{containers.run}.
        """

        async def run() -> str:
            await self.ensureImage()
            keywords: dict[str, Any] = {
                "detach": True,
                "labels": dict(labels or {}),
                "ports": dict(PUBLISHED if ports is None else ports),
                "init": init,
                **options,
            }
            if name is not None:
                keywords["name"] = name
            if healthcheck is not None:
                keywords["healthcheck"] = dict(healthcheck)
            keywords["network_mode"] = network or self.network
            arguments = list(HTTPD_COMMAND if command is None else command)

            def create() -> str:
                # By name, as a user runs it: engines list what they were given.
                container = self.client().containers.run(
                    image or IMAGE, arguments, **keywords
                )
                identifier: str = container.id
                return identifier

            return await deferToThread(create)

        return defer.Deferred.fromCoroutine(run())

    def startContainer(self, containerId: str) -> defer.Deferred[None]:
        """
        Start a created or stopped container.
        """
        return deferToThread(self.client().api.start, containerId)

    def stopContainer(self, containerId: str, timeout: int = 5) -> defer.Deferred[None]:
        """
        Stop a container: SIGTERM, then SIGKILL after C{timeout} seconds.
        Fires once the engine has cleaned it up.
        """
        return deferToThread(self.client().api.stop, containerId, timeout=timeout)

    def killContainer(
        self, containerId: str, signal: str = "SIGKILL"
    ) -> defer.Deferred[None]:
        """
        Send C{signal} to a container's main process.
        """
        return deferToThread(self.client().api.kill, containerId, signal=signal)

    def removeContainer(
        self, containerId: str, force: bool = True, missingOk: bool = True
    ) -> defer.Deferred[None]:
        """
        Remove a container, killing it first when C{force}.  With
        C{missingOk}, a container that is gone or an engine that is not
        running is no error.
        """
        if missingOk and not self.running:
            return defer.succeed(None)

        def remove() -> None:
            import docker.errors

            try:
                self.client().api.remove_container(containerId, force=force)
            except docker.errors.NotFound:
                if not missingOk:
                    raise

        return deferToThread(remove)

    def removeAllContainers(self) -> defer.Deferred[int]:
        """
        Force-remove every container; fire with how many there were.
        """
        return deferToThread(self._removeAllContainers)

    def _removeAllContainers(self) -> int:
        import docker.errors

        api = self.client().api
        listed = api.containers(all=True)
        for container in listed:
            try:
                api.remove_container(container["Id"], force=True)
            except docker.errors.NotFound:
                pass
        return len(listed)

    def inspectContainer(self, containerId: str) -> defer.Deferred[dict[str, Any]]:
        """
        The engine's C{inspect} document for a container.
        """
        return deferToThread(self.client().api.inspect_container, containerId)

    def listContainers(
        self, all: bool = False, filters: Mapping[str, Any] | None = None
    ) -> defer.Deferred[list[dict[str, Any]]]:
        """
        The low-level container list, as C{client.api.containers()} gives
        it: running containers only unless C{all}.
        """
        return deferToThread(
            self.client().api.containers, all=all, filters=dict(filters or {})
        )

    def publishedPort(
        self, containerId: str, port: str = "80/tcp"
    ) -> defer.Deferred[int]:
        """
        The host port that C{port} (C{"number/protocol"}) of a container is
        published on, from the container list (which has it for stopped
        containers too); fail with L{LookupError} if it is not published.
        """

        async def lookUp() -> int:
            number, _, protocol = port.partition("/")
            listed = await self.listContainers(all=True, filters={"id": containerId})
            for entry in listed[0]["Ports"] if listed else []:
                if (
                    entry.get("PrivatePort") == int(number)
                    and entry.get("Type", "tcp") == (protocol or "tcp")
                    and entry.get("PublicPort")
                ):
                    return int(entry["PublicPort"])
            raise LookupError(f"{port} of {containerId} is not published")

        return defer.Deferred.fromCoroutine(lookUp())

    def execute(
        self, containerId: str, command: Sequence[str]
    ) -> defer.Deferred[tuple[int, bytes]]:
        """
        Run C{command} in a running container, as C{docker exec}; fire with
        its exit code and output (stdout and stderr).
        """

        def execute() -> tuple[int, bytes]:
            api = self.client().api
            session = api.exec_create(containerId, list(command))
            output: bytes = api.exec_start(session["Id"])
            code: int = api.exec_inspect(session["Id"])["ExitCode"]
            return code, output

        return deferToThread(execute)

    def healthStatus(self, containerId: str) -> defer.Deferred[str | None]:
        """
        C{State.Health.Status} of a container (C{starting}, C{healthy} or
        C{unhealthy}), or L{None} when it has no health check.
        """

        async def status() -> str | None:
            state = (await self.inspectContainer(containerId))["State"]
            health = state.get("Health") or {}
            found: str | None = health.get("Status") or None
            return found

        return defer.Deferred.fromCoroutine(status())

    # Events

    def watchEvents(
        self, filters: Mapping[str, Any] | None = None
    ) -> defer.Deferred[EngineEvents]:
        """
        Subscribe to the engine's events (C{filters} as docker-py's
        C{events} takes them, e.g. C{{"type": "container"}}); fire with the
        L{EngineEvents} once the engine has answered.  L{cleanup} closes it;
        close it sooner with L{EngineEvents.close}.
        """
        watcher = EngineEvents(self, filters)
        self._watchers.append(watcher)
        return watcher.start()

    # The end

    def cleanup(self, timeout: float = 10) -> defer.Deferred[None]:
        """
        For C{TestCase.addCleanup}: close every event stream, remove every
        container, stop the service, kill what it left (exec sessions'
        C{conmon}, by process ID), and delete the directory if this engine
        made it.
        """

        async def cleanup() -> None:
            await deferToThread(self._removeEverything)
            for watcher in self._watchers:
                await watcher.close()
            self._watchers = []
            await self._stop(timeout)
            self._release()

        return defer.Deferred.fromCoroutine(cleanup())

    def cleanupNow(self, timeout: float = 10) -> None:
        """
        L{cleanup}, blocking, for when the reactor no longer runs (at
        interpreter exit).
        """
        self._removeEverything()
        for watcher in self._watchers:
            watcher.closeNow()
        self._watchers = []
        self._closeClient()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self._release()

    def _removeEverything(self) -> None:
        """
        Force-remove every container (blocking): through the API when the
        service runs, else (or if that fails) with C{podman rm}, which
        needs no service.  Errors are ignored: L{_release} comes next.
        """
        if self._process is None:
            return
        if self.running:
            try:
                self._removeAllContainers()
                return
            except Exception:
                pass
        self._removeWithoutService()

    def _release(self) -> None:
        """
        Kill the processes that still name our directory (exec sessions'
        C{conmon}, their exit commands, containers' C{conmon} if removing
        failed), unmount what is mounted under it, and delete it if we made
        it.
        """
        for pid in leftoverProcesses(self.directory):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for mountPoint in mountsUnder(self.directory):
            subprocess.run(["umount", "-l", mountPoint], capture_output=True)
        self._released()
        if self._ownsDirectory:
            shutil.rmtree(self.directory, ignore_errors=True)


class PodmanEngine(DockerEngine):
    """
    podman's C{podman system service} serving the Docker API, with its
    storage, state, locks and event log under the engine's directory.

    Host-wide state that podman shares between all its instances and that
    no option moves: runc's state in C{/run/runc} (one entry per running
    container, keyed by its unique ID) and, for C{bridge} containers only,
    netavark's IP allocations in C{/run/containers/networks}, network
    namespaces in C{/run/netns}, the C{podman0} bridge and the
    C{NETAVARK-*} iptables chains (the bridge and rules go with the
    containers; the empty chains and C{ip_forward=1} stay).
    """

    kind = "podman"
    logName = "podman.log"

    def defaultNetwork(self) -> str:
        return DEFAULT_NETWORK

    def _writeConfiguration(self) -> None:
        for name in ["root", "runroot", "tmp", "volumes", "imagetmp"]:
            (self.directory / name).mkdir(exist_ok=True)
        NETWORK_CONFIG_DIR.mkdir(exist_ok=True)
        (self.directory / "containers.conf").write_text(CONTAINERS_CONF)
        (self.directory / "storage.conf").write_text(
            STORAGE_CONF.format(
                root=self.directory / "root", runroot=self.directory / "runroot"
            )
        )

    def globalOptions(self) -> list[str]:
        """
        The options that point every C{podman} command at this engine's
        storage and nowhere else (C{podman <options> ps -a} lists its
        containers), but for the netavark lock in L{NETWORK_CONFIG_DIR}.
        """
        where = self.directory
        return [
            f"--root={where / 'root'}",
            f"--runroot={where / 'runroot'}",
            f"--tmpdir={where / 'tmp'}",
            f"--network-config-dir={NETWORK_CONFIG_DIR}",
            f"--volumepath={where / 'volumes'}",
            "--storage-driver=vfs",
            "--cgroup-manager=cgroupfs",
            "--runtime=runc",
            "--events-backend=file",
        ]

    def environment(self) -> dict[str, str]:
        """
        The environment for C{podman}: our C{containers.conf} and
        C{storage.conf} instead of the host's, and C{TMPDIR} (where images
        are unpacked) under the engine's directory.
        """
        environ = super().environment()
        environ["CONTAINERS_CONF"] = str(self.directory / "containers.conf")
        environ["CONTAINERS_STORAGE_CONF"] = str(self.directory / "storage.conf")
        environ["TMPDIR"] = str(self.directory / "imagetmp")
        return environ

    def serviceCommand(self) -> list[str]:
        executable = podmanExecutable()
        if executable is None:
            raise DockerEngineError(MISSING.format("podman"))
        return [
            executable,
            *self.globalOptions(),
            "system",
            "service",
            "--time=0",
            self.url,
        ]

    def runHealthcheck(
        self, containerId: str, timeout: float = 30
    ) -> defer.Deferred[int]:
        """
        Run a container's health check once with C{podman healthcheck
        run} (the engine runs none by itself on these machines) and fire
        with its exit code: 0 when the check passed, 1 when it failed (the
        status turns C{unhealthy} after C{retries} failures in a row).  The
        engine records the result in C{State.Health} and emits a
        C{health_status} event, whose C{HealthStatus} is the status
        I{before} this result.
        """

        async def run() -> int:
            _, err, code = await self.podman(
                "healthcheck", "run", containerId, timeout=timeout
            )
            if code not in (0, 1):
                raise DockerEngineError(
                    f"podman healthcheck run exited with {code}: {err.decode()}"
                )
            return code

        return defer.Deferred.fromCoroutine(run())

    def podman(
        self, *arguments: str, timeout: float = 30
    ) -> defer.Deferred[tuple[bytes, bytes, int]]:
        """
        Run C{podman <global options> <arguments>} on this engine's storage
        (the service need not be running); fire with its stdout, stderr and
        exit code.  It is killed after C{timeout} seconds (then this fails
        with L{subprocess.TimeoutExpired}).
        """
        return deferToThread(self._podman, arguments, timeout)

    def _podman(
        self, arguments: Sequence[str], timeout: float
    ) -> tuple[bytes, bytes, int]:
        """
        L{podman}, blocking.
        """
        executable = podmanExecutable()
        if executable is None:
            raise DockerEngineError(MISSING.format("podman"))
        done = subprocess.run(
            [executable, *self.globalOptions(), *arguments],
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
        return done.stdout, done.stderr, done.returncode

    def _removeWithoutService(self) -> None:
        try:
            self._podman(["rm", "--all", "--force", "--time=0"], timeout=30)
        except (OSError, subprocess.SubprocessError, DockerEngineError):
            pass


class DockerdEngine(DockerEngine):
    """
    Docker's own engine, Debian's C{dockerd}, in a network namespace of its
    own (see the module's docstring), with C{--live-restore} so that its
    containers outlive a stop of the service, as podman's do.

    The namespace is held by a C{sleep} process of ours (so that a restarted
    service comes back into the same one), made on first L{start} and
    killed by L{cleanup}; C{dockerd} runs in a mount namespace of its own
    too, so that nothing it mounts is seen outside it.  Its data root,
    exec root (with its C{containerd}), pid file and socket are under the
    engine's directory.

    @ivar namespace: the file to enter the network namespace by, once made.
    """

    kind = "docker"
    logName = "dockerd.log"
    # Its port proxies (docker-proxy) end with it, and come back with it.
    publishesWhileStopped = False

    def __init__(self, *arguments: Any, **keywords: Any) -> None:
        self._holder: subprocess.Popen[bytes] | None = None
        super().__init__(*arguments, **keywords)

    def defaultNetwork(self) -> str:
        return "bridge"

    @property
    def namespace(self) -> str | None:
        holder = self._holder
        if holder is None or holder.poll() is not None:
            return None
        return f"/proc/{holder.pid}/ns/net"

    def serviceCommand(self) -> list[str]:
        executable = dockerdExecutable()
        if executable is None:
            raise DockerEngineError(MISSING_DOCKERD)
        where = self.directory
        return [
            "/usr/bin/nsenter",
            f"--net={self._network()}",
            "/usr/bin/unshare",
            "--mount",
            "--propagation=private",
            executable,
            f"--host={self.url}",
            f"--data-root={where / 'root'}",
            f"--exec-root={where / 'exec'}",
            f"--pidfile={where / 'docker.pid'}",
            "--storage-driver=vfs",
            "--live-restore",
            "--ip6tables=false",
        ]

    def environment(self) -> dict[str, str]:
        environ = super().environment()
        environ["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
        return environ

    def _network(self) -> str:
        """
        The namespace file of the engine's network, made (with C{lo} up)
        by a holding process on first use (blocking, for at most 10 s).
        """
        found = self.namespace
        if found is not None:
            return found
        argv = ["/usr/bin/unshare", "--net", "/bin/sh", "-c", HOLD_NETWORK]
        holder = subprocess.Popen(argv, stdin=subprocess.DEVNULL, close_fds=True)
        self._holder = holder
        deadline = time.monotonic() + 10
        comm = Path(f"/proc/{holder.pid}/comm")
        while comm.read_text().strip() != "sleep":
            if holder.poll() is not None or time.monotonic() > deadline:
                raise DockerEngineError(
                    f"could not make a network namespace ({holder.returncode})"
                )
            time.sleep(0.01)
        return f"/proc/{holder.pid}/ns/net"

    def join(self, case: TestCase) -> None:
        """
        Move the reactor's thread into the engine's network namespace until
        C{case}'s cleanup (see L{tests.netns.enterNetwork}): the test's
        sockets, in-process nodes and children then reach the ports it
        publishes on 127.0.0.1.
        """
        namespace = self.namespace
        assert namespace is not None, f"{self} has not started"
        enterNetwork(case, namespace)

    def inNetwork(self, argv: Sequence[str]) -> list[str]:
        """
        C{argv} run in the engine's network namespace (through C{nsenter}).
        """
        namespace = self.namespace
        assert namespace is not None, f"{self} has not started"
        return ["/usr/bin/nsenter", f"--net={namespace}", *argv]

    def runHealthcheck(
        self, containerId: str, timeout: float = 30
    ) -> defer.Deferred[int]:
        """
        Wait for the engine's next run of a container's health check (it
        runs them itself, every C{interval}) and fire with its exit code.
        """

        async def results() -> int:
            before = await self._lastHealthResult(containerId)

            async def next() -> int | None:
                last = await self._lastHealthResult(containerId)
                return int(last["ExitCode"]) if last and last != before else None

            return await pollUntil(next, timeout=timeout, every=0.05)

        return defer.Deferred.fromCoroutine(results())

    def startingHealthcheck(self, path: str) -> dict[str, Any]:
        """
        Docker runs checks every second: a long start period keeps failures
        before the first success from counting.
        """
        return httpHealthcheck(path, startPeriod=STARTING_PERIOD)

    async def _lastHealthResult(self, containerId: str) -> dict[str, Any] | None:
        """
        The latest entry of a container's health log (Docker keeps five).
        """
        state = (await self.inspectContainer(containerId))["State"]
        log = (state.get("Health") or {}).get("Log") or []
        return dict(log[-1]) if log else None

    def _released(self) -> None:
        holder, self._holder = self._holder, None
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait(10)


class EngineEvents:
    """
    An engine's C{events} stream, read in a thread: C{events} and
    C{received} (the C{time.time()} each arrived, to compare with an
    event's C{timeNano}) grow as events arrive.

    @ivar events: the events, as C{client.api.events(decode=True)} gives
        them.
    @ivar error: the exception that ended the stream, if any.
    """

    def __init__(self, engine: DockerEngine, filters: Mapping[str, Any] | None) -> None:
        self.engine = engine
        self.filters = dict(filters or {})
        self.events: list[dict[str, Any]] = []
        self.received: list[float] = []
        self.error: BaseException | None = None
        self.done = False
        self._stream: Any = None
        self._client: Any = None
        self._closing = False
        self._started: defer.Deferred[EngineEvents] = defer.Deferred()
        self._endWaiters: list[defer.Deferred[BaseException | None]] = []

    def start(self) -> defer.Deferred[EngineEvents]:
        """
        Start reading; fire with this watcher once the engine has answered
        the subscription.
        """
        deferToThread(self._read).addBoth(self._ended)
        return self._started

    def _read(self) -> None:
        self._client = self.engine.newClient(timeout=None)
        try:
            self._stream = self._client.api.events(decode=True, filters=self.filters)
        except BaseException as e:
            reactor.callFromThread(self._started.errback, Failure(e))  # type: ignore[attr-defined]
            raise
        reactor.callFromThread(self._started.callback, self)  # type: ignore[attr-defined]
        for event in self._stream:
            reactor.callFromThread(self._received, event, time.time())  # type: ignore[attr-defined]

    def _received(self, event: dict[str, Any], when: float) -> None:
        self.events.append(event)
        self.received.append(when)

    def _ended(self, result: None | Failure) -> None:
        if isinstance(result, Failure) and not self._closing:
            self.error = result.value
        if not self._started.called:
            self._started.errback(
                result
                if isinstance(result, Failure)
                else Failure(RuntimeError("the event stream ended at once"))
            )
        self.done = True
        self._closeClient()
        waiters, self._endWaiters = self._endWaiters, []
        for waiter in waiters:
            waiter.callback(self.error)

    def _closeClient(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    @property
    def ended(self) -> defer.Deferred[BaseException | None]:
        """
        Fires when the stream has ended: with the exception that ended it
        (as docker-py raised it), or with L{None} when it ended cleanly or
        was closed.  Each access gives a new Deferred.
        """
        if self.done:
            return defer.succeed(self.error)
        waiter: defer.Deferred[BaseException | None] = defer.Deferred()
        self._endWaiters.append(waiter)
        return waiter

    def close(self) -> defer.Deferred[BaseException | None]:
        """
        Close the stream and fire C{ended}.
        """
        self.closeNow()
        return self.ended

    def closeNow(self) -> None:
        """
        Close the stream's connection without waiting for the reading
        thread to notice.
        """
        self._closing = True
        stream = self._stream
        if stream is not None and not self.done:
            try:
                stream.close()
            except Exception:
                pass

    def waitFor(
        self,
        action: str | None = None,
        containerId: str | None = None,
        *,
        where: Callable[[dict[str, Any]], bool] | None = None,
        after: int = 0,
        timeout: float = 10,
    ) -> defer.Deferred[dict[str, Any]]:
        """
        Fire with the first event from index C{after} on with this
        C{Action}, about this container and matching C{where}; fail with
        L{TimeoutError} after C{timeout} seconds.
        """

        def matches(event: dict[str, Any]) -> bool:
            return (
                (action is None or event.get("Action") == action)
                and (containerId is None or event.get("id") == containerId)
                and (where is None or where(event))
            )

        async def found() -> dict[str, Any] | None:
            for event in self.events[after:]:
                if matches(event):
                    return event
            if self.done:
                raise RuntimeError(f"the event stream ended ({self.error!r})")
            return None

        return defer.Deferred.fromCoroutine(
            pollUntil(found, timeout=timeout, every=0.01)
        )

    def actions(self, containerId: str) -> list[str]:
        """
        The C{Action} of each event so far about this container, in order.
        """
        return [e.get("Action", "") for e in self.events if e.get("id") == containerId]


def leftoverProcesses(directory: Path) -> list[int]:
    """
    The IDs of processes (other than this one) whose command line names
    C{directory}: what an engine there started and left running.
    """
    needle = f"{directory}/".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            commandLine = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in commandLine:
            found.append(int(entry.name))
    return found


def mountsUnder(directory: Path) -> list[str]:
    """
    The mount points under C{directory}, deepest first.
    """
    prefix = f"{directory}/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[4] for line in lines if len(line.split()) > 4]
    return sorted((p for p in points if p.startswith(prefix)), reverse=True)


ENGINES: dict[str, type[DockerEngine]] = {
    "podman": PodmanEngine,
    "docker": DockerdEngine,
}


async def startDockerEngine(
    case: TestCase, kind: str = "podman", timeout: float = 30, **options: Any
) -> DockerEngine:
    """
    Start an engine of kind C{kind} (see L{ENGINES}) of C{case}'s own
    (C{options} as its constructor takes them), register its
    L{DockerEngine.cleanup}, L{join<DockerEngine.join>} it, and return it
    once its API answers.
    """
    engine = ENGINES[kind](**options)
    case.addCleanup(engine.cleanup)
    await engine.start(timeout)
    engine.join(case)
    return engine


_shared: dict[str, DockerEngine] = {}


async def sharedDockerEngine(
    case: TestCase | None = None, kind: str = "podman", timeout: float = 30
) -> DockerEngine:
    """
    This process's shared engine of kind C{kind}: started on first use (and
    again if it is not running), cleaned up when the interpreter exits, and
    L{joined<DockerEngine.join>} by C{case}.  Tests that share it must
    remove their containers (L{runContainer} does) and must not stop it;
    use L{startDockerEngine} to stop or restart one.
    """
    if kind not in _shared:
        engine = ENGINES[kind]()
        _shared[kind] = engine
        atexit.register(engine.cleanupNow)
    await _shared[kind].start(timeout)
    if case is not None:
        _shared[kind].join(case)
    return _shared[kind]


async def runContainer(
    case: TestCase,
    engine: DockerEngine,
    labels: Mapping[str, str] | None = None,
    **options: Any,
) -> str:
    """
    L{DockerEngine.runContainer} (C{options} as it takes them), with the
    container's removal registered with C{case}; return its ID.
    """
    containerId = await engine.runContainer(labels, **options)
    case.addCleanup(engine.removeContainer, containerId)
    return containerId


async def fetchWhenServing(
    port: int, path: str = "/", host: str = "127.0.0.1", timeout: float = 10
) -> bytes:
    """
    GET C{http://host:port/path} until it answers 200 (a container's
    server may not listen yet); return the body.  Fail with
    L{TimeoutError} after C{timeout} seconds.  Only for loopback hosts.
    """
    assert host.startswith("127."), f"{host} is not a loopback address"

    async def fetched() -> bytes | None:
        try:
            response = await treq.get(
                f"http://{host}:{port}{path}", persistent=False, timeout=2
            )
        except (ConnectError, ConnectingCancelledError, ResponseNeverReceived):
            return None
        except defer.CancelledError:
            return None
        body: bytes = await response.content()
        return body if response.code == 200 else None

    return await pollUntil(fetched, timeout=timeout, every=0.02)


__all__ = [
    "API_VERSION",
    "BUSYBOX_APPLETS",
    "CALL_TIMEOUT",
    "CONTAINERS_CONF",
    "DEFAULT_NETWORK",
    "HTTPD_COMMAND",
    "IMAGE",
    "IMAGE_REPOSITORY",
    "INDEX_BODY",
    "NETWORK_CONFIG_DIR",
    "SECOND",
    "ENGINES",
    "PUBLISHED",
    "DockerEngine",
    "DockerEngineError",
    "DockerdEngine",
    "PodmanEngine",
    "dockerdExecutable",
    "EngineEvents",
    "busyboxExecutable",
    "catatonitExecutable",
    "dockerEngineSkipReason",
    "fetchWhenServing",
    "httpHealthcheck",
    "imageArchive",
    "isStaticExecutable",
    "leftoverProcesses",
    "mountsUnder",
    "podmanExecutable",
    "runContainer",
    "runcExecutable",
    "sharedDockerEngine",
    "startDockerEngine",
]
