"""
L{sidecar.backoff.Backoff}: doubling delays, capped, reset by a success.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sidecar.backoff import Backoff


class BackoffTests(SynchronousTestCase):
    def test_delaysDoubleUpToTheLast(self) -> None:
        backoff = Backoff(0.5, 3.0)
        self.assertEqual(
            [backoff.failed() for _ in range(5)], [0.5, 1.0, 2.0, 3.0, 3.0]
        )

    def test_aSuccessStartsThemOver(self) -> None:
        backoff = Backoff(1.0, 30.0)
        backoff.failed()
        backoff.failed()
        backoff.succeeded()
        self.assertEqual(backoff.failed(), 1.0)
