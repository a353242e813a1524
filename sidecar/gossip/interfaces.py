"""
The gossip layer's seams: the application it carries (L{IGossipDelegate}),
who hears of members coming and going (L{IMemberObserver}), and the
transports it sends through (L{IPacketSender}, L{IStreamDialer}), which an
in-memory network can stand in for in tests.
"""

from __future__ import annotations

from zope.interface import Interface


class IGossipDelegate(Interface):
    """
    The application whose state the cluster spreads: for sidecar, the
    catalog.
    """

    def localState(recordLimit, remote):  # type: ignore[no-untyped-def]
        """
        @param recordLimit: L{None}, or the size in bytes of the largest
            record (user message) the receiving peer can pass on; larger
            ones are left out.
        @param remote: L{None}, or the state the peer pushed (when this is
            the answer): a digest of its (L{localDigest}) asks for only
            what differs from it.
        @return: this node's state as bytes, for a push-pull.
        """

    def localDigest():  # type: ignore[no-untyped-def]
        """
        @return: this node's state in short, as bytes, for a push-pull with
            a peer whose metadata says it accepts one: the peer answers
            with what differs.
        """

    def mergeRemoteState(state, join, source, dialed):  # type: ignore[no-untyped-def]
        """
        Merge a peer's whole state (bytes) from a push-pull; C{join} is
        true when the exchange is part of a join; C{source} is the peer's
        (host, port); C{dialed} is true when the state answers a push-pull
        this node started (with a seed, maybe by name, or a member), so
        that the peer is one this node chose.  Bad input is logged, not
        raised.
        """

    def messageReceived(payload, source):  # type: ignore[no-untyped-def]
        """
        A user message (bytes) from a peer, by packet or stream, that came
        from C{source} (host, port).  Bad input is logged, not raised.
        """


class IMemberObserver(Interface):
    """
    Told when a member joins (or comes back), changes, or is gone (dead or
    left).
    """

    def memberJoined(member):  # type: ignore[no-untyped-def]
        """A member is alive that was unknown, dead or gone."""

    def memberUpdated(member):  # type: ignore[no-untyped-def]
        """An alive member's address or metadata changed."""

    def memberGone(member):  # type: ignore[no-untyped-def]
        """A member was declared dead, or left (C{state} says which)."""


class IPacketSender(Interface):
    """
    Sends memberlist packets (UDP).
    """

    def send(address, messages, crc):  # type: ignore[no-untyped-def]
        """
        Send one packet holding the encoded C{messages} to C{address}
        (host, port), with the CRC header when C{crc} is true.
        """


class IStreamDialer(Interface):
    """
    Sends memberlist stream messages (TCP), one per connection.
    """

    def request(address, body, expectReply):  # type: ignore[no-untyped-def]
        """
        Send the stream C{body} to C{address}.

        @return: a L{Deferred} firing with the peer's reply (a
            L{sidecar.gossip.streams.StreamMessage}), or L{None} when
            C{expectReply} is false; failing when the exchange fails.
        """
