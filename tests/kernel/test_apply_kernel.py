"""plan/apply/rollback on the real kernel, inside throwaway namespaces, with the files in a
temporary root and the journal in a temporary state directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hostnet.state.journal import locked
from tests.helpers.netns import Netns

HOSTNET = [sys.executable, "-m", "hostnet"]
CONFIG = """\
[sysctl]
"net.ipv4.ip_forward" = 1
"net.ipv4.conf.all.accept_redirects" = 0
"net.core.somaxconn" = { at_least = 8192 }
"net.ipv4.tcp_fin_timeout" = { at_most = 30 }

[conntrack.timeouts]
udp = 45
"""
KEYS = ("net.ipv4.ip_forward", "net.ipv4.conf.all.accept_redirects", "net.core.somaxconn",
        "net.ipv4.tcp_fin_timeout", "net.netfilter.nf_conntrack_udp_timeout",
        "net.ipv4.conf.veth0.forwarding", "net.ipv4.conf.all.forwarding")
WANTED = {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.accept_redirects": "0",
          "net.core.somaxconn": "8192", "net.ipv4.tcp_fin_timeout": "30",
          "net.netfilter.nf_conntrack_udp_timeout": "45", "net.ipv4.conf.veth0.forwarding": "1",
          "net.ipv4.conf.all.forwarding": "1"}


def hostnet(*args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HOSTNET, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, check=False)


class Lab:
    def __init__(self, ns: Netns, tmp: Path, config: str = CONFIG) -> None:
        self.ns = ns
        self.root = tmp / "root"
        self.state = tmp / "state"
        self.config = tmp / "hostnet.toml"
        self.root.mkdir()
        self.config.write_text(config)
        # an interface, and a value ip_forward rewrites that must come back on rollback
        ns.run(["ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1"])
        self.before = self.values()

    def args(self, *extra: str) -> list[str]:
        return ["--config", str(self.config), "--netns", self.ns.name, "--root", str(self.root),
                "--state-dir", str(self.state), *extra]

    def values(self) -> dict[str, str]:
        out = self.ns.run(["sh", "-c", "for k in \"$@\"; do cat /proc/sys/$(echo $k | tr . /);"
                                       " done", "sh", *KEYS]).stdout.split("\n")
        return dict(zip(KEYS, out, strict=False))

    def generations(self) -> list[dict[str, object]]:
        d = self.state / "journal" / f"netns-{self.ns.name}"
        return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.is_dir() else []

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())


@pytest.fixture
def lab(netns: Callable[..., Netns], tmp_path: Path) -> Lab:
    return Lab(netns("apply"), tmp_path)


def test_kernel_rewrites_that_the_planner_predicts(netns: Callable[..., Netns]) -> None:
    """ip_forward sets forwarding on all, default and every interface and all.accept_redirects
    to its opposite; IPv6 all.disable_ipv6 and all.forwarding write default and every
    interface (even when all keeps its value)."""
    ns = netns("facts")
    ns.run(["ip", "link", "add", "a0", "type", "veth", "peer", "name", "a1"])
    ns.sysctl("net.ipv4.conf.all.accept_redirects", "0")
    ns.sysctl("net.ipv4.conf.a0.rp_filter", "2")
    ns.sysctl("net.ipv4.ip_forward", "1")
    for name in ("all", "default", "a0", "lo"):
        assert ns.sysctl(f"net.ipv4.conf.{name}.forwarding") == "1"
    assert ns.sysctl("net.ipv4.conf.all.accept_redirects") == "0"
    ns.sysctl("net.ipv4.ip_forward", "0")
    assert ns.sysctl("net.ipv4.conf.all.accept_redirects") == "1"  # was 0 before: clobbered
    assert ns.sysctl("net.ipv4.conf.a0.rp_filter") == "2"  # other conf values stay
    ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")
    for name in ("default", "a0", "lo"):
        assert ns.sysctl(f"net.ipv6.conf.{name}.disable_ipv6") == "1"
    ns.sysctl("net.ipv6.conf.all.disable_ipv6", "0")
    ns.sysctl("net.ipv6.conf.a0.disable_ipv6", "1")
    ns.sysctl("net.ipv6.conf.all.disable_ipv6", "0")
    assert ns.sysctl("net.ipv6.conf.a0.disable_ipv6") == "0"
    ns.sysctl("net.ipv6.conf.all.forwarding", "1")
    assert ns.sysctl("net.ipv6.conf.default.forwarding") == "1"
    assert ns.sysctl("net.ipv6.conf.a0.forwarding") == "1"


def test_apply_twice_then_rollback(lab: Lab) -> None:
    plan = hostnet("plan", *lab.args("--format", "json"))
    assert plan.returncode == 0, plan.stderr
    changes = json.loads(plan.stdout)["changes"]
    assert changes[0]["key"] == "net.ipv4.ip_forward" and changes[0]["effect"] == "live"
    assert {c["kind"] for c in changes} == {"sysctl", "file"}
    first = hostnet("apply", *lab.args("--yes"))
    assert first.returncode == 0, first.stderr
    assert "Applied generation 1" in first.stdout
    assert lab.values() == WANTED
    assert lab.files() == ["etc/sysctl.d/90-hostnet.conf"]
    conf = lab.root / "etc/sysctl.d/90-hostnet.conf"
    lint = hostnet("lint", "--strict", "--no-kernel", str(conf))
    assert lint.returncode == 0, lint.stdout
    assert "net.core.somaxconn = 8192" in conf.read_text()
    [gen] = lab.generations()
    forward = next(r for r in gen["records"] if r.get("key") == "net.ipv4.ip_forward")  # type: ignore[attr-defined]
    assert "net.ipv4.conf.veth0.rp_filter" in forward["side"]  # all of conf/* journaled
    second = hostnet("apply", *lab.args("--yes"))
    assert second.returncode == 0 and "Nothing to do" in second.stdout
    assert len(lab.generations()) == 1
    back = hostnet("rollback", *lab.args()[2:], "--yes")  # no --config for rollback
    assert back.returncode == 0, back.stdout + back.stderr
    assert lab.values() == lab.before  # all.accept_redirects back to what it was, not flipped
    assert lab.files() == []
    history = json.loads(hostnet("history", "--netns", lab.ns.name, "--state-dir",
                                 str(lab.state), "--format", "json").stdout)
    assert [g["status"] for g in history["generations"]] == ["rolled-back"]


def test_rollback_reports_drift_and_force_restores(lab: Lab) -> None:
    assert hostnet("apply", *lab.args("--yes")).returncode == 0
    lab.ns.sysctl("net.core.somaxconn", "9000")
    back = hostnet("rollback", "--netns", lab.ns.name, "--state-dir", str(lab.state), "--yes")
    assert back.returncode == 1
    assert "drift: net.core.somaxconn: is 9000" in back.stdout
    assert lab.values()["net.core.somaxconn"] == "9000"
    assert lab.values()["net.ipv4.tcp_fin_timeout"] == lab.before["net.ipv4.tcp_fin_timeout"]
    forced = hostnet("rollback", "--netns", lab.ns.name, "--state-dir", str(lab.state), "--yes",
                     "--force")
    assert forced.returncode == 0, forced.stdout
    assert lab.values() == lab.before


def test_killed_after_each_write_rerun_or_rollback_is_consistent(lab: Lab) -> None:
    steps = len(json.loads(hostnet("plan", *lab.args("--format", "json")).stdout)["changes"])
    assert steps >= 5
    for k in range(steps + 1):
        killed = hostnet("apply", *lab.args("--yes"), env={"HOSTNET_TEST_KILL_AT_STEP": str(k)})
        assert killed.returncode == -9, (k, killed.stdout, killed.stderr)
        gens = lab.generations()  # every journal file is whole JSON with every record
        assert gens[-1]["status"] == "applying"
        assert len(gens[-1]["records"]) == steps  # type: ignore[arg-type]
        assert not list(lab.state.rglob("*.tmp"))
        if k % 2 == 0:
            rerun = hostnet("apply", *lab.args("--yes"))
            assert rerun.returncode == 0, rerun.stderr
            assert "had been interrupted" in rerun.stdout
            assert lab.values() == WANTED
            assert hostnet("rollback", *lab.args()[2:], "--yes").returncode == 0
        else:
            back = hostnet("rollback", *lab.args()[2:], "--yes")
            assert back.returncode == 0, back.stdout + back.stderr
        assert lab.values() == lab.before, k
        assert lab.files() == [], k


def test_failed_step_puts_everything_back(lab: Lab) -> None:
    steps = len(json.loads(hostnet("plan", *lab.args("--format", "json")).stdout)["changes"])
    failed = hostnet("apply", *lab.args("--yes"), env={"HOSTNET_TEST_FAIL_AT_STEP": str(steps)})
    assert failed.returncode == 1
    assert f"step {steps} of {steps}" in failed.stderr
    assert "nothing is left half-applied" in failed.stderr
    assert lab.values() == lab.before and lab.files() == []
    assert lab.generations()[-1]["status"] == "failed"


@pytest.mark.parametrize(("config", "expected"), [
    ('[sysctl\n"net.core.somaxconn" = 1\n', "hostnet.toml:1: not valid TOML"),
    ('rolle = "server"\n', "hostnet.toml:1: rolle: unknown key (did you mean role?)"),
    ('[sysctl]\n"net.core.somaxconn" = true\n', 'hostnet.toml:2: sysctl."net.core.somaxconn"'),
    ('[conntrack]\nbuckets = 300000000\n', "hostnet.toml:2: conntrack.buckets: expected 1 to"),
    ('[sysctl]\n"net.ipv4.tcp_syncookies" = 9\n', "9 is not one of"),
    ('[sysctl]\n"net.ipv4.tcp_fin_timeot" = 3\n', "did you mean net.ipv4.tcp_fin_timeout?"),
    ('[sysctl]\n"net.netfilter.nf_conntrack_count" = 3\n', "is read-only"),
    ('[sysctl]\n"net.core.rmem_max" = 8388608\n', "is host-wide"),
    ('[sysctl]\n"net.core.somaxconn" = 8192\n"net.ipv4.tcp_syncookies" = 9\n', "9 is not one"),
])
def test_bad_input_exits_2_before_any_change(lab: Lab, config: str, expected: str) -> None:
    lab.config.write_text(config)
    result = hostnet("apply", *lab.args("--yes"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert lab.values() == lab.before and lab.files() == [] and lab.generations() == []


def test_missing_module_on_a_modular_kernel_fixture(tmp_path: Path) -> None:
    """A modular kernel without nf_conntrack loaded cannot exist here (built in): a fixture
    tree with its own proc/sys stands in for it."""
    root = tmp_path / "host"
    (root / "proc/sys/net/core").mkdir(parents=True)
    (root / "proc/sys/net/core/somaxconn").write_text("4096\n")
    (root / "proc/modules").write_text("ext4 1 0 - Live 0x0\n")
    (root / "sys/module/ext4").mkdir(parents=True)
    config = tmp_path / "h.toml"
    config.write_text('[sysctl]\n"net.core.somaxconn" = 8192\n[conntrack.timeouts]\nudp = 30\n')
    result = hostnet("apply", "--config", str(config), "--root", str(root), "--state-dir",
                     str(tmp_path / "state"), "--yes")
    assert result.returncode == 2
    assert "h.toml:4: conntrack.timeouts.udp" in result.stderr
    assert "exists only while the nf_conntrack module is loaded" in result.stderr
    assert not (root / "etc").exists()


def test_refuses_a_file_it_does_not_own(lab: Lab) -> None:
    conf = lab.root / "etc/sysctl.d/90-hostnet.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("net.core.somaxconn = 1024\n")
    result = hostnet("apply", *lab.args("--yes"))
    assert result.returncode == 2 and "not written by hostnet" in result.stderr
    assert lab.values() == lab.before
    assert conf.read_text() == "net.core.somaxconn = 1024\n"


def test_lock_keeps_two_applies_apart(lab: Lab) -> None:
    with locked(lab.state):
        result = hostnet("apply", *lab.args("--yes"))
    assert result.returncode == 2 and "another hostnet apply" in result.stderr
    assert lab.values() == lab.before


def _in_private_mount(lab: Lab, target: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with a full 16 KiB tmpfs on ``target`` (a private mount namespace: the
    host's mounts are untouched)."""
    target.mkdir(parents=True, exist_ok=True)
    script = ('mount -t tmpfs -o size=16k tmpfs "$1" && shift && '
              '(dd if=/dev/zero of="$0/fill" bs=1k count=64 2>/dev/null; true) && "$@"; '
              'rc=$?; ls -A "$0"; exit $rc')
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                           str(target), str(target), *command], capture_output=True, text=True,
                          timeout=120, check=False)


