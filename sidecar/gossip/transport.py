"""
L{GossipDatagramProtocol}: memberlist packets over UDP.  It only moves
bytes: it frames and seals what it sends, and decodes, counts and
dispatches what it receives; the rules live in the members, prober and
catalog it hands messages to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from twisted.internet.error import InvalidAddressError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from sidecar.ratelimit import RateLimitedLog

from .interfaces import IPacketSender
from .messages import (
    Ack,
    Alive,
    Body,
    Dead,
    IndirectPing,
    Nack,
    Ping,
    Suspect,
    WireError,
)
from .packets import UserMessage, addCRC, decodePacket, makeCompound
from .security import Keyring

Address = tuple[str, int]


@dataclass
class PacketHandlers:
    """
    Where each kind of received message goes.
    """

    ping: Callable[[Ping, Address], None]
    indirectPing: Callable[[IndirectPing, Address], None]
    ack: Callable[[Ack], None]
    nack: Callable[[Nack], None]
    alive: Callable[[Alive, Address], None]
    suspect: Callable[[Suspect], None]
    dead: Callable[[Dead, Address], None]
    user: Callable[[bytes, Address], None]


@dataclass
class PacketCounters:
    packetsIn: int = 0
    bytesIn: int = 0
    packetsOut: int = 0
    bytesOut: int = 0
    dropped: int = 0
    unsendable: int = 0


@implementer(IPacketSender)
class GossipDatagramProtocol(DatagramProtocol):
    """
    Receives and sends memberlist UDP packets.

    @ivar handlers: where received messages go; L{None} while the node is
        not running, when they are decoded and counted but not handled.
    """

    # No "Starting factory <...object at 0x...>" lines in the log.
    noisy = False

    log = Logger()

    def __init__(
        self,
        handlers: PacketHandlers | None,
        clock: IReactorTime,
        keyring: Keyring | None = None,
    ) -> None:
        self.handlers = handlers
        self._keyring = keyring
        self.counters = PacketCounters()
        self._badPackets = RateLimitedLog(self.log, clock)
        self._unsendable = RateLimitedLog(self.log, clock)
        self._handlerBugs = RateLimitedLog(self.log, clock)

    def send(
        self, address: Address, messages: Sequence[bytes], crc: bool = False
    ) -> None:
        """
        Send one packet holding C{messages} (a compound when more than one),
        with the CRC header for peers that speak protocol 5, sealed when
        there is a keyring.
        """
        packet = messages[0] if len(messages) == 1 else makeCompound(messages)
        if crc:
            packet = addCRC(packet)
        if self._keyring is not None:
            packet = self._keyring.seal(packet)
        if self.transport is None:
            return
        try:
            self.transport.write(packet, address)  # type: ignore[call-arg]
        except (OSError, InvalidAddressError) as e:
            # An address taken from a packet (a ping's source, say) that
            # the socket cannot send to.
            self.counters.unsendable += 1
            self._unsendable.warn(
                "cannot send to {host}:{port}: {problem}",
                host=address[0],
                port=address[1],
                problem=str(e),
            )
            return
        self.counters.packetsOut += 1
        self.counters.bytesOut += len(packet)

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        self.counters.packetsIn += 1
        self.counters.bytesIn += len(data)
        try:
            messages = decodePacket(data, self._keyring)
        except WireError as e:
            self.counters.dropped += 1
            self._badPackets.warn(
                "dropped a bad packet from {host}:{port}: {problem}",
                host=addr[0],
                port=addr[1],
                problem=str(e),
            )
            return
        for message in messages:
            try:
                self._dispatch(message, addr)
            except Exception:
                # A bug, but one a flood must not turn into a flood of
                # tracebacks.
                self._handlerBugs.failure(
                    "handling {message!r} from {host}", message=message, host=addr[0]
                )

    def _dispatch(self, message: Body | UserMessage, addr: Address) -> None:
        handlers = self.handlers
        if handlers is None:
            return  # bound, but the node is not running
        match message:
            case UserMessage(payload):
                handlers.user(payload, addr)
            case Ping():
                handlers.ping(message, addr)
            case IndirectPing():
                handlers.indirectPing(message, addr)
            case Ack():
                handlers.ack(message)
            case Nack():
                handlers.nack(message)
            case Alive():
                handlers.alive(message, addr)
            case Suspect():
                handlers.suspect(message)
            case Dead():
                handlers.dead(message, addr)
            case _:
                self.log.debug("ignoring {message!r}", message=message)
