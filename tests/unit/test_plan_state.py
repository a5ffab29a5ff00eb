"""Steps undo three-way, the journal is written whole, the lock keeps runs apart, and the
confirm timer picks systemd-run or a detached reverter (PID 1 is a fixture here)."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostnet.errors import ApplyFailed, LockBusy
from hostnet.host.root import Root
from hostnet.state.confirm import revert_command, systemd_is_pid1, systemd_run_argv
from hostnet.state.hostio import HostIO
from hostnet.state.journal import Generation, Journal, locked
from hostnet.state.plan import Plan
from hostnet.state.steps import KINDS, Outcome, SetSysctl, WriteOwnedFile, undo_record
from hostnet.state.transaction import apply

REPO = Path(__file__).resolve().parents[2]


def fake_proc(tmp: Path, values: dict[str, str]) -> HostIO:
    """A HostIO whose /proc/sys is a plain directory (only the three-way logic is tested)."""
    for key, value in values.items():
        path = tmp / "proc/sys" / key.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    (tmp / "files").mkdir(exist_ok=True)
    return HostIO(tmp / "files", live=True, proc_root=tmp)


def test_sysctl_undo_is_three_way(tmp_path: Path) -> None:
    io = fake_proc(tmp_path, {"net.core.somaxconn": "4096"})
    step = SetSysctl(None, "net.core.somaxconn", "4096", "8192", "r")
    rec = step.record(io)
    step.run(io)
    assert step.verify(io) is None
    # someone changed it since: drift, left alone
    io.write_sysctl("net.core.somaxconn", "5000")
    [res] = undo_record(rec, io, force=False)
    assert res.outcome is Outcome.DRIFT and io.read_sysctl("net.core.somaxconn") == "5000"
    [forced] = undo_record(rec, io, force=True)
    assert forced.outcome is Outcome.FORCED and io.read_sysctl("net.core.somaxconn") == "4096"
    [again] = undo_record(rec, io, force=False)
    assert again.outcome is Outcome.UNCHANGED


def test_side_keys_are_journaled_and_only_our_rewrites_restored(tmp_path: Path) -> None:
    io = fake_proc(tmp_path, {"net.ipv4.ip_forward": "0", "net.ipv4.conf.all.accept_redirects": "0",
                              "net.ipv4.conf.eth0.rp_filter": "1"})
    step = SetSysctl(None, "net.ipv4.ip_forward", "0", "1", "r",
                     side_prefixes=("net.ipv4.conf",), first=True)
    rec = step.record(io)
    assert rec["side"] == {"net.ipv4.conf.all.accept_redirects": "0",
                           "net.ipv4.conf.eth0.rp_filter": "1"}
    assert step.order == 0 and SetSysctl(None, "a.b", "1", "2", "r").order == 10
    step.run(io)
    io.write_sysctl("net.ipv4.conf.eth0.rp_filter", "2")  # someone else: must stay
    out = undo_record(rec, io, force=False)
    assert out[0].outcome is Outcome.RESTORED
    assert io.read_sysctl("net.ipv4.conf.eth0.rp_filter") == "2"


def test_file_undo_is_three_way_and_removes_created_files(tmp_path: Path) -> None:
    io = fake_proc(tmp_path, {})
    step = WriteOwnedFile("/etc/sysctl.d/90-hostnet.conf", None, "# Written by hostnet\n", "r")
    rec = step.record(io)
    assert rec["old_b64"] is None and rec["new_sha256"] == step.new_digest
    step.run(io)
    target = tmp_path / "files/etc/sysctl.d/90-hostnet.conf"
    assert target.read_text() == "# Written by hostnet\n"
    target.write_text("# Written by hostnet\nedited\n")
    assert undo_record(rec, io, force=False)[0].outcome is Outcome.DRIFT
    assert undo_record(rec, io, force=True)[0].outcome is Outcome.FORCED
    assert not target.exists()
    assert not list(target.parent.glob(".*.tmp"))


def test_every_kind_is_registered() -> None:
    assert set(KINDS) >= {"sysctl", "file"}
    assert undo_record({"kind": "martian"}, HostIO("/", live=False), False)[0].outcome is \
        Outcome.DRIFT


def test_failed_step_undoes_what_ran_and_journal_says_so(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    io = fake_proc(tmp_path, {"a.one": "1", "a.two": "1"})
    steps = (SetSysctl(None, "a.one", "1", "2", "r"), SetSysctl(None, "a.two", "1", "2", "r"))
    monkeypatch.setenv("HOSTNET_TEST_FAIL_AT_STEP", "2")
    state = tmp_path / "state"
    with pytest.raises(ApplyFailed, match=r"step 2 of 2 \(a.two: 1 -> 2\) failed"):
        apply(lambda: Plan(steps), io, state_dir=state, netns=None, config="c")
    assert io.read_sysctl("a.one") == "1" and io.read_sysctl("a.two") == "1"
    gen = Journal(state, None).load(1)
    assert gen.status == "failed" and len(gen.records) == 2
    monkeypatch.delenv("HOSTNET_TEST_FAIL_AT_STEP")
    ok = apply(lambda: Plan(steps), io, state_dir=state, netns=None, config="c")
    assert ok.generation is not None and ok.generation.status == "applied"
    assert io.read_sysctl("a.two") == "2"
    again = apply(lambda: Plan(()), io, state_dir=state, netns=None, config="c")
    assert again.generation is None


def test_journal_is_whole_json_and_per_namespace(tmp_path: Path) -> None:
    gen = Generation(1, "ns1", "/", True, 0.0, "applying", ({"kind": "sysctl"},), (), "c")
    j = Journal(tmp_path, "ns1")
    j.write(gen)
    j.write(gen.with_status("applied", "done"))
    files = list((tmp_path / "journal").rglob("*"))
    assert [p.relative_to(tmp_path).as_posix() for p in files if p.is_file()] == [
        "journal/netns-ns1/000001.json"]
    data = json.loads((tmp_path / "journal/netns-ns1/000001.json").read_text())
    assert data["status"] == "applied" and data["version"] == 1
    assert oct(os.stat(tmp_path / "journal/netns-ns1/000001.json").st_mode & 0o777) == "0o600"
    assert Journal(tmp_path, None).ids() == [] and j.next_id() == 2


def test_lock_keeps_two_runs_apart(tmp_path: Path) -> None:
    with locked(tmp_path), pytest.raises(LockBusy, match=str(os.getpid())), locked(tmp_path):
        pass
    with locked(tmp_path):  # released
        pass


def test_systemd_detection_on_fixture_roots(tmp_path: Path) -> None:
    systemd = tmp_path / "sd"
    (systemd / "run/systemd/system").mkdir(parents=True)
    (systemd / "proc/1").mkdir(parents=True)
    (systemd / "proc/1/comm").write_text("systemd\n")
    other = tmp_path / "other"
    (other / "proc/1").mkdir(parents=True)
    (other / "proc/1/comm").write_text("process_api\n")
    assert systemd_is_pid1(Root(systemd)) is True
    assert systemd_is_pid1(Root(other)) is False
    command = revert_command(3, Path("/var/lib/hostnet"), "ns1", None)
    argv = systemd_run_argv(3, "ns1", 120, command)
    assert argv[:3] == ["systemd-run", "--unit", "hostnet-revert-netns-ns1-3"]
    assert "--on-active=120s" in argv
    assert argv[argv.index("--") + 1:] == [sys.executable, "-m", "hostnet", "rollback", "3",
                                          "--unconfirmed", "--state-dir", "/var/lib/hostnet",
                                          "--netns", "ns1"]
    assert "--at" in revert_command(3, Path("/s"), None, None, at=5.0)


def test_boot_unit_reverts_unconfirmed(tmp_path: Path) -> None:
    unit_path = REPO / "contrib/hostnet-revert-unconfirmed.service"
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(unit_path.read_text())
    assert parser["Service"]["Type"] == "oneshot"
    assert "rollback --unconfirmed" in parser["Service"]["ExecStart"]
    assert "network-pre.target" in parser["Unit"]["Before"]
    assert "systemd-sysctl.service" in parser["Unit"]["After"]
    analyze = subprocess.run(["which", "systemd-analyze"], capture_output=True, check=False)
    if analyze.returncode == 0:
        unit = tmp_path / unit_path.name
        unit.write_text(unit_path.read_text().replace(
            "/usr/local/bin/hostnet", str(Path(sys.executable).with_name("hostnet"))))
        proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                              text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr


def test_boot_revert_rolls_back_every_unconfirmed_generation(tmp_path: Path) -> None:
    from hostnet.state.rollback import confirm, unconfirmed

    io = fake_proc(tmp_path, {"a.one": "1"})
    state = tmp_path / "state"
    step = SetSysctl(None, "a.one", "1", "2", "r")
    apply(lambda: Plan((step,)), io, state_dir=state, netns=None, config="c")
    journal = Journal(state, None)
    pending = journal.load(1).with_status("pending", "as after a reboot", deadline=1e12)
    journal.write(pending)
    assert confirm(journal).status == "confirmed"  # confirmed: the boot revert leaves it
    assert unconfirmed(journal, io, None) == []
    journal.write(journal.load(1).with_status("pending", "unconfirmed again"))
    [done] = unconfirmed(journal, io, None)
    assert done.generation.status == "reverted" and io.read_sysctl("a.one") == "1"


@pytest.mark.parametrize("command", [["/bin/true"], ["/nonexistent/hostnet"]])
def test_reverter_that_never_gets_ready_stops_the_apply(tmp_path: Path,
                                                        command: list[str]) -> None:
    from hostnet.errors import PlanError
    from hostnet.state.confirm import spawn_detached

    with pytest.raises(PlanError, match="reverter process did not start"):
        spawn_detached(command, tmp_path / "reverter.log", timeout=10)


def test_reverter_runs_in_its_own_session_and_says_ready(tmp_path: Path) -> None:
    import time

    from hostnet.state.confirm import spawn_detached

    out = tmp_path / "sid"
    script = tmp_path / "r.py"
    script.write_text(f"#!{sys.executable}\nimport os, signal, sys\n"
                      f"open({str(out)!r}, 'w').write(f'{{os.getsid(0)}} "
                      "{signal.getsignal(signal.SIGHUP) == signal.SIG_IGN}')\n"
                      "os.write(int(sys.argv[2]), b'ready')\n")
    script.chmod(0o755)
    pid = spawn_detached([str(script)], tmp_path / "reverter.log")
    for _ in range(100):
        if out.exists() and out.read_text().strip():
            break
        time.sleep(0.05)
    sid, ignores_hup = out.read_text().split()
    assert int(sid) != os.getsid(0) and int(sid) != os.getpid()
    assert ignores_hup == "True" and pid > 0


def test_a_hangup_during_apply_does_not_stop_it_half_way(tmp_path: Path) -> None:
    import signal

    class HangUp(SetSysctl):
        def run(self, io: HostIO) -> None:
            os.kill(os.getpid(), signal.SIGHUP)  # the SSH session went away
            super().run(io)

    io = fake_proc(tmp_path, {"a.one": "1", "a.two": "1"})
    steps = (HangUp(None, "a.one", "1", "2", "r"), SetSysctl(None, "a.two", "1", "2", "r"))
    before = signal.getsignal(signal.SIGHUP)
    done = apply(lambda: Plan(steps), io, state_dir=tmp_path / "s", netns=None, config="c")
    assert done.generation is not None and done.generation.status == "applied"
    assert io.read_sysctl("a.two") == "2"
    assert signal.getsignal(signal.SIGHUP) == before