def test_full_disk_for_the_persistent_file(lab: Lab) -> None:
    result = _in_private_mount(lab, lab.root / "etc/sysctl.d",
                               [*HOSTNET, "apply", *lab.args("--yes")])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "No space left on device" in result.stderr
    assert "90-hostnet.conf" in result.stderr and "put back" in result.stderr
    assert result.stdout.split()[-1] == "fill"  # nothing half-written on the full disk
    assert lab.values() == lab.before
    assert lab.generations()[-1]["status"] == "failed"


def test_full_disk_for_the_journal(lab: Lab) -> None:
    result = _in_private_mount(lab, lab.state, [*HOSTNET, "apply", *lab.args("--yes")])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot write the journal" in result.stderr and "nothing was changed" in result.stderr
    assert lab.values() == lab.before and lab.files() == []


def test_root_alone_writes_only_files(tmp_path: Path) -> None:
    """--root DIR (image builds): the files land in DIR; no live value is written (the
    initial namespace is only read, for the checks)."""
    config = tmp_path / "h.toml"
    config.write_text('[sysctl]\n"net.core.somaxconn" = { at_least = 8192 }\n'
                      '[conntrack]\nbuckets = 131072\n')
    root = tmp_path / "image"
    (root / "etc/sysctl.d").mkdir(parents=True)
    (root / "etc/sysctl.d/99-local.conf").write_text("net.core.somaxconn = 1024\n")
    before = Path("/proc/sys/net/core/somaxconn").read_text()
    args = ["--config", str(config), "--root", str(root), "--state-dir", str(tmp_path / "s")]
    plan = json.loads(hostnet("plan", *args, "--format", "json").stdout)
    assert {c["kind"] for c in plan["changes"]} == {"file"}
    assert any("/etc/sysctl.d/99-local.conf:1 sets net.core.somaxconn = 1024" in w
               for w in plan["warnings"])
    result = hostnet("apply", *args, "--yes")
    assert result.returncode == 0, result.stderr
    assert Path("/proc/sys/net/core/somaxconn").read_text() == before
    assert "options nf_conntrack hashsize=131072" in (
        root / "etc/modprobe.d/hostnet.conf").read_text()
    lint = hostnet("lint", "--strict", "--no-kernel", str(root / "etc/sysctl.d/90-hostnet.conf"))
    assert lint.returncode == 0, lint.stdout
    assert "Nothing to do" in hostnet("apply", *args, "--yes").stdout
    assert hostnet("rollback", "--root", str(root), "--state-dir", str(tmp_path / "s"),
                   "--yes").returncode == 0
    assert not (root / "etc/sysctl.d/90-hostnet.conf").exists()


