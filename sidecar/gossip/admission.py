"""
L{Admission}: which catalog records from the network reach the catalog.

The catalog merges whatever it is given; this is the gossip edge's check
of where a record comes from and whom it is about, against the member
table.  A record is admitted when:

  - the packet or stream that brought it came from a member's address
    (any member may pass on any member's records: gossip relays them);
  - its C{Hostname} is a member that is alive or suspect, or, for a
    tombstone, one that is dead or left, or was within the tombstone
    lifespan (a gone member's services are tombstoned, and those
    tombstones must still travel);
  - its C{Updated} is no further ahead of this node's clock than the
    allowed clock skew, so that no stamp can win every merge for ever.

Everything else, and whatever the catalog itself refuses (see
L{sidecar.catalog.Refused}), is counted by kind and logged at most once a
minute per kind, naming the sender.  A record that passes and came from
its own host also feeds the clock-skew estimate (L{ClockSkews}).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from sidecar.addresses import hostIP
from sidecar.catalog import Service, ServicesState
from sidecar.problems import Problems
from sidecar.ratelimit import RateLimitedLog

from .members import Member, Members
from .skew import NANOSECONDS, ClockSkews

Address = tuple[str, int]

NOT_A_RECORD = "not a record"
FOREIGN_SENDER = "foreign sender"
UNKNOWN_HOST = "unknown host"
GONE_HOST = "gone host"
FUTURE_STAMP = "future stamp"


def catalogAdmission(
    state: ServicesState,
    clock: IReactorTime,
    maxClockSkew: float,
    problems: Problems | None = None,
) -> Admission:
    """
    The admission for C{state}'s records: gone members' tombstones are
    admitted for as long as C{state} keeps tombstones.

    @param problems: where members' clocks far from ours are shown.
    """
    return Admission(
        clock,
        maxClockSkew,
        state.lifespans.tombstone / NANOSECONDS,
        ClockSkews(clock, problems=problems),
    )


# A record of a host that is no member yet, brought by a member, may be
# news of one this node has not heard join (its records can outrun its
# alive message): held back this long, the newest of each instance and at
# most this many, and merged if the host joins meanwhile.
WAITING_SECONDS = 30.0
MAX_WAITING = 256


class Admission:
    """
    Admits catalog records by sender, host and stamp.

    @ivar refused: what was refused, by kind (this module's kinds and
        L{sidecar.catalog.Refused}'s).
    @ivar skews: the members' clock offsets.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        maxClockSkew: float,
        tombstoneLifespan: float,
        skews: ClockSkews,
    ) -> None:
        self._clock = clock
        self._maxSkew = round(maxClockSkew * NANOSECONDS)
        self._tombstoneLifespan = tombstoneLifespan
        self.skews = skews
        self._members: Members | None = None
        self._gone: dict[str, float] = {}
        self._logs: dict[str, RateLimitedLog] = {}
        self._waiting: dict[tuple[str, str], tuple[Service, Address, float]] = {}
        self.refused: Counter[str] = Counter()

    def watch(self, members: Members) -> None:
        """
        Judge by C{members}, the running cluster's member table.
        """
        self._members = members

    # -- what the member observer hears ------------------------------------

    def memberJoined(self, member: Member) -> None:
        self._gone.pop(member.name, None)

    def waitingFor(self, name: str) -> list[tuple[Service, Address]]:
        """
        The records of C{name} held back while it was no member (and the
        addresses that brought them), now that it is one: each still to be
        judged by L{admit}.
        """
        self._pruneWaiting()
        found = [key for key in self._waiting if key[0] == name]
        return [self._waiting.pop(key)[:2] for key in found]

    def _wait(self, record: Service, source: Address) -> None:
        self._pruneWaiting()
        key = (record.hostname, record.id)
        self._waiting.pop(key, None)
        self._waiting[key] = (record, source, self._clock.seconds())
        if len(self._waiting) > MAX_WAITING:
            del self._waiting[next(iter(self._waiting))]

    def _pruneWaiting(self) -> None:
        since = self._clock.seconds() - WAITING_SECONDS
        while self._waiting:
            key = next(iter(self._waiting))
            if self._waiting[key][2] > since:
                break
            del self._waiting[key]

    def memberGone(self, member: Member) -> None:
        """
        Remember that C{member} was here, for its tombstones, after the
        member table has forgotten it.
        """
        now = self._clock.seconds()
        self._gone = {
            name: since
            for name, since in self._gone.items()
            if now - since <= self._tombstoneLifespan
        }
        self._gone[member.name] = now
        self.skews.forget(member.name)

    # -- judging ------------------------------------------------------------

    def sentByMember(self, source: Address) -> bool:
        """
        Whether C{source} (host, port) is the address of a member: the
        host is compared, since a stream's source port is not its gossip
        port.
        """
        return self._members is not None and self._members.isMemberHost(source[0])

    def admit(
        self, record: Service, source: Address, fromMember: bool, timely: bool = True
    ) -> bool:
        """
        Whether C{record}, brought from C{source}, may be merged; a refusal
        is counted and logged.

        @param fromMember: L{sentByMember} for C{source}, asked once per
            packet or stream.
        @param timely: whether C{record} was sent as news (gossip), so that
            its stamp, from its origin, tells that origin's clock; a copy in
            a push-pull may be as old as the record (records of members that
            follow membership are refreshed only hourly).
        """
        arrived = round(self._clock.seconds() * NANOSECONDS)
        if not self._admitted(record, source, fromMember, arrived):
            return False
        # Only admitted records tell a clock: one forged far ahead would
        # otherwise hold the estimate (a minimum) for minutes.
        if timely and self._fromOrigin(record, source):
            self.skews.observe(record.hostname, record.updated, arrived)
        return True

    def admitAll(
        self, records: Iterable[Service], source: Address, fromMember: bool
    ) -> list[Service]:
        """
        The records of one push-pull that may be merged, as L{admit} says
        of each.  None of them tells its origin's clock: a copy in a
        push-pull is as old as the record (records of members that follow
        membership are refreshed only hourly, and a node may still hold
        those of the Go Sidecar it replaced under its name).
        """
        return [r for r in records if self.admit(r, source, fromMember, timely=False)]

    def _admitted(
        self, record: Service, source: Address, fromMember: bool, arrived: int
    ) -> bool:
        problem = self._problem(record, fromMember, arrived)
        if problem is not None:
            self.refuse(problem, source, self._detail(problem, record, arrived))
            if problem == UNKNOWN_HOST:
                self._wait(record, source)
            return False
        return True

    def _fromOrigin(self, record: Service, source: Address) -> bool:
        """
        Whether C{record} was sent by the member it is about (not this
        node), so that its stamp tells that member's clock.
        """
        members = self._members
        if members is None or record.hostname == members.localName:
            return False
        origin = members.get(record.hostname)
        return origin is not None and hostIP(origin.addr) == hostIP(source[0])

    def _problem(self, record: Service, fromMember: bool, arrived: int) -> str | None:
        """
        Why C{record} may not be merged, as one of this module's kinds, or
        L{None}.
        """
        if not fromMember:
            return FOREIGN_SENDER
        if record.updated > arrived + self._maxSkew:
            return FUTURE_STAMP
        member = None if self._members is None else self._members.get(record.hostname)
        if member is not None and (record.isTombstone or not member.isGone):
            return None
        if record.isTombstone and self._recentlyGone(record.hostname):
            return None
        if member is not None or self._recentlyGone(record.hostname):
            return GONE_HOST
        return UNKNOWN_HOST

    @staticmethod
    def _detail(problem: str, record: Service, arrived: int) -> str:
        where = f"record {record.id!r} of {record.hostname!r}"
        if problem == FOREIGN_SENDER:
            return f"{where} from an address that is no member's"
        if problem == FUTURE_STAMP:
            ahead = (record.updated - arrived) / NANOSECONDS
            return f"{where} stamped {ahead:.3f} s ahead of our clock"
        if problem == GONE_HOST:
            return f"live {where}, which is gone from the cluster"
        return f"{where}, which is no member"

    def _recentlyGone(self, name: str) -> bool:
        since = self._gone.get(name)
        return (
            since is not None
            and self._clock.seconds() - since <= self._tombstoneLifespan
        )

    def refuse(self, kind: str, source: Address, problem: str) -> None:
        """
        Count a refusal of C{kind} and log it, at most once a minute per
        kind, naming C{source}.
        """
        self.refused[kind] += 1
        log = self._logs.get(kind)
        if log is None:
            log = self._logs[kind] = RateLimitedLog(self.log, self._clock, 60.0)
        log.warn(
            "refused a catalog record from {host}:{port} ({kind}): {problem}",
            host=source[0],
            port=source[1],
            kind=kind,
            problem=problem,
        )
