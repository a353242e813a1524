"""
Lifeguard's timing rules, as memberlist computes them: how long a suspect
has before it is declared dead, shrinking as independent peers confirm the
suspicion, and how a node that is itself slow stretches its own timeouts.
Pure arithmetic.
"""

from __future__ import annotations

import math


def suspicionTimeouts(
    multiplier: int, maxTimeoutMultiplier: int, members: int, probeInterval: float
) -> tuple[float, float]:
    """
    The least and most time (seconds) a suspicion lasts:
    C{multiplier × max(1, log10(N)) × probeInterval}, and that times
    C{maxTimeoutMultiplier}.
    """
    scale = max(1.0, math.log10(max(1, members)))
    least = multiplier * scale * probeInterval
    return least, least * maxTimeoutMultiplier


def suspicionTimeout(
    least: float, most: float, expected: int, confirmations: int
) -> float:
    """
    The timeout after C{confirmations} independent confirmations, when
    C{expected} are hoped for: from C{most} down towards C{least} on a log
    curve, in whole milliseconds, never below C{least}.
    """
    if expected < 1:
        return least
    fraction = math.log(confirmations + 1) / math.log(expected + 1)
    raw = most - fraction * (most - least)
    return max(least, math.floor(1000 * raw) / 1000)


class Awareness:
    """
    Local health: a score from 0 (healthy) to C{maximum - 1}; missed acks
    and refuted suspicions of ourselves raise it, successful probes lower
    it, and timeouts are scaled by C{score + 1}.
    """

    def __init__(self, maximum: int = 8) -> None:
        self.maximum = maximum
        self.score = 0

    def apply(self, delta: int) -> None:
        self.score = min(self.maximum - 1, max(0, self.score + delta))

    def scale(self, timeout: float) -> float:
        return timeout * (self.score + 1)
