"""
L{APIService}: the HTTP server for the status API, as a Twisted service.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files

from twisted.application.service import Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.ssl import PrivateCertificate
from twisted.logger import Logger
from twisted.web.http import BAD_REQUEST, Request
from twisted.web.resource import Resource
from twisted.web.server import Request as SiteRequest
from twisted.web.server import Site
from twisted.web.static import File
from twisted.web.util import Redirect

from sidecar.catalog import ServicesState
from sidecar.interfaces import (
    IDrainControl,
    IHealthReport,
    IMembership,
    IProxyReport,
)
from sidecar.offload import Offload, offloadFor
from sidecar.problems import Problems
from sidecar.ratelimit import RateLimitedLog

from .api import MAX_WATCHERS, APIResource, errorBody, notFound
from .bodies import Bodies
from .limits import APIChannel, BoundedRequest
from .routes import isAlias
from .serverspage import ServersPage
from .shedding import ConnectionCap
from .watch import Watcher

# Connections the API serves at once, unless configured otherwise.
MAX_CONNECTIONS = 256


class APISite(Site):
    """
    A L{Site} whose access log lines are debug events (a dashboard polling
    every second must not fill the node's log), and whose requests are
    bounded (L{sidecar.web.limits}).

    @ivar refusals: where requests refused at the edge are logged, at
        most one line per period.
    """

    # No "Starting factory <...object at 0x...>" lines in the log.
    noisy = False

    accessLog = Logger()
    # The bounded channel itself, not Twisted's wrapper that can switch
    # to HTTP/2 (which needs TLS with ALPN, and the h2 package).
    protocol = APIChannel  # type: ignore[assignment]
    requestFactory = BoundedRequest

    def __init__(
        self, resource: Resource, watchers: set[Watcher], clock: IReactorTime
    ) -> None:
        super().__init__(resource)
        self.watchers = watchers
        self.refusals = RateLimitedLog(self.accessLog, clock)

    def endStreams(self) -> None:
        """
        End every open C{/api/watch} stream.
        """
        for watcher in list(self.watchers):
            watcher.finish()

    def log(self, request: Request) -> None:
        # Formatted only if an observer keeps the event: at the usual log
        # levels, a request costs no access line.
        self.accessLog.debug(
            "{line}", line=_AccessLine(self._logFormatter, self._logDateTime, request)
        )


class _AccessLine:
    """
    A request's access log line, made when it is first read.
    """

    def __init__(
        self, formatter: Callable[..., str], date: str | None, request: Request
    ) -> None:
        self._formatter = formatter
        self._date = date
        self._request = request

    def __str__(self) -> str:
        return self._formatter(self._date, self._request)


class SiteRoot(Resource):
    """
    C{/}: its children (C{api}, C{ui}, C{servers}, ...), the Go Sidecar's
    aliases of API paths at the root (C{/state.json}, C{/services.json},
    C{/watch}, and ours, C{/services/<name>.json}), and Go's
    C{404 page not found} for anything else.
    """

    def __init__(self, api: APIResource) -> None:
        super().__init__()
        self._api = api

    def getChild(self, path: bytes, request: SiteRequest) -> Resource:  # type: ignore[override]
        segments = [path, *(request.postpath or [])]
        if isAlias([segment.decode("utf-8", "replace") for segment in segments]):
            # The API resource reads the whole path from postpath.
            request.postpath.insert(0, request.prepath.pop())  # type: ignore[union-attr]
            return self._api
        return _NotFound()


class UIFiles(File):
    """
    The web page's static files.  A path segment no file can have (a NUL
    byte, bytes that are not UTF-8) is answered C{400}, quietly: Twisted's
    L{File} would answer it C{500} with a logged traceback, or log it.

    Each is sent with C{Cache-Control: no-cache}: a browser keeps it (and
    chromium its compiled script) but asks each time whether it changed,
    a C{304} when not.  Without it, a browser guesses how long a file
    stays fresh from its age, and after an upgrade could run the old page
    against the new API.
    """

    def render(self, request: SiteRequest) -> bytes | int:  # type: ignore[override]
        request.setHeader(b"Cache-Control", b"no-cache")
        return super().render(request)  # type: ignore[no-any-return]

    def getChild(self, path: bytes, request: SiteRequest) -> Resource:  # type: ignore[override]
        try:
            path.decode("utf-8")
        except UnicodeDecodeError:
            return _BadPath()
        if b"\0" in path:
            return _BadPath()
        return super().getChild(path, request)  # type: ignore[no-any-return]


class _BadPath(Resource):
    isLeaf = True

    def render(self, request: SiteRequest) -> bytes:  # type: ignore[override]
        request.setResponseCode(BAD_REQUEST)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"400 malformed path\n"


class _NotFound(Resource):
    isLeaf = True

    def render(self, request: SiteRequest) -> bytes:  # type: ignore[override]
        return notFound(request)


def makeSite(
    state: ServicesState,
    membership: IMembership,
    health: IHealthReport,
    proxy: IProxyReport | None = None,
    drains: IDrainControl | None = None,
    *,
    reactor: IReactorTime,
    offload: Offload | None = None,
    problems: Problems | None = None,
    maxWatchers: int = MAX_WATCHERS,
    token: bytes | None = None,
    envoy: IProxyReport | None = None,
) -> APISite:
    """
    The site behind the API: C{/api/...} for the JSON endpoints, the Go
    aliases at the root and Go's C{/servers} page, C{/ui/} for the web
    page (and C{/} leads there); C{reactor} runs the watch streams'
    heartbeats and dates the documents.

    @param offload: where documents are encoded; by default the reactor's
        thread pool when it has one, else inline.
    @param problems: the node's problems, listed by C{/api/health}.
    @param maxWatchers: C{/api/watch} streams served at once; one more is
        answered C{503}.
    @param token: the bearer token writes need, or L{None} for none.
    @param envoy: the xDS control plane, for C{/api/envoy.json}.
    """
    watchers: set[Watcher] = set()
    bodies = Bodies(
        state,
        membership,
        reactor,
        offloadFor(reactor) if offload is None else offload,
    )
    api = APIResource(
        state,
        membership,
        health,
        proxy,
        reactor,
        bodies,
        watchers=watchers,
        drains=drains,
        problems=problems,
        maxWatchers=maxWatchers,
        token=token,
        envoy=envoy,
    )
    root = SiteRoot(api)
    root.putChild(b"api", api)
    root.putChild(b"servers", ServersPage(state, membership, reactor))
    # The web page: static files, no build step.
    root.putChild(b"ui", UIFiles(str(files(__package__).joinpath("ui"))))
    root.putChild(b"", Redirect(b"/ui/"))
    return APISite(root, watchers, reactor)


class APIService(Service):
    """
    Listens for HTTP on C{host:port} while running.  Like Twisted's own
    C{TCPServer}, it binds in L{privilegedStartService} when twistd calls it,
    so that a port that cannot be had fails the start, not a later moment.
    It serves at most C{maxConnections} connections at once; more are
    answered 503 with C{Retry-After} (see L{ConnectionCap}).  Given C{tls}
    (a certificate and its key, in PEM), it serves HTTPS only.

    @ivar port: the listening port while running, else L{None}.
    @ivar factory: the L{ConnectionCap} in front of the site.
    """

    log = Logger()

    def __init__(
        self,
        reactor: IReactorTCP,
        site: Site,
        host: str,
        port: int,
        maxConnections: int = MAX_CONNECTIONS,
        tls: bytes | None = None,
    ) -> None:
        self.port: IListeningPort | None = None
        self._tls = None if tls is None else PrivateCertificate.loadPEM(tls).options()
        self._reactor = reactor
        self._site = site
        self.factory = ConnectionCap(
            site,
            maxConnections,
            reactor,  # type: ignore[arg-type]
            errorBody("too many connections to this node's API; retry later"),
        )
        self._host = host
        self._portNumber = port

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._listen()

    def startService(self) -> None:
        super().startService()
        self._listen()

    def stopService(self):  # type: ignore[no-untyped-def]
        super().stopService()
        if isinstance(self._site, APISite):
            self._site.endStreams()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None

    def _listen(self) -> None:
        if self.port is None:
            if self._tls is None:
                self.port = self._reactor.listenTCP(
                    self._portNumber,
                    self.factory,  # type: ignore[arg-type]
                    interface=self._host,
                )
            else:
                self.port = self._reactor.listenSSL(  # type: ignore[attr-defined]
                    self._portNumber, self.factory, self._tls, interface=self._host
                )
            address = self.port.getHost()  # type: ignore[union-attr]
            assert isinstance(address, IPv4Address | IPv6Address)
            self.log.info(
                "status API on {scheme}://{host}:{port}/api/",
                scheme="http" if self._tls is None else "https",
                host=address.host,
                port=address.port,
            )
