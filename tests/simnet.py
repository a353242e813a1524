"""
A simulated network for whole clusters in one process, on one L{Clock}:
every node is a real L{Cluster} with its own catalog, speaking real
memberlist bytes (framed, sealed, parsed) through in-memory UDP and TCP
that can lose packets, add delay, partition and freeze nodes.
"""

from __future__ import annotations

import ipaddress
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock
from zope.interface import implementer

from sidecar.catalog import Service, ServicesState
from sidecar.gossip.admission import catalogAdmission
from sidecar.gossip.cluster import Cluster, localMember
from sidecar.gossip.delegate import CatalogBroadcaster, CatalogDelegate
from sidecar.gossip.interfaces import IMemberObserver, IStreamDialer
from sidecar.gossip.members import Member
from sidecar.gossip.messages import NodeState, WireError
from sidecar.gossip.profiles import LAN, Timing
from sidecar.gossip.security import Keyring
from sidecar.gossip.streams import StreamMessage, frameStream, parseStream
from sidecar.gossip.transport import GossipDatagramProtocol

from .eventclock import EventClock

Address = tuple[str, int]
PORT = 7946


def simAddress(index: int) -> Address:
    """
    Node C{index}'s address: 127.0.1.C{index} up to 254, and on through
    127.0.2.x, 127.0.3.x, ... for larger clusters (never a real socket).
    """
    return (str(ipaddress.IPv4Address(0x7F000100 + index)), PORT)


class _SimUDPTransport:
    def __init__(self, network: SimNetwork, source: Address) -> None:
        self._network = network
        self._source = source

    def write(self, packet: bytes, address: Address) -> None:
        self._network.sendPacket(self._source, address, packet)


@implementer(IStreamDialer)
class _SimDialer:
    def __init__(self, network: SimNetwork, node: SimNode) -> None:
        self._network = network
        self._node = node

    def request(
        self, address: Address, body: bytes, expectReply: bool = True
    ) -> Deferred[StreamMessage | None]:
        return self._network.stream(self._node, address, body, expectReply)


class _ShiftedCall:
    """
    A delayed call of the shared clock, as a L{SkewedClock} reports it.
    """

    def __init__(self, call: IDelayedCall, skew: float) -> None:
        self._call = call
        self._skew = skew

    def getTime(self) -> float:
        return self._call.getTime() + self._skew

    def active(self) -> bool:
        return self._call.active()

    def cancel(self) -> None:
        self._call.cancel()


class SkewedClock:
    """
    A node's clock C{skew} seconds off the network's: the time of day is
    shifted, delays run on the shared L{Clock}.
    """

    def __init__(self, clock: Clock | EventClock, skew: float) -> None:
        self._clock = clock
        self._skew = skew

    def seconds(self) -> float:
        return self._clock.seconds() + self._skew

    def callLater(
        self, delay: float, f: Callable[..., object], *args: object, **kw: object
    ) -> _ShiftedCall:
        return _ShiftedCall(self._clock.callLater(delay, f, *args, **kw), self._skew)

    def getDelayedCalls(self) -> list[IDelayedCall]:
        return self._clock.getDelayedCalls()


class SimNode:
    """
    One node: a catalog, the gossip delegate and broadcaster, a L{Cluster}
    and a real L{GossipDatagramProtocol} on the simulated network.
    """

    def __init__(
        self,
        network: SimNetwork,
        index: int,
        seeds: Sequence[Address],
        clusterName: str = "default",
        keys: Sequence[bytes] = (),
        timing: Timing = LAN,
        goSidecar: bool = False,
        clockSkew: float = 0.0,
        observers: Sequence[IMemberObserver] = (),
    ) -> None:
        """
        @param goSidecar: whether the node marks itself as the Go Sidecar
            does: its metadata without our drains mark.
        @param observers: told of membership changes too, after the
            catalog's delegate.
        """
        self.network = network
        self.name = f"node-{index}"
        self.address: Address = simAddress(index)
        self.keyring = Keyring(keys) if keys else None
        clock = network.clock
        # Only the catalog reads the time of day; the rest counts intervals.
        self.wallClock = SkewedClock(clock, clockSkew)
        self.state = ServicesState(self.name, self.wallClock, clusterName=clusterName)
        self.admission = catalogAdmission(self.state, self.wallClock, 30.0)
        self.delegate = CatalogDelegate(self.state, self.admission)
        self.protocol = GossipDatagramProtocol(None, clock, self.keyring)
        self.protocol.transport = _SimUDPTransport(network, self.address)  # type: ignore[assignment]
        local = localMember(self.name, self.address, clusterName)
        if goSidecar:
            goMeta = f'{{"ClusterName":"{clusterName}","State":"Running"}}'
            local = replace(local, meta=goMeta.encode())
        self.cluster = Cluster(
            local,
            clock,
            random.Random(index),
            self.protocol,
            _SimDialer(network, self),
            self.delegate,
            observer=_Observers([self.delegate, *observers]),
            clusterName=clusterName,
            timing=timing,
            encrypted=self.keyring is not None,
            seeds=seeds,
        )
        self.admission.watch(self.cluster.members)
        self.protocol.handlers = self.cluster.handlers
        self.state.addBroadcaster(CatalogBroadcaster(self.cluster))
        self.frozen = False
        network.nodes[self.address] = self

    def start(self) -> Deferred[int]:
        return self.cluster.start()

    def view(self) -> dict[str, NodeState]:
        """
        Each member this node knows, and its state.
        """
        return {m.name: m.state for m in self.cluster.members.all()}

    def member(self, name: str) -> Member | None:
        return self.cluster.members.get(name)

    def announce(self, name: str, serviceID: str, image: str = "img:1") -> Service:
        return self.state.announceLocal(
            Service(
                id=serviceID,
                name=name,
                image=image,
                created=0,
                hostname=self.name,
                ports=(),
                updated=0,
            )
        )

    def stop(self) -> None:
        self.cluster.stop()
        self.state.stop()


