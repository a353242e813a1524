"""
L{ServicesState}: this node's copy of the whole cluster's catalog, and the
rules by which records from anywhere are merged into it.

The merge is deterministic: a record replaces another for the same
(hostname, ID) only when it sorts later by L{recordOrder} (newer C{Updated},
then a fixed tie-break), so any delivery order of the same records, with
duplicates, ends in the same catalog.  The Go Sidecar's "sticky DRAINING"
rule (a DRAINING instance stays DRAINING when a later ALIVE arrives) is kept
in an order-independent form: each entry remembers the newest DRAINING stamp
and the newest stamp of any other non-ALIVE status it has seen, and an ALIVE
winner reads as DRAINING while the drain is the more recent of the two.

The records of an origin that follows membership (a member of ours that
says so, see L{ServicesState.followMembership}) live as long as it is a
member: the gossip layer tombstones them when it fails or leaves
(L{ServicesState.expireServer}), so that origin need not refresh them.
Other remote records have lifespans.

Lifespans run on this node's clock, from when a record arrived here, not
from its C{Updated} stamp: a remote record lives C{Lifespans.alive} after
the last refresh reached this node, so a member whose clock is minutes or
hours off is neither expired on arrival nor kept for ever.  Stamps still
order the records, so the merge stays deterministic.  The ghost check,
the one rule that compares a stamp with a time, compares it with the
origin's clock as this node estimates it (L{ServicesState.useClockOffsets}).

The catalog keeps within L{Limits}: a record too large, or one that would
grow its host's share or the whole catalog past its cap, is refused with
L{Refused}, so that the whole catalog always fits one push-pull.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from .codec import encodeService
from .interfaces import IBroadcaster, ICatalog, ICatalogObserver
from .order import groupByName
from .service import Service, Status
from .snapshot import CatalogSnapshot, ServerView
from .timestamps import LATEST, NANOSECONDS, later

SECOND = NANOSECONDS
# The tolerance when a timer fires: float seconds from a reactor may land a
# few hundred nanoseconds short of an integer deadline.
_TIMER_SLACK = 1_000
# The deadline heap is never compacted below twice this many.
DEADLINES_FLOOR = 64


@dataclass(frozen=True)
class Lifespans:
    """
    How long records live without a refresh, in nanoseconds.

    @ivar alive: a remote ALIVE, UNHEALTHY or UNKNOWN record.
    @ivar draining: a remote DRAINING record.
    @ivar tombstone: any tombstone, before it is forgotten.
    @ivar ghostMargin: a received record older than C{tombstone +
        ghostMargin} is dropped on arrival: it can only be a ghost.
    """

    alive: int = 80 * SECOND
    draining: int = 10 * 60 * SECOND
    tombstone: int = 3 * 3600 * SECOND
    ghostMargin: int = 60 * SECOND


@dataclass(frozen=True)
class Limits:
    """
    How large the catalog may grow, in bytes of records' compact JSON.
    The defaults keep a whole catalog, with its servers' wrapping and the
    member list, well inside memberlist's 10 MiB push-pull limit, so that
    a node can always join.  Records count by L{footprint}.

    @ivar record: the most one record may take.
    @ivar host: the most one host's records may take together.
    @ivar total: the most the whole catalog may take.
    """

    record: int = 16 * 1024
    host: int = 1024 * 1024
    total: int = 8 * 1024 * 1024


class Refused(ValueError):
    """
    A record the catalog will not hold.

    @ivar kind: what was wrong, one of L{Refused.KINDS}, to count by.
    """

    RECORD_TOO_LARGE = "record too large"
    HOST_FULL = "host over its share"
    CATALOG_FULL = "catalog full"
    KINDS = (RECORD_TOO_LARGE, HOST_FULL, CATALOG_FULL)

    def __init__(self, kind: str, record: Service, detail: str) -> None:
        super().__init__(f"{kind}: {record.hostname!r} {record.id!r}: {detail}")
        self.kind = kind


@dataclass(frozen=True)
class TombstoneResend:
    """
    How a withdrawn local service's tombstone is repeated to peers:
    C{initial} copies at once, then one every C{interval} for C{duration}.
    """

    initial: int = 2
    interval: float = 1.0
    duration: float = 10.0


@dataclass(frozen=True)
class ChangeEvent:
    """
    An effective change: C{service} as it now stands, the status it had
    before (UNKNOWN for an instance new to this node, as in Go), and when.
    """

    service: Service
    previousStatus: Status
    time: int


def footprint(record: Service) -> int:
    """
    The bytes L{Limits} count for C{record}: its compact JSON with both
    stamps at their widest (L{LATEST} has nine fractional digits), so that
    a refresh (a new stamp, the same content) never changes a host's share.
    """
    return len(encodeService(replace(record, created=LATEST, updated=LATEST)))


def _sameFootprint(record: Service, other: Service) -> bool:
    """
    Whether C{record} and C{other}, of one instance, take the same bytes:
    they differ at most in their stamps and status (a single digit).
    """
    return (record.name, record.image, record.ports, record.proxyMode) == (
        other.name,
        other.image,
        other.ports,
        other.proxyMode,
    )


def _textLength(record: Service) -> int:
    """
    The characters of C{record}'s strings: its JSON is never shorter.
    """
    return (
        len(record.id)
        + len(record.name)
        + len(record.image)
        + len(record.hostname)
        + len(record.proxyMode)
        + sum(len(port.type) + len(port.ip) for port in record.ports)
    )


def _supersedes(record: Service, other: Service) -> bool:
    """
    Whether C{record} sorts after C{other} in L{recordOrder}, encoding
    them only when their stamps and statuses tie.
    """
    if (record.updated, record.status) != (other.updated, other.status):
        return (record.updated, record.status) > (other.updated, other.status)
    return record != other and encodeService(record) > encodeService(other)


@dataclass
class _Entry:
    """
    What the catalog knows of one instance: the winning record and the two
    stamps the sticky-DRAINING rule needs.
    """

    winner: Service
    arrived: int
    size: int
    drainedAt: int | None = None
    interruptedAt: int | None = None

    def absorb(self, record: Service) -> None:
        if record.status is Status.DRAINING:
            self.drainedAt = _newest(self.drainedAt, record.updated)
        elif record.status is not Status.ALIVE:
            self.interruptedAt = _newest(self.interruptedAt, record.updated)

    def effective(self, sticky: bool) -> Service:
        # A drain and an interruption with the same stamp: the drain is the
        # later, as in the merge's own order (DRAINING sorts after every
        # other status at a tie), so the two rules never disagree.
        winner = self.winner
        if (
            sticky
            and winner.status is Status.ALIVE
            and self.drainedAt is not None
            and (self.interruptedAt is None or self.drainedAt >= self.interruptedAt)
        ):
            return winner.withStatus(Status.DRAINING, winner.updated)
        return winner


def _size(record: Service, entry: _Entry | None) -> int:
    """
    C{record}'s L{footprint}, taken from C{entry} when the record only
    refreshes it, so that a refresh encodes nothing.
    """
    if entry is not None and entry.size and _sameFootprint(record, entry.winner):
        return entry.size
    return footprint(record)


def _newest(stamp: int | None, candidate: int) -> int:
    return candidate if stamp is None or candidate > stamp else stamp


@dataclass
class Server:
    """
    One host's part of the catalog, with Go's bookkeeping stamps: when a
    record of it was last accepted, and when one last changed; and the
    bytes its records take.
    """

    name: str
    entries: dict[str, _Entry] = field(default_factory=dict)
    lastUpdated: int = 0
    lastChanged: int = 0
    size: int = 0


@implementer(ICatalog)
class ServicesState:
    """
    The cluster catalog: hostname -> service ID -> record.

    Pure apart from time: the clock is an injected L{IReactorTime}, used to
    stamp local records and to run the lifespans (remote records expire,
    tombstones are forgotten) on exact deadlines.

    @ivar hostname: this node's name, the C{Hostname} of its own services.
    @ivar clusterName: the cluster's name, reported in the JSON.
    @ivar lastChanged: when this node last saw an effective change.
    @ivar version: a counter that moves whenever anything a document
        shows may have changed (a record won or changed, one was forgotten,
        an origin's drains became trusted or not), and at no other time:
        readers cache what they render per version.
    @ivar modified: when, by this node's clock (nanoseconds), C{version}
        last moved, or the catalog was made; never goes backwards (so a
        restarted node's documents are newer than any date a client had
        from before).
    @ivar size: the bytes all records take (see L{Limits}).
    @ivar refused: records refused by L{Limits}, by L{Refused.kind}.
    """

    log = Logger()

    def __init__(
        self,
        hostname: str,
        clock: IReactorTime,
        clusterName: str = "default",
        lifespans: Lifespans = Lifespans(),
        tombstoneResend: TombstoneResend = TombstoneResend(),
        limits: Limits = Limits(),
    ) -> None:
        self.hostname = hostname
        self.clusterName = clusterName
        self.lastChanged = 0
        self.version = 0
        self._clock = clock
        self.modified = self.now()
        self._lifespans = lifespans
        self._resend = tombstoneResend
        self._limits = limits
        self._clockOffset: Callable[[str], int] = _noOffset
        self._servers: dict[str, Server] = {}
        self._localIDs: set[str] = set()
        self._trustedDrains: set[str] = set()
        self._followed: set[str] = set()
        self._observers: list[ICatalogObserver] = []
        self._broadcasters: list[IBroadcaster] = []
        self._deadlines: list[tuple[int, str, str]] = []
        # How many deadlines the last compaction kept (see _compactDeadlines).
        self._deadlinesKept = DEADLINES_FLOOR
        self._timer: IDelayedCall | None = None
        self._resends: dict[str, list[IDelayedCall]] = {}
        self.ghostsDropped = 0
        self.size = 0
        self.refused: Counter[str] = Counter()

    # -- time ---------------------------------------------------------------

    def now(self) -> int:
        """
        The injected clock's time, in nanoseconds since the epoch.
        """
        return round(self._clock.seconds() * NANOSECONDS)

    def useClockOffsets(self, offset: Callable[[str], int]) -> None:
        """
        Estimate each origin's clock with C{offset}: given a hostname, how
        many nanoseconds this node's clock is ahead of that host's (0 when
        unknown).  The ghost check and L{expireServer}'s stamps use it;
        lifespans never do.
        """
        self._clockOffset = offset

    def _originNow(self, hostname: str) -> int:
        """
        C{hostname}'s clock now, at most, as far as this node can tell; never
        past the last writable instant, whatever the offset.
        """
        return min(self.now() - self._clockOffset(hostname), LATEST)

    @property
    def lifespans(self) -> Lifespans:
        """
        How long records live here (the gossip layer admits a gone member's
        tombstones for as long as C{tombstone}).
        """
        return self._lifespans

    # -- subscribers --------------------------------------------------------

    def trustDrains(self, hostname: str, trusted: bool) -> None:
        """
        Whether C{hostname} publishes its drains itself (its metadata says
        so): then an ALIVE of it after a DRAINING is an undrain, not a Go
        origin's refresh to hold as DRAINING.
        """
        if trusted == (hostname in self._trustedDrains):
            return
        if trusted:
            self._trustedDrains.add(hostname)
        else:
            self._trustedDrains.discard(hostname)
        self._moved()

    def followMembership(self, hostname: str, follows: bool) -> None:
        """
        Whether C{hostname}'s records live as long as it is a member (it
        says so in its metadata, and the gossip layer tombstones its records
        when it is gone), instead of expiring when not refreshed.  A host
        that stops following gets a full lifespan for each record from now.
        This node's own name is never followed: records of it that it does
        not announce (from before a restart) expire, tombstoned.  Nor is a
        followed origin's record ever dropped as a ghost, however old.
        """
        if hostname == self.hostname or follows == (hostname in self._followed):
            return
        if follows:
            self._followed.add(hostname)
            return  # the deadlines already set are skipped when due
        self._followed.discard(hostname)
        server = self._servers.get(hostname)
        if server is None:
            return
        now = self.now()
        for serviceID, entry in server.entries.items():
            if not entry.winner.isTombstone:
                entry.arrived = now
                self._schedule(server, serviceID)

    def addObserver(self, observer: ICatalogObserver) -> None:
        self._observers.append(observer)

    def removeObserver(self, observer: ICatalogObserver) -> None:
        self._observers.remove(observer)

    def addBroadcaster(self, broadcaster: IBroadcaster) -> None:
        self._broadcasters.append(broadcaster)

    def removeBroadcaster(self, broadcaster: IBroadcaster) -> None:
        self._broadcasters.remove(broadcaster)

    # -- reading ------------------------------------------------------------

    def get(self, hostname: str, serviceID: str) -> Service | None:
        server = self._servers.get(hostname)
        entry = server.entries.get(serviceID) if server else None
        return None if entry is None else self._effective(entry)

    def services(self) -> Iterator[Service]:
        """
        Every record in the catalog, tombstones included.
        """
        for server in self._servers.values():
            for entry in server.entries.values():
                yield self._effective(entry)

    def servers(self) -> Iterator[Server]:
        return iter(self._servers.values())

    def serverServices(self, server: Server) -> list[Service]:
        return [self._effective(e) for e in server.entries.values()]

    def rebroadcastLocal(self) -> None:
        """
        Hand this node's own live records to the broadcasters again, as
        they are (no new stamp): for peers that cannot have heard them.
        """
        self._broadcast(self.localServices())

    def localServices(self) -> list[Service]:
        """
        The records this node announced itself and has not withdrawn.
        """
        server = self._servers.get(self.hostname)
        if server is None:
            return []
        return [self._effective(server.entries[i]) for i in sorted(self._localIDs)]

    def byName(self) -> dict[str, list[Service]]:
        """
        Records grouped by service name, each group oldest C{Updated} first
        (the Go Sidecar's C{ByService}).
        """
        return groupByName(self.services())

    def snapshot(self) -> CatalogSnapshot:
        """
        An immutable copy of what the documents show, taken now: another
        thread may render it while this catalog goes on changing.
        """
        return CatalogSnapshot(
            version=self.version,
            modified=self.modified,
            hostname=self.hostname,
            clusterName=self.clusterName,
            lastChanged=self.lastChanged,
            serverViews=tuple(
                ServerView(
                    server.name,
                    server.lastUpdated,
                    server.lastChanged,
                    tuple(self.serverServices(server)),
                )
                for server in self._servers.values()
            ),
        )

    # -- writing ------------------------------------------------------------

    def merge(self, record: Service) -> bool:
        """
        Merge a record from elsewhere (gossip, anti-entropy).  A record that
        wins is passed on to the broadcasters, so news spreads.

        @return: whether the record changed the catalog.
        @raise Refused: when holding the record would break L{Limits}.
        """
        # A followed origin's records are as old as their last change:
        # their age proves nothing, and the origin, alive, withdraws them.
        if record.hostname not in self._followed and (
            record.updated
            < self._originNow(record.hostname)
            - self._lifespans.tombstone
            - self._lifespans.ghostMargin
        ):
            self.ghostsDropped += 1
            self.log.debug(
                "dropped ghost record {id} of {hostname}, updated {updated}",
                id=record.id,
                hostname=record.hostname,
                updated=record.updated,
            )
            return False
        if record.hostname == self.hostname and record.id in self._localIDs:
            return self._refute(record)
        accepted = self._store(record, self._checkLimits(record))
        if accepted is not None:
            self._broadcast([accepted])
        return accepted is not None

    def mergeAll(self, records: Iterable[Service]) -> int:
        """
        Merge many records, skipping those refused (they are counted in
        L{refused}); return how many changed the catalog.
        """
        changed = 0
        for record in records:
            try:
                changed += self.merge(record)
            except Refused:
                pass
        return changed

    def _checkLimits(self, record: Service) -> int | None:
        """
        Refuse C{record} if it is too large, or if storing it would grow its
        host's share or the whole catalog past L{Limits}.  A record that
        would not win changes no size and passes.

        @return: the record's L{footprint} when it would win.
        @raise Refused: counted in L{refused}.
        """
        limits = self._limits
        server = self._servers.get(record.hostname)
        entry = None if server is None else server.entries.get(record.id)
        if entry is not None and not _supersedes(record, entry.winner):
            return None
        problem = None
        if _textLength(record) > limits.record:
            # Not even encoded: it could be megabytes.
            problem = (Refused.RECORD_TOO_LARGE, f"over {limits.record} bytes")
        elif (size := _size(record, entry)) > limits.record:
            problem = (Refused.RECORD_TOO_LARGE, f"{size} bytes > {limits.record}")
        else:
            growth = size - (0 if entry is None else entry.size)
            hostSize = 0 if server is None else server.size
            if growth > 0 and hostSize + growth > limits.host:
                problem = (
                    Refused.HOST_FULL,
                    f"the host would take {hostSize + growth} bytes > {limits.host}",
                )
            elif growth > 0 and self.size + growth > limits.total:
                problem = (
                    Refused.CATALOG_FULL,
                    f"the catalog would take {self.size + growth} bytes"
                    f" > {limits.total}",
                )
        if problem is not None:
            self.refused[problem[0]] += 1
            raise Refused(problem[0], record, problem[1])
        return size

    def announceLocal(self, service: Service) -> Service:
        """
        Publish or refresh one of this node's own services.  It is stamped
        now (later than any record already held for it, so it wins), and
        sent to peers.

        @return: the record as stored.
        """
        if service.hostname != self.hostname:
            raise ValueError(
                f"service {service.id} belongs to {service.hostname!r}, "
                f"not to this node {self.hostname!r}"
            )
        current = self.get(service.hostname, service.id)
        stamp = self.now()
        if current is not None and stamp <= current.updated:
            stamp = later(current.updated, 1)
        record = service.withStatus(service.status, stamp)
        self._cancelResends(service.id)
        self._localIDs.add(service.id)
        self._store(record)
        self._broadcast([record])
        return record

    def withdrawLocal(self, serviceID: str) -> Service | None:
        """
        Tombstone one of this node's own services: it is gone.  The
        tombstone goes to peers twice at once, then once a second for ten
        seconds, so that it outruns any stale copy still in flight.

        @return: the tombstone, or L{None} if there was no such service.
        """
        current = self.get(self.hostname, serviceID)
        if serviceID not in self._localIDs or current is None:
            return None
        self._localIDs.discard(serviceID)
        tombstone = current.tombstone(max(self.now(), later(current.updated, 1)))
        self._store(tombstone)
        self._broadcast([tombstone] * self._resend.initial)
        repeats = round(self._resend.duration / self._resend.interval)
        if repeats:
            self._resends[serviceID] = [
                self._clock.callLater(
                    self._resend.interval * n,
                    self._resendTombstone,
                    tombstone,
                    n == repeats,
                )
                for n in range(1, repeats + 1)
            ]
        return tombstone

    def _resendTombstone(self, tombstone: Service, last: bool) -> None:
        if last:
            # Done: forget the calls, or every ID ever withdrawn stays.
            del self._resends[tombstone.id]
        self._broadcast([tombstone])

    def expireServer(self, hostname: str) -> list[Service]:
        """
        The cluster declared C{hostname} dead or gone: tombstone each of its
        live records, stamped now on its clock (as L{useClockOffsets}
        estimates it), so that proxies stop using them.  If the host is
        alive after all, it refutes these tombstones with its own records,
        stamped later, and its services return.

        @return: the tombstones, also sent to the broadcasters.
        """
        server = self._servers.get(hostname)
        if hostname == self.hostname or server is None:
            return []
        now = self._originNow(hostname)
        tombstones = []
        for entry in list(server.entries.values()):
            current = self._effective(entry)
            if current.isTombstone:
                continue
            tombstone = current.tombstone(max(now, later(current.updated, 1)))
            if self._store(tombstone) is not None:
                tombstones.append(tombstone)
        if tombstones:
            self.log.info(
                "{hostname} left the cluster: {count} service(s) tombstoned",
                hostname=hostname,
                count=len(tombstones),
            )
            self._broadcast(tombstones)
        return tombstones

    def _refute(self, record: Service) -> bool:
        """
        A peer's record of one of our own live services.  This node is the
        authority on those: a newer record that says something else (a
        stale tombstone from before a restart, say) is answered with our
        own record, stamped later still.
        """
        current = self.get(self.hostname, record.id)
        assert current is not None
        if not _supersedes(record, current):
            return False
        if record.sameContentAs(current):
            return self._store(record) is not None
        self.log.info(
            "refuting a peer's record of our service {id} ({status})",
            id=record.id,
            status=record.status.label,
        )
        restamped = current.withStatus(
            current.status, max(self.now(), later(record.updated, 1))
        )
        self._store(restamped)
        self._broadcast([restamped])
        return False

    def stop(self) -> None:
        """
        Cancel every pending timer (lifespans and tombstone re-sends).
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        for serviceID in list(self._resends):
            self._cancelResends(serviceID)

    # -- internals ----------------------------------------------------------

    def _effective(self, entry: _Entry) -> Service:
        # This node's own records are what it says they are, and so are
        # those of origins that publish their drains themselves; the sticky
        # rule only guards against a Go origin's ALIVE refreshes.
        host = entry.winner.hostname
        own = host == self.hostname and entry.winner.id in self._localIDs
        return entry.effective(sticky=not own and host not in self._trustedDrains)

    def _store(self, record: Service, size: int | None = None) -> Service | None:
        """
        Apply the merge rule to one record; on a change, do the Go
        bookkeeping, notify observers and re-arm the lifespan timer.
        C{size} is the record's L{footprint}, when already known.

        @return: the effective record when C{record} won, else L{None}.
        """
        server = self._servers.get(record.hostname)
        if server is None:
            server = self._servers[record.hostname] = Server(record.hostname)
        entry = server.entries.get(record.id)
        before: Service | None = None
        if entry is None:
            entry = server.entries[record.id] = _Entry(record, self.now(), 0)
            won = True
        else:
            before = self._effective(entry)
            won = _supersedes(record, entry.winner)
        if won:
            self._resize(server, entry, _size(record, entry) if size is None else size)
            entry.winner = record
            entry.arrived = self.now()
        # A record that loses can still matter: a late DRAINING record
        # makes an ALIVE winner read as DRAINING.
        entry.absorb(record)
        after = self._effective(entry)
        changed = before is None or not before.sameContentAs(after)
        if won or changed:
            self._moved()
        if won:
            server.lastUpdated = max(server.lastUpdated, record.updated)
        if changed:
            server.lastChanged = after.updated
            self.lastChanged = after.updated
            self._notify(
                ChangeEvent(
                    service=after,
                    previousStatus=Status.UNKNOWN if before is None else before.status,
                    time=after.updated,
                )
            )
        if not (won or changed):
            return None
        self._schedule(server, record.id)
        return after

    def _moved(self) -> None:
        self.version += 1
        self.modified = max(self.modified, self.now())

    def _resize(self, server: Server, entry: _Entry, size: int) -> None:
        growth = size - entry.size
        entry.size = size
        server.size += growth
        self.size += growth

    def _notify(self, event: ChangeEvent) -> None:
        for observer in list(self._observers):
            try:
                observer.serviceChanged(event)
            except Exception:
                self.log.failure(
                    "catalog observer {observer!r} failed on {id}",
                    observer=observer,
                    id=event.service.id,
                )

    def _broadcast(self, records: Sequence[Service]) -> None:
        for broadcaster in list(self._broadcasters):
            try:
                broadcaster.broadcast(records)
            except Exception:
                self.log.failure(
                    "broadcaster {broadcaster!r} failed", broadcaster=broadcaster
                )

    def _cancelResends(self, serviceID: str) -> None:
        for call in self._resends.pop(serviceID, []):
            if call.active():
                call.cancel()

    # -- lifespans ----------------------------------------------------------

    def _deadline(self, entry: _Entry) -> int | None:
        """
        When C{entry} next needs attention, on this node's clock, counted
        from when its record arrived: a tombstone is forgotten, a remote
        record not refreshed expires; this node's own live records live as
        long as discovery says, and those of an origin that follows
        membership as long as it is a member.
        """
        service = self._effective(entry)
        if service.isTombstone:
            return entry.arrived + self._lifespans.tombstone
        if service.hostname == self.hostname and service.id in self._localIDs:
            return None
        if service.hostname in self._followed:
            return None
        if service.status is Status.DRAINING:
            return entry.arrived + self._lifespans.draining
        return entry.arrived + self._lifespans.alive

    def _schedule(self, server: Server, serviceID: str) -> None:
        deadline = self._deadline(server.entries[serviceID])
        if deadline is None:
            return
        heapq.heappush(self._deadlines, (deadline, server.name, serviceID))
        if len(self._deadlines) > 2 * self._deadlinesKept:
            self._compactDeadlines()
        self._armTimer()

    def _compactDeadlines(self) -> None:
        """
        Rebuild the deadlines from the entries, without those superseded:
        each refresh or tombstone pushes a new one and the old stays until
        due (hours, for a tombstone), so under churn the heap would hold
        one per change for a tombstone's lifespan.  Run when it has doubled
        since the last rebuild, it costs O(1) a push, amortised.
        """
        self._deadlines = [
            (deadline, server.name, serviceID)
            for server in self._servers.values()
            for serviceID, entry in server.entries.items()
            if (deadline := self._deadline(entry)) is not None
        ]
        heapq.heapify(self._deadlines)
        self._deadlinesKept = max(DEADLINES_FLOOR, len(self._deadlines))

    def _armTimer(self) -> None:
        if not self._deadlines:
            return
        due = self._deadlines[0][0]
        delay = max(0.0, (due - self.now()) / NANOSECONDS)
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() <= self._clock.seconds() + delay:
                return
            self._timer.cancel()
        self._timer = self._clock.callLater(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        now = self.now() + _TIMER_SLACK
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, hostname, serviceID = heapq.heappop(self._deadlines)
            server = self._servers.get(hostname)
            entry = server.entries.get(serviceID) if server else None
            if server is None or entry is None:
                continue
            if self._deadline(entry) != deadline:
                continue  # superseded since this deadline was set
            service = self._effective(entry)
            if service.isTombstone:
                self._forget(server, serviceID)
            else:
                # One second after the last word on the origin's clock, not
                # "now" on ours: a fresher record seen elsewhere still beats
                # this tombstone (as Go), whatever the clocks say.
                tombstone = service.tombstone(later(service.updated, SECOND))
                self.log.info(
                    "service {name} {id} of {hostname} expired",
                    name=service.name,
                    id=serviceID,
                    hostname=hostname,
                )
                if self._store(tombstone) is not None:
                    self._broadcast([tombstone])
        self._armTimer()

    def _forget(self, server: Server, serviceID: str) -> None:
        self._moved()
        self._resize(server, server.entries.pop(serviceID), 0)
        if not server.entries:
            del self._servers[server.name]


def _noOffset(hostname: str) -> int:
    return 0
