"""Lint follows the kernel it judges (issue 8): module keys, keys absent from this build,
proc-handler ranges, what the kernel offers for string keys, no-op keys, units, repeats.

Fixture roots: tests/fixtures/roots/lint-builtin (a kernel like the development VM: no
module support, nf_conntrack and br_netfilter built in, config in /boot) and
tests/fixtures/roots/lint-kernel (a modular kernel like Debian's: /proc/modules,
kernel.modprobe, /lib/modules/RELEASE/modules.dep).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hostnet.findings import Finding, Severity
from hostnet.host.kernel_view import RootKernelView
from hostnet.host.root import Root
from hostnet.knowledge.catalogue import load
from hostnet.sysctl.lint import NoKernel, lint_files
from hostnet.sysctl.parser import parse_text

ROOTS = Path(__file__).resolve().parents[1] / "fixtures" / "roots"
BUILTIN = ROOTS / "lint-builtin"
MODULAR = ROOTS / "lint-kernel"
PATH = "/etc/sysctl.d/t.conf"


def lint(text: str, root: Path | None = None) -> list[Finding]:
    kernel = RootKernelView(Root(root)) if root is not None else NoKernel()
    return lint_files([parse_text(text, PATH)], load(), kernel).findings


def codes(text: str, root: Path | None = None) -> list[tuple[int | None, str, str]]:
    return [(f.line, f.code, str(f.severity)) for f in lint(text, root)]


@pytest.fixture
def builtin_copy(tmp_path: Path) -> Path:
    root = tmp_path / "builtin"
    shutil.copytree(BUILTIN, root, symlinks=True)
    return root


@pytest.fixture
def modular_copy(tmp_path: Path) -> Path:
    root = tmp_path / "modular"
    shutil.copytree(MODULAR, root, symlinks=True)
    return root


CONNTRACK = "net.netfilter.nf_conntrack_max = 262144\nnet.bridge.bridge-nf-call-iptables = 0\n"


# -- SC122: only for a loadable module that nothing loads before systemd-sysctl --------------


def test_sc122_silent_when_conntrack_is_built_in() -> None:
    # regression: SC122 fired on every conntrack key on kernels with CONFIG_NF_CONNTRACK=y
    assert codes(CONNTRACK, BUILTIN) == []


@pytest.mark.parametrize("signal", ["config", "sys-module", "no-module-support"])
def test_sc122_each_built_in_signal_alone(builtin_copy: Path, signal: str) -> None:
    # keep exactly one of the three signals that say "built in"
    (builtin_copy / "proc/sys/kernel/modprobe").write_text("/sbin/modprobe\n")
    (builtin_copy / "proc/modules").write_text("bridge 1 0 - Live 0x0\n")
    shutil.rmtree(builtin_copy / "sys/module")
    (builtin_copy / "sys/module").mkdir()
    config = builtin_copy / "boot/config-6.18.44-builtin"
    config.write_text("CONFIG_MODULES=y\n")
    if signal == "config":
        config.write_text("CONFIG_MODULES=y\nCONFIG_NF_CONNTRACK=y\n")
    elif signal == "sys-module":
        (builtin_copy / "sys/module/nf_conntrack/parameters").mkdir(parents=True)
    else:
        (builtin_copy / "proc/modules").unlink()
        (builtin_copy / "proc/sys/kernel/modprobe").unlink()
    found = [c for c in codes("net.netfilter.nf_conntrack_max = 262144\n", builtin_copy)]
    assert found == [], signal


def test_sc122_fires_for_a_loadable_module_not_loaded_at_boot() -> None:
    got = codes(CONNTRACK, MODULAR)
    assert (1, "SC122", "warning") in got
    assert (2, "SC114", "info") in got  # net.bridge is missing: br_netfilter not loaded


def test_sc122_silent_when_modules_load_d_loads_it_or_a_user(modular_copy: Path) -> None:
    text = "net.netfilter.nf_conntrack_max = 262144\n"
    conf = modular_copy / "usr/lib/modules-load.d/fw.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("# firewall\nnf_nat\n")  # nf_nat depends on nf_conntrack
    assert codes(text, modular_copy) == []
    conf.write_text("nf-conntrack\n")
    assert codes(text, modular_copy) == []


def test_sc122_silent_when_the_kernel_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "etc/modules-load.d").mkdir(parents=True)
    assert codes("net.netfilter.nf_conntrack_max = 262144\n", tmp_path) == []


# -- real keys absent from this build are SC114/SC105, never "check the spelling" ------------


def test_driver_keys_are_not_unknown() -> None:
    # regression: dev.cdrom.* was SC103 "unknown key, check the spelling"
    (f,) = lint("dev.cdrom.autoclose = 0\n", BUILTIN)
    assert (f.code, f.severity) == ("SC114", Severity.INFO) and "CD-ROM" in f.message
    assert "CONFIG_CDROM" in f.message  # the config says it is not built


def test_modules_disabled_without_module_support() -> None:
    (f,) = lint("kernel.modules_disabled = 1\n", BUILTIN)
    assert f.code == "SC114" and "module support" in f.message


def test_scheduler_keys_moved_to_debugfs_are_removed() -> None:
    (f,) = lint("kernel.sched_migration_cost_ns = 5000000\n", BUILTIN)
    assert (f.code, f.severity) == ("SC105", Severity.WARNING)
    assert "5.13" in f.message and "/sys/kernel/debug/sched/migration_cost_ns" in f.message


def test_typos_are_still_unknown() -> None:
    (f,) = lint("net.netfilter.nf_conntrack_maxx = 1\n", BUILTIN)
    assert f.code == "SC103" and "nf_conntrack_max" in f.message


# -- ranges follow the proc handler -----------------------------------------------------------


def test_plain_proc_dointvec_accepts_any_integer() -> None:
    # regression: kernel.panic_on_oops = 30 was SC107 error (0..1); the kernel stores it
    for line in ("kernel.panic_on_oops = 30", "kernel.randomize_va_space = 3",
                 "kernel.perf_event_paranoid = 4", "kernel.sysrq = 1000"):
        assert [f for f in lint(line + "\n") if f.code == "SC107"] == [], line


def test_minimum_of_minmax_handlers() -> None:
    assert codes("vm.dirty_bytes = 4096\n") == [(1, "SC107", "error")]
    assert codes("vm.dirty_bytes = 0\n") == [(1, "SC107", "error")]
    assert codes("vm.dirty_bytes = 8192\n") == []
    assert codes("vm.dirty_background_bytes = 0\n") == [(1, "SC107", "error")]
    assert codes("vm.dirty_background_bytes = 1\n") == []


def test_port_range_refused_by_the_kernel_is_an_error() -> None:
    # regression: 1024 65536 (EINVAL) was only a warning
    (f,) = lint("net.ipv4.ip_local_port_range = 1024 65536\n")
    assert (f.code, f.severity) == ("SC107", Severity.ERROR)
    assert f.suggestion == "net.ipv4.ip_local_port_range = 1024 65535"
    (g,) = lint("net.ipv4.ip_local_port_range = 1000 2001\n")
    assert g.code == "SC107" and "ip_unprivileged_port_start" in g.message
    # the files lower ip_unprivileged_port_start: then 1000 is allowed
    text = "net.ipv4.ip_unprivileged_port_start = 900\nnet.ipv4.ip_local_port_range = 1000 2001\n"
    assert lint(text) == []


def test_fewer_tuple_fields_are_legal() -> None:
    assert codes("net.ipv4.tcp_rmem = 8192\n") == [(1, "SC106", "info")]
    assert codes("net.ipv4.ip_local_port_range = 40000\n") == [(1, "SC106", "info")]


# -- strings against what this kernel offers --------------------------------------------------


def test_congestion_control_against_this_kernel() -> None:
    (f,) = lint("net.ipv4.tcp_congestion_control = htcp\n", BUILTIN)
    assert (f.code, f.severity) == ("SC126", Severity.ERROR) and "reno cubic bbr" in f.message
    assert lint("net.ipv4.tcp_congestion_control = cubic\n", BUILTIN) == []
    # modular kernel: tcp_bbr.ko is in modules.dep, so it can be loaded on demand
    assert lint("net.ipv4.tcp_congestion_control = bbr\n", MODULAR) == []
    # without a config or module list there is no way to know: no finding
    assert lint("net.ipv4.tcp_congestion_control = illinois\n", MODULAR) == []
    assert lint("net.ipv4.tcp_congestion_control = htcp\n") == []


def test_default_qdisc_against_this_kernel() -> None:
    (f,) = lint("net.core.default_qdisc = fq_codel\n", BUILTIN)
    assert f.code == "SC126" and "CONFIG_NET_SCH" not in f.message
    assert lint("net.core.default_qdisc = pfifo_fast\n", BUILTIN) == []
    assert lint("net.core.default_qdisc = fq_codel\n", MODULAR) == []  # sch_fq_codel.ko


# -- keys that exist but do nothing, units, repeats, arity -----------------------------------


@pytest.mark.parametrize(("key", "since"), [
    ("net.ipv4.route.max_size", "3.6"),
    ("kernel.random.write_wakeup_threshold", "5.18"),
    ("net.ipv4.tcp_adv_win_scale", "6.6"),
])
def test_no_effect_keys(key: str, since: str) -> None:
    for root in (None, BUILTIN):
        (f,) = lint(f"{key} = 1\n", root)
        assert f.code == "SC105" and f"since Linux {since}" in f.message


def test_tcp_mem_in_bytes() -> None:
    (f,) = lint("net.ipv4.tcp_mem = 786432000 1048576000 1572864000\n", BUILTIN)
    assert f.code == "SC127" and f.suggestion == "net.ipv4.tcp_mem = 192000 256000 384000"
    assert lint("net.ipv4.tcp_mem = 192000 256000 384000\n", BUILTIN) == []
    assert lint("net.ipv4.tcp_mem = 786432000 1048576000 1572864000\n") == []  # no RAM known


def test_same_value_twice_is_info_on_the_later_line() -> None:
    text = "net.ipv4.ip_forward = 1\n# again\nnet.ipv4.ip_forward = 1\n"
    (f,) = lint(text)
    assert (f.line, f.code, f.severity) == (3, "SC110", Severity.INFO)


def test_wrong_arity_on_a_single_integer() -> None:
    (f,) = lint("kernel.yama.ptrace_scope = 1 2 3\n")
    assert (f.code, f.severity, f.suggestion) == ("SC106", Severity.WARNING,
                                                  "kernel.yama.ptrace_scope = 1")
    # also when the key is missing on this kernel (Yama not built): both are said
    got = codes("kernel.yama.ptrace_scope = 1 2 3\n", BUILTIN)
    assert ("SC106" in {c for _, c, _ in got}) and ("SC114" in {c for _, c, _ in got})


def test_dirty_bytes_and_ratio_exclude_each_other() -> None:
    text = "vm.dirty_bytes = 50331648\nvm.dirty_ratio = 10\n"
    (f,) = lint(text)
    assert (f.line, f.code) == (1, "SC128")


def test_background_ratio_not_below_dirty_ratio() -> None:
    (f,) = lint("vm.dirty_ratio = 20\nvm.dirty_background_ratio = 30\n")
    assert (f.line, f.code) == (2, "SC112")


def test_no_config_and_no_modules_is_not_proof_of_absence(builtin_copy: Path) -> None:
    # built-in code without parameters has no /sys/module entry (br_netfilter, sch_htb here)
    (builtin_copy / "boot/config-6.18.44-builtin").unlink()
    assert lint("net.core.default_qdisc = htb\n", builtin_copy) == []
    assert lint("net.core.default_qdisc = fq_codel\n", builtin_copy) == []  # cannot tell
    # tcp_available_congestion_control lists every built-in one when nothing can load
    (f,) = lint("net.ipv4.tcp_congestion_control = htcp\n", builtin_copy)
    assert f.code == "SC126"
