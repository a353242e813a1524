"""
Static discovery: services listed in a JSON file, for databases and legacy
applications that no container runtime knows about.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from sidecar.catalog.local import LocalService
from sidecar.catalog.timestamps import NANOSECONDS
from sidecar.interfaces import IDiscoverer, IDiscoveryListener
from sidecar.problems import STATIC_FILE, Problems

from .staticfile import StaticFileError, parseStaticFile

_FileSignature = tuple[int, int, int]


@implementer(IDiscoverer)
class StaticDiscoverer(Service):
    """
    Announces the services of a static file and follows the file: it is
    re-read when it changes (checked every C{pollInterval} seconds) and on
    L{reload}.  A broken file is reported and the last good services stay
    announced.
    """

    name = "static"
    log = Logger()

    def __init__(
        self,
        path: str,
        hostname: str,
        advertiseIP: str,
        listener: IDiscoveryListener,
        clock: IReactorTime,
        pollInterval: float = 1.0,
        problems: Problems | None = None,
    ) -> None:
        """
        @param problems: where a broken or unreadable file is shown, until
            it is read and valid again.
        """
        self.path = path
        self._problems = Problems(clock) if problems is None else problems
        self.lastError: str | None = None
        self._hostname = hostname
        self._advertiseIP = advertiseIP
        self._listener = listener
        self._clock = clock
        self._services: list[LocalService] = []
        self._created: dict[str, int] = {}
        self._signature: _FileSignature | None = None
        self._poll = LoopingCall(self._checkForChange)
        self._poll.clock = clock
        self._pollInterval = pollInterval

    def services(self) -> Sequence[LocalService]:
        return list(self._services)

    def startService(self) -> None:
        super().startService()
        self.reload()
        self._poll.start(self._pollInterval, now=False)

    def stopService(self) -> None:
        if self._poll.running:
            self._poll.stop()
        super().stopService()

    def reload(self) -> bool:
        """
        Read the file now and announce what it lists.

        @return: whether the file was read and valid.
        """
        self._signature = self._fileSignature()
        try:
            with open(self.path, "rb") as f:
                data = f.read()
            found = parseStaticFile(data, self.path, self._hostname, self._advertiseIP)
        except OSError as e:
            return self._failed(f"{self.path}: cannot read: {e.strerror}")
        except StaticFileError as e:
            return self._failed(str(e))
        self._services = [self._stampCreated(local) for local in found]
        self._created = {s.service.id: s.service.created for s in self._services}
        if self.lastError is not None:
            self.log.info("static file {path} is valid again", path=self.path)
        self.lastError = None
        self._problems.clear(STATIC_FILE, self.path)
        self.log.info(
            "static file {path}: {count} service(s)",
            path=self.path,
            count=len(self._services),
        )
        self._listener.servicesDiscovered(self.name, self.services())
        return True

    def _failed(self, problem: str) -> bool:
        if problem != self.lastError:
            self.log.error(
                "{problem}; keeping the {count} service(s) last read",
                problem=problem,
                count=len(self._services),
            )
        self.lastError = problem
        self._problems.raise_(STATIC_FILE, self.path, problem)
        return False

    def _stampCreated(self, local: LocalService) -> LocalService:
        # An instance keeps the creation time of when this node first
        # announced it, across re-reads of the file.
        serviceID = local.service.id
        if serviceID not in self._created:
            self._created[serviceID] = round(self._clock.seconds() * NANOSECONDS)
        return replace(
            local, service=replace(local.service, created=self._created[serviceID])
        )

    def _fileSignature(self) -> _FileSignature | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _checkForChange(self) -> None:
        # The poll must outlive any surprise, or the file is never
        # followed again.
        try:
            if self._fileSignature() != self._signature:
                self.reload()
        except Exception:
            self.log.failure("checking static file {path} failed", path=self.path)
