"""
Issue #14's attacks on the catalog, each against a whole simulated cluster
(real memberlist bytes on one Clock), with and without an encryption key:
a phantom host, a far-future tombstone, timestamps Go cannot write back,
oversized records, and members whose clocks are minutes or hours behind.
After each, routing (every node's view of C{web}), the catalog's JSON and
membership are what they were, and the catalog stays small.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from twisted.internet.task import LoopingCall
from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Service, Status, encodeService
from sidecar.catalog.codec import dumps, serviceToJSON
from sidecar.catalog.documents import stateDocument
from sidecar.catalog.timestamps import LATEST
from sidecar.gossip.admission import FOREIGN_SENDER, FUTURE_STAMP, UNKNOWN_HOST
from sidecar.gossip.messages import NodeState, PushPullHeader
from sidecar.gossip.packets import encodeUserMessage
from sidecar.gossip.security import Keyring
from sidecar.gossip.streams import MAX_STREAM_BYTES, encodePushPull

from .doubles import RecordingObserver
from .simnet import PORT, SimNetwork, SimNode

KEY = bytes(range(16))
STRANGER = ("127.0.1.99", PORT)
SECOND = 1_000_000_000


@dataclass
class Forger:
    """
    Whoever sends forged packets and streams from C{address}: a process
    that is no member, or one that spoofs a member's address (holding the
    cluster's key, when there is one).
    """

    network: SimNetwork
    address: tuple[str, int]
    keyring: Keyring | None = None

    def message(self, target: SimNode, payload: bytes) -> None:
        packet = encodeUserMessage(payload)
        if self.keyring is not None:
            packet = self.keyring.seal(packet)
        self.network.sendPacket(self.address, target.address, packet)

    def state(self, target: SimNode, record: Service) -> None:
        """
        Push C{record} as the whole catalog, in a push-pull.
        """
        server = {
            "Name": record.hostname,
            "Services": {record.id: serviceToJSON(record)},
        }
        userState = dumps({"Servers": {record.hostname: server}})
        body = encodePushPull(
            PushPullHeader(0, len(userState), False, "default"), [], userState
        )
        self.network.stream(self, target.address, body, False)  # type: ignore[arg-type]


class AdmissionTestCase(SynchronousTestCase):
    keys: tuple[bytes, ...] = ()

    def setUp(self) -> None:
        self.network = SimNetwork()

    def cluster(self, count: int, **settings: object) -> list[SimNode]:
        """
        C{count} more nodes, started, each announcing one C{web} instance
        and refreshing it every 25 s as the announcer does.
        """
        nodes = self.network.build(count, keys=self.keys, **settings)
        for node in nodes:
            node.start()
            self.addCleanup(node.stop)
            refresh = LoopingCall(node.announce, "web", f"web-{node.name}")
            refresh.clock = self.network.clock
            refresh.start(25)
            self.addCleanup(refresh.stop)
        return nodes

    def settle(self, nodes: list[SimNode]) -> None:
        names = {n.name for n in nodes}
        self.network.runUntil(lambda: self.routed(nodes) == names, limit=20)

    def routed(self, nodes: list[SimNode]) -> set[str] | None:
        """
        The hosts every node routes C{web} to, if they all agree.
        """
        views = [
            {
                s.hostname
                for s in node.state.services()
                if s.name == "web" and s.status is Status.ALIVE
            }
            for node in nodes
        ]
        return views[0] if all(v == views[0] for v in views) else None

    def forger(self, address: tuple[str, int]) -> Forger:
        keyring = Keyring(self.keys) if self.keys else None
        return Forger(self.network, address, keyring)

    def assertUnharmed(self, nodes: list[SimNode]) -> None:
        """
        Every node routes C{web} to every node and only to them, knows
        every node alive, and can write its whole catalog as JSON.
        """
        self.assertEqual(self.routed(nodes), {n.name for n in nodes})
        for node in nodes:
            self.assertEqual(
                node.view(), {n.name: NodeState.ALIVE for n in nodes}, node.name
            )
            self.assertLess(len(dumps(stateDocument(node.state))), 64 * 1024)
            self.assertLess(node.state.size, 64 * 1024)

    def refused(self, nodes: list[SimNode], kind: str) -> int:
        return sum(node.admission.refused[kind] for node in nodes)


class AttackTests(AdmissionTestCase):
    def test_aPhantomHostNeverReachesAnyCatalog(self) -> None:
        """
        A record of C{web} on a host C{ghost} that is no member, stamped in
        year 9999, sent to every node from outside and from a member's
        address: no node takes it, nothing routes to it.
        """
        nodes = self.cluster(4)
        self.settle(nodes)
        ghost = Service(
            "ghost-web", "web", hostname="ghost", updated=LATEST - 10 * SECOND
        )
        now = nodes[0].state.now()
        for source in (STRANGER, nodes[0].address):
            for node in nodes:
                self.forger(source).message(node, encodeService(ghost))
                self.forger(source).message(
                    node, encodeService(replace(ghost, updated=now))
                )
        self.network.run(120)
        self.assertUnharmed(nodes)
        for node in nodes:
            self.assertIsNone(node.state.get("ghost", "ghost-web"))
        self.assertEqual(self.refused(nodes, FOREIGN_SENDER), 8)
        self.assertEqual(
            self.refused(nodes, FUTURE_STAMP) + self.refused(nodes, UNKNOWN_HOST), 8
        )

    def test_aFarFutureTombstoneCannotWipeALiveService(self) -> None:
        """
        A tombstone of a live C{web} stamped 9999-12-31T23:59:59.999999999Z
        is refused; the service stays routed everywhere and its owner's
        catalog can still be written.
        """
        nodes = self.cluster(4)
        self.settle(nodes)
        victim = nodes[1].state.get(nodes[1].name, f"web-{nodes[1].name}")
        assert victim is not None
        forged = victim.tombstone(LATEST)
        for node in nodes:
            self.forger(nodes[0].address).message(node, encodeService(forged))
        self.network.run(120)
        self.assertUnharmed(nodes)
        self.assertEqual(self.refused(nodes, FUTURE_STAMP), 4)

    def test_aTimestampGoCannotWriteIsRefused(self) -> None:
        nodes = self.cluster(3)
        self.settle(nodes)
        record = nodes[1].state.get(nodes[1].name, f"web-{nodes[1].name}")
        assert record is not None
        document = serviceToJSON(replace(record, updated=record.updated + SECOND))
        document["Created"] = "0001-01-01T00:00:00+01:00"
        for node in nodes:
            self.forger(nodes[0].address).message(node, dumps(document))
        self.network.run(60)
        self.assertUnharmed(nodes)

    def test_oversizedRecordsCannotStopANodeJoining(self) -> None:
        """
        Two 6 MB records, each in its own push-pull from a member's
        address, would grow every catalog past the 10 MiB a push-pull can
        carry: they are refused, and a new node still gets the whole
        catalog by push-pull alone.
        """
        nodes = self.cluster(3)
        self.settle(nodes)
        huge = Service("huge", "web", hostname=nodes[0].name, image="x" * 6_000_000)
        huge = replace(huge, updated=nodes[0].state.now())
        for number in range(2):
            for node in nodes[1:]:
                self.forger(nodes[0].address).state(
                    node, replace(huge, id=f"huge-{number}")
                )
        self.network.run(5)
        self.assertUnharmed(nodes)
        for node in nodes:
            self.assertLess(len(node.delegate.localState()), MAX_STREAM_BYTES)
        [late] = self.network.build(1, keys=self.keys)
        self.addCleanup(late.stop)
        self.network.loss = 1.0  # only the join's push-pull works
        late.start()
        self.network.run(1)
        for node in nodes:
            self.assertIsNotNone(late.state.get(node.name, f"web-{node.name}"))
        self.assertEqual(sum(n.state.refused["record too large"] for n in nodes), 4)


class EncryptedAttackTests(AttackTests):
    """
    The same with an encryption key: a process without it is not heard at
    all, and one with it (a member's address, the cluster's key) is held
    to the same rules.
    """

    keys = (KEY,)

    def test_aPhantomHostNeverReachesAnyCatalog(self) -> None:
        nodes = self.cluster(4)
        self.settle(nodes)
        ghost = Service("ghost-web", "web", hostname="ghost", updated=LATEST)
        for node in nodes:
            Forger(self.network, STRANGER).message(node, encodeService(ghost))
            self.forger(nodes[0].address).message(node, encodeService(ghost))
            self.forger(nodes[0].address).message(
                node, encodeService(replace(ghost, updated=node.state.now()))
            )
        self.network.run(120)
        self.assertUnharmed(nodes)
        for node in nodes:
            self.assertIsNone(node.state.get("ghost", "ghost-web"))
            self.assertEqual(node.admission.refused[FOREIGN_SENDER], 0)
        self.assertEqual(self.refused(nodes, FUTURE_STAMP), 4)
        self.assertEqual(self.refused(nodes, UNKNOWN_HOST), 4)


class ClockSkewTests(AdmissionTestCase):
    def skewed(self, skew: float) -> None:
        """
        Three nodes on time and one C{skew} seconds off: after it joined,
        for five minutes, every node on time routes to it, nothing changes
        (no expire/refute loop), and each measures its clock.
        """
        nodes = self.cluster(3)
        [late] = self.cluster(1, clockSkew=skew)
        onTime = nodes
        names = {n.name for n in [*nodes, late]}
        self.network.runUntil(lambda: self.routed(onTime) == names, limit=20)
        changes = RecordingObserver()
        for node in onTime:
            node.state.addObserver(changes)
        for _ in range(30):
            self.network.run(10, step=0.05)
            self.assertEqual(self.routed(onTime), names)
        self.assertEqual(changes.events, [])
        for node in onTime:
            measured = node.admission.skews.skew(late.name)
            assert measured is not None
            self.assertLess(abs(measured - skew), 0.5)
            self.assertEqual(node.view()[late.name], NodeState.ALIVE)

    def test_aMemberTwoMinutesBehind(self) -> None:
        self.skewed(-120)

    def test_aMemberFourHoursBehind(self) -> None:
        self.skewed(-4 * 3600)

    def test_aMemberTwoMinutesBehindWithAKey(self) -> None:
        self.keys = (KEY,)
        self.skewed(-120)
