"""
L{Backoff}: how long to wait before the next attempt at something that
keeps failing.  Pure.
"""

from __future__ import annotations


class Backoff:
    """
    Delays that start at C{first} and double after each failure, up to
    C{last}; a success starts them over.
    """

    def __init__(self, first: float, last: float) -> None:
        self.first = first
        self.last = last
        self._next = first

    def failed(self) -> float:
        """
        Another failure: how long to wait before the next attempt.
        """
        delay, self._next = self._next, min(self._next * 2, self.last)
        return delay

    def succeeded(self) -> None:
        self._next = self.first
