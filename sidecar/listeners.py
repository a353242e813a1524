"""
Change listeners: HTTP endpoints told of every change to the catalog, with
the Go Sidecar's event body,
C{{"State": <the whole catalog>, "ChangeEvent": {"Service", "PreviousStatus",
"Time"}}}, POSTed as JSON.

Each listener has its own queue and sends one event at a time, in order,
retrying with backoff until the endpoint accepts it (2xx): a slow or dead
endpoint delays only its own events, and never the node.  One deadline
covers a whole delivery (connecting, sending, the answer and its body),
so that an endpoint that stalls after its headers fails the attempt and
is retried; the answer's body is discarded, and one longer than
L{Delivery.bodyLimit} fails the attempt (an endless body costs nothing).
The queue is bounded: a listener that falls behind has its waiting events
coalesced, a service's older waiting event giving way to its newer one
(every body carries the whole catalog as it is when sent, so the newest
state is never lost), and past the bound its oldest waiting events are
dropped and counted.  Listeners come
from C{listeners.urls} (for as long as the node runs) and from local
services that ask for events (the static file's C{ListenPort}, the
C{SidecarListener} label), which come and go with those services.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import treq
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from zope.interface import implementer

from sidecar.backoff import Backoff
from sidecar.catalog import ServicesState
from sidecar.catalog.codec import dumps, serviceToJSON
from sidecar.catalog.documents import stateDocument
from sidecar.catalog.interfaces import ICatalogObserver
from sidecar.catalog.state import ChangeEvent
from sidecar.catalog.timestamps import formatTimestamp
from sidecar.problems import LISTENER, Problems

# Retries: the first after this long, doubling, at most LAST_RETRY.
FIRST_RETRY = 0.1
LAST_RETRY = 30.0
# One attempt, from connecting to the answer's last byte, may take this long.
POST_TIMEOUT = 3.0
# Events a listener may have waiting; beyond, they are coalesced, then the
# oldest dropped.
QUEUE_LIMIT = 1_000
# The most of an answer's body read (and discarded).
BODY_LIMIT = 64 * 1024
# The agent's errors whose message is only a list of Failure reprs.
_WITH_REASONS = (ResponseFailed, ResponseNeverReceived, RequestTransmissionFailed)


@dataclass(frozen=True)
class Delivery:
    """
    How listeners deliver: the deadline of one attempt, retries, and
    bounds.
    """

    timeout: float = POST_TIMEOUT
    firstRetry: float = FIRST_RETRY
    lastRetry: float = LAST_RETRY
    queueLimit: int = QUEUE_LIMIT
    bodyLimit: int = BODY_LIMIT


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
    @ivar coalesced: waiting events that gave way to a newer one of the
        same service.
    @ivar dropped: waiting events dropped, the queue being full.
    """

    log = Logger()

    def __init__(
        self,
        url: str,
        name: str,
        body: Callable[[ChangeEvent], bytes],
        reactor: Any,
        delivery: Delivery,
        problems: Problems,
    ) -> None:
        """
        @param problems: where a listener whose endpoint fails is shown,
            until it accepts events again or is removed.
        """
        self.url = url
        self.name = name
        self.delivered = 0
        self.failures = 0
        self.coalesced = 0
        self.dropped = 0
        self.lastError: str | None = None
        self._body = body
        self._reactor = reactor
        self._delivery = delivery
        self._problems = problems
        # The event being sent is the first, and stays there until it is
        # delivered.
        self._queue: list[ChangeEvent] = []
        self._sending: Deferred[None] | None = None
        self._stopped = False

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def enqueue(self, event: ChangeEvent) -> None:
        if len(self._queue) >= self._delivery.queueLimit:
            event = self._makeRoomFor(event)
        self._queue.append(event)
        if self._sending is None and not self._stopped:
            self._sending = ensureDeferred(self._sendAll())

    def _makeRoomFor(self, event: ChangeEvent) -> ChangeEvent:
        """
        The queue is full: the waiting event of C{event}'s service gives
        way to C{event}, which keeps the status that one changed from;
        failing that, the oldest waiting event is dropped.  (The event
        being sent is not waiting.)

        @return: the event to queue.
        """
        key = (event.service.hostname, event.service.id)
        first = 1 if self._sending is not None else 0
        for index in range(first, len(self._queue)):
            older = self._queue[index]
            if (older.service.hostname, older.service.id) == key:
                del self._queue[index]
                self.coalesced += 1
                return replace(event, previousStatus=older.previousStatus)
        if len(self._queue) <= first:
            return event  # only the event being sent: nothing waits
        del self._queue[first]
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            self.log.warn(
                "listener {name}: {dropped} event(s) dropped, {url} is too far behind",
                name=self.name,
                dropped=self.dropped,
                url=self.url,
            )
        return event

    def stop(self) -> None:
        self._stopped = True
        self._problems.clear(LISTENER, self.name)
        sending, self._sending = self._sending, None
        if sending is not None:
            sending.cancel()

    async def _sendAll(self) -> None:
        retry = Backoff(self._delivery.firstRetry, self._delivery.lastRetry)
        try:
            while self._queue and not self._stopped:
                try:
                    await self._attempt(self._queue[0])
                except CancelledError:
                    return  # stopped
                except Exception as e:
                    if self._stopped:
                        return  # cancelled: treq says so in its own words
                    self._failed(e)
                    try:
                        await deferLater(self._reactor, retry.failed())
                    except CancelledError:
                        return  # stopped
                    continue
                self._queue.pop(0)
                self.delivered += 1
                if self.lastError is not None:
                    self.log.info(
                        "listener {name}: {url} accepts events again",
                        name=self.name,
                        url=self.url,
                    )
                self.lastError = None
                self._problems.clear(LISTENER, self.name)
                retry.succeeded()
        finally:
            self._sending = None

    def _failed(self, error: Exception) -> None:
        self.failures += 1
        if isinstance(error, _WITH_REASONS):
            why = "; ".join(f.getErrorMessage() for f in error.reasons)
        else:
            why = str(error) or type(error).__name__
        problem = f"{self.url}: {why}"
        if problem != self.lastError:
            self.log.warn(
                "listener {name}: {problem}; retrying", name=self.name, problem=problem
            )
        self.lastError = problem
        self._problems.raise_(LISTENER, self.name, problem)

    def _attempt(self, event: ChangeEvent) -> Deferred[None]:
        """
        One delivery of C{event}, within the deadline.
        """
        timeout = self._delivery.timeout

        def timedOut(result: object, timeout: float) -> None:
            # Whatever the cancelled request said (treq has its own words).
            raise ListenerRefused(f"no complete answer within {timeout:g} s")

        attempt = ensureDeferred(self._post(event))
        return attempt.addTimeout(timeout, self._reactor, onTimeoutCancel=timedOut)

    async def _post(self, event: ChangeEvent) -> None:
        response = await treq.post(
            self.url,
            data=self._body(event),
            headers=Headers({b"Content-Type": [b"application/json"]}),
            persistent=False,
            unbuffered=True,
            reactor=self._reactor,
        )
        discard = _Discard(self._delivery.bodyLimit)
        response.deliverBody(discard)
        await discard.done
        if not 200 <= response.code < 300:
            raise ListenerRefused(f"HTTP {response.code}")


class _Discard(Protocol):
    """
    Reads an answer's body to its end and drops it; fails past C{limit}
    bytes, closing the connection.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._received = 0
        self.done: Deferred[None] = Deferred(self._abort)

    def dataReceived(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > self._limit and not self.done.called:
            self.done.errback(
                ListenerRefused(f"an answer body longer than {self._limit} bytes")
            )
            self._abort(self.done)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(None)
        else:
            self.done.errback(reason)

    def _abort(self, done: Deferred[None]) -> None:
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]


class ListenerRefused(Exception):
    """
    The endpoint answered, but not with 2xx, or with too long a body, or
    not within the deadline.
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
        problems: Problems | None = None,
    ) -> None:
        self._state = state
        self._problems = Problems(reactor) if problems is None else problems
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
                "Coalesced": listener.coalesced,
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
            self._problems,
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
