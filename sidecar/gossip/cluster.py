"""
L{Cluster}: one node's part in the SWIM cluster.  It ties the member rules,
the prober and the broadcast queue to the transports and to the application
(the catalog): it probes, gossips, syncs by push-pull, joins through seeds
(retrying while alone) and leaves.

Pure apart from time and the injected transports: a test gives it a
L{Clock}, a seeded L{random.Random} and an in-memory network, and can run
whole clusters in one process.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sidecar.ratelimit import PerSourceBudget, RateLimitedLog

from .broadcasts import BroadcastQueue
from .interfaces import (
    IGossipDelegate,
    IMemberObserver,
    IPacketSender,
    IStreamDialer,
)
from .members import Member, Members, NoObserver
from .messages import (
    Ack,
    Alive,
    Dead,
    ErrorResponse,
    IndirectPing,
    MessageType,
    NodeState,
    Ping,
    PushNodeState,
    PushPullHeader,
    Suspect,
)
from .packets import UDP_BUFFER_SIZE, encodeUserMessage
from .peers import (
    GO_RELAY_LIMIT,
    acceptsDigests,
    expectsRefreshes,
    isGoSidecar,
    nodeMeta,
)
from .prober import Address, Prober, memberAddress
from .profiles import LAN, Timing, scaledPushPullInterval
from .streams import (
    PushPull,
    StreamMessage,
    StreamUserMessage,
    encodePushPull,
    encodeStreamUserMessage,
)
from .transport import PacketHandlers

# Bytes a compound spends on its type and count, and on each part's length.
COMPOUND_HEADER = 2
COMPOUND_OVERHEAD = 2
CRC_HEADER = 5
# Version byte, nonce and tag of a sealed packet.
ENCRYPTION_OVERHEAD = 1 + 12 + 16

PROTOCOL_MIN, PROTOCOL_MAX, PROTOCOL_CURRENT = 1, 5, 4
# The delegate (application) protocol versions in Vsn.  memberlist refuses a
# push-pull when any member's current version lies outside the range every
# member accepts, so a node must claim what its peers claim: the Go Sidecar
# sets none (zeros); serf accepts 2-5 (and runs at 5).
DELEGATE_VERSIONS_SIDECAR = (0, 0, 0)
DELEGATE_VERSIONS_SERF = (2, 5, 4)

JOIN_RETRY_FIRST = 1.0
JOIN_RETRY_MOST = 30.0

# New members that an address which is no member's may introduce by UDP:
# a burst, then a few a second.  Members relaying news are not limited,
# and a push-pull (a join, or anti-entropy) brings a whole table at once,
# bounded by the table itself.
NEW_MEMBERS_BURST = 32
NEW_MEMBERS_PER_SECOND = 4.0
# Indirect pings relayed for an address that is no member's: each makes
# this node send a ping where the request says, so a stranger may not turn
# it into a reflector.
RELAYS_BURST = 16
RELAYS_PER_SECOND = 4.0


class PushPullError(Exception):
    """
    A push-pull with a peer failed: refused, of another cluster, or not
    answered with state.
    """


def localMember(
    name: str,
    address: Address,
    clusterName: str,
    delegateVersions: tuple[int, int, int] = DELEGATE_VERSIONS_SIDECAR,
) -> Member:
    """
    This node as its peers will know it.  It starts at incarnation 1, as
    memberlist does: memberlist ignores an alive message at incarnation 0
    about a node it has never seen.
    """
    return Member(
        name=name,
        incarnation=1,
        addr=ipaddress.ip_address(address[0]).packed,
        port=address[1],
        meta=nodeMeta(clusterName),
        vsn=bytes([PROTOCOL_MIN, PROTOCOL_MAX, PROTOCOL_CURRENT, *delegateVersions]),
    )


@implementer(IMemberObserver)
class Cluster:
    """
    A running member of the cluster.

    @ivar members: the L{Members} table.
    @ivar prober: the L{Prober}.
    @ivar queue: the L{BroadcastQueue} of messages waiting for gossip.
    @ivar handlers: the L{PacketHandlers} the UDP transport dispatches to.
    @ivar pushPulls: push-pulls completed (either side); C{pushPullFailures},
        those that failed.
    """

    log = Logger()

    def __init__(
        self,
        local: Member,
        clock: IReactorTime,
        rng: random.Random,
        packets: IPacketSender,
        streams: IStreamDialer,
        delegate: IGossipDelegate,
        observer: IMemberObserver | None = None,
        clusterName: str = "default",
        acceptUnnamedPeers: bool = False,
        timing: Timing = LAN,
        encrypted: bool = False,
        seeds: Sequence[Address] = (),
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._packets = packets
        self._streams = streams
        self._delegate = delegate
        self._observer = observer or NoObserver()
        self._timing = timing
        self._seeds = [seed for seed in seeds if tuple(seed) != memberAddress(local)]
        self.members = Members(
            local,
            clock,
            self._queueMemberMessage,
            clusterName=clusterName,
            acceptUnnamedPeers=acceptUnnamedPeers,
            timing=timing,
            observer=self,
        )
        self.prober = Prober(
            self.members,
            clock,
            self.sendMessage,
            rng,
            timing,
            streamPing=self._streamPing,
        )
        self.queue = BroadcastQueue(timing.retransmitMultiplier)
        self.handlers = PacketHandlers(
            ping=self.prober.pingReceived,
            indirectPing=self._indirectPingReceived,
            ack=self.prober.ackReceived,
            nack=self.prober.nackReceived,
            alive=self._aliveReceived,
            suspect=self.members.suspectReceived,
            dead=self._deadReceived,
            user=delegate.messageReceived,
        )
        self._packetBudget = UDP_BUFFER_SIZE - COMPOUND_HEADER - CRC_HEADER
        if encrypted:
            self._packetBudget -= ENCRYPTION_OVERHEAD
        self._gossipLoop = LoopingCall(self._survive, "gossip round", self.gossip)
        self._gossipLoop.clock = clock
        self._probeCall: IDelayedCall | None = None
        self._pushPullCall: IDelayedCall | None = None
        self._joinCall: IDelayedCall | None = None
        self._flushCall: IDelayedCall | None = None
        self._reconnectLoop = LoopingCall(
            self._survive, "reconnection", self._reconnect
        )
        self._reconnectLoop.clock = clock
        # Failed (not departed) members, by name: their address and when
        # they failed.  Trying them now and then heals a partition after
        # both sides have forgotten each other.
        self._failed: dict[str, tuple[Address, float]] = {}
        self._joinRetry = JOIN_RETRY_FIRST
        # Whether this spell of being alone has been told in the log.
        self._isolationTold = False
        self._failedExchanges = RateLimitedLog(self.log, clock, period=30.0)
        self._newMembers = PerSourceBudget(
            clock, NEW_MEMBERS_BURST, NEW_MEMBERS_PER_SECOND
        )
        self._strangers = RateLimitedLog(self.log, clock)
        self._relays = PerSourceBudget(clock, RELAYS_BURST, RELAYS_PER_SECOND)
        self._refusedRelays = RateLimitedLog(self.log, clock)
        self.relaysRefused = 0
        self._leftOut = RateLimitedLog(self.log, clock)
        self._inFlight: set[Deferred[Any]] = set()
        self.running = False
        self.pushPulls = 0
        self.pushPullFailures = 0

    # -- lifetime -----------------------------------------------------------

    def start(self) -> Deferred[int]:
        """
        Start probing, gossiping and syncing, and join through the seeds.

        @return: the join's L{Deferred} (see L{join}).
        """
        self.running = True
        timing = self._timing
        # Announce ourselves, as memberlist does: whoever the join reaches
        # passes it on, so no member has to wait for a push-pull to learn
        # of us.
        local = self.members.local
        self._queueMemberMessage(local.name, self.members.localAlive().encode())
        # Random first delays keep nodes started together out of step.
        self._probeCall = self._clock.callLater(
            self._rng.uniform(0, timing.probeInterval), self._probe
        )
        self._gossipLoop.start(timing.gossipInterval, now=False)
        if timing.reconnectInterval > 0:
            self._reconnectLoop.start(timing.reconnectInterval, now=False)
        self._schedulePushPull(first=True)
        return self.join()

    def leave(self, farewell: Sequence[bytes] = ()) -> None:
        """
        Tell every live member that this node is leaving, so that they
        record it as "left" rather than "failed".  Sent at once to each,
        not left to gossip, because the node is about to go.

        @param farewell: encoded messages to send first, in the same packet
            (serf's leave intent).
        """
        dead = self.members.leave().encode()
        for member in self.members.alive():
            self._packets.send(
                memberAddress(member), [*farewell, dead], self._wantsCRC(member)
            )
        self.log.info(
            "left the cluster; told {count} member(s)",
            count=len(self.members.alive()),
        )

    def stop(self) -> None:
        """
        Stop every timer.  The node stays in its peers' lists until they
        time it out: call L{leave} first to leave gracefully.
        """
        self.running = False
        for loop in (self._gossipLoop, self._reconnectLoop):
            if loop.running:
                loop.stop()
        calls = (self._probeCall, self._pushPullCall, self._joinCall, self._flushCall)
        for call in calls:
            if call is not None and call.active():
                call.cancel()
        self.prober.stop()
        self.members.stop()
        for d in list(self._inFlight):
            d.cancel()

    # -- joining ------------------------------------------------------------

    def join(self, seeds: Sequence[Address] | None = None) -> Deferred[int]:
        """
        Push-pull with every seed, as a join.  While this node stays alone,
        it tries again with a growing delay (up to 30 s).

        @return: a L{Deferred} firing with how many seeds answered.
        """
        seeds = self._seeds if seeds is None else list(seeds)
        attempts = [
            self.pushPull(seed, join=True).addCallbacks(
                lambda _: 1, self._seedFailed, errbackArgs=(seed,)
            )
            for seed in seeds
        ]
        d: Deferred[Any] = gatherResults(attempts)
        d.addCallback(sum)
        d.addCallback(self._joined, len(seeds))
        return d

    def _seedFailed(self, failure: Failure, seed: Address) -> int:
        # Told once per spell of isolation; the retries that follow would
        # repeat it every 30 s.
        emit = self.log.debug if self._isolationTold else self.log.info
        emit(
            "could not join through {host}:{port}: {reason}",
            host=seed[0],
            port=seed[1],
            reason=failure.getErrorMessage(),
        )
        return 0

    def _joined(self, answered: int, tried: int) -> int:
        if tried and answered:
            self.log.info(
                "joined through {answered} of {tried} seed(s); "
                "{members} member(s) alive",
                answered=answered,
                tried=tried,
                members=len(self.members.alive()),
            )
            self._isolationTold = False
        elif tried and not self._isolationTold:
            self.log.warn(
                "no seed answered ({tried} tried): this node is alone, "
                "and keeps trying",
                tried=tried,
            )
            self._isolationTold = True
        if self._alone():
            self._scheduleJoinRetry()
        else:
            self._joinRetry = JOIN_RETRY_FIRST
        return answered

    def _alone(self) -> bool:
        return len(self.members.alive()) <= 1

    def _scheduleJoinRetry(self) -> None:
        if not (self.running and self._seeds):
            return
        if self._joinCall is not None and self._joinCall.active():
            return
        delay, self._joinRetry = (
            self._joinRetry,
            min(self._joinRetry * 2, JOIN_RETRY_MOST),
        )
        self._joinCall = self._clock.callLater(delay, self._retryJoin)

    def _retryJoin(self) -> None:
        self._joinCall = None
        if self.running and self._alone():
            self.join()

    # -- IMemberObserver: our own reactions, then the application's ----------

    def memberJoined(self, member: Member) -> None:
        self._failed.pop(member.name, None)
        self.log.info(
            "member {node} joined at {host}:{port}",
            node=member.name,
            host=memberAddress(member)[0],
            port=member.port,
        )
        self._observer.memberJoined(member)

    def memberUpdated(self, member: Member) -> None:
        self._observer.memberUpdated(member)

    def memberGone(self, member: Member) -> None:
        self.log.info(
            "member {node} {how}",
            node=member.name,
            how="left" if member.state is NodeState.LEFT else "failed",
        )
        if member.state is NodeState.DEAD:
            self._failed[member.name] = (memberAddress(member), self._clock.seconds())
        else:
            self._failed.pop(member.name, None)
        self._observer.memberGone(member)
        if self._alone():
            self._joinRetry = JOIN_RETRY_FIRST
            self._scheduleJoinRetry()

    def _reconnect(self) -> None:
        """
        Try a push-pull with one failed member, as serf does: if it was cut
        off rather than dead, the two sides find each other again.
        """
        cutoff = self._clock.seconds() - self._timing.reconnectTimeout
        for name, (_, since) in list(self._failed.items()):
            if since < cutoff:
                del self._failed[name]
        if not self._failed:
            return
        name = self._rng.choice(sorted(self._failed))
        address, _ = self._failed[name]
        self.pushPull(address).addErrback(
            lambda failure: self.log.debug(
                "{node} is still unreachable: {reason}",
                node=name,
                reason=failure.getErrorMessage(),
            )
        )

    def _survive(self, what: str, work: Callable[[], object]) -> None:
        """
        Run one round of periodic work; a bug in it is logged, and the
        rounds go on (a LoopingCall would stop for good).
        """
        try:
            work()
        except Exception:
            self.log.failure("{what} failed", what=what)

    # -- dissemination ------------------------------------------------------

    def broadcast(self, subject: object, payload: bytes) -> None:
        """
        Spread a user message (for sidecar: one catalog record's JSON) to
        every node.  A newer message about the same C{subject} replaces
        one still queued.  It goes out at once, not at the next tick.
        """
        self._enqueue(("user", subject), encodeUserMessage(payload))

    def _queueMemberMessage(self, node: str, message: bytes) -> None:
        self._enqueue(("member", node), message)
        members = self.members
        if node == members.localName and self.running and not members.leaving:
            # A refutation also goes straight to every live member (at most
            # once a probe interval): gossip alone may spend its few
            # transmissions on members that never answer, as a flood of
            # fake ones does, and the suspicion would run out meanwhile.
            for member in members.alive():
                if member.name != node:
                    self._packets.send(
                        memberAddress(member), [message], self._wantsCRC(member)
                    )

    def _enqueue(self, subject: object, message: bytes) -> None:
        self.queue.queue(subject, message)
        # News goes to a few random nodes straight away, and each node that
        # learns it does the same: it crosses the cluster in network time,
        # not in gossip ticks.  Calls in one reactor turn share one round.
        if self.running and (self._flushCall is None or not self._flushCall.active()):
            self._flushCall = self._clock.callLater(0, self.gossip)

    def gossip(self) -> None:
        """
        One gossip round: queued messages to a few random members, one
        packet each; a message too large for any packet goes over TCP.
        """
        self._reapGone()
        for message in self.queue.oversized(COMPOUND_OVERHEAD, self._packetBudget):
            self._sendLarge(message)
        members = len(self.members.alive())
        for member in self._gossipTargets():
            messages = self.queue.take(COMPOUND_OVERHEAD, self._packetBudget, members)
            if not messages:
                return
            self._packets.send(memberAddress(member), messages, self._wantsCRC(member))

    def _gossipTargets(self, withGo: bool = True) -> list[Member]:
        """
        Up to C{gossipNodes} random live (or lately dead) members; without
        Go Sidecars unless C{withGo}.
        """
        now = self._clock.seconds()
        candidates = [
            m
            for m in self.members.all()
            if m.name != self.members.localName
            and (withGo or not isGoSidecar(m.vsn, m.meta))
            and (
                m.state in (NodeState.ALIVE, NodeState.SUSPECT)
                or (
                    m.state is NodeState.DEAD
                    and now - m.stateChange < self._timing.gossipToTheDead
                )
            )
        ]
        return self._rng.sample(
            candidates, min(self._timing.gossipNodes, len(candidates))
        )

    def _reapGone(self) -> None:
        self.members.reap(self._clock.seconds() - self._timing.gossipToTheDead)

    def _sendLarge(self, message: bytes) -> None:
        """
        A user message too big for UDP: send it as a stream to as many
        random members as a gossip round would reach; never to a Go
        Sidecar when it is more than Go can relay (see L{peers}).
        """
        if message[0] != MessageType.USER:
            self.log.warn("dropping an oversized {type} message", type=message[0])
            return
        payload = message[1:]
        body = encodeStreamUserMessage(payload)
        for member in self._gossipTargets(withGo=len(payload) <= GO_RELAY_LIMIT):
            d = self._request(memberAddress(member), body, False)
            d.addErrback(self._exchangeFailed, "large message", member.name)

    def sendMessage(self, address: Address, message: bytes) -> None:
        """
        Send one message by UDP, with as many queued broadcasts as fit
        piggybacked on it.
        """
        room = self._packetBudget - len(message) - COMPOUND_OVERHEAD
        extra: list[bytes] = []
        if room > 0:
            extra = self.queue.take(COMPOUND_OVERHEAD, room, len(self.members.alive()))
        member = self.members.atAddress(address)
        crc = member is not None and self._wantsCRC(member)
        self._packets.send(address, [message, *extra], crc)

    def goPeers(self) -> list[Member]:
        """
        The live or suspect members that are Go Sidecars.
        """
        return self._livePeers(isGoSidecar)

    def refreshedPeers(self) -> list[Member]:
        """
        The live or suspect members that expire records not refreshed (Go
        Sidecars, ours of old: L{expectsRefreshes}).
        """
        return self._livePeers(expectsRefreshes)

    def _livePeers(self, which: Callable[[bytes, bytes], bool]) -> list[Member]:
        """
        The live or suspect members, not this node, that C{which} says of
        given their versions and metadata.
        """
        return [
            m
            for m in self.members.all()
            if m.name != self.members.localName
            and m.state in (NodeState.ALIVE, NodeState.SUSPECT)
            and which(m.vsn, m.meta)
        ]

    def _mayBeGo(self, host: str, states: Sequence[PushNodeState] = ()) -> bool:
        """
        Whether the peer at C{host} may be a Go Sidecar: one of the members
        we know there, or of the C{states} it sent, is; or none is known
        there at all (a seed, a stranger), so it is safer to assume so.
        """
        there = [
            (m.vsn, m.meta) for m in self.members.all() if memberAddress(m)[0] == host
        ] + [(s.vsn, s.meta) for s in states if _host(s.addr) == host]
        return not there or any(isGoSidecar(vsn, meta) for vsn, meta in there)

    def _aliveReceived(self, message: Alive, source: Address) -> None:
        """
        An alive message by UDP: news of a new member is taken from a
        member freely, and from any other address within its budget.
        """
        stranger = None if self.members.atAddress(source) else source[0]
        if self._admits(message.node, stranger):
            self.members.aliveReceived(message)

    def _indirectPingReceived(self, request: IndirectPing, source: Address) -> None:
        """
        Relay a ping for a member freely, and for any other address within
        its budget.
        """
        if self.members.atAddress(source) is None and not self._relays.spend(source[0]):
            self.relaysRefused += 1
            self._refusedRelays.warn(
                "{host} asks for indirect pings too often: not relaying",
                host=source[0],
            )
            return
        self.prober.indirectPingReceived(request, source)

    def _deadReceived(self, message: Dead, source: Address) -> None:
        """
        A dead message by UDP: a leave is vouched for when a member sends
        it (the leaving node itself, or a member passing on what it
        believed).
        """
        vouched = self.members.atAddress(source) is not None
        self.members.deadReceived(message, vouched=vouched)

    def _admits(self, node: str, stranger: str | None) -> bool:
        """
        Whether news of C{node} may be taken from C{stranger} (an address
        that is no member's; L{None}: from a member, or a peer we asked).
        """
        if (
            stranger is None
            or self.members.get(node) is not None
            or self._newMembers.spend(stranger)
        ):
            return True
        self.members.refused += 1
        self._strangers.warn(
            "{host} introduces new members too fast: not adding {node}",
            host=stranger,
            node=node,
        )
        return False

    @staticmethod
    def _wantsCRC(member: Member) -> bool:
        # memberlist adds the CRC header for peers whose protocol max is 5+.
        return len(member.vsn) > 1 and member.vsn[1] >= 5

    def _request(
        self, address: Address, body: bytes, expectReply: bool
    ) -> Deferred[StreamMessage | None]:
        """
        A stream exchange that L{stop} cancels if it is still under way.
        """
        d = self._streams.request(address, body, expectReply)
        self._inFlight.add(d)

        def done(result: object) -> object:
            self._inFlight.discard(d)
            return result

        d.addBoth(done)
        return d

    # -- probing ------------------------------------------------------------

    def _probe(self) -> None:
        if self.running:
            self._probeCall = self._clock.callLater(self.prober.interval(), self._probe)
        self._survive("probe", self.prober.probeNext)

    def _streamPing(self, member: Member) -> Deferred[bool]:
        ping = Ping(seqNo=self._rng.randrange(1 << 32), node=member.name)
        d = self._request(memberAddress(member), ping.encode(), True)
        return d.addCallback(
            lambda reply: isinstance(reply, Ack) and reply.seqNo == ping.seqNo
        )

    # -- push-pull ----------------------------------------------------------

    def pushPull(
        self, address: Address, join: bool = False, digest: bool = False
    ) -> Deferred[None]:
        """
        Exchange whole states with the node at C{address} over TCP: members
        and the application's state, both ways; with C{digest} (a peer of
        ours that takes one), the application's state in short, to which
        the peer answers with what differs.
        """
        body = self._localPushPull(join, self._mayBeGo(address[0]), digest)
        d = self._request(address, body, True)
        return d.addCallback(self._pushPullReplied, address)

    def _pushPullReplied(self, reply: StreamMessage | None, address: Address) -> None:
        where = f"{address[0]}:{address[1]}"
        if isinstance(reply, ErrorResponse):
            raise PushPullError(f"{where} refused: {reply.error}")
        if not isinstance(reply, PushPull):
            raise PushPullError(f"{where} answered with {type(reply).__name__}")
        if not self.members.sameCluster(reply.header.clusterName, where):
            raise PushPullError(
                f"{where} is of cluster {reply.header.clusterName!r}, "
                f"not {self.members.clusterName!r}"
            )
        self._mergePushPull(reply, address, dialed=True)

    def _localPushPull(
        self,
        join: bool,
        forGo: bool,
        digest: bool = False,
        remote: bytes | None = None,
    ) -> bytes:
        """
        Our push-pull: every member, and the application's state; for a
        peer that may be a Go Sidecar, without any record Go cannot relay.
        With C{digest}, the application's digest instead; C{remote}, when
        answering, is the state the peer pushed.
        """
        states = [member.toNodeState() for member in self.members.all()]
        if digest:
            userState = self._delegate.localDigest()
        else:
            limit = GO_RELAY_LIMIT if forGo else None
            userState = self._delegate.localState(limit, remote)
        header = PushPullHeader(
            nodes=len(states),
            userStateLen=len(userState),
            join=join,
            clusterName=self.members.clusterName,
        )
        return encodePushPull(header, states, userState)

    def _mergePushPull(
        self, message: PushPull, source: Address, dialed: bool = False
    ) -> None:
        """
        Apply a peer's whole state, from C{source} (a peer this node
        C{dialed}, or one that connected), as memberlist does: alive and
        left members as they say; dead or suspect ones only as suspects, so
        that we judge (and they may refute) for ourselves.  New members
        pushed by a stranger (an address that is no member's host) are
        taken within its budget, as by UDP; a peer we dialled is trusted.
        """
        self.pushPulls += 1
        members = self.members
        cluster = members.clusterName
        known = dialed or members.isMemberHost(source[0])
        stranger = None if known else source[0]
        if message.leftOut:
            members.refused += len(message.leftOut)
            self._leftOut.warn(
                "left {count} member state(s) out of a push-pull: {first}",
                count=len(message.leftOut),
                first=message.leftOut[0],
            )
        for state in message.states:
            if state.state == NodeState.ALIVE:
                if self._admits(state.name, stranger):
                    members.aliveReceived(state.toAlive(cluster))
            elif state.state == NodeState.LEFT:
                members.deadReceived(
                    Dead(state.incarnation, state.name, state.name, cluster),
                    vouched=stranger is None,
                )
            elif state.state in (NodeState.DEAD, NodeState.SUSPECT):
                members.suspectReceived(
                    Suspect(state.incarnation, state.name, members.localName, cluster)
                )
        if message.userState:
            self._delegate.mergeRemoteState(
                message.userState, message.header.join, source, dialed
            )

    def _schedulePushPull(self, first: bool = False) -> None:
        interval = scaledPushPullInterval(
            self._timing.pushPullInterval, len(self.members.alive())
        )
        if interval <= 0:
            return
        delay = self._rng.uniform(0, interval) if first else interval
        self._pushPullCall = self._clock.callLater(delay, self._periodicPushPull)

    def _periodicPushPull(self) -> None:
        if self.running:
            self._schedulePushPull()
        self._survive("push-pull", self._pushPullRandomPeer)

    def _pushPullRandomPeer(self) -> None:
        peers = [
            m
            for m in self.members.alive()
            if m.name != self.members.localName and m.state is NodeState.ALIVE
        ]
        if peers:
            peer = self._rng.choice(peers)
            digest = acceptsDigests(peer.meta)
            self.pushPull(memberAddress(peer), digest=digest).addErrback(
                self._exchangeFailed, "push-pull", peer.name
            )

    def _exchangeFailed(self, failure: Failure, what: str, node: str) -> None:
        if not self.running:
            return  # cancelled by stop()
        if what == "push-pull":
            self.pushPullFailures += 1
        self._failedExchanges.warn(
            "{what} with {node} failed: {reason}",
            what=what,
            node=node,
            reason=failure.getErrorMessage(),
        )

    # -- the TCP listener's handler ------------------------------------------

    def streamReceived(self, message: StreamMessage, source: Address) -> bytes | None:
        """
        Answer a stream from a peer.

        @return: the reply body, or L{None} for no reply.
        """
        where = f"{source[0]}:{source[1]}"
        if isinstance(message, PushPull):
            theirs = message.header.clusterName
            if not self.members.sameCluster(theirs, where):
                ours = self.members.clusterName
                return ErrorResponse(
                    f"cluster names do not match: {ours!r} <-> {theirs!r}"
                ).encode()
            forGo = self._mayBeGo(source[0], message.states)
            reply = self._localPushPull(
                message.header.join, forGo, remote=message.userState
            )
            self._mergePushPull(message, source)
            return reply
        if isinstance(message, StreamUserMessage):
            self._delegate.messageReceived(message.payload, source)
            return None
        if isinstance(message, Ping):
            if message.node and message.node != self.members.localName:
                return None
            return Ack(message.seqNo, b"").encode()
        self.log.debug(
            "ignoring a {kind} stream from {where}",
            kind=type(message).__name__,
            where=where,
        )
        return None


def _host(addr: bytes) -> str | None:
    """
    A member's packed address as text, or L{None} if it is not one.
    """
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return None
