"""
The JSON status API, with the Go Sidecar's paths and shapes:
C{/api/state.json}, C{/api/services.json}, C{/api/services/<name>.json};
C{/api/watch} (see L{sidecar.web.watch}); and its own:
C{/api/members.json}, the cluster's members as this node
sees them, C{/api/checks.json}, what this node's checks last said,
C{/api/haproxy.json}, what its HAProxy is doing, and C{/api/health},
whether it is up and in a cluster.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from twisted.logger import Logger
from twisted.web.http import (
    ACCEPTED,
    BAD_REQUEST,
    NOT_ALLOWED,
    NOT_FOUND,
    OK,
    SERVICE_UNAVAILABLE,
)
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from sidecar.catalog import ServicesState
from sidecar.catalog.codec import dumps
from sidecar.catalog.documents import (
    serviceDocument,
    servicesDocument,
    stateDocument,
)
from sidecar.interfaces import (
    IDrainControl,
    IHealthReport,
    IMembership,
    IProxyReport,
)

from .watch import Watcher

_READ_METHODS = (b"GET", b"HEAD")


class APIError(Exception):
    """
    A request the API refuses: an HTTP status and a message for the
    C{{"status": "error", "message": ...}} body.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class APIResource(Resource):
    """
    C{/api/...}: answers from the catalog; reads only.
    """

    isLeaf = True
    log = Logger()

    def __init__(
        self,
        state: ServicesState,
        membership: IMembership,
        health: IHealthReport,
        proxy: IProxyReport | None,
        reactor: Any,
        watchers: set[Watcher] | None = None,
        drains: IDrainControl | None = None,
    ) -> None:
        super().__init__()
        self._state = state
        self._membership = membership
        self._health = health
        self._proxy = proxy
        self._drains = drains
        self._reactor = reactor
        self.watchers: set[Watcher] = set() if watchers is None else watchers

    def render(self, request: Request) -> bytes | int:  # type: ignore[override]
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Access-Control-Allow-Origin", b"*")
        try:
            segments = _segments(request)
            if (
                len(segments) == 3
                and segments[0] == "services"
                and segments[2] == "drain"
            ):
                document, code = self._drain(request.method, segments[1])
                request.setResponseCode(code)
                return dumps(document, indent=2)
            if request.method not in _READ_METHODS:
                request.setHeader(b"Allow", b", ".join(_READ_METHODS))
                raise APIError(NOT_ALLOWED, "method not allowed")
            if segments == ["watch"] and request.method == b"GET":
                return self._watch(request)
            document, indent = self._route(segments)
        except APIError as e:
            self.log.debug(
                "refused {method} {uri}: {message}",
                method=request.method,
                uri=request.uri,
                message=e.message,
            )
            request.setResponseCode(e.code)
            return dumps({"status": "error", "message": e.message})
        return dumps(document, indent=indent)

    def _watch(self, request: Request) -> int:
        choice = request.args.get(b"by_service", [b"true"])[0].lower()  # type: ignore[union-attr]
        byService = choice != b"false"
        Watcher(request, self._state, byService, self._reactor, self.watchers).start()
        return NOT_DONE_YET

    def _drain(self, method: bytes, serviceID: str) -> tuple[Any, int]:
        if method not in (b"POST", b"DELETE"):
            raise APIError(NOT_ALLOWED, "use POST to drain, DELETE to undrain")
        if self._drains is None:
            raise APIError(NOT_FOUND, "this node cannot drain services")
        try:
            if method == b"POST":
                service = self._drains.drain(serviceID)
                status = "DRAINING"
            else:
                service = self._drains.undrain(serviceID)
                status = service.status.name
        except KeyError:
            raise APIError(
                NOT_FOUND, f"no service with ID {serviceID!r} runs on this node"
            ) from None
        message = f"Service {service.name!r} instance {service.id!r} set to {status}"
        self.log.info("{message}", message=message)
        return {"Message": message}, ACCEPTED if method == b"POST" else OK

    def _nodeHealth(self) -> dict[str, Any]:
        members = len(self._membership.memberNames())
        inCluster = members > 1
        if not inCluster and self._membership.seeded:
            # Given seeds, yet alone: up, but not where it should be.
            raise APIError(
                SERVICE_UNAVAILABLE,
                "this node is up but sees no other member of its cluster",
            )
        return {
            "Status": "up",
            "Hostname": self._state.hostname,
            "ClusterName": self._membership.clusterName,
            "Members": members,
            "InCluster": inCluster,
            "GoPeers": self._membership.goPeers(),
        }

    def _route(self, segments: list[str]) -> tuple[Any, int | None]:
        match [_splitExtension(segment) for segment in segments]:
            case [("state", extension)]:
                _requireJSON(extension)
                return stateDocument(self._state), None
            case [("services", extension)]:
                _requireJSON(extension)
                names = self._membership.memberNames()
                return servicesDocument(self._state, names), 2
            case [("members", extension)]:
                _requireJSON(extension)
                members = {
                    "ClusterName": self._membership.clusterName,
                    "Members": self._membership.members(),
                }
                return members, 2
            case [("health", extension)]:
                if extension not in ("", "json"):
                    _requireJSON(extension)
                return self._nodeHealth(), 2
            case [("checks", extension)]:
                _requireJSON(extension)
                checks = {
                    "Hostname": self._state.hostname,
                    "Checks": self._health.report(),
                }
                return checks, 2
            case [("haproxy", extension)]:
                _requireJSON(extension)
                if self._proxy is None:
                    return {"Enabled": False}, 2
                return {"Enabled": True, **self._proxy.status()}, 2
            case [("services", ""), (name, extension)]:
                _requireJSON(extension)
                document = serviceDocument(self._state, name)
                if document is None:
                    raise APIError(NOT_FOUND, f"no instances of {name} found")
                return document, 2
        raise APIError(NOT_FOUND, f"no such resource: /api/{'/'.join(segments)}")


def _splitExtension(segment: str) -> tuple[str, str]:
    stem, dot, extension = segment.rpartition(".")
    return (stem, extension) if dot else (segment, "")


def _requireJSON(extension: str) -> None:
    if extension != "json":
        raise APIError(NOT_FOUND, "Not Found - Invalid content type extension")


def _segments(request: Request) -> list[str]:
    try:
        return [
            unquote(segment.decode("ascii"), errors="strict")
            for segment in request.postpath or []
        ]
    except UnicodeDecodeError:
        raise APIError(BAD_REQUEST, "the path is not valid UTF-8") from None
