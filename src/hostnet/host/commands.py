"""Command runners: argv lists, timeouts, typed errors. No shell."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence

from hostnet.errors import CommandError

#: Debian package that provides each binary, for the hint in error messages.
PACKAGES = {
    "nft": "nftables",
    "iptables": "iptables",
    "iptables-save": "iptables",
    "iptables-restore": "iptables",
    "conntrack": "conntrack",
    "ip": "iproute2",
    "sysctl": "procps",
    "modprobe": "kmod",
    "dmesg": "util-linux",
    "journalctl": "systemd",
}


def which(binary: str) -> str | None:
    return shutil.which(binary, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")


def run(
    argv: list[str], *, timeout: float = 30.0, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command; raise CommandError when it is missing, times out or (with check) fails."""
    exe = which(argv[0])
    if exe is None:
        pkg = PACKAGES.get(argv[0])
        hint = f"install it: apt-get install {pkg}" if pkg else None
        raise CommandError(f"{argv[0]}: command not found", hint=hint)
    try:
        proc = subprocess.run(
            [exe, *argv[1:]],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CommandError(f"{' '.join(argv)}: no answer after {timeout:g} s") from None
    if check and proc.returncode != 0:
        err = proc.stderr.strip() or proc.stdout.strip()
        raise CommandError(f"{' '.join(argv)} failed (exit {proc.returncode}): {err}")
    return proc


def run_optional(argv: list[str], *, timeout: float = 10.0) -> str | None:
    """Output of a read-only command, or None when it is missing or fails."""
    try:
        proc = run(argv, timeout=timeout, check=True)
    except CommandError:
        return None
    return proc.stdout


def run_many_optional(argvs: Sequence[Sequence[str]], *,
                      timeout: float = 10.0) -> list[str | None]:
    """Outputs of read-only commands started side by side (each None when it is missing,
    fails or does not answer within ``timeout``). Children inherit the calling thread's
    network namespace, like :func:`run`."""
    procs: list[subprocess.Popen[str] | None] = []
    for argv in argvs:
        exe = which(argv[0])
        try:
            procs.append(None if exe is None else subprocess.Popen(
                [exe, *argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL, text=True))
        except OSError:
            procs.append(None)
    deadline = time.monotonic() + timeout
    out: list[str | None] = []
    for proc in procs:
        if proc is None:
            out.append(None)
            continue
        try:
            stdout, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            out.append(None)
            continue
        out.append(stdout if proc.returncode == 0 else None)
    return out
