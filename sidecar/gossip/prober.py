"""
SWIM failure detection, as memberlist runs it: each probe interval one
member, in a shuffled round-robin order, is pinged; without an ack in time,
C{k} others are asked to ping it for us (and it is pinged over TCP, where
the transport can); still nothing by the end of the interval, and it is
suspected.  The prober also answers others' pings and indirect pings.

Pure apart from time: packets go out through an injected C{send}, the TCP
fallback through an injected C{streamPing}, and timers run on an injected
L{IReactorTime}, so an in-memory network can drive whole clusters.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from .members import Member, Members
from .messages import Ack, IndirectPing, Nack, NodeState, Ping, Suspect
from .profiles import LAN, Timing

Address = tuple[str, int]
Send = Callable[[Address, bytes], None]
StreamPing = Callable[[Member], "Deferred[bool]"]

RELAY_FRACTION = 0.8


def memberAddress(member: Member) -> Address:
    return member.address


@dataclass
class _Probe:
    target: str
    acked: bool = False
    nacks: int = 0
    expectedNacks: int = 0
    timers: list[IDelayedCall] = field(default_factory=list)


@dataclass
class _Relay:
    """
    An indirect ping we are carrying out for someone else.
    """

    requester: Address
    seqNo: int
    timer: IDelayedCall | None = None


class Prober:
    """
    @ivar probes: how many probes were sent; C{failures}, how many ended in
        a suspicion.
    """

    log = Logger()

    def __init__(
        self,
        members: Members,
        clock: IReactorTime,
        send: Send,
        rng: random.Random,
        timing: Timing = LAN,
        streamPing: StreamPing | None = None,
        ackPayload: bytes = b"",
    ) -> None:
        self._members = members
        self._clock = clock
        self._send = send
        self._rng = rng
        self._interval = timing.probeInterval
        self._timeout = timing.probeTimeout
        self._indirectChecks = timing.indirectChecks
        self._streamPing = streamPing
        self._ackPayload = ackPayload
        self._order: list[str] = []
        self._nextSeqNo = rng.randrange(1 << 31)
        self._probes: dict[int, _Probe] = {}
        self._relays: dict[int, _Relay] = {}
        self.probes = 0
        self.failures = 0

    def interval(self) -> float:
        """
        The probe interval, stretched while this node is unhealthy.
        """
        return self._members.awareness.scale(self._interval)

    # -- probing ------------------------------------------------------------

    def probeNext(self) -> str | None:
        """
        Probe the next member in round-robin order; return its name, or
        L{None} when there is no one to probe.
        """
        target = self._nextTarget()
        if target is None:
            return None
        seqNo = self._seqNo()
        probe = _Probe(target.name)
        self._probes[seqNo] = probe
        self.probes += 1
        address = memberAddress(target)
        self._send(address, self._ping(seqNo, target).encode())
        if target.state is NodeState.SUSPECT:
            # Tell a suspect straight away, as memberlist does, so that it
            # can refute even if the gossip of its suspicion missed it.
            suspect = Suspect(
                incarnation=target.incarnation,
                node=target.name,
                source=self._members.localName,
                clusterName=self._members.clusterName,
            )
            self._send(address, suspect.encode())
        timeout = self._members.awareness.scale(self._timeout)
        probe.timers.append(
            self._clock.callLater(timeout, self._probeTimedOut, seqNo, target)
        )
        probe.timers.append(
            self._clock.callLater(self.interval(), self._probeEnded, seqNo)
        )
        return target.name

    def _nextTarget(self) -> Member | None:
        for _ in range(2):
            while self._order:
                member = self._members.get(self._order.pop())
                if member is not None and member.state in (
                    NodeState.ALIVE,
                    NodeState.SUSPECT,
                ):
                    return member
            # A new round: every other live member, in a fresh random order.
            self._order = [
                m.name
                for m in self._members.all()
                if m.name != self._members.localName
                and m.state in (NodeState.ALIVE, NodeState.SUSPECT)
            ]
            self._rng.shuffle(self._order)
        return None

    def _probeTimedOut(self, seqNo: int, target: Member) -> None:
        probe = self._probes.get(seqNo)
        if probe is None or probe.acked:
            return
        helpers = [
            m
            for m in self._members.alive()
            if m.name not in (self._members.localName, target.name)
            and m.state is NodeState.ALIVE
        ]
        count = min(self._indirectChecks, len(helpers))
        for helper in self._rng.sample(helpers, count):
            nack = len(helper.vsn) > 2 and helper.vsn[2] >= 4
            probe.expectedNacks += nack
            request = IndirectPing(
                seqNo=seqNo,
                target=target.addr,
                port=target.port,
                node=target.name,
                nack=nack,
            )
            self._send(memberAddress(helper), request.encode())
        if self._streamPing is not None:
            self._streamPing(target).addCallbacks(
                lambda ok: self._acked(seqNo) if ok else None,
                lambda failure: self.log.debug(
                    "TCP ping of {node} failed: {reason}",
                    node=target.name,
                    reason=failure.getErrorMessage(),
                ),
            )

    def _probeEnded(self, seqNo: int) -> None:
        probe = self._probes.pop(seqNo, None)
        if probe is None:
            return
        for timer in probe.timers:
            if timer.active():
                timer.cancel()
        if probe.acked:
            return
        # Lifeguard: nacks we were promised but did not get point at us.
        self._members.awareness.apply(max(0, probe.expectedNacks - probe.nacks))
        self.failures += 1
        member = self._members.get(probe.target)
        if member is not None and member.state is NodeState.ALIVE:
            self.log.info("no ack from {node}: suspecting it", node=probe.target)
        else:
            # Logged once, when the member stops being alive; not again at
            # each probe while the suspicion runs.
            self.log.debug("no ack from {node} again", node=probe.target)
        self._members.suspect(probe.target)

    def _acked(self, seqNo: int) -> None:
        probe = self._probes.get(seqNo)
        if probe is None or probe.acked:
            return
        probe.acked = True
        self._members.awareness.apply(-1)

    # -- receiving ----------------------------------------------------------

    def ackReceived(self, ack: Ack) -> None:
        relay = self._relays.pop(ack.seqNo, None)
        if relay is not None:
            if relay.timer is not None and relay.timer.active():
                relay.timer.cancel()
            self._send(relay.requester, Ack(relay.seqNo, ack.payload).encode())
            return
        self._acked(ack.seqNo)

    def nackReceived(self, nack: Nack) -> None:
        probe = self._probes.get(nack.seqNo)
        if probe is not None:
            probe.nacks += 1

    def pingReceived(self, ping: Ping, source: Address) -> None:
        if ping.node and ping.node != self._members.localName:
            self.log.debug(
                "ping meant for {node} reached us; not answering", node=ping.node
            )
            return
        replyTo = source
        if ping.sourceAddr and ping.sourcePort:
            replyTo = (str(ipaddress.ip_address(ping.sourceAddr)), ping.sourcePort)
        self._send(replyTo, Ack(ping.seqNo, self._ackPayload).encode())

    def indirectPingReceived(self, request: IndirectPing, source: Address) -> None:
        seqNo = self._seqNo()
        relay = _Relay(source, request.seqNo)
        self._relays[seqNo] = relay
        target = (str(ipaddress.ip_address(request.target)), request.port)
        ping = Ping(seqNo=seqNo, node=request.node)
        self._send(target, ping.encode())
        # The requester asked at its probe timeout and stops listening at
        # the end of its interval; a nack sent after a full probe timeout
        # would arrive just too late, so give up a little sooner.
        relay.timer = self._clock.callLater(
            self._timeout * RELAY_FRACTION, self._relayTimedOut, seqNo, request.nack
        )

    def _relayTimedOut(self, seqNo: int, nack: bool) -> None:
        relay = self._relays.pop(seqNo, None)
        if relay is not None and nack:
            self._send(relay.requester, Nack(relay.seqNo).encode())

    # -- internals ----------------------------------------------------------

    def _seqNo(self) -> int:
        self._nextSeqNo = (self._nextSeqNo + 1) & 0xFFFFFFFF
        return self._nextSeqNo

    def _ping(self, seqNo: int, target: Member) -> Ping:
        local = self._members.local
        return Ping(
            seqNo=seqNo,
            node=target.name,
            sourceAddr=local.addr,
            sourcePort=local.port,
            sourceNode=local.name,
        )

    def stop(self) -> None:
        for probe in self._probes.values():
            for timer in probe.timers:
                if timer.active():
                    timer.cancel()
        for relay in self._relays.values():
            if relay.timer is not None and relay.timer.active():
                relay.timer.cancel()
        self._probes.clear()
        self._relays.clear()
