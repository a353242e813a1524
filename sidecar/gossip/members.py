"""
The SWIM member table and its rules, as memberlist applies them: alive,
suspect and dead messages ordered by incarnation numbers, refutation of
rumours about ourselves, Lifeguard suspicion with confirmations, and the
cluster-name check of the Go Sidecar's fork.

Pure apart from time (an injected L{IReactorTime} runs the suspicion
timers): what it decides to tell the cluster goes to a C{broadcast}
callable, and what it learns goes to an L{IMemberObserver}.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from .interfaces import IMemberObserver
from .messages import Alive, Dead, NodeState, PushNodeState, Suspect
from .profiles import LAN, Timing
from .suspicion import Awareness, suspicionTimeout, suspicionTimeouts


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
    ) -> None:
        self.localName = local.name
        self.clusterName = clusterName
        self.awareness = Awareness(timing.awarenessMaxMultiplier)
        self._acceptUnnamed = acceptUnnamedPeers
        self._clock = clock
        self._broadcast = broadcast
        self._timing = timing
        self._observer = observer or NoObserver()
        self._members: dict[str, Member] = {local.name: local}
        self._suspicions: dict[str, _Suspicion] = {}
        self.refused = 0
        self.suspicions = 0
        self.leaving = False

    @property
    def local(self) -> Member:
        return self._members[self.localName]

    def get(self, name: str) -> Member | None:
        return self._members.get(name)

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
        self.log.info(
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
        if current is not None and message.incarnation <= current.incarnation:
            moved = (message.addr, message.port) != (current.addr, current.port)
            if not (current.isGone and moved):
                return
        member = Member.fromAlive(message, self._clock.seconds())
        self._clearSuspicion(message.node)
        self._members[message.node] = member
        self._broadcast(message.node, message.encode())
        if current is None or current.isGone:
            self._observer.memberJoined(member)
        elif (current.addr, current.port, current.meta) != (
            member.addr,
            member.port,
            member.meta,
        ):
            self._observer.memberUpdated(member)

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
        self._members[message.node] = replace(
            current,
            incarnation=message.incarnation,
            state=NodeState.SUSPECT,
            stateChange=self._clock.seconds(),
        )
        self.suspicions += 1
        self._broadcast(message.node, message.encode())
        suspicion = _Suspicion(
            self._clock.seconds(), message.incarnation, message.source
        )
        self._suspicions[message.node] = suspicion
        self._armSuspicion(message.node, suspicion)

    def deadReceived(self, message: Dead) -> None:
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
        self._clearSuspicion(message.node)
        left = message.source == message.node
        gone = replace(
            current,
            incarnation=message.incarnation,
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
            del self._members[name]
        return reaped

    def stop(self) -> None:
        for name in list(self._suspicions):
            self._clearSuspicion(name)

    # -- internals ----------------------------------------------------------

    def _refute(self, incarnation: int) -> None:
        local = self.local
        self._members[self.localName] = replace(
            local, incarnation=max(local.incarnation, incarnation) + 1
        )
        self.log.info(
            "refuting a rumour about this node at incarnation {incarnation}",
            incarnation=incarnation,
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
        self.log.info("{node} did not refute its suspicion: dead", node=name)
        self.deadReceived(
            Dead(
                incarnation=member.incarnation,
                node=name,
                source=self.localName,
                clusterName=self.clusterName,
            )
        )

    def _clearSuspicion(self, name: str) -> None:
        suspicion = self._suspicions.pop(name, None)
        if suspicion is not None and suspicion.timer is not None:
            if suspicion.timer.active():
                suspicion.timer.cancel()
