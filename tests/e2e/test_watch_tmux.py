"""``hostnet watch`` in a real terminal: an 80x24 tmux pane, keys sent with send-keys."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.conntrack import count, enable_tracking, load_assured
from tests.helpers.netns import Netns

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

HOSTNET = str(Path(sys.executable).with_name("hostnet"))


def tmux(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["tmux", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"tmux {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def capture(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for(session: str, test: Callable[[str], bool], timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = capture(session)
        if test(screen):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"screen never matched; last screen:\n{screen}")


def start_watch(ns: Netns) -> str:
    """A detached 80x24 tmux session at a shell prompt, running ``hostnet watch`` on ``ns``;
    the caller kills the session."""
    session = f"hn-test-watch-{uuid.uuid4().hex[:8]}"
    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", "bash --norc --noprofile")
    try:
        tmux("send-keys", "-t", session, "PS1='READY$ '", "Enter")
        wait_for(session, lambda s: "READY$" in s)
        tmux("send-keys", "-t", session,
             f"{HOSTNET} watch --netns {ns.name} --interval 0.5", "Enter")
    except BaseException:
        tmux("kill-session", "-t", session, check=False)
        raise
    return session


def test_watch_shows_namespace_usage_and_quits_on_q(netns: Callable[..., Netns]) -> None:
    ns = netns("watch")
    enable_tracking(ns)
    session = start_watch(ns)
    try:
        wait_for(session, lambda s: "conntrack  every" in s and ns.name[:15] in s)
        load_assured(ns, 3000, timeout=120)
        loaded = count(ns)
        assert loaded >= 3000
        pattern = re.compile(rf"{loaded:,}/262,144|{loaded:,}/\d[\d,]*")
        screen = wait_for(session, lambda s: pattern.search(s) is not None)
        lines = screen.splitlines()
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
        assert ns.name[:15] in screen  # the namespace label (cut to 16 columns)
        assert re.search(r"\d+\.\d%", screen)  # the usage percentage
        assert "Findings" in screen
        # the top sources are read (3000 entries is below --top-max-entries)
        screen = wait_for(session, lambda s: "198.51.100.1 " in s)
        tmux("send-keys", "-t", session, "q")
        wait_for(session, lambda s: "conntrack  every" not in s and s.rstrip().endswith("READY$"),
                 timeout=10)
        tmux("send-keys", "-t", session, "echo EXIT=$?", "Enter")
        screen = wait_for(session, lambda s: "EXIT=" in s, timeout=10)
        assert "EXIT=0" in screen
        assert "conntrack  every" not in screen  # the alternate screen is gone
        assert "READY$" in screen  # back at the shell prompt
        # the terminal is back in cooked mode: a typed line reaches the shell
        tmux("send-keys", "-t", session, "echo typed-$((40+2))", "Enter")
        wait_for(session, lambda s: "typed-42" in s, timeout=10)
    finally:
        tmux("kill-session", "-t", session, check=False)


def test_watch_leaves_cleanly_on_ctrl_c(netns: Callable[..., Netns]) -> None:
    ns = netns("watchc")
    session = start_watch(ns)
    try:
        wait_for(session, lambda s: "conntrack  every" in s)
        tmux("send-keys", "-t", session, "C-c")
        wait_for(session, lambda s: "conntrack  every" not in s and s.rstrip().endswith("READY$"),
                 timeout=10)
        tmux("send-keys", "-t", session, "echo EXIT=$?", "Enter")
        screen = wait_for(session, lambda s: "EXIT=" in s, timeout=10)
        assert "EXIT=0" in screen
        assert "Traceback" not in screen
    finally:
        tmux("kill-session", "-t", session, check=False)
