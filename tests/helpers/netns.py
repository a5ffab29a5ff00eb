"""Throwaway network namespaces for kernel and e2e tests.

Every namespace is named ``hn-test-<random>``, gets only documentation addresses
(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) and is removed on exit, with
any process still running inside it, even when the test fails.

The building blocks of every lab (tests/helpers/labs.py, nat_lab.py, vm_lab.py): :func:`veth`
(:func:`link` when both ends get an address), :func:`bridge`, :func:`ip` / :func:`ip_batch`
(``ip -n NS``), :func:`start` (a server script that says ``ready``) and :func:`namespaces`.
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


#: How the two ends of a new veth pair are named in the initial namespace, for the moment
#: before they move into their namespaces (a failed set-up must leave none behind).
VETH_TMP = ("hna", "hnb")


def ip(ns: Netns, *args: str) -> str:
    """``ip -n NS ARGS`` (netlink from inside ``ns``, without ``ip netns exec``'s extra process);
    its output. A failure raises with iproute2's message."""
    proc = _ip("-n", ns.name, *args, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"in {ns.name}: ip {' '.join(args)} -> {proc.returncode}\n"
                             f"{proc.stdout}{proc.stderr}")
    return proc.stdout


def ip_batch(ns: Netns, lines: Sequence[str]) -> None:
    """Several ``ip`` commands (one a line, without the leading ``ip``) in one process."""
    if lines:
        proc = subprocess.run(["ip", "-n", ns.name, "-batch", "-"], input="\n".join(lines) + "\n",
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"in {ns.name}: ip -batch -> {proc.returncode}\n"
                                 f"{proc.stdout}{proc.stderr}")


def veth(a: Netns, b: Netns, name_a: str, name_b: str, addr_a: str | None = None,
         addr_b: str | None = None) -> None:
    """A veth pair between two namespaces, both ends up; addresses (CIDR) optional. A pair
    that cannot be moved into place is deleted again (one end takes the other with it)."""
    tmp_a, tmp_b = (f"{prefix}{uuid.uuid4().hex[:6]}" for prefix in VETH_TMP)
    _ip("link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
    try:
        _ip("link", "set", tmp_a, "netns", a.name, "name", name_a)
        _ip("link", "set", tmp_b, "netns", b.name, "name", name_b)
    except subprocess.CalledProcessError:
        for tmp in (tmp_a, tmp_b):
            _ip("link", "del", tmp, check=False)
        raise
    for ns, dev, addr in ((a, name_a, addr_a), (b, name_b, addr_b)):
        ip_batch(ns, [*([f"addr add {addr} dev {dev}"] if addr else []), f"link set {dev} up"])


def link(
    a: Netns, b: Netns, addr_a: str, addr_b: str, *, name_a: str = "veth0", name_b: str = "veth0"
) -> None:
    """Connect two namespaces with a veth pair and give each end an address (CIDR)."""
    veth(a, b, name_a, name_b, addr_a, addr_b)


def bridge(ns: Netns, name: str, *ports: str, addr: str | None = None) -> None:
    """A bridge in ``ns``, up, with an address (CIDR) if given and ``ports`` enslaved."""
    ip_batch(ns, [f"link add {name} type bridge", *([f"addr add {addr} dev {name}"] if addr
                                                    else []),
                  f"link set {name} up", *(f"link set {port} master {name}" for port in ports)])


def start(ns: Netns, argv: Sequence[str], **kw: Any) -> subprocess.Popen[str]:
    """Start ``argv`` (a script that prints ``ready`` once it serves) in ``ns`` and wait for
    that line; the process is killed with ``ns`` (or earlier by the caller)."""
    proc: subprocess.Popen[str] = ns.popen(argv, stdout=subprocess.PIPE, text=True, **kw)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
        raise AssertionError(f"{' '.join(argv)[:200]} in {ns.name} did not start: {line!r} {err}")
    return proc


def namespaces(stack: contextlib.ExitStack[Any], *tags: str) -> list[Netns]:
    """One new namespace a tag, each removed when ``stack`` closes (also when making a later
    one fails)."""
    return [stack.enter_context(Netns(tag)) for tag in tags]


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
