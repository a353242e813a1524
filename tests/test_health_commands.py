"""
L{CommandPolicy}: a check from container labels runs no command unless
the operator allows it, and then only a simple command of an allowed
program; the static file's checks run as written.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sidecar.health.commands import CommandPolicy, CommandRefused

PLUGINS = CommandPolicy(fromLabels=True, allowed=("/usr/lib/nagios/plugins/*",))


class CommandPolicyTests(SynchronousTestCase):
    def refusal(self, policy: CommandPolicy, command: str) -> str:
        error = self.assertRaises(
            CommandRefused, policy.check, "docker", "External", command
        )
        return str(error)

    def test_labelsRunNoCommandByDefault(self) -> None:
        self.assertEqual(
            self.refusal(CommandPolicy(), "/usr/bin/true"),
            "External checks from container labels are off"
            " (health.external_from_labels)",
        )

    def test_theStaticFileAndOtherChecksAreNotConcerned(self) -> None:
        policy = CommandPolicy()
        policy.check("static", "External", "rm -rf / ; echo anything goes")
        policy.check("docker", "HttpGet", "http://127.0.0.1:80/$(reboot)")

    def test_anAllowedProgramRuns(self) -> None:
        PLUGINS.check(
            "docker", "External", "/usr/lib/nagios/plugins/check_http -H 'a b' -p 80"
        )
        CommandPolicy(fromLabels=True, allowed=("/usr/bin/true",)).check(
            "docker", "External", "/usr/bin/true"
        )

    def test_anythingElseIsRefusedAndSaysWhy(self) -> None:
        for command, why in (
            ("/bin/sh -c reboot", "/bin/sh from a label is not in"),
            ("check_http -H x", "'check_http' from a label is not an absolute"),
            (
                "/usr/lib/nagios/plugins/../../../../bin/sh -c x",
                "is not an absolute, normal path",
            ),
            ("/usr/lib/nagios/plugins/check_x; reboot", "not a simple command"),
            ("/usr/lib/nagios/plugins/check_x $(reboot)", "not a simple command"),
            ("/usr/lib/nagios/plugins/check_x `reboot`", "not a simple command"),
            ("/usr/lib/nagios/plugins/check_x\nreboot", "not a simple command"),
            ("/usr/lib/nagios/plugins/check_x > /etc/passwd", "not a simple command"),
            ("/usr/lib/nagios/plugins/check_x 'open", "No closing quotation"),
            ("", "'' from a label is not an absolute"),
        ):
            self.assertIn(why, self.refusal(PLUGINS, command), command)
        self.assertIn(
            "not in health.external_commands",
            self.refusal(CommandPolicy(fromLabels=True), "/usr/bin/true"),
        )
