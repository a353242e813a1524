"""
L{HAProxyWriter}: brings a running HAProxy in line with a L{ProxyModel}.

A change that keeps the frontends as they are (an instance turning healthy
or not, joining or leaving a backend) goes through HAProxy's runtime API,
with no reload at all; the configuration file is still rewritten, so that
a later start or reload matches.  Any other change is a new file and a
hitless reload of the master-worker process.  A file is always validated
(C{haproxy -c}) before it replaces the one in use; a file HAProxy refuses
leaves the running configuration serving, and the error is kept for the
API.  A file that passes the check but fails at the reload (a port it
cannot bind) is rolled back to the one HAProxy ran before.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sidecar.interfaces import IProxyWriter

from .model import Frontend, ProxyModel, Server
from .runtime import RuntimeAPI, RuntimeCommandError
from .template import ProxyTemplate, ProxyTemplateError, TemplateSettings

# How long a reload may take before the new worker answers.
RELOAD_TIMEOUT = 10.0
# How long a soft stop may take before HAProxy is terminated.
STOP_GRACE = 5.0


class ProxyError(Exception):
    """
    HAProxy refused a configuration, or could not be reloaded; one line.
    """


@dataclass(frozen=True)
class HAProxySettings:
    """
    @ivar configFile: the configuration HAProxy runs.
    @ivar binary: the C{haproxy} program.
    @ivar reloadCommand: for a HAProxy we do not manage, how to reload it.
    """

    configFile: str
    binary: str
    pidFile: str
    manageProcess: bool = True
    reloadCommand: str = ""


def leftBehind(pidFile: str, configFile: str) -> int | None:
    """
    The pid of a HAProxy master that C{pidFile} names and that still runs
    on C{configFile}: one an earlier node started and could not stop (it
    was killed).  L{None} when there is none, or where Linux's C{/proc}
    cannot tell (a pid reused by another program must not be signalled).
    """
    try:
        with open(pidFile) as pids:
            pid = int(pids.readline())
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().decode("utf-8", "replace").split("\0")
        # Its arguments are relative to its own working directory.
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (OSError, ValueError):
        return None
    if not os.path.basename(argv[0]).startswith("haproxy"):
        return None
    wanted = os.path.realpath(configFile)
    files = {os.path.realpath(os.path.join(cwd, arg)) for arg in argv[1:] if arg}
    return pid if wanted in files else None


class ManagedHAProxy(ProcessProtocol):
    """
    HAProxy in master-worker mode, as our child: started once, reloaded by
    C{SIGUSR2} (the master starts new workers on the new file and lets the
    old ones finish their connections).
    """

    log = Logger()

    def __init__(
        self, reactor: Any, settings: HAProxySettings, adminSocket: str
    ) -> None:
        self._reactor = reactor
        self._settings = settings
        self._adminSocket = adminSocket
        self.ended: Deferred[None] = Deferred()
        self.output: list[bytes] = []
        self.stopping = False

    def start(self) -> None:
        binary, config = self._settings.binary, self._settings.configFile
        argv = [binary, "-W", "-db", "-f", config, "-p", self._settings.pidFile]
        earlier = leftBehind(self._settings.pidFile, config)
        if earlier is not None:
            # It holds the ports: the new master takes its listening sockets
            # through the admin socket (the template's "expose-fd
            # listeners") and tells it to finish its connections and exit,
            # so no connection is refused in between.
            argv += ["-x", self._adminSocket, "-sf", str(earlier)]
            self.log.warn(
                "taking over from haproxy {pid}, left running by an earlier node",
                pid=earlier,
            )
        self._reactor.spawnProcess(self, binary, argv, env=dict(os.environ))

    def reload(self) -> None:
        if self.transport is not None and self.transport.pid is not None:  # type: ignore[attr-defined]
            os.kill(self.transport.pid, signal.SIGUSR2)  # type: ignore[attr-defined]

    def stop(self) -> Deferred[None]:
        """
        A soft stop (C{SIGUSR1}: requests under way finish), then
        C{SIGTERM} after L{STOP_GRACE} seconds.
        """
        self.stopping = True
        if self.running:
            self.transport.signalProcess(signal.SIGUSR1)  # type: ignore[union-attr]
            hard = self._reactor.callLater(STOP_GRACE, self._terminate)
            self.ended.addBoth(lambda result: hard.active() and hard.cancel())
        return self.ended

    def _terminate(self) -> None:
        if self.running:
            self.transport.signalProcess("TERM")  # type: ignore[union-attr]

    @property
    def running(self) -> bool:
        return self.transport is not None and self.transport.pid is not None  # type: ignore[attr-defined]

    def outReceived(self, data: bytes) -> None:
        self._keep(data)

    def errReceived(self, data: bytes) -> None:
        self._keep(data)

    def _keep(self, data: bytes) -> None:
        self.output = (self.output + [data])[-50:]
        for line in data.decode("utf-8", "replace").splitlines():
            if "[ALERT]" in line:
                self.log.warn("haproxy: {line}", line=line.strip())
            elif "[WARNING]" in line:
                # HAProxy's warnings are mostly its own chatter (a reload's
                # old workers leaving, every server taken out or put back),
                # all of which the node logs in its own words.
                self.log.debug("haproxy: {line}", line=line.strip())

    def processEnded(self, reason: Failure) -> None:
        if not self.stopping:
            self.log.error(
                "haproxy ended unexpectedly: {why}", why=reason.getErrorMessage()
            )
        elif not reason.check(ProcessDone):
            self.log.info("haproxy ended: {why}", why=reason.getErrorMessage())
        self.ended.callback(None)


@implementer(IProxyWriter)
class HAProxyWriter:
    """
    Applies models to one HAProxy: see the module's description.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        settings: HAProxySettings,
        template: ProxyTemplate,
        templateSettings: TemplateSettings,
    ) -> None:
        self._reactor = reactor
        self._settings = settings
        self.template = template
        self._templateSettings = templateSettings
        self._runtime = RuntimeAPI(reactor, templateSettings.admin_socket)
        self._process: ManagedHAProxy | None = None
        self.running: ProxyModel | None = None
        # Told when a HAProxy we manage ends by itself (a crash): it must be
        # started again.
        self.exited: Callable[[], None] = lambda: None
        self.reloads = 0
        self.runtimeChanges = 0
        self.lastError: str | None = None
        self.lastApplied: float | None = None
        # Servers taken out at runtime that HAProxy could not delete yet
        # (a request was under way): "backend/server" -> (address, port).
        self._parked: dict[str, tuple[str, int]] = {}

    # -- IProxyWriter -------------------------------------------------------

    async def apply(self, model: ProxyModel) -> str:
        """
        Make HAProxy do what C{model} says.

        @return: how: C{"unchanged"}, C{"runtime"} or C{"reload"}.
        @raise ProxyError: when the file is refused or HAProxy cannot be
            reloaded; what ran before keeps running.
        """
        try:
            how = await self._apply(model)
        except (ProxyError, ProxyTemplateError) as e:
            self.lastError = str(e)
            raise ProxyError(str(e)) from None
        except OSError as e:
            # A full disk, a read-only directory: the running file stays.
            self.lastError = _fileProblem(e)
            raise ProxyError(self.lastError) from None
        self.lastError = None
        self.lastApplied = self._reactor.seconds()
        return how

    def status(self) -> dict[str, Any]:
        return {
            "ConfigFile": self._settings.configFile,
            "Managed": self._settings.manageProcess,
            "Running": self._process is not None and self._process.running
            if self._settings.manageProcess
            else None,
            "Reloads": self.reloads,
            "RuntimeChanges": self.runtimeChanges,
            "ServersDraining": sorted(self._parked),
            "LastError": self.lastError,
        }

    async def stop(self) -> None:
        if self._process is not None:
            await self._process.stop()
            self._process = None

    # -- internals ----------------------------------------------------------

    async def _apply(self, model: ProxyModel) -> str:
        if model == self.running and self._processUp():
            return "unchanged"
        text = self.template.render(model, self._templateSettings)
        # Nothing changes unless HAProxy accepts the whole new file.
        before = await self._replaceFile(text)
        try:
            return await self._runNewFile(model)
        except ProxyError:
            self._restoreFile(before)
            raise

    async def _runNewFile(self, model: ProxyModel) -> str:
        if self.running is not None and self._processUp():
            if model.layout() == self.running.layout():
                try:
                    await self._changeAtRuntime(self.running, model)
                except RuntimeCommandError as e:
                    self.log.warn(
                        "runtime change failed ({problem}); reloading instead",
                        problem=e,
                    )
                else:
                    self.running = model
                    self.runtimeChanges += 1
                    return "runtime"
        await self._reload()
        self._parked.clear()
        self.running = model
        return "reload"

    def _processUp(self) -> bool:
        if not self._settings.manageProcess:
            return True
        return self._process is not None and self._process.running

    async def _replaceFile(self, text: str) -> str | None:
        """
        Validate C{text} and make it the configuration file.

        @return: what the file held before, or L{None} if there was none.
        """
        path = self._settings.configFile
        try:
            with open(path, encoding="utf-8") as f:
                before: str | None = f.read()
        except FileNotFoundError:
            before = None
        candidate = f"{path}.new"
        try:
            with open(candidate, "w", encoding="utf-8") as f:
                f.write(text)
            await self._validate(candidate)
            os.replace(candidate, path)
        finally:
            if os.path.exists(candidate):
                os.unlink(candidate)
        return before

    def _restoreFile(self, before: str | None) -> None:
        """
        Put back the file HAProxy ran before a reload failed, so that a
        later start or reload does not fail again on the refused one.
        """
        path = self._settings.configFile
        if before is None:
            os.unlink(path)
        else:
            with open(f"{path}.new", "w", encoding="utf-8") as f:
                f.write(before)
            os.replace(f"{path}.new", path)
        self.log.warn(
            "haproxy could not run {path}: the previous file is back", path=path
        )

    async def _validate(self, path: str) -> None:
        binary = self._settings.binary
        if shutil.which(binary) is None:
            raise ProxyError(
                f"cannot check the new configuration: no haproxy program {binary!r}"
            )
        out, err, code = await getProcessOutputAndValue(
            binary, ["-c", "-f", path], env=dict(os.environ), reactor=self._reactor
        )
        if code != 0:
            said = (out + err).decode("utf-8", "replace")
            alerts = [
                line.split(":", 1)[-1].strip() if "[ALERT]" in line else line.strip()
                for line in said.splitlines()
                if "[ALERT]" in line
            ]
            raise ProxyError(
                "haproxy refused the new configuration, the running one stays: "
                + " / ".join(alerts or [said.strip() or f"exit status {code}"])
            )

    async def _reload(self) -> None:
        if not self._settings.manageProcess:
            previous = await self._workerPid()
            await self._runReloadCommand()
            await self._workerAnswers(previous)
        elif self._process is None or not self._process.running:
            process = self._process = ManagedHAProxy(
                self._reactor, self._settings, self._templateSettings.admin_socket
            )
            process.ended.addCallback(lambda _: self._ended(process))
            # Usually none answers; one left by an earlier node, taken over,
            # does until the new one has started.
            previous = await self._workerPid()
            process.start()
            await self._workerAnswers(previous)
        else:
            previous = await self._workerPid()
            self._process.reload()
            await self._workerAnswers(previous)
        self.reloads += 1

    def _ended(self, process: ManagedHAProxy) -> None:
        if process is self._process and not process.stopping:
            self._process = None
            self.running = None
            self.lastError = "haproxy ended unexpectedly; starting it again"
            self.exited()

    async def _runReloadCommand(self) -> None:
        command = self._settings.reloadCommand
        out, err, code = await getProcessOutputAndValue(
            "/bin/sh", ["-c", command], env=dict(os.environ), reactor=self._reactor
        )
        if code != 0:
            said = (out + err).decode("utf-8", "replace").strip()
            raise ProxyError(f"{command!r} failed ({code}): {said}")

    async def _workerPid(self) -> str | None:
        try:
            info = await self._runtime.run("show info")
        except RuntimeCommandError:
            return None
        for line in info.splitlines():
            if line.startswith("Pid:"):
                return line.split(":", 1)[1].strip()
        return None

    async def _workerAnswers(self, previous: str | None) -> None:
        # A reload is done when a new worker answers on the admin socket:
        # runtime changes sent earlier would go to the old one, and be lost.
        deadline = self._reactor.seconds() + RELOAD_TIMEOUT
        while self._reactor.seconds() < deadline:
            if self._process is not None and not self._process.running:
                break
            pid = await self._workerPid()
            if pid is not None and pid != previous:
                return
            await deferLater(self._reactor, 0.02)
        output = b"".join(self._process.output if self._process else []).decode(
            "utf-8", "replace"
        )
        raise ProxyError(
            f"haproxy did not answer on {self._runtime.socketPath} after a reload"
            f" within {RELOAD_TIMEOUT:g} s: {output.strip()[-300:]}"
        )

    async def _changeAtRuntime(self, before: ProxyModel, after: ProxyModel) -> None:
        for old, new in zip(before.frontends, after.frontends, strict=True):
            await self._changeBackend(old, new)

    async def _changeBackend(self, old: Frontend, new: Frontend) -> None:
        backend = new.name
        oldServers = {s.name: s for s in old.servers}
        newServers = {s.name: s for s in new.servers}
        for name, server in newServers.items():
            was = oldServers.get(name)
            if was is None:
                await self._addServer(backend, server)
            elif (was.address, was.port) != (server.address, server.port):
                await self._removeServer(backend, was)
                await self._addServer(backend, server)
        for name in oldServers.keys() - newServers.keys():
            await self._removeServer(backend, oldServers[name])

    async def _addServer(self, backend: str, server: Server) -> None:
        target = f"{backend}/{server.name}"
        parked = self._parked.pop(target, None)
        if parked is not None:
            if parked != (server.address, server.port):
                await self._runtime.expect(
                    f"set server {target} addr {server.address} port {server.port}",
                    "IP changed",
                    "port changed",
                    "no need to change",
                )
            await self._runtime.expect(f"set server {target} state ready")
            return
        await self._runtime.expect(
            f"add server {target} {server.address}:{server.port}",
            "New server registered",
        )
        await self._runtime.expect(f"enable server {target}")

    async def _removeServer(self, backend: str, server: Server) -> None:
        target = f"{backend}/{server.name}"
        # No new requests go to it; those under way finish.
        await self._runtime.expect(f"set server {target} state maint")
        try:
            await self._runtime.expect(f"del server {target}", "Server deleted")
        except RuntimeCommandError as e:
            # Still busy: it stays, in maintenance, until the next reload
            # or until it is wanted again.
            self._parked[target] = (server.address, server.port)
            self.log.debug("{problem}", problem=e)


def _fileProblem(error: OSError) -> str:
    """
    One line for a file HAProxy's configuration could not be written to.
    """
    where = f" {error.filename}" if error.filename else ""
    return (
        f"cannot write the proxy configuration{where}: {error.strerror or error}; "
        "the running one stays"
    )
