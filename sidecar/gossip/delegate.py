"""
The catalog on the gossip layer, both ways: L{CatalogDelegate} merges what
peers send into the catalog (and tombstones the services of a member that
is gone), L{CatalogBroadcaster} sends the catalog's news to peers.  Records
travel in the Go Sidecar's JSON: one C{Service} per user message, the whole
C{ServicesState} in a push-pull (between our own nodes, a digest first:
see L{sidecar.gossip.digest}).  Each record passes L{Admission} (who sent
it, whom it is about, when it is stamped) before the catalog sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.logger import Logger
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
from sidecar.problems import GO_PEERS, Problems

from .admission import NOT_A_RECORD, Address, Admission
from .cluster import Cluster
from .digest import decodeDigest, encodeDigest, hostHash, isDigest
from .interfaces import IGossipDelegate, IMemberObserver
from .members import Member
from .peers import (
    GO_RELAY_ADVICE,
    GO_RELAY_LIMIT,
    followsMembership,
    publishesDrains,
)


class WithheldRecords:
    """
    The records kept from Go peers because Go could not relay them (see
    L{sidecar.gossip.peers}): each is logged once, with what to do, and
    listed until a version of it that fits is sent.

    @ivar total: how many records were ever withheld.
    """

    log = Logger()

    def __init__(self, problems: Problems | None = None) -> None:
        """
        @param problems: where a withheld record is also listed, as a
            L{GO_PEERS} problem, until it fits or is gone.
        """
        self._records: dict[tuple[str, str], dict[str, Any]] = {}
        self._problems = problems
        self.total = 0

    def check(self, service: Service, size: int) -> bool:
        """
        Whether C{service}, C{size} bytes as gossiped, can go to Go peers;
        if not, report it.
        """
        key = (service.hostname, service.id)
        if size <= GO_RELAY_LIMIT:
            self._forget(key)
            return True
        if key not in self._records:
            self.total += 1
            if self._problems is not None:
                self._problems.raise_(
                    GO_PEERS,
                    _subject(key),
                    f"service {service.name} is {size} bytes as gossiped, over "
                    f"the {GO_RELAY_LIMIT} Go peers can relay: not sent to them; "
                    f"{GO_RELAY_ADVICE}",
                )
            self.log.warn(
                "record {id} of service {name} on {hostname} is {size} bytes: "
                "not sent to Go peers; {advice}",
                id=service.id,
                name=service.name,
                hostname=service.hostname,
                size=size,
                advice=GO_RELAY_ADVICE,
            )
        self._records[key] = {
            "Hostname": service.hostname,
            "ID": service.id,
            "Name": service.name,
            "Bytes": size,
        }
        return False

    def report(self, state: ServicesState) -> list[dict[str, Any]]:
        """
        The records withheld now, as JSON objects C{{"Hostname", "ID",
        "Name", "Bytes"}}: those that C{state} (the catalog) still holds.
        """
        for key in [k for k in self._records if state.get(*k) is None]:
            self._forget(key)
        return [self._records[key] for key in sorted(self._records)]

    def _forget(self, key: tuple[str, str]) -> None:
        if self._records.pop(key, None) is not None and self._problems is not None:
            self._problems.clear(GO_PEERS, _subject(key))


def _subject(key: tuple[str, str]) -> str:
    hostname, serviceID = key
    return f"{hostname}/{serviceID}"


@implementer(IGossipDelegate, IMemberObserver)
class CatalogDelegate:
    """
    Feeds the catalog from the cluster, through C{admission}; what is not
    valid catalog JSON (serf's own messages, say) is refused there too.
    """

    def __init__(
        self,
        state: ServicesState,
        admission: Admission,
        withheld: WithheldRecords | None = None,
    ) -> None:
        self._state = state
        self._admission = admission
        self._withheld = withheld or WithheldRecords()
        # The other members now joined: while there were none, this node's
        # news went to no one (a node alone drops its queue).
        self._peers: set[str] = set()
        state.useClockOffsets(admission.skews.offset)

    def localDigest(self) -> bytes:
        return encodeDigest(self._hashes())

    def localState(
        self, recordLimit: int | None = None, remote: bytes | None = None
    ) -> bytes:
        document = stateDocument(self._state)
        if remote is not None and isDigest(remote):
            try:
                theirs = decodeDigest(remote)
            except DecodeError:
                theirs = {}  # mergeRemoteState refuses it, naming the peer
            servers = document["Servers"]
            for hostname, ours in self._hashes().items():
                if theirs.get(hostname) == ours:
                    del servers[hostname]  # type: ignore[attr-defined]
        if recordLimit is not None:
            for service in self._state.services():
                size = len(encodeService(service))
                servers = document["Servers"]
                if service.hostname not in servers:  # type: ignore[operator]
                    continue  # the peer's digest has it
                if size > recordLimit and not self._withheld.check(service, size):
                    del servers[service.hostname]["Services"][service.id]  # type: ignore[index]
        return dumps(document)

    def _hashes(self) -> dict[str, str]:
        state = self._state
        return {s.name: hostHash(state.serverServices(s)) for s in state.servers()}

    def mergeRemoteState(
        self, state: bytes, join: bool, source: Address, dialed: bool
    ) -> None:
        if isDigest(state):
            # A peer's digest asks for what differs (our answer): nothing
            # to merge.
            try:
                decodeDigest(state)
            except DecodeError as e:
                self._admission.refuse(NOT_A_RECORD, source, f"push-pull {e}")
            return
        try:
            records = decodeStateServices(state)
        except DecodeError as e:
            self._admission.refuse(NOT_A_RECORD, source, f"push-pull state: {e}")
            return
        # A peer this node dialled is one it chose: a seed (perhaps by
        # name, perhaps behind another address than it advertises) or a
        # member.
        fromMember = dialed or self._admission.sentByMember(source)
        for record in self._admission.admitAll(records, source, fromMember):
            self._merge(record, source)

    def messageReceived(self, payload: bytes, source: Address) -> None:
        try:
            record = decodeService(payload)
        except DecodeError as e:
            self._admission.refuse(NOT_A_RECORD, source, f"user message: {e}")
            return
        if self._admission.admit(record, source, self._admission.sentByMember(source)):
            self._merge(record, source)

    def _merge(self, record: Service, source: Address) -> None:
        """
        Merge an admitted C{record}; one the catalog refuses is counted
        and logged as a refusal.
        """
        try:
            self._state.merge(record)
        except Refused as e:
            self._admission.refuse(e.kind, source, str(e))

    def memberJoined(self, member: Member) -> None:
        self._admission.memberJoined(member)
        self._believe(member)
        for record, source in self._admission.waitingFor(member.name):
            if self._admission.admit(record, source, True, timely=False):
                self._merge(record, source)
        alone = not self._peers
        self._peers.add(member.name)
        if alone:
            # What this node announced while alone was gossiped to no one,
            # and what it found while its join was on the way went into no
            # push-pull: sent again, it reaches the first peer (and tells
            # it this node's clock) without waiting for anti-entropy.
            self._state.rebroadcastLocal()

    def memberUpdated(self, member: Member) -> None:
        self._believe(member)

    def _believe(self, member: Member) -> None:
        # What its metadata says of its records: drains it publishes, and
        # whether they live as long as it is a member.
        self._state.trustDrains(member.name, publishesDrains(member.meta))
        self._state.followMembership(member.name, followsMembership(member.meta))

    def memberGone(self, member: Member) -> None:
        # Its services leave the proxies now; if it comes back, its own
        # fresher records win over these tombstones (stamped on its clock
        # as estimated, so this holds if its clock is behind ours).
        self._state.expireServer(member.name)
        self._state.followMembership(member.name, False)
        self._admission.memberGone(member)
        self._peers.discard(member.name)


@implementer(IBroadcaster)
class CatalogBroadcaster:
    """
    Sends each record the catalog wants spread as one user message; a newer
    record of the same instance replaces one still queued.  While Go peers
    are present, a record too large for them is reported (the cluster
    keeps it from them).
    """

    def __init__(
        self, cluster: Cluster, withheld: WithheldRecords | None = None
    ) -> None:
        self._cluster = cluster
        self._withheld = withheld or WithheldRecords()

    def broadcast(self, services: Sequence[Service]) -> None:
        goPresent = bool(self._cluster.goPeers())
        for service in services:
            payload = encodeService(service)
            if goPresent:
                self._withheld.check(service, len(payload))
            self._cluster.broadcast((service.hostname, service.id), payload)
