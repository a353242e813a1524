"""
The serf harness itself: two real agents on 127.0.0.1 join and list each
other as alive.
"""

from __future__ import annotations

import signal

from twisted.trial.unittest import TestCase

from .serfagents import SerfAgent, serfSkipReason, startSerfAgent


class SerfAgentTests(TestCase):
    """
    L{tests.serfagents} starts, joins, lists and ends serf agents.
    """

    skip = serfSkipReason()

    async def test_twoAgentsSeeEachOther(self) -> None:
        """
        Two agents joined with C{serf join} each list the other as alive,
        at the address it was started with.
        """
        first = await startSerfAgent(self, "harness-one")
        second = await startSerfAgent(self, "harness-two")
        await first.join(second.address)
        seen = await first.waitForStatus("harness-two", "alive")
        seenBack = await second.waitForStatus("harness-one", "alive")
        self.assertEqual(seen["addr"], second.address)
        self.assertEqual(seenBack["addr"], first.address)
        self.assertEqual(
            sorted(member["name"] for member in await second.members()),
            ["harness-one", "harness-two"],
        )

    async def test_stopLeaves(self) -> None:
        """
        A gracefully stopped agent is C{left} to its peer; its C{ended}
        fires with exit code 0.
        """
        first = await startSerfAgent(self, "harness-stays", profile="local")
        second = await startSerfAgent(
            self, "harness-leaves", profile="local", join=[first.address]
        )
        await first.waitForStatus("harness-leaves", "alive")
        code = await second.stop()
        self.assertEqual(code, 0)
        await first.waitForStatus("harness-leaves", "left")

    async def test_killEndsWithSignal(self) -> None:
        """
        L{SerfAgent.kill} SIGKILLs the agent: every waiter on C{ended} gets
        minus the signal number.
        """
        agent = await startSerfAgent(self, "harness-killed")
        first, second = agent.ended, agent.ended
        self.assertEqual(await agent.kill(), -signal.SIGKILL)
        self.assertEqual(await first, -signal.SIGKILL)
        self.assertEqual(await second, -signal.SIGKILL)
        self.assertFalse(agent.running)

    async def test_readyFailsWhenTheAgentExits(self) -> None:
        """
        C{ready} fails, with serf's output, when the agent exits before its
        RPC answers: here because it cannot join anyone.
        """
        nobody = SerfAgent("harness-nobody")
        agent = SerfAgent("harness-lonely", join=[nobody.address])
        self.addCleanup(agent.cleanup)
        with self.assertRaises(RuntimeError) as raised:
            await agent.start()
        self.assertIn("harness-lonely", str(raised.exception))
        self.assertFalse(agent.running)
