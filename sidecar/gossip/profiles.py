"""
Timing profiles: memberlist's C{lan}, C{local} and C{wan} settings, and the
rule that stretches the push-pull interval as a cluster grows.  Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .suspicion import suspicionTimeouts

# Beyond this many members, anti-entropy slows down so that the TCP load on
# each node stays about constant (memberlist's pushPullScaleThreshold).
PUSH_PULL_SCALE_THRESHOLD = 32


@dataclass(frozen=True)
class Timing:
    """
    How often and how patiently a node probes, gossips and syncs; times are
    in seconds.  The defaults are memberlist's LAN profile, plus serf's
    reconnection to failed members (every C{reconnectInterval}, for
    C{reconnectTimeout}), which heals partitions.
    """

    probeInterval: float = 1.0
    probeTimeout: float = 0.5
    indirectChecks: int = 3
    suspicionMultiplier: int = 4
    suspicionMaxTimeoutMultiplier: int = 6
    awarenessMaxMultiplier: int = 8
    retransmitMultiplier: int = 4
    gossipInterval: float = 0.2
    gossipNodes: int = 3
    gossipToTheDead: float = 30.0
    pushPullInterval: float = 30.0
    tcpTimeout: float = 10.0
    reconnectInterval: float = 30.0
    reconnectTimeout: float = 24 * 3600.0


LAN = Timing()
LOCAL = replace(
    LAN,
    tcpTimeout=1.0,
    indirectChecks=1,
    retransmitMultiplier=2,
    suspicionMultiplier=3,
    pushPullInterval=15.0,
    probeTimeout=0.2,
    gossipInterval=0.1,
    gossipToTheDead=15.0,
)
WAN = replace(
    LAN,
    tcpTimeout=30.0,
    suspicionMultiplier=6,
    pushPullInterval=60.0,
    probeTimeout=3.0,
    probeInterval=5.0,
    gossipNodes=4,
    gossipInterval=0.5,
    gossipToTheDead=60.0,
)

PROFILES: dict[str, Timing] = {"lan": LAN, "local": LOCAL, "wan": WAN}


def scaledPushPullInterval(interval: float, members: int) -> float:
    """
    The push-pull interval for a cluster of C{members}: as configured up to
    32 members, then one more multiple for each doubling beyond.
    """
    if members <= PUSH_PULL_SCALE_THRESHOLD:
        return interval
    doublings = math.log2(members) - math.log2(PUSH_PULL_SCALE_THRESHOLD)
    multiplier = math.ceil(doublings) + 1
    return interval * multiplier


def detectionBound(timing: Timing, members: int) -> float:
    """
    The longest, in seconds, that the others take to declare a member of a
    cluster of C{members} dead once it stops answering, unless packets are
    lost or a prober is slowed by its own awareness score: each other
    member probes it within one round over the membership, that probe
    takes its interval, the suspicion lasts at most Lifeguard's longest
    timeout, and the verdict then spreads in its retransmissions' gossip
    rounds.
    """
    others = max(1, members - 1)
    _, longest = suspicionTimeouts(
        timing.suspicionMultiplier,
        timing.suspicionMaxTimeoutMultiplier,
        members,
        timing.probeInterval,
    )
    spread = timing.retransmitMultiplier * math.ceil(math.log10(members + 1))
    return (
        (others + 1) * timing.probeInterval + longest + spread * timing.gossipInterval
    )
