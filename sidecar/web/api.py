"""
The JSON status API, with the Go Sidecar's paths, shapes, status codes,
headers and error bodies: C{/api/state.json}, C{/api/services.json},
C{/api/services/<name>.json}, C{/api/services/<id>/drain}; C{/api/watch}
(see L{sidecar.web.watch}); and its own (see L{sidecar.web.routes}):
C{/api/members.json}, the cluster's members as this node
sees them, C{/api/checks.json}, what this node's checks last said,
C{/api/haproxy.json}, what its HAProxy is doing, C{/api/envoy.json}, what
its xDS clients have (see L{sidecar.proxy.xds}), and C{/api/health},
whether it is up and in a cluster.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import (
    ACCEPTED,
    BAD_REQUEST,
    FORBIDDEN,
    INTERNAL_SERVER_ERROR,
    NOT_ALLOWED,
    NOT_FOUND,
    NOT_MODIFIED,
    OK,
    SERVICE_UNAVAILABLE,
    UNAUTHORIZED,
)
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from sidecar.catalog import ServicesState
from sidecar.catalog.codec import dumps
from sidecar.interfaces import (
    IDrainControl,
    IHealthReport,
    IMembership,
    IProxyReport,
)
from sidecar.problems import Problems
from sidecar.ratelimit import RateLimitedLog

from .bodies import Bodies, Body
from .conditional import acceptsGzip, lastModified, notModified
from .crosssite import crossSiteReason
from .goformat import goQuote
from .routes import API_ROUTES, Match, WrongMethod, match
from .sending import sendBody
from .tokens import bearerFits
from .watch import Watcher

# C{/api/watch} streams served at once, unless configured otherwise.
MAX_WATCHERS = 64


class APIError(Exception):
    """
    A request the API refuses: an HTTP status and a message for the
    L{errorBody}.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def errorBody(message: str) -> bytes:
    """
    The body of a refusal as Go's C{sendJsonError} writes it: a map, so
    its keys are sorted, C{{"message":...,"status":"error"}}.
    """
    return dumps({"message": message, "status": "error"})


def notFound(request: Request) -> bytes:
    """
    Go's answer to a path that fits no route (C{http.NotFound}).
    """
    request.setResponseCode(NOT_FOUND)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    return b"404 page not found\n"


def _readHeaders(request: Request) -> None:
    """
    The headers Go's read handlers set: JSON, and CORS for GET.
    """
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Access-Control-Allow-Origin", b"*")
    request.setHeader(b"Access-Control-Allow-Methods", b"GET")


