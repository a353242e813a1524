"""
Change listeners: HTTP endpoints told of every change to the catalog, with
the Go Sidecar's event body,
C{{"State": <the whole catalog>, "ChangeEvent": {"Service", "PreviousStatus",
"Time"}}}, POSTed as JSON.

Each listener has its own queue and sends one event at a time, in order,
retrying with backoff until the endpoint accepts it (2xx): a slow or dead
endpoint delays only its own events, and never the node.  Listeners come
from C{listeners.urls} (for as long as the node runs) and from local
services that ask for events (the static file's C{ListenPort}, the
C{SidecarListener} label), which come and go with those services.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import treq
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.http_headers import Headers
from zope.interface import implementer

from sidecar.backoff import Backoff
from sidecar.catalog import ServicesState
from sidecar.catalog.codec import dumps, serviceToJSON
from sidecar.catalog.documents import stateDocument
from sidecar.catalog.interfaces import ICatalogObserver
from sidecar.catalog.state import ChangeEvent
from sidecar.catalog.timestamps import formatTimestamp

# Retries: the first after this long, doubling, at most LAST_RETRY.
FIRST_RETRY = 0.1
LAST_RETRY = 30.0
# One attempt may take this long.
POST_TIMEOUT = 3.0
# Events a listener may have waiting; beyond, the oldest are dropped.
QUEUE_LIMIT = 10_000


@dataclass(frozen=True)
class Delivery:
    """
    How listeners deliver: timeouts and retries.
    """

    timeout: float = POST_TIMEOUT
    firstRetry: float = FIRST_RETRY
    lastRetry: float = LAST_RETRY
    queueLimit: int = QUEUE_LIMIT


DELIVERY = Delivery()


def eventBody(state: ServicesState, event: ChangeEvent) -> bytes:
    """
    The Go Sidecar's listener body for C{event}, with the catalog as it is
    now.
    """
    return dumps(
        {
            "State": stateDocument(state),
            "ChangeEvent": {
                "Service": serviceToJSON(event.service),
                "PreviousStatus": int(event.previousStatus),
                "Time": formatTimestamp(event.time),
            },
        }
    )


class UrlListener:
    """
    One endpoint and its queue of events.

    @ivar name: as the Go Sidecar names it: C{UrlListener(<url>)}, or
        C{Service(<name>-<id>)} for a service's own.
    @ivar delivered: events accepted by the endpoint.
    @ivar failures: attempts that failed.
    """

    log = Logger()

    def __init__(
        self,
        url: str,
        name: str,
        body: Callable[[ChangeEvent], bytes],
        reactor: Any,
        delivery: Delivery,
    ) -> None:
        self.url = url
        self.name = name
        self.delivered = 0
        self.failures = 0
        self.dropped = 0
        self.lastError: str | None = None
        self._body = body
        self._reactor = reactor
        self._delivery = delivery
        self._queue: deque[ChangeEvent] = deque()
        self._sending: Deferred[None] | None = None
        self._stopped = False

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def enqueue(self, event: ChangeEvent) -> None:
        if len(self._queue) >= self._delivery.queueLimit:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                self.log.warn(
                    "listener {name}: {dropped} event(s) dropped, {url} is too far"
                    " behind",
                    name=self.name,
                    dropped=self.dropped,
                    url=self.url,
                )
        self._queue.append(event)
        if self._sending is None and not self._stopped:
            self._sending = ensureDeferred(self._sendAll())

    def stop(self) -> None:
        self._stopped = True
        sending, self._sending = self._sending, None
        if sending is not None:
            sending.cancel()

    async def _sendAll(self) -> None:
        retry = Backoff(self._delivery.firstRetry, self._delivery.lastRetry)
        try:
            while self._queue and not self._stopped:
                try:
                    await self._post(self._queue[0])
                except CancelledError:
                    return  # stopped
                except Exception as e:
                    self.failures += 1
                    problem = f"{self.url}: {e}"
                    if problem != self.lastError:
                        self.log.warn(
                            "listener {name}: {problem}; retrying",
                            name=self.name,
                            problem=problem,
                        )
                    self.lastError = problem
                    await deferLater(self._reactor, retry.failed())
                    continue
                self._queue.popleft()
                self.delivered += 1
                self.lastError = None
                retry.succeeded()
        finally:
            self._sending = None

    async def _post(self, event: ChangeEvent) -> None:
        response = await treq.post(
            self.url,
            data=self._body(event),
            headers=Headers({b"Content-Type": [b"application/json"]}),
            persistent=False,
            timeout=self._delivery.timeout,
            reactor=self._reactor,
        )
        await response.content()
        if not 200 <= response.code < 300:
            raise ListenerRefused(f"HTTP {response.code}")


class ListenerRefused(Exception):
    """
    The endpoint answered, but not with 2xx.
    """


@implementer(ICatalogObserver)
class Listeners(Service):
    """
    Every listener of this node, told of every change.

    @param wanted: gives the managed listeners wanted now, as
        C{{name: url}} (from the local services that ask for events).
    """

    log = Logger()

    def __init__(
        self,
        state: ServicesState,
        urls: tuple[str, ...],
        wanted: Callable[[], dict[str, str]],
        reactor: Any,
        delivery: Delivery = DELIVERY,
    ) -> None:
        self._state = state
        self._wanted = wanted
        self._reactor = reactor
        self._delivery = delivery
        self.listeners: dict[str, UrlListener] = {
            f"UrlListener({url})": self._listener(url, f"UrlListener({url})")
            for url in urls
        }
        self._managed: set[str] = set()

    def startService(self) -> None:
        super().startService()
        self._state.addObserver(self)
        self._reconcile()

    def stopService(self) -> None:
        super().stopService()
        self._state.removeObserver(self)
        for listener in self.listeners.values():
            listener.stop()

    def serviceChanged(self, event: ChangeEvent) -> None:
        if event.service.hostname == self._state.hostname:
            self._reconcile()
        for listener in self.listeners.values():
            listener.enqueue(event)

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "Name": listener.name,
                "URL": listener.url,
                "Managed": name in self._managed,
                "Delivered": listener.delivered,
                "Waiting": listener.waiting,
                "Failures": listener.failures,
                "Dropped": listener.dropped,
                "LastError": listener.lastError,
            }
            for name, listener in sorted(self.listeners.items())
        ]

    def _listener(self, url: str, name: str) -> UrlListener:
        return UrlListener(
            url,
            name,
            lambda event: eventBody(self._state, event),
            self._reactor,
            self._delivery,
        )

    def _reconcile(self) -> None:
        wanted = self._wanted()
        for name in self._managed - wanted.keys():
            self.listeners.pop(name).stop()
            self.log.info("listener {name} removed", name=name)
        for name, url in wanted.items():
            current = self.listeners.get(name)
            if current is None or current.url != url:
                if current is not None:
                    current.stop()
                self.listeners[name] = self._listener(url, name)
                self.log.info("listener {name} added: {url}", name=name, url=url)
        self._managed = set(wanted)


def managedListeners(
    local: Callable[[], Any], advertiseHost: str
) -> Callable[[], dict[str, str]]:
    """
    The listeners that local services ask for: C{Service(<name>-<id>)} at
    C{http://<advertised IP>:<ListenPort>/sidecar/update}, as in Go.

    @param local: gives the local services, by ID (the announcer's
        C{wanted}).
    """

    def wanted() -> dict[str, str]:
        return {
            f"Service({found.service.name}-{found.service.id})": (
                f"http://{advertiseHost}:{found.listenPort}/sidecar/update"
            )
            for found in local().values()
            if found.listenPort
        }

    return wanted
