"""Throwaway network namespaces for kernel and e2e tests.

Every namespace is named ``hn-test-<random>``, gets only documentation addresses
(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) and is removed on exit, with
any process still running inside it, even when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Sequence
from typing import Any

PREFIX = "hn-test-"
#: Namespaces this process created and has not removed yet (swept at session end).
LIVE: set[str] = set()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Netns:
    def __init__(self, tag: str = "") -> None:
        suffix = uuid.uuid4().hex[:8]
        self.name = f"{PREFIX}{tag + '-' if tag else ''}{suffix}"[:60]
        self.procs: list[subprocess.Popen[Any]] = []

    def __enter__(self) -> Netns:
        _ip("netns", "add", self.name)
        LIVE.add(self.name)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"in {self.name}: {' '.join(argv)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kw)
        self.procs.append(proc)
        return proc

    def sysctl(self, key: str, value: str | None = None) -> str:
        path = "/proc/sys/" + key.replace(".", "/")
        if value is None:
            return self.run(["cat", path]).stdout.strip()
        self.run(["sh", "-c", f"printf '%s' \"$1\" > {path}", "sh", value])
        return value

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        pids = _ip("netns", "pids", self.name, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("netns", "del", self.name, check=False)
        LIVE.discard(self.name)


def link(
    a: Netns, b: Netns, addr_a: str, addr_b: str, *, name_a: str = "veth0", name_b: str = "veth0"
) -> None:
    """Connect two namespaces with a veth pair and give each end an address (CIDR)."""
    tmp_a, tmp_b = f"hna{uuid.uuid4().hex[:6]}", f"hnb{uuid.uuid4().hex[:6]}"
    _ip("link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
    _ip("link", "set", tmp_a, "netns", a.name, "name", name_a)
    _ip("link", "set", tmp_b, "netns", b.name, "name", name_b)
    for ns, dev, addr in ((a, name_a, addr_a), (b, name_b, addr_b)):
        _ip("-n", ns.name, "addr", "add", addr, "dev", dev)
        _ip("-n", ns.name, "link", "set", dev, "up")


def sweep() -> list[str]:
    """Remove every namespace this process created and still has; return their names."""
    left = sorted(LIVE)
    for name in left:
        ns = Netns.__new__(Netns)
        ns.name, ns.procs = name, []
        ns.close()
    return left


def free_port() -> int:
    """A free TCP port on loopback (for servers started by tests and benchmarks)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