def test_port_range_over_a_listening_port_is_refused(lab: Lab) -> None:
    server = lab.ns.popen([sys.executable, "-c", "import socket, time; s = socket.socket(); "
                           "s.bind(('0.0.0.0', 30001)); s.listen(); print('up', flush=True); "
                           "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "up"
    lab.config.write_text('[sysctl]\n"net.ipv4.ip_local_port_range" = "20000 60999"\n')
    result = hostnet("apply", *lab.args("--yes"))
    assert result.returncode == 2, result.stderr
    assert "takes in ports services listen on (tcp/30001)" in result.stderr
    lab.config.write_text('[sysctl]\n"net.ipv4.ip_local_port_range" = "20000 60999"\n'
                          '"net.ipv4.ip_local_reserved_ports" = "30001"\n')
    assert hostnet("plan", *lab.args()).returncode == 0


def test_conntrack_size_in_a_namespace_waits_for_the_host(lab: Lab) -> None:
    """nf_conntrack_max and _buckets are read-only copies in a child namespace: planned for
    the files, warned about, never written live."""
    lab.config.write_text('[conntrack]\nmax = "auto"\nbuckets = 131072\n')
    plan = json.loads(hostnet("plan", *lab.args("--format", "json")).stdout)
    assert [c["kind"] for c in plan["changes"]] == ["file", "file"]
    assert sum("host-wide" in w for w in plan["warnings"]) == 2
    assert lab.ns.run(["test", "-w", "/proc/sys/net/netfilter/nf_conntrack_buckets"],
                      check=False).returncode != 0


def test_a_value_the_kernel_refuses_at_write_time_is_undone(lab: Lab) -> None:
    """No check can know every value (a congestion control that is not built): the kernel's
    refusal fails the step, and what ran before it is put back."""
    lab.config.write_text('[sysctl]\n"net.core.somaxconn" = 8192\n'
                          '"net.ipv4.tcp_congestion_control" = "hostnetnone"\n')
    result = hostnet("apply", *lab.args("--yes"))
    assert result.returncode == 1, result.stderr
    assert "(net.ipv4.tcp_congestion_control: " in result.stderr
    assert "the kernel knows no such value" in result.stderr
    assert "nothing is left half-applied" in result.stderr
    assert lab.values() == lab.before and lab.files() == []