@implementer(IMemberObserver)
class _Observers:
    """
    Tells each of several observers of a membership change, in order.
    """

    def __init__(self, observers: Sequence[IMemberObserver]) -> None:
        self._observers = observers

    def memberJoined(self, member: Member) -> None:
        for observer in self._observers:
            observer.memberJoined(member)

    def memberUpdated(self, member: Member) -> None:
        for observer in self._observers:
            observer.memberUpdated(member)

    def memberGone(self, member: Member) -> None:
        for observer in self._observers:
            observer.memberGone(member)


class SimNetwork:
    """
    Delivers packets and streams between L{SimNode}s after C{latency}
    seconds, dropping a C{loss} fraction of packets (streams, being TCP,
    are not lost), and nothing at all across a partition or to or from a
    frozen node.

    @ivar streamBytes: the bytes of stream frames each address has sent
        (requests and replies); a node's UDP bytes are its protocol's
        counters.
    """

    def __init__(
        self,
        seed: int = 0,
        latency: float = 0.002,
        clock: Clock | EventClock | None = None,
    ) -> None:
        """
        @param seed: seeds the random losses.
        @param clock: the shared clock, a new L{Clock} by default.
        """
        self.clock = Clock() if clock is None else clock
        self.rng = random.Random(seed)
        self.latency = latency
        self.loss = 0.0
        self.nodes: dict[Address, SimNode] = {}
        self._groups: list[set[Address]] | None = None
        self.packetsSent = 0
        self.streamBytes: Counter[Address] = Counter()

    def build(
        self, count: int, seedCount: int = 1, **settings: object
    ) -> list[SimNode]:
        """
        C{count} nodes, each given the first C{seedCount} as seeds.
        """
        seeds = [simAddress(i) for i in range(1, seedCount + 1)]
        first = len(self.nodes) + 1
        return [
            SimNode(self, index, seeds, **settings)  # type: ignore[arg-type]
            for index in range(first, first + count)
        ]

    # -- faults ---------------------------------------------------------------

    def partition(self, *groups: Iterable[SimNode]) -> None:
        """
        Only nodes in the same group reach each other.
        """
        self._groups = [{node.address for node in group} for group in groups]

    def heal(self) -> None:
        self._groups = None

    def freeze(self, node: SimNode) -> None:
        """
        The node's process stops: no timers, nothing in or out.
        """
        node.frozen = True
        node.cluster.stop()

    def resume(self, node: SimNode) -> None:
        node.frozen = False
        node.cluster.start()

    def _reachable(self, source: Address, target: Address) -> bool:
        node = self.nodes.get(target)
        sender = self.nodes.get(source)
        if node is None or node.frozen or (sender is not None and sender.frozen):
            return False
        if self._groups is None:
            return True
        return any(source in group and target in group for group in self._groups)

    # -- delivery -------------------------------------------------------------

    def sendPacket(self, source: Address, target: Address, packet: bytes) -> None:
        self.packetsSent += 1
        if not self._reachable(source, target) or self.rng.random() < self.loss:
            return
        self.clock.callLater(self.latency, self._deliverPacket, source, target, packet)

    def _deliverPacket(self, source: Address, target: Address, packet: bytes) -> None:
        node = self.nodes[target]
        if not node.frozen:
            node.protocol.datagramReceived(packet, source)

    def stream(
        self, sender: SimNode, target: Address, body: bytes, expectReply: bool
    ) -> Deferred[StreamMessage | None]:
        if not self._reachable(sender.address, target):
            return fail(ConnectionRefusedError(f"{target} unreachable"))
        frame = frameStream(body, sender.keyring, compress=False)
        self.streamBytes[sender.address] += len(frame)
        d: Deferred[StreamMessage | None] = Deferred()

        def arrive() -> None:
            node = self.nodes[target]
            if node.frozen:
                d.errback(ConnectionRefusedError(f"{target} froze"))
                return
            try:
                message = parseStream(frame, node.keyring)
            except WireError as e:
                d.errback(e)
                return
            assert message is not None, "a whole frame parses"
            reply = node.cluster.streamReceived(message, sender.address)
            if not expectReply:
                d.callback(None)
                return
            if reply is None:
                d.errback(ConnectionRefusedError("closed without a reply"))
                return
            answer = frameStream(reply, node.keyring, compress=False)
            self.streamBytes[target] += len(answer)
            self.clock.callLater(self.latency, answered, answer)

        def answered(answer: bytes) -> None:
            try:
                d.callback(parseStream(answer, sender.keyring))
            except WireError as e:
                d.errback(e)

        self.clock.callLater(self.latency, arrive)
        return d

    # -- time -------------------------------------------------------------------

    def run(self, seconds: float, step: float = 0.01) -> None:
        """
        Let C{seconds} pass in small steps, so that packets flow between
        timers.
        """
        for _ in range(round(seconds / step)):
            self.clock.advance(step)

    def runUntil(self, condition, limit: float, step: float = 0.05) -> float:  # type: ignore[no-untyped-def]
        """
        Advance until C{condition()} holds; return the simulated seconds it
        took, or raise after C{limit}.
        """
        start = self.clock.seconds()
        while not condition():
            if self.clock.seconds() - start > limit:
                raise AssertionError(f"condition not met within {limit} s")
            self.run(step, step=min(step, 0.01))
        return self.clock.seconds() - start
