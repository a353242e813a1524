"""
A real HAProxy whose configuration cannot be written (a full disk, a
read-only directory) or checked (no C{haproxy} program): the running
configuration keeps routing, no C{haproxy.cfg.new} is left behind, the
fault is C{LastError} in C{/api/haproxy.json} and a problem of the node,
and it clears once the cause goes.

The directory is a small tmpfs of its own, mounted in a mount namespace
of this test process's own (C{unshare(CLONE_NEWNS)}, as C{unshare -m}), so
nothing of it is seen outside, and it goes with the process.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from dataclasses import replace

import treq
from twisted.internet import defer

from sidecar.problems import HAPROXY
from sidecar.proxy import follower as followerModule

from .processes import pollUntil
from .test_haproxy import BIND_IP, HAProxyCase, haproxySkipReason

_CLONE_NEWNS = 0x00020000


def _privateMountsSkipReason() -> str | None:
    if haproxySkipReason() is not None:
        return haproxySkipReason()
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    return None


_ownNamespace: list[bool] = []


def ownMountNamespace() -> None:
    """
    Give this process a mount namespace of its own, once, whose mounts do
    not propagate to the host's.
    """
    if _ownNamespace:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    _ownNamespace.append(True)


class ConfigurationFaultTests(HAProxyCase):
    skip = _privateMountsSkipReason()

    def setUp(self) -> None:
        super().setUp()
        self.patch(followerModule, "RETRY_AFTER", 0.2)
        # Before the reactor turns, so before anything is written there.
        ownMountNamespace()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(self.directory)],
            check=True,
        )
        self.addCleanup(subprocess.run, ["umount", "-l", str(self.directory)])
        self.configFile = self.directory / "haproxy.cfg"

    async def serving(self) -> str:
        """
        The routing HAProxy does now: a's answer through its frontend.
        """
        url = f"http://{BIND_IP}:{self.servicePort}/"
        response = await treq.get(url, persistent=False, timeout=5)
        return (await response.content()).decode()

    async def failsThenRecovers(self, cause: str, undo: object) -> None:
        """
        With a serving, a change that cannot be written fails with
        C{cause}; a keeps being served, the fault is shown, and once
        C{undo} is called the change is applied and the fault clears.
        """
        good = self.configFile.read_text()
        self.backend("b")
        self.state.merge(self.record("b"))
        await pollUntil(
            lambda: defer.succeed(True if self.writer.lastError else None), timeout=15
        )
        self.assertIn(cause, self.writer.lastError or "")
        self.assertEqual(self.follower.status()["LastError"], self.writer.lastError)
        self.assertEqual(
            [(p.kind, p.subject, p.message) for p in self.problems.current()],
            [(HAPROXY, str(self.configFile), self.writer.lastError)],
        )
        self.assertEqual(self.configFile.read_text(), good)
        self.assertEqual(sorted(p.name for p in self.directory.iterdir()), self.files)
        self.assertEqual(await self.serving(), "a")
        undo()  # type: ignore[operator]
        await self.applied()
        self.assertIsNone(self.writer.lastError)
        self.assertEqual(self.problems.current(), [])
        self.assertIn(f"127.0.0.1:{self.ports['b']}", self.configFile.read_text())

    async def startServingA(self) -> None:
        self.backend("a")
        self.state.merge(self.record("a"))
        await self.applied()
        self.files = sorted(p.name for p in self.directory.iterdir())
        self.assertNotIn("haproxy.cfg.new", self.files)

    async def test_aFullDisk(self) -> None:
        await self.startServingA()
        filler = self.directory / "filler"
        try:
            with open(filler, "wb") as f:
                while True:
                    f.write(b"x" * 1024)
                    f.flush()
        except OSError:
            pass  # full
        self.files = sorted([*self.files, "filler"])
        await self.failsThenRecovers("No space left on device", filler.unlink)

    async def test_aReadOnlyDirectory(self) -> None:
        await self.startServingA()

        def remount(how: str) -> None:
            subprocess.run(
                ["mount", "-o", f"remount,{how}", str(self.directory)], check=True
            )

        remount("ro")
        self.addCleanup(remount, "rw")
        await self.failsThenRecovers("Read-only file system", lambda: remount("rw"))

    async def test_noHAProxyProgram(self) -> None:
        await self.startServingA()
        settings = self.writer._settings
        self.writer._settings = replace(settings, binary="/nonexistent/haproxy")

        def installed() -> None:
            self.writer._settings = settings

        await self.failsThenRecovers("no haproxy program", installed)
