"""
The health status machine: the Go rules, C{fall}, and flap damping.
"""

from __future__ import annotations

import math

from twisted.trial.unittest import SynchronousTestCase

from sidecar.catalog import Status
from sidecar.health.status import Damping, HealthMachine


class HealthMachineTests(SynchronousTestCase):
    def test_unknownUntilTheFirstResult(self) -> None:
        machine = HealthMachine()
        self.assertEqual(machine.status, Status.UNKNOWN)
        self.assertTrue(machine.record(True, 0))
        self.assertEqual(machine.status, Status.ALIVE)

    def test_goRulesOneFailureIsUnhealthyOneSuccessIsAlive(self) -> None:
        machine = HealthMachine()
        machine.record(True, 0)
        self.assertTrue(machine.record(False, 3))
        self.assertEqual(machine.status, Status.UNHEALTHY)
        self.assertFalse(machine.record(False, 6))
        self.assertTrue(machine.record(True, 9))
        self.assertEqual(machine.status, Status.ALIVE)

    def test_fallConsecutiveFailuresAreNeeded(self) -> None:
        machine = HealthMachine(fall=3)
        machine.record(True, 0)
        for t in (1, 2):
            self.assertFalse(machine.record(False, t))
        self.assertFalse(machine.record(True, 3))  # the count starts again
        for t in (4, 5):
            machine.record(False, t)
        self.assertTrue(machine.record(False, 6))
        self.assertEqual(machine.status, Status.UNHEALTHY)

    def test_failuresBeforeAnySuccessLeaveItUnknownUntilFall(self) -> None:
        machine = HealthMachine(fall=2)
        self.assertFalse(machine.record(False, 0))
        self.assertEqual(machine.status, Status.UNKNOWN)
        self.assertTrue(machine.record(False, 1))
        self.assertEqual(machine.status, Status.UNHEALTHY)

    def test_aFlappingServiceIsHeldUnhealthyThenReleased(self) -> None:
        machine = HealthMachine(damping=Damping(halfLife=30))
        changes = []
        t = 0.0
        for healthy in [True, False, True, False, True, True, True]:
            if machine.record(healthy, t):
                changes.append((t, machine.status))
            t += 1
        # The fourth flap (t=4, back to passing) crosses the suppress
        # threshold: held UNHEALTHY, and the passing checks announce nothing.
        self.assertEqual(
            changes,
            [
                (0, Status.ALIVE),
                (1, Status.UNHEALTHY),
                (2, Status.ALIVE),
                (3, Status.UNHEALTHY),
            ],
        )
        self.assertTrue(machine.suppressed)
        # Passing all along, it is released once the penalty has decayed
        # to the reuse level.
        penalty = 0.0
        for _ in range(4):  # flaps at t = 1, 2, 3, 4
            penalty = penalty * 0.5 ** (1 / 30) + 1
        release = 4 + 30 * math.log2(penalty / 1.5)
        # Bounded: broken damping must fail here, not spin for ever.
        for second in range(int(t), 10 * math.ceil(release)):
            t = float(second)
            if machine.record(True, t):
                break
        self.assertEqual(machine.status, Status.ALIVE)
        self.assertFalse(machine.suppressed)
        self.assertEqual(t, math.ceil(release))

    def test_fallMustBePositive(self) -> None:
        self.assertRaises(ValueError, HealthMachine, fall=0)
