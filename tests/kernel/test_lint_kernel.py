"""The SC rules against the real kernel: inside a throwaway network namespace, procps'
``sysctl -p`` accepts what lint calls clean and rejects the lines lint calls SC107/SC108/SC109.

Only per-namespace keys are written, and only inside ``hn-test-*`` namespaces.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from hostnet.knowledge.catalogue import load
from hostnet.sysctl.lint import LintResult, NoKernel, lint_files
from hostnet.sysctl.parser import parse_text
from tests.helpers.netns import Netns

pytestmark = pytest.mark.skipif(shutil.which("sysctl") is None, reason="needs procps sysctl")

CLEAN = """\
# per-namespace settings, lint-clean
net.ipv4.ip_forward = 1
net.ipv4.conf.all.rp_filter = 2
net.ipv4.conf.default.rp_filter = 2
net.ipv4.conf.lo.rp_filter = 0
net/ipv4/conf/lo/accept_redirects = 0
net.ipv4.ip_local_port_range = 16384 60999
net.ipv4.tcp_syncookies = 1
net.ipv4.tcp_fin_timeout = 30
net.ipv4.tcp_rmem = 4096 131072 6291456
net.ipv4.tcp_keepalive_time = 600
net.ipv4.ip_default_ttl = 64
net.core.somaxconn = 8192
net.ipv6.conf.all.forwarding = 1
net.ipv6.conf.lo.accept_ra = 2
"""


def lint(text: str) -> LintResult:
    return lint_files([parse_text(text, "/etc/sysctl.d/k.conf")], load(), NoKernel())


def lint_codes(text: str) -> list[tuple[int, str]]:
    return [(f.line or 0, f.code) for f in lint(text).findings]


def sysctl_p(ns: Netns, tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "k.conf"
    path.write_text(text)
    proc = ns.run(["sysctl", "-p", str(path)], check=False)
    return proc.returncode, proc.stderr


def test_clean_file_is_accepted(netns: Callable[..., Netns], tmp_path: Path) -> None:
    assert lint_codes(CLEAN) == []
    ns = netns("lint")
    code, err = sysctl_p(ns, tmp_path, CLEAN)
    assert code == 0, err
    assert ns.sysctl("net.ipv4.ip_local_port_range").split() == ["16384", "60999"]
    assert ns.sysctl("net.ipv4.conf.all.rp_filter") == "2"
    assert ns.sysctl("net.ipv4.conf.lo.accept_redirects") == "0"
    assert ns.sysctl("net.core.somaxconn") == "8192"
    assert ns.sysctl("net.ipv6.conf.lo.accept_ra") == "2"


REJECTED = [
    ("SC107", "net.ipv4.ip_default_ttl = 300"),
    ("SC107", "net.ipv4.tcp_syn_retries = 200"),
    ("SC107", "net.ipv4.ip_local_port_range = 60999 32768"),
    ("SC108", 'net.ipv4.tcp_fin_timeout = "30"'),
    ("SC108", "net.core.somaxconn = '1024'"),
    ("SC109", "net.ipv4.tcp_fin_timeout = 17#seconds"),
]


@pytest.mark.parametrize(("code", "line"), REJECTED)
def test_flagged_line_is_rejected_by_the_kernel(
    netns: Callable[..., Netns], tmp_path: Path, code: str, line: str
) -> None:
    assert lint_codes(line + "\n") == [(1, code)]
    ns = netns("lint")
    before = ns.run(["sysctl", "-n", line.split("=")[0].strip()]).stdout
    rc, err = sysctl_p(ns, tmp_path, line + "\n")
    assert rc != 0 and "Invalid argument" in err, (rc, err)
    assert ns.run(["sysctl", "-n", line.split("=")[0].strip()]).stdout == before


def test_whole_file_fails_but_good_lines_still_apply(netns: Callable[..., Netns], tmp_path: Path) -> None:
    text = "net.ipv4.tcp_fin_timeout = 21\n" + "\n".join(line for _, line in REJECTED) + "\n"
    codes = lint_codes(text)
    assert {c for _, c in codes} >= {"SC107", "SC108", "SC109"}
    ns = netns("lint")
    rc, err = sysctl_p(ns, tmp_path, text)
    assert rc != 0 and err.count("Invalid argument") == len(REJECTED), err
    assert ns.sysctl("net.ipv4.tcp_fin_timeout") == "21"


@pytest.mark.parametrize(
    ("line", "key", "stored", "code"),
    [
        ("net.ipv4.tcp_fin_timeout = 15 # faster", "net.ipv4.tcp_fin_timeout", "15", "SC109"),
        # extra integer fields: wrong arity (SC106), a warning because the kernel takes the
        # fields it needs and drops the rest
        ("net.ipv4.tcp_rmem = 4096 87380 6291456 8", "net.ipv4.tcp_rmem",
         "4096\t87380\t6291456", "SC106"),
        ("net.ipv4.tcp_fin_timeout = 45 2 3", "net.ipv4.tcp_fin_timeout", "45", "SC106"),
    ],
)
def test_extra_text_or_fields_are_warnings_because_the_kernel_accepts_them(
    netns: Callable[..., Netns], tmp_path: Path, line: str, key: str, stored: str, code: str
) -> None:
    found = lint(line + "\n").findings
    assert [(f.line, f.code, str(f.severity)) for f in found] == [(1, code, "warning")]
    ns = netns("lint")
    rc, err = sysctl_p(ns, tmp_path, line + "\n")
    assert rc == 0, err
    assert ns.sysctl(key) == stored


def test_sc109_glued_comment_is_an_error_because_the_kernel_rejects_it(
    netns: Callable[..., Netns], tmp_path: Path
) -> None:
    found = lint("net.ipv4.tcp_fin_timeout = 17#x\n").findings
    assert [(f.code, str(f.severity)) for f in found] == [("SC109", "error")]
    rc, err = sysctl_p(netns("lint"), tmp_path, "net.ipv4.tcp_fin_timeout = 17#x\n")
    assert rc != 0 and "Invalid argument" in err


@pytest.mark.parametrize("line", ["net.ipv4.tcp_syncookies = 5", "net.ipv4.conf.all.rp_filter = 3"])
def test_sc107_on_an_unchecked_key_is_a_warning_because_the_kernel_stores_it(
    netns: Callable[..., Netns], tmp_path: Path, line: str
) -> None:
    found = lint(line + "\n").findings
    assert [(f.code, str(f.severity)) for f in found] == [("SC107", "warning")]
    ns = netns("lint")
    rc, err = sysctl_p(ns, tmp_path, line + "\n")
    assert rc == 0, err
    key, value = (p.strip() for p in line.split("="))
    assert ns.sysctl(key) == value


def test_exclusion_line_is_accepted_by_procps_and_lint(
    netns: Callable[..., Netns], tmp_path: Path
) -> None:
    """'-key' without '=' (systemd's 50-default.conf) excludes the key from the glob for
    procps 4 as for systemd, so lint says nothing about it."""
    text = "net.ipv4.conf.*.rp_filter = 2\n-net.ipv4.conf.all.rp_filter\n"
    assert lint_codes(text) == []
    ns = netns("lint")
    before = ns.sysctl("net.ipv4.conf.all.rp_filter")
    rc, err = sysctl_p(ns, tmp_path, text)
    version = ns.run(["sysctl", "--version"]).stdout
    if "procps-ng 3." in version:
        pytest.skip(f"old procps: {version.strip()}")
    assert rc == 0, err
    assert ns.sysctl("net.ipv4.conf.lo.rp_filter") == "2"
    assert ns.sysctl("net.ipv4.conf.all.rp_filter") == before


# -- the kernel's own boundaries, proved in a throwaway namespace (issue 8) --------------------


def write(ns: Netns, key: str, value: str) -> int:
    """errno of writing ``value`` to ``key`` inside ``ns`` (0: accepted)."""
    code = (
        "import os,sys\n"
        "fd=os.open('/proc/sys/'+sys.argv[1].replace('.','/'),os.O_WRONLY)\n"
        "try:\n os.write(fd,sys.argv[2].encode()); print(0)\n"
        "except OSError as e: print(e.errno)\n"
    )
    return int(ns.run(["python3", "-c", code, key, value]).stdout.strip())


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        ("1024 65536", True),  # above 65535
        ("0 100", True),  # below 1
        ("2000 1999", True),  # reversed
        ("1023 2000", True),  # below ip_unprivileged_port_start (1024)
        ("1024 65535", False),
        ("32768 60999", False),
    ],
)
def test_port_range_errors_are_exactly_what_the_kernel_refuses(
    netns: Callable[..., Netns], value: str, refused: bool
) -> None:
    found = lint(f"net.ipv4.ip_local_port_range = {value}\n").findings
    errors = [f for f in found if f.severity.name == "ERROR"]
    assert bool(errors) is refused, found
    ns = netns("lint")
    assert (write(ns, "net.ipv4.ip_local_port_range", value) == 22) is refused
    if errors:  # the proposed value is one the kernel takes
        fixed = (errors[0].suggestion or "").split("=", 1)[1].strip()
        assert write(ns, "net.ipv4.ip_local_port_range", fixed) == 0


def test_lowered_unprivileged_start_allows_a_lower_range(netns: Callable[..., Netns]) -> None:
    text = "net.ipv4.ip_unprivileged_port_start = 900\nnet.ipv4.ip_local_port_range = 1000 2001\n"
    assert lint_codes(text) == []
    ns = netns("lint")
    assert write(ns, "net.ipv4.ip_unprivileged_port_start", "900") == 0
    assert write(ns, "net.ipv4.ip_local_port_range", "1000 2001") == 0


def test_parity_fix_is_accepted_and_silences_the_finding(netns: Callable[..., Netns]) -> None:
    (f,) = lint("net.ipv4.ip_local_port_range = 60000 60010\n").findings
    assert f.code == "SC123"
    fixed = (f.suggestion or "").split("=", 1)[1].strip()
    assert fixed == "60000 60011"  # the top end moves up
    assert lint_codes(f"net.ipv4.ip_local_port_range = {fixed}\n") == []
    ns = netns("lint")
    assert write(ns, "net.ipv4.ip_local_port_range", fixed) == 0
    assert ns.sysctl("net.ipv4.ip_local_port_range").split() == fixed.split()


def test_fewer_fields_are_accepted_and_only_info(netns: Callable[..., Netns]) -> None:
    assert [(c, str(f.severity)) for f in lint("net.ipv4.tcp_rmem = 8192\n").findings
            for c in [f.code]] == [("SC106", "info")]
    ns = netns("lint")
    before = ns.sysctl("net.ipv4.tcp_rmem").split()
    assert write(ns, "net.ipv4.tcp_rmem", "8192") == 0
    assert ns.sysctl("net.ipv4.tcp_rmem").split() == ["8192", *before[1:]]


def test_congestion_control_this_kernel_lacks_is_refused(netns: Callable[..., Netns]) -> None:
    from hostnet.host.kernel_view import RootKernelView
    from hostnet.host.root import Root

    live = RootKernelView(Root("/"))
    facts = live.modules()
    if facts is None or facts.config is None:
        pytest.skip("no readable kernel config: lint cannot know what could be loaded")
    name = "hnnosuchcc"
    found = lint_files([parse_text(f"net.ipv4.tcp_congestion_control = {name}\n", "/x.conf")],
                       load(), live).findings
    assert [f.code for f in found] == ["SC126"]
    ns = netns("lint")
    assert write(ns, "net.ipv4.tcp_congestion_control", name) == 2  # ENOENT


def test_builtin_conntrack_here_gives_no_sc122() -> None:
    from hostnet.host.kernel_view import RootKernelView
    from hostnet.host.root import Root

    sysmod = Path("/sys/module/nf_conntrack")
    if not sysmod.is_dir() or (sysmod / "initstate").exists():
        pytest.skip("nf_conntrack is not built into this kernel")
    text = "net.netfilter.nf_conntrack_max = 262144\n"
    found = lint_files([parse_text(text, "/x.conf")], load(), RootKernelView(Root("/"))).findings
    assert [f.code for f in found if f.code == "SC122"] == []


def test_global_keys_with_minimums_read_only_here() -> None:
    """vm.dirty_bytes / dirty_background_bytes are global: prove by reading (never written
    here) that they exist, are writable files and hold 0 or a value at the minimum."""
    cat = load()
    for key in ("vm.dirty_bytes", "vm.dirty_background_bytes"):
        spec = cat.get(key)
        assert spec is not None and spec.min is not None
        path = Path("/proc/sys") / key.replace(".", "/")
        assert path.stat().st_mode & 0o200
        value = int(path.read_text().split()[0])
        assert value == 0 or value >= spec.min
