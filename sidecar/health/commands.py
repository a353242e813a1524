"""
Which commands a check may run, by where the check comes from.

A static file is the operator's own, and its C{External} checks run as
written.  A container's labels are not: an image can carry them, so a
label that runs a command (as root, on the host) is refused unless the
operator allows commands from labels (C{health.external_from_labels}), and
then only a simple command, no shell syntax, whose program is an absolute
path that C{health.external_commands} names or matches.  Pure.
"""

from __future__ import annotations

import os.path
import re
import shlex
from dataclasses import dataclass
from fnmatch import fnmatchcase

from .checkers import CheckArgumentError

# The check types that run a command on the host.
COMMAND_CHECKS = frozenset({"External"})
# What would make a label's command more than one program and its
# arguments: shell operators, expansions, substitutions, escapes, globs.
_SHELL_SYNTAX = re.compile(r"[;&|<>$`\\(){}*?\[\]~!#\n\r\x00]")


class CommandRefused(CheckArgumentError):
    """
    A check that would run a command its source may not run; the message
    says why, naming the setting that would allow it.
    """


@dataclass(frozen=True)
class CommandPolicy:
    """
    @ivar labelSources: the discoverers whose checks come from labels
        (C{docker}).
    @ivar fromLabels: whether checks from labels may run commands at all.
    @ivar allowed: the programs they may run: absolute paths, or
        C{fnmatch} patterns of them (C{/usr/lib/nagios/plugins/*}).
    """

    labelSources: frozenset[str] = frozenset({"docker"})
    fromLabels: bool = False
    allowed: tuple[str, ...] = ()

    def check(self, source: str, checkType: str, command: str) -> None:
        """
        @raise CommandRefused: when C{source}'s check of type C{checkType}
            may not run C{command} (as rendered).
        """
        if checkType not in COMMAND_CHECKS or source not in self.labelSources:
            return
        if not self.fromLabels:
            raise CommandRefused(
                f"{checkType} checks from container labels are off"
                " (health.external_from_labels)"
            )
        if _SHELL_SYNTAX.search(command):
            raise CommandRefused(
                f"{command!r:.120} from a label is not a simple command"
                " (no shell operators, expansions or globs)"
            )
        try:
            words = shlex.split(command)
        except ValueError as e:
            raise CommandRefused(f"{command!r:.120} from a label: {e}") from None
        program = words[0] if words else ""
        if not os.path.isabs(program) or os.path.normpath(program) != program:
            raise CommandRefused(
                f"{program!r:.120} from a label is not an absolute, normal path"
            )
        if not any(fnmatchcase(program, pattern) for pattern in self.allowed):
            raise CommandRefused(
                f"{program} from a label is not in health.external_commands"
            )
