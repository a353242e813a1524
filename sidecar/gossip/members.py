"""
The SWIM member table and its rules, as memberlist applies them: alive,
suspect and dead messages ordered by incarnation numbers, refutation of
rumours about ourselves, Lifeguard suspicion with confirmations, and the
cluster-name check of the Go Sidecar's fork.

Pure apart from time (an injected L{IReactorTime} runs the suspicion
timers): what it decides to tell the cluster goes to a C{broadcast}
callable, and what it learns goes to an L{IMemberObserver}.

Incarnations are guarded beyond memberlist's rules, because anyone who can
reach the gossip port can send a rumour (docs/gossip.md, "Incarnations"):

  - only a member raises its own incarnation: a suspect or dead message
    about another member is applied at the incarnation we know for it,
    never at the (possibly absurd) one it names, so it can always refute;
  - a dead message from a third party, or a leave that no member vouches
    for, starts our own suspicion of the member (or confirms it) instead:
    only our own suspicion's end declares a member dead, so it always has
    time to refute, and no packet can expel it;
  - refuting, this node goes at most L{INCARNATION_JUMP} past its own
    incarnation, never beyond 2**32 - 1, and at most once per probe
    interval (rumours in between are answered together at its end);
  - an alive message more than L{INCARNATION_JUMP} ahead of the member's
    known incarnation is not believed, nor one that moves a live member
    to another address (memberlist's conflict rule).

And the table is bounded: at most C{maxMembers} names; when it is full, a
new name takes the place of the member gone longest, or is refused.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from sidecar.addresses import IP, hostIP
from sidecar.ratelimit import RateLimitedLog

from .interfaces import IMemberObserver
from .messages import Alive, Dead, NodeState, PushNodeState, Suspect
from .profiles import LAN, Timing
from .streams import MAX_PUSH_NODES
from .suspicion import Awareness, suspicionTimeout, suspicionTimeouts

# A push-pull lists the whole table, so the table holds no more than one
# push-pull may list.
MAX_MEMBERS = MAX_PUSH_NODES
MAX_INCARNATION = 0xFFFFFFFF
# How far past its own incarnation this node goes to refute a rumour that
# names a higher one (which only a restart, that lost the old incarnation,
# can legitimately explain; the node then catches up in steps).
INCARNATION_JUMP = 64

Address = tuple[str, int]


@implementer(IMemberObserver)
class NoObserver:
    def memberJoined(self, member: Member) -> None:
        pass

    def memberUpdated(self, member: Member) -> None:
        pass

    def memberGone(self, member: Member) -> None:
        pass


@dataclass(frozen=True)
class Member:
    """
    A member as this node knows it.  C{stateChange} is when (by this
    node's clock) it entered its C{state}: news that leaves it alive does
    not move it.
    """

    name: str
    addr: bytes
    port: int
    meta: bytes = b""
    incarnation: int = 0
    state: NodeState = NodeState.ALIVE
    stateChange: float = 0.0
    vsn: bytes = b""

    @property
    def isGone(self) -> bool:
        return self.state in (NodeState.DEAD, NodeState.LEFT)

    @property
    def address(self) -> Address:
        """
        Where the member gossips: its IP address as text, and its port.
        """
        return (str(ipaddress.ip_address(self.addr)), self.port)

    @classmethod
    def fromAlive(cls, message: Alive, stateChange: float) -> Member:
        return cls(
            name=message.node,
            addr=message.addr,
            port=message.port,
            meta=message.meta,
            incarnation=message.incarnation,
            state=NodeState.ALIVE,
            stateChange=stateChange,
            vsn=message.vsn,
        )

    def toNodeState(self) -> PushNodeState:
        """
        This member as a push-pull lists it.
        """
        return PushNodeState(
            name=self.name,
            addr=self.addr,
            port=self.port,
            meta=self.meta,
            incarnation=self.incarnation,
            state=int(self.state),
            vsn=self.vsn,
        )

    def toAlive(self, clusterName: str) -> Alive:
        return Alive(
            incarnation=self.incarnation,
            node=self.name,
            addr=self.addr,
            port=self.port,
            meta=self.meta,
            vsn=self.vsn,
            clusterName=clusterName,
        )


@dataclass
class _Suspicion:
    started: float
    incarnation: int
    initiator: str
    confirmers: set[str] = field(default_factory=set)
    timer: IDelayedCall | None = None
    # Started by a leave nobody vouched for: unrefuted, the member left.
    leave: bool = False


Broadcast = Callable[[str, bytes], None]


class Members:
    """
    Who is in the cluster and in what state, by node name.
    """

    log = Logger()

    def __init__(
        self,
        local: Member,
        clock: IReactorTime,
        broadcast: Broadcast,
        clusterName: str = "default",
        acceptUnnamedPeers: bool = False,
        timing: Timing = LAN,
        observer: IMemberObserver | None = None,
        maxMembers: int = MAX_MEMBERS,
    ) -> None:
        self.localName = local.name
        self.clusterName = clusterName
        self.awareness = Awareness(timing.awarenessMaxMultiplier)
        self._acceptUnnamed = acceptUnnamedPeers
        self._clock = clock
        self._broadcast = broadcast
        self._timing = timing
        self._observer = observer or NoObserver()
        self._members: dict[str, Member] = {}
        self._byAddress: dict[Address, str] = {}
        # The hosts of _byAddress's keys, counted: a packet's source host
        # is looked up once per packet.
        self._hosts: Counter[IP | None] = Counter()
        # This node has been alive since it started.
        self._put(replace(local, stateChange=clock.seconds()))
        self._suspicions: dict[str, _Suspicion] = {}
        self._maxMembers = maxMembers
        self._lastRefutation: float | None = None
        self._rumoured = -1
        self._refutation: IDelayedCall | None = None
        self._refusedLog = RateLimitedLog(self.log, clock)
        self._otherClusters = RateLimitedLog(self.log, clock)
        self.refused = 0
        self.full = 0
        self.suspicions = 0
        self.leaving = False

    @property
    def local(self) -> Member:
        return self._members[self.localName]

    def get(self, name: str) -> Member | None:
        return self._members.get(name)

    def atAddress(self, address: Address) -> Member | None:
        """
        The member (alive or not) that gossips from C{address}, if any.
        """
        name = self._byAddress.get((address[0], address[1]))
        return None if name is None else self._members.get(name)

    def isMemberHost(self, host: str) -> bool:
        """
        Whether some member (alive or not) gossips from IP address C{host}
        (a stream's source port is not its gossip port, so only the host
        can be compared; an IPv4-mapped address is its IPv4 one).
        """
        ip = hostIP(host)
        return ip is not None and self._hosts[ip] > 0

    def __len__(self) -> int:
        return len(self._members)

    def all(self) -> list[Member]:
        return sorted(self._members.values(), key=lambda m: m.name)

    def alive(self) -> list[Member]:
        return [m for m in self.all() if not m.isGone]

    def localAlive(self) -> Alive:
        """
        The alive message that announces this node.
        """
        return self.local.toAlive(self.clusterName)

    # -- the rules ----------------------------------------------------------

    def sameCluster(self, clusterName: str, node: str) -> bool:
        """
        Whether a message naming C{clusterName} (empty: a stock memberlist
        or serf peer) may change our view.
        """
        if clusterName == self.clusterName or (not clusterName and self._acceptUnnamed):
            return True
        self.refused += 1
        self._otherClusters.info(
            "ignoring {node} of cluster {theirs!r}: this is cluster {ours!r}",
            node=node,
            theirs=clusterName,
            ours=self.clusterName,
        )
        return False

    def aliveReceived(self, message: Alive) -> None:
        if not self.sameCluster(message.clusterName, message.node):
            return
        if message.node == self.localName:
            local = self.local
            if message.incarnation < local.incarnation:
                return
            if message.incarnation == local.incarnation and (
                message.addr,
                message.port,
                message.meta,
            ) == (local.addr, local.port, local.meta):
                return
            self._refute(message.incarnation)
            return
        current = self._members.get(message.node)
        if current is not None and not self._believable(message, current):
            return
        if current is None and not self._makeRoom(message.node):
            return
        # A live member's news (a newer incarnation, new metadata) leaves
        # it in the state it entered then; any other state ends now.
        since = self._clock.seconds()
        if current is not None and current.state is NodeState.ALIVE:
            since = current.stateChange
        member = Member.fromAlive(message, since)
        self._clearSuspicion(message.node)
        self._put(member)
        self._broadcast(message.node, message.encode())
        if current is None or current.isGone:
            self._observer.memberJoined(member)
        elif (current.addr, current.port, current.meta) != (
            member.addr,
            member.port,
            member.meta,
        ):
            self._observer.memberUpdated(member)

    def _believable(self, message: Alive, current: Member) -> bool:
        """
        Whether an alive message about a known member may change it: it
        must be newer (or move a member that is gone), not far ahead, and
        not move a live member elsewhere (memberlist's conflict rule: a
        live member's address is not taken over).
        """
        moved = (message.addr, message.port) != (current.addr, current.port)
        if message.incarnation <= current.incarnation:
            return current.isGone and moved
        if message.incarnation > current.incarnation + INCARNATION_JUMP:
            self._refuse(
                "an alive message for {node} at incarnation {incarnation}, "
                "far ahead of {known}",
                node=message.node,
                incarnation=message.incarnation,
                known=current.incarnation,
            )
            return False
        if moved and not current.isGone:
            self._refuse(
                "an alive message moves {node}, a live member, from {old} to {new}",
                node=message.node,
                old="{}:{}".format(*current.address),
                new="{}:{}".format(*Member.fromAlive(message, 0).address),
            )
            return False
        return True

    def suspectReceived(self, message: Suspect) -> None:
        if not self.sameCluster(message.clusterName, message.node):
            return
        current = self._members.get(message.node)
        if current is None or message.incarnation < current.incarnation:
            return
        if message.node == self.localName:
            self._refute(message.incarnation)
            self.awareness.apply(1)
            return
        suspicion = self._suspicions.get(message.node)
        if suspicion is not None and current.state is NodeState.SUSPECT:
            # Only others than the accuser and the accused confirm.
            if message.source not in (
                suspicion.initiator,
                message.node,
                *suspicion.confirmers,
            ):
                suspicion.confirmers.add(message.source)
                self._broadcast(message.node, message.encode())
                self._armSuspicion(message.node, suspicion)
            return
        if current.state is not NodeState.ALIVE:
            return
        # At the incarnation we know: only the member raises its own.
        message = replace(message, incarnation=current.incarnation)
        self._members[message.node] = replace(
            current,
            state=NodeState.SUSPECT,
            stateChange=self._clock.seconds(),
        )
        self.suspicions += 1
        self._broadcast(message.node, message.encode())
        suspicion = _Suspicion(
            self._clock.seconds(), current.incarnation, message.source
        )
        self._suspicions[message.node] = suspicion
        self._armSuspicion(message.node, suspicion)

    def deadReceived(self, message: Dead, vouched: bool = True) -> None:
        """
        A member is dead, or has left (the message is from the member
        itself).

        @param vouched: whether it came from a member (as a leave does, by
            the leaving node's own packets and by members relaying what
            they believed) or a peer this node dialled.  A leave that is
            not vouched for is taken as a suspicion (that ends in "left",
            unless the member refutes it), as a third party's verdict is.
        """
        if not self.sameCluster(message.clusterName, message.node):
            return
        current = self._members.get(message.node)
        if current is None or message.incarnation < current.incarnation:
            return
        if current.isGone:
            return
        if message.node == self.localName:
            if not self.leaving:
                self._refute(message.incarnation)
            return
        left = message.source == message.node
        hearsay = not vouched if left else message.source != self.localName
        if hearsay:
            # Another's verdict: judge for ourselves, giving the member the
            # time to refute.  It starts our suspicion, or confirms it.
            wasAlive = current.state is NodeState.ALIVE
            self.suspectReceived(
                Suspect(
                    message.incarnation,
                    message.node,
                    message.source,
                    message.clusterName,
                )
            )
            suspicion = self._suspicions.get(message.node)
            if suspicion is not None and wasAlive:
                suspicion.leave = left
            return
        self._clearSuspicion(message.node)
        message = replace(message, incarnation=current.incarnation)
        gone = replace(
            current,
            state=NodeState.LEFT if left else NodeState.DEAD,
            stateChange=self._clock.seconds(),
        )
        self._members[message.node] = gone
        self._broadcast(message.node, message.encode())
        self._observer.memberGone(gone)

    def suspect(self, name: str) -> None:
        """
        Our own probe of C{name} failed: raise the suspicion ourselves, or,
        if someone else raised it, confirm it (which shortens it for all).
        """
        member = self._members.get(name)
        if member is None or member.isGone:
            return
        self.suspectReceived(
            Suspect(
                incarnation=member.incarnation,
                node=name,
                source=self.localName,
                clusterName=self.clusterName,
            )
        )

    def leave(self) -> Dead:
        """
        Announce a graceful leave: a dead message from ourselves about
        ourselves, which peers record as "left".
        """
        self.leaving = True
        local = self.local
        dead = Dead(
            incarnation=local.incarnation,
            node=local.name,
            source=local.name,
            clusterName=self.clusterName,
        )
        self._members[local.name] = replace(
            local, state=NodeState.LEFT, stateChange=self._clock.seconds()
        )
        self._broadcast(local.name, dead.encode())
        return dead

    def reap(self, before: float) -> list[str]:
        """
        Forget members that have been dead or gone since before C{before}
        (memberlist stops gossiping to the dead after a while, then drops
        them).

        @return: the names forgotten.
        """
        reaped = [
            m.name
            for m in self._members.values()
            if m.isGone and m.stateChange < before and m.name != self.localName
        ]
        for name in reaped:
            self._remove(name)
        return reaped

    def stop(self) -> None:
        for name in list(self._suspicions):
            self._clearSuspicion(name)
        if self._refutation is not None and self._refutation.active():
            self._refutation.cancel()

    # -- internals ----------------------------------------------------------

    def _put(self, member: Member) -> None:
        old = self._members.get(member.name)
        if old is not None and self._byAddress.get(old.address) == old.name:
            self._unindex(old.address)
        self._members[member.name] = member
        if member.address not in self._byAddress:
            self._hosts[hostIP(member.address[0])] += 1
        self._byAddress[member.address] = member.name

    def _remove(self, name: str) -> None:
        member = self._members.pop(name)
        if self._byAddress.get(member.address) == name:
            self._unindex(member.address)

    def _unindex(self, address: Address) -> None:
        del self._byAddress[address]
        host = hostIP(address[0])
        self._hosts[host] -= 1
        if not self._hosts[host]:
            del self._hosts[host]

    def _makeRoom(self, name: str) -> bool:
        """
        Whether a new member C{name} fits the table, making room by
        forgetting the member gone longest if need be.
        """
        if len(self._members) < self._maxMembers:
            return True
        gone = [m for m in self._members.values() if m.isGone]
        if gone:
            self._remove(min(gone, key=lambda m: m.stateChange).name)
            return True
        self.full += 1
        self._refuse(
            "the member table is full ({count} members): not adding {node}",
            count=len(self._members),
            node=name,
        )
        return False

    def _refuse(self, format: str, **fields: object) -> None:
        self.refused += 1
        self._refusedLog.warn(format, **fields)

    def _refute(self, incarnation: int) -> None:
        """
        Answer a rumour about this node that names C{incarnation}: at once
        if no refutation went out within the last probe interval, else at
        its end, for all the rumours heard meanwhile.
        """
        self._rumoured = max(self._rumoured, incarnation)
        if self._refutation is not None and self._refutation.active():
            return
        now = self._clock.seconds()
        if self._lastRefutation is not None:
            wait = self._lastRefutation + self._timing.probeInterval - now
            if wait > 0:
                self._refutation = self._clock.callLater(wait, self._refuteNow)
                return
        self._refuteNow()

    def _refuteNow(self) -> None:
        rumoured, self._rumoured = self._rumoured, -1
        local = self.local
        if rumoured < local.incarnation or self.leaving:
            return  # already refuted past it
        # Never further than peers believe (see aliveReceived).
        target = min(rumoured + 1, local.incarnation + INCARNATION_JUMP)
        if target > MAX_INCARNATION:
            self._refuse(
                "cannot refute a rumour at incarnation {incarnation}: "
                "this node is at the last one",
                incarnation=rumoured,
            )
            return
        self._lastRefutation = self._clock.seconds()
        self._members[self.localName] = replace(local, incarnation=target)
        self.log.info(
            "refuting a rumour about this node at incarnation {incarnation}",
            incarnation=rumoured,
        )
        self._broadcast(self.localName, self.localAlive().encode())

    def _armSuspicion(self, name: str, suspicion: _Suspicion) -> None:
        timing = self._timing
        members = len(self.alive())
        least, most = suspicionTimeouts(
            timing.suspicionMultiplier,
            timing.suspicionMaxTimeoutMultiplier,
            members,
            timing.probeInterval,
        )
        # Confirmations hoped for; none where too few others could send
        # them, and then the shortest timeout applies (as memberlist).
        expected = timing.suspicionMultiplier - 2
        if members - 2 < expected:
            expected = 0
        timeout = suspicionTimeout(least, most, expected, len(suspicion.confirmers))
        remaining = max(0.0, suspicion.started + timeout - self._clock.seconds())
        if suspicion.timer is not None and suspicion.timer.active():
            suspicion.timer.cancel()
        suspicion.timer = self._clock.callLater(remaining, self._suspicionEnded, name)

    def _suspicionEnded(self, name: str) -> None:
        suspicion = self._suspicions.pop(name, None)
        member = self._members.get(name)
        if suspicion is None or member is None or member.state is not NodeState.SUSPECT:
            return
        self.log.info(
            "{node} did not refute its suspicion: {outcome}",
            node=name,
            outcome="left" if suspicion.leave else "dead",
        )
        self.deadReceived(
            Dead(
                incarnation=member.incarnation,
                node=name,
                source=name if suspicion.leave else self.localName,
                clusterName=self.clusterName,
            )
        )

    def _clearSuspicion(self, name: str) -> None:
        suspicion = self._suspicions.pop(name, None)
        if suspicion is not None and suspicion.timer is not None:
            if suspicion.timer.active():
                suspicion.timer.cancel()
