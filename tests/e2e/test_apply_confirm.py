"""Safe over SSH: the session that ran 'hostnet apply --confirm-within' is killed whole
(its process group gets SIGHUP then SIGKILL; in one case apply SIGKILLs itself half-way) and,
with nobody confirming, the values and files come back; a confirmed apply stays."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.netns import Netns

HOSTNET = [sys.executable, "-m", "hostnet"]
CONFIG = '[sysctl]\n"net.core.somaxconn" = 8192\n"net.ipv4.tcp_fin_timeout" = 20\n'
WITHIN = 5.0


class Session:
    """A login-like session: its own session and process group, running apply then idling."""

    def __init__(self, ns: Netns, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.ns, self.tmp = ns, tmp
        self.state = tmp / "state"
        self.root = tmp / "root"
        self.root.mkdir()
        self.config = tmp / "hostnet.toml"
        self.config.write_text(CONFIG)
        self.before = self.values()
        argv = [*HOSTNET, "apply", "--config", str(self.config), "--netns", ns.name, "--root",
                str(self.root), "--state-dir", str(self.state), "--yes", "--confirm-within",
                f"{WITHIN:g}s"]
        self.out = tmp / "apply.out"
        self.proc = subprocess.Popen(
            ["sh", "-c", '"$@" > "$0" 2>&1 & wait $!; echo "apply rc=$?" >> "$0"; sleep 300',
             str(self.out), *argv],
            start_new_session=True, env={**os.environ, **(env or {})})

    def values(self) -> tuple[str, str]:
        return (self.ns.sysctl("net.core.somaxconn"), self.ns.sysctl("net.ipv4.tcp_fin_timeout"))

    def generation(self) -> dict[str, object] | None:
        files = sorted((self.state / "journal" / f"netns-{self.ns.name}").glob("*.json"))
        return json.loads(files[-1].read_text()) if files else None

    def wait_for(self, what: Callable[[], bool], seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if what():
                return True
            time.sleep(0.1)
        return what()

    def kill_session(self) -> None:
        pgid = os.getpgid(self.proc.pid)
        assert pgid == self.proc.pid  # the session leader's group: everything apply started
        os.killpg(pgid, signal.SIGHUP)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def reverter_pid(self) -> int | None:
        gen = self.generation() or {}
        m = re.search(r"reverter process (\d+)", str(gen.get("reverter") or ""))
        return int(m.group(1)) if m else None


@pytest.fixture
def session(netns: Callable[..., Netns], tmp_path: Path) -> Iterator[Callable[..., Session]]:
    made: list[Session] = []

    def make(env: dict[str, str] | None = None) -> Session:
        s = Session(netns("confirm"), tmp_path, env)
        made.append(s)
        return s

    yield make
    for s in made:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(s.proc.pid, signal.SIGKILL)
        pid = s.reverter_pid()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    return " Z " not in stat


@pytest.mark.parametrize("apply_killed_mid_way", [False, True])
def test_unconfirmed_apply_comes_back_after_the_session_dies(
        session: Callable[..., Session], apply_killed_mid_way: bool) -> None:
    env = {"HOSTNET_TEST_KILL_AT_STEP": "2"} if apply_killed_mid_way else None
    s = session(env)
    # killed after step 2: both values written, the file (step 3) not, status stays applying
    assert s.wait_for(lambda: s.values() == ("8192", "20"), 20), s.out.read_text()
    if apply_killed_mid_way:
        assert s.wait_for(lambda: "apply rc=137" in s.out.read_text(), 20)  # SIGKILLed
        assert (s.generation() or {}).get("status") == "applying"
        assert not (s.root / "etc/sysctl.d/90-hostnet.conf").exists()
    else:
        assert s.wait_for(lambda: "apply rc=0" in s.out.read_text(), 20)
        assert (s.generation() or {}).get("status") == "pending"
        assert (s.root / "etc/sysctl.d/90-hostnet.conf").exists()
        text = s.out.read_text()
        assert "hostnet confirm --netns" in text and "reverted at" in text
    pid = s.reverter_pid()
    assert pid is not None and _alive(pid)
    assert os.getsid(pid) != os.getsid(s.proc.pid)  # its own session: the kill cannot reach it
    s.kill_session()
    assert s.wait_for(lambda: s.values() == s.before, WITHIN + 15), s.values()
    assert s.wait_for(lambda: (s.generation() or {}).get("status") == "reverted", 10)
    assert not (s.root / "etc/sysctl.d/90-hostnet.conf").exists()
    log = (s.state / "reverter.log").read_text()
    assert "reverted" in log and "restored: net.core.somaxconn" in log


def test_confirmed_apply_stays(session: Callable[..., Session]) -> None:
    s = session()
    assert s.wait_for(lambda: (s.generation() or {}).get("status") == "pending", 20)
    done = subprocess.run([*HOSTNET, "confirm", "--netns", s.ns.name, "--state-dir",
                           str(s.state)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "confirmed" in done.stdout, done.stderr
    pid = s.reverter_pid()
    s.kill_session()
    assert pid is not None
    assert s.wait_for(lambda: not _alive(pid), WITHIN + 15)  # it woke, saw the confirm, left
    assert s.values() == ("8192", "20")
    assert (s.generation() or {}).get("status") == "confirmed"
    assert "nothing to revert" in (s.state / "reverter.log").read_text()
    again = subprocess.run([*HOSTNET, "confirm", "--netns", s.ns.name, "--state-dir",
                            str(s.state)], capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 2 and "nothing waits for confirmation" in again.stderr
