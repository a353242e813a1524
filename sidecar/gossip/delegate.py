"""
The catalog on the gossip layer, both ways: L{CatalogDelegate} merges what
peers send into the catalog (and tombstones the services of a member that
is gone), L{CatalogBroadcaster} sends the catalog's news to peers.  Records
travel in the Go Sidecar's JSON: one C{Service} per user message, the whole
C{ServicesState} in a push-pull.  Each record passes L{Admission} (who sent
it, whom it is about, when it is stamped) before the catalog sees it.
"""

from __future__ import annotations

from collections.abc import Sequence

from zope.interface import implementer

from sidecar.catalog import (
    DecodeError,
    IBroadcaster,
    Refused,
    Service,
    ServicesState,
    decodeService,
    decodeStateServices,
    encodeService,
)
from sidecar.catalog.codec import dumps
from sidecar.catalog.documents import stateDocument

from .admission import NOT_A_RECORD, Address, Admission
from .cluster import Cluster, publishesDrains
from .interfaces import IGossipDelegate, IMemberObserver
from .members import Member


@implementer(IGossipDelegate, IMemberObserver)
class CatalogDelegate:
    """
    Feeds the catalog from the cluster, through C{admission}; what is not
    valid catalog JSON (serf's own messages, say) is refused there too.
    """

    def __init__(self, state: ServicesState, admission: Admission) -> None:
        self._state = state
        self._admission = admission
        state.useClockOffsets(admission.skews.offset)

    def localState(self) -> bytes:
        return dumps(stateDocument(self._state))

    def mergeRemoteState(
        self, state: bytes, join: bool, source: Address, dialed: bool
    ) -> None:
        try:
            records = decodeStateServices(state)
        except DecodeError as e:
            self._admission.refuse(NOT_A_RECORD, source, f"push-pull state: {e}")
            return
        # A peer this node dialled is one it chose: a seed (perhaps by
        # name, perhaps behind another address than it advertises) or a
        # member.
        fromMember = dialed or self._admission.sentByMember(source)
        for record in records:
            self._merge(record, source, fromMember)

    def messageReceived(self, payload: bytes, source: Address) -> None:
        try:
            record = decodeService(payload)
        except DecodeError as e:
            self._admission.refuse(NOT_A_RECORD, source, f"user message: {e}")
            return
        self._merge(record, source, self._admission.sentByMember(source))

    def _merge(self, record: Service, source: Address, fromMember: bool) -> None:
        if not self._admission.admit(record, source, fromMember):
            return
        try:
            self._state.merge(record)
        except Refused as e:
            self._admission.refuse(e.kind, source, str(e))

    def memberJoined(self, member: Member) -> None:
        self._admission.memberJoined(member)
        self._state.trustDrains(member.name, publishesDrains(member.meta))

    def memberUpdated(self, member: Member) -> None:
        self._state.trustDrains(member.name, publishesDrains(member.meta))

    def memberGone(self, member: Member) -> None:
        # Its services leave the proxies now; if it comes back, its own
        # fresher records win over these tombstones (stamped on its clock
        # as estimated, so this holds if its clock is behind ours).
        self._state.expireServer(member.name)
        self._admission.memberGone(member)


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
