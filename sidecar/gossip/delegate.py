"""
The catalog on the gossip layer, both ways: L{CatalogDelegate} merges what
peers send into the catalog (and tombstones the services of a member that
is gone), L{CatalogBroadcaster} sends the catalog's news to peers.  Records
travel in the Go Sidecar's JSON: one C{Service} per user message, the whole
C{ServicesState} in a push-pull.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from sidecar.catalog import (
    DecodeError,
    IBroadcaster,
    Service,
    ServicesState,
    decodeService,
    decodeStateServices,
    encodeService,
)
from sidecar.catalog.codec import dumps
from sidecar.catalog.documents import stateDocument
from sidecar.ratelimit import RateLimitedLog

from .cluster import Cluster, publishesDrains
from .interfaces import IGossipDelegate, IMemberObserver
from .members import Member


@implementer(IGossipDelegate, IMemberObserver)
class CatalogDelegate:
    """
    Feeds the catalog from the cluster.

    @ivar rejected: user messages and states that were not valid catalog
        JSON (serf's own messages, say), dropped.
    """

    log = Logger()

    def __init__(self, state: ServicesState, clock: IReactorTime) -> None:
        self._state = state
        self._badInput = RateLimitedLog(self.log, clock)
        self.rejected = 0

    def localState(self) -> bytes:
        return dumps(stateDocument(self._state))

    def mergeRemoteState(self, state: bytes, join: bool) -> None:
        try:
            records = decodeStateServices(state)
        except DecodeError as e:
            self._reject("state", e)
            return
        self._state.mergeAll(records)

    def messageReceived(self, payload: bytes) -> None:
        try:
            record = decodeService(payload)
        except DecodeError as e:
            self._reject("message", e)
            return
        self._state.merge(record)

    def _reject(self, what: str, problem: DecodeError) -> None:
        self.rejected += 1
        self._badInput.warn(
            "dropped a gossiped {what} that is not a catalog record: {problem}",
            what=what,
            problem=str(problem),
        )

    def memberJoined(self, member: Member) -> None:
        self._state.trustDrains(member.name, publishesDrains(member.meta))

    def memberUpdated(self, member: Member) -> None:
        self._state.trustDrains(member.name, publishesDrains(member.meta))

    def memberGone(self, member: Member) -> None:
        # Its services leave the proxies now; if it comes back, its own
        # fresher records win over these tombstones.
        self._state.expireServer(member.name)


@implementer(IBroadcaster)
class CatalogBroadcaster:
    """
    Sends each record the catalog wants spread as one user message; a newer
    record of the same instance replaces one still queued.
    """

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def broadcast(self, services: Sequence[Service]) -> None:
        for service in services:
            self._cluster.broadcast(
                (service.hostname, service.id), encodeService(service)
            )
