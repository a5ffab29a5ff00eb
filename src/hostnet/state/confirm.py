"""Arm the revert of an apply before its first change, so that it happens even when the
session that ran apply dies (SSH drop, SIGHUP, the process group killed, SIGKILL).

* systemd as PID 1: a transient timer, ``systemd-run --on-active=SECONDS``, running
  ``hostnet rollback ID --unconfirmed``;
* otherwise a detached reverter: double fork, ``setsid`` (its own session and process group),
  SIGHUP ignored, stdin on /dev/null and output to ``STATE/reverter.log``; it sleeps until the
  deadline, then rolls back unless the generation was confirmed. apply goes on only after
  the reverter has said ``ready`` (through an inherited pipe): a reverter that cannot start
  stops the apply before its first change.

``hostnet rollback --unconfirmed`` also runs at boot (contrib/hostnet-revert-unconfirmed.service)
for a generation that a reboot left unconfirmed.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from hostnet.errors import PlanError
from hostnet.host.root import Root
from hostnet.state.journal import ns_dir_name


def systemd_is_pid1(root: Root) -> bool:
    """What sd_booted(3) checks: /run/systemd/system exists (and PID 1 calls itself systemd)."""
    if not root.file("run/systemd/system").is_dir():
        return False
    comm = (root.read_text("proc/1/comm") or "").strip()
    return comm in ("systemd", "")


def revert_command(gen_id: int, state_dir: Path, netns: str | None, root: str | None,
                   at: float | None = None) -> list[str]:
    argv = [sys.executable, "-m", "hostnet", "rollback", str(gen_id), "--unconfirmed",
            "--state-dir", str(Path(state_dir).resolve())]
    if netns is not None:
        argv += ["--netns", netns]
    if root is not None:
        argv += ["--root", str(Path(root).resolve())]
    if at is not None:
        argv += ["--at", f"{at:.3f}"]
    return argv


def unit_name(gen_id: int, netns: str | None) -> str:
    return f"hostnet-revert-{ns_dir_name(netns)}-{gen_id}"


def systemd_run_argv(gen_id: int, netns: str | None, seconds: float,
                     command: list[str]) -> list[str]:
    return ["systemd-run", "--unit", unit_name(gen_id, netns), "--collect",
            f"--description=hostnet: revert generation {gen_id} unless confirmed",
            f"--on-active={max(1, round(seconds))}s", "--timer-property=AccuracySec=1s",
            "--", *command]


def spawn_detached(command: list[str], log_path: Path, timeout: float = 30.0) -> int:
    """Start ``command`` in a new session, immune to SIGHUP; return its pid once it has said
    it is ready (it writes ``ready`` to the file descriptor given with ``--ready-fd``)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # first child: new session, fork again so the reverter is no session leader
        try:
            os.close(read_fd)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # kept across exec
            null = os.open(os.devnull, os.O_RDONLY)
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.chdir("/")
            os.write(write_fd, f"{os.getpid()}\n".encode())
            os.set_inheritable(write_fd, True)
            os.execv(command[0], [*command, "--ready-fd", str(write_fd)])
        finally:
            os._exit(127)
    os.close(write_fd)
    os.waitpid(pid, 0)
    chunks: list[bytes] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([read_fd], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        chunk = os.read(read_fd, 256)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    lines = b"".join(chunks).decode(errors="replace").split()
    if len(lines) < 2 or not lines[0].isdigit() or lines[1] != "ready":
        raise PlanError("the reverter process did not start; nothing was changed",
                        hint=f"see {log_path}")
    return int(lines[0])


def arm(gen_id: int, deadline: float, seconds: float, *, state_dir: Path, netns: str | None,
        root: str | None, host: Root) -> str:
    """Arm the revert; return how (for the journal and the user)."""
    if systemd_is_pid1(host):
        command = revert_command(gen_id, state_dir, netns, root)
        argv = systemd_run_argv(gen_id, netns, seconds, command)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if proc.returncode != 0:
            raise PlanError(f"systemd-run failed: {proc.stderr.strip() or proc.returncode}; "
                            "nothing was changed")
        return f"systemd timer {unit_name(gen_id, netns)}.timer"
    log = Path(state_dir) / "reverter.log"
    pid = spawn_detached(revert_command(gen_id, state_dir, netns, root, at=deadline), log)
    return f"reverter process {pid} (log {log})"