class APIResource(Resource):
    """
    C{/api/...}: answers from the catalog; reads only.  The catalog's
    documents come from L{Bodies}, encoded once per catalog version, with
    an C{ETag}, a C{Last-Modified} when one can be given, C{304 Not
    Modified} for a client whose copy is current and gzip for one that
    accepts it; a client that sends none of those headers gets the same
    bytes as from the Go Sidecar.
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
        bodies: Bodies,
        watchers: set[Watcher] | None = None,
        drains: IDrainControl | None = None,
        problems: Problems | None = None,
        maxWatchers: int = MAX_WATCHERS,
        token: bytes | None = None,
        envoy: IProxyReport | None = None,
    ) -> None:
        """
        @param token: what a write's C{Authorization: Bearer} must carry;
            L{None}: writes need none.
        @param envoy: the xDS control plane, or L{None} when disabled.
        """
        super().__init__()
        self._token = token
        self._maxWatchers = maxWatchers
        self._problems = Problems(reactor) if problems is None else problems
        self._state = state
        self._bodies = bodies
        self._membership = membership
        self._health = health
        self._proxy = proxy
        self._envoy = envoy
        self._drains = drains
        self._reactor = reactor
        self.watchers: set[Watcher] = set() if watchers is None else watchers
        self._refusals = RateLimitedLog(self.log, reactor)

    def render(self, request: Request) -> bytes | int:  # type: ignore[override]
        try:
            segments = _segments(request)
        except APIError as e:
            return self._refuse(request, e)
        return self._dispatch(request, match(API_ROUTES, segments, request.method))

    def _dispatch(
        self, request: Request, found: Match | WrongMethod | None
    ) -> bytes | int:
        """
        Answer C{request} as the route it matched says.  (The root's Go
        aliases come here too: L{SiteRoot<sidecar.web.server.SiteRoot>}
        hands their whole path over.)
        """
        if found is None:
            return notFound(request)
        if isinstance(found, WrongMethod):
            # As Go: no body, no Content-Type.
            request.setResponseCode(NOT_ALLOWED)
            request.setHeader(b"Allow", b", ".join(sorted(found.allowed)))
            return b""
        handler = getattr(self, f"_answer{found.route.name.capitalize()}")
        try:
            return handler(request, *found.values)  # type: ignore[no-any-return]
        except APIError as e:
            return self._refuse(request, e)

    def _refuse(self, request: Request, error: APIError) -> bytes:
        self.log.debug(
            "refused {method} {uri}: {message}",
            method=request.method,
            uri=request.uri,
            message=error.message,
        )
        request.setHeader(b"Content-Type", b"application/json")
        request.setResponseCode(error.code)
        return errorBody(error.message)

    # -- the routes (see L{API_ROUTES}) ------------------------------------------

    def _answerState(self, request: Request, extension: str) -> int:
        # Go checks the extension before it sets the CORS headers here.
        _requireJSON(extension)
        _readHeaders(request)
        return self._sendCached(request, self._bodies.state())

    def _answerServices(self, request: Request, extension: str) -> int:
        _readHeaders(request)
        _requireJSON(extension)
        return self._sendCached(request, self._bodies.services())

    def _answerService(self, request: Request, name: str, extension: str) -> int:
        _readHeaders(request)
        _requireJSON(extension)
        found = self._bodies.service(name).addCallback(_found, name)
        return self._sendCached(request, found)

    def _answerWatch(self, request: Request) -> int | bytes:
        if len(self.watchers) >= self._maxWatchers:
            self._refusals.warn(
                "API at its limit of {limit} watchers: refused one from {peer}",
                limit=self._maxWatchers,
                peer=request.getClientAddress(),
            )
            request.setHeader(b"Retry-After", b"1")
            raise APIError(
                SERVICE_UNAVAILABLE,
                "too many watchers of this node's API; retry later",
            )
        request.setHeader(b"Content-Type", b"application/json")
        # Exactly "false", as Go's query test.
        choice = request.args.get(b"by_service", [b"true"])[0]  # type: ignore[union-attr]
        byService = choice != b"false"
        Watcher(
            request,
            self._state,
            self._bodies,
            byService,
            self._reactor,
            self.watchers,
            self._refusals,
        ).start()
        return NOT_DONE_YET

    def _answerOptions(self, request: Request, path: str) -> bytes:
        request.setHeader(b"Access-Control-Allow-Origin", b"*")
        request.setHeader(b"Access-Control-Allow-Methods", b"GET")
        return b""

    def _answerMembers(self, request: Request, extension: str) -> bytes:
        _readHeaders(request)
        _requireJSON(extension)
        members = {
            "ClusterName": self._membership.clusterName,
            "Members": self._membership.members(),
        }
        return dumps(members, indent=2)

    def _answerChecks(self, request: Request, extension: str) -> bytes:
        _readHeaders(request)
        _requireJSON(extension)
        checks = {"Hostname": self._state.hostname, "Checks": self._health.report()}
        return dumps(checks, indent=2)

    def _answerHaproxy(self, request: Request, extension: str) -> bytes:
        _readHeaders(request)
        _requireJSON(extension)
        if self._proxy is None:
            return dumps({"Enabled": False}, indent=2)
        return dumps({"Enabled": True, **self._proxy.status()}, indent=2)

    def _answerEnvoy(self, request: Request, extension: str) -> bytes:
        _readHeaders(request)
        _requireJSON(extension)
        if self._envoy is None:
            return dumps({"Enabled": False}, indent=2)
        return dumps({"Enabled": True, **self._envoy.status()}, indent=2)

    def _answerHealth(self, request: Request, extension: str = "json") -> bytes:
        _readHeaders(request)
        _requireJSON(extension)
        return dumps(self._nodeHealth(), indent=2)

    # -- the cached documents -------------------------------------------------

    def _sendCached(self, request: Request, found: Deferred[Body]) -> int:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        found.addCallback(self._sendBody, request, gone)
        found.addErrback(self._sendFailure, request, gone)
        return NOT_DONE_YET

    def _sendBody(
        self, body: Body, request: Request, gone: list[bool]
    ) -> Deferred[None] | None:
        if gone:
            return None
        request.setHeader(b"ETag", body.etag)
        request.setHeader(b"Vary", b"Accept-Encoding")
        now = round(self._reactor.seconds() * 1_000_000_000)
        modified = lastModified(body.modified, now)
        if modified is not None:
            request.setHeader(b"Last-Modified", modified)
        if notModified(
            request.getHeader(b"if-none-match"),
            request.getHeader(b"if-modified-since"),
            body.etag,
            body.modified,
        ):
            request.setResponseCode(NOT_MODIFIED)
            request.finish()
            return None
        if acceptsGzip(request.getHeader(b"accept-encoding")):
            request.setHeader(b"Content-Encoding", b"gzip")
            return self._bodies.gzipped(body).addCallback(_write, request, gone)
        _write(body.data, request, gone)
        return None

    def _sendFailure(
        self, failure: Failure, request: Request, gone: list[bool]
    ) -> None:
        if gone:
            return
        if isinstance(failure.value, APIError):
            error = failure.value
        else:
            # L{Bodies} has logged what went wrong.
            error = APIError(INTERNAL_SERVER_ERROR, "the document could not be made")
        request.responseHeaders.removeHeader(b"Content-Encoding")
        _write(self._refuse(request, error), request, gone)

    def _answerDrain(self, request: Request, serviceID: str) -> bytes:
        """
        POST drains one of this node's services (as Go); DELETE, ours,
        undrains it.
        """
        self._refuseCrossSite(request)
        self._requireToken(request)
        if self._drains is None:
            raise APIError(NOT_FOUND, "this node cannot drain services")
        try:
            if request.method == b"POST":
                service = self._drains.drain(serviceID)
                status = "DRAINING"
            else:
                service = self._drains.undrain(serviceID)
                status = service.status.name
        except KeyError:
            raise APIError(
                NOT_FOUND, f"Not Found - Service ID {goQuote(serviceID)} not found"
            ) from None
        message = (
            f"Service {goQuote(service.name)} instance {goQuote(service.id)} "
            f"set to {status}"
        )
        self.log.info("{message}", message=message)
        request.setHeader(b"Content-Type", b"application/json")
        request.setResponseCode(ACCEPTED if request.method == b"POST" else OK)
        return dumps({"Message": message}, indent=2)

    def _refuseCrossSite(self, request: Request) -> None:
        """
        Refuse a write a browser made for another site's page (see
        L{crossSiteReason}).
        """
        scheme = b"https" if request.isSecure() else b"http"
        host = request.getHeader(b"host") or b""
        why = crossSiteReason(
            request.getHeader(b"origin"),
            request.getHeader(b"content-type"),
            scheme + b"://" + host,
        )
        if why is not None:
            self._refusals.warn(
                "{method} {uri} from {peer}: {why}",
                method=request.method,
                uri=request.uri,
                peer=request.getClientAddress(),
                why=why,
            )
            raise APIError(FORBIDDEN, why)

    def _requireToken(self, request: Request) -> None:
        """
        Refuse a write without the node's bearer token, when it has one.
        """
        if self._token is None:
            return
        if not bearerFits(request.getHeader(b"authorization"), self._token):
            self._refusals.warn(
                "{method} {uri} from {peer}: no valid bearer token",
                method=request.method,
                uri=request.uri,
                peer=request.getClientAddress(),
            )
            request.setHeader(b"WWW-Authenticate", b'Bearer realm="sidecar"')
            raise APIError(UNAUTHORIZED, "this node's writes need its bearer token")

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
            "Warnings": list(self._membership.warnings),
            "GoPeers": self._membership.goPeers(),
            "Problems": [problem.toJSON() for problem in self._problems.current()],
        }


def _found(body: Body | None, name: str) -> Body:
    if body is None:
        raise APIError(NOT_FOUND, f"no instances of {name} found")
    return body


def _write(data: bytes, request: Request, gone: list[bool]) -> None:
    """
    The whole response body, with its length, unless the client has gone.
    """
    if not gone:
        sendBody(request, data)


def _requireJSON(extension: str) -> None:
    if extension != "json":
        raise APIError(NOT_FOUND, "Not Found - Invalid content type extension")


def _segments(request: Request) -> list[str]:
    # Twisted has percent-decoded the segments already: decoding them
    # again would turn C{%2541} into C{A}.
    try:
        return [segment.decode("utf-8") for segment in request.postpath or []]
    except UnicodeDecodeError:
        raise APIError(BAD_REQUEST, "the path is not valid UTF-8") from None
