"""Each SC rule fires on the right file:line:column with the right fix, and stays quiet on
valid lines (hostnet.sysctl.lint with a NoKernel view, and with a RootKernelView over
tests/fixtures/roots/lint-kernel for the rules that need a kernel)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from hostnet.findings import Finding, Severity
from hostnet.host.kernel_view import RootKernelView
from hostnet.host.root import Root
from hostnet.knowledge.catalogue import load
from hostnet.sysctl import rules as R
from hostnet.sysctl.fix import apply_edits
from hostnet.sysctl.lint import LintResult, NoKernel, lint_files
from hostnet.sysctl.parser import parse_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SYSCTL = FIXTURES / "sysctl"
KROOT = FIXTURES / "roots" / "lint-kernel"
PATH = "/etc/sysctl.d/t.conf"


def lint(text: str, kernel: object = None, path: str = PATH) -> LintResult:
    return lint_files([parse_text(text, path)], load(), kernel or NoKernel())  # type: ignore[arg-type]


def lint_fixture(name: str, kernel: object = None) -> LintResult:
    return lint((SYSCTL / name).read_text(), kernel, f"/etc/sysctl.d/{name}")


def table(findings: list[Finding]) -> list[tuple[int | None, int | None, str]]:
    return [(f.line, f.column, f.code) for f in findings]


def kview(root: Path = KROOT) -> RootKernelView:
    return RootKernelView(Root(root))


# -- one file with every class the lint finds without a kernel ------------------------------

EVERY_CLASS = [
    # line, column, code, suggestion
    (2, 1, "SC101", "net.ipv4.ip_forward = 1"),
    (3, 1, "SC102", "remove the line or give net.ipv4.tcp_fin_timeout a value"),
    (4, 1, "SC105", "remove the line"),
    (5, 31, "SC106", None),
    (6, 27, "SC107", None),
    (7, 22, "SC108", "net.core.somaxconn = 4096"),
    (8, 32, "SC109", "net.ipv4.tcp_keepalive_intvl = 30"),
    (9, 1, "SC110", "remove this line"),
    (11, 25, "SC112", "net.core.wmem_max = 16777216"),
    (13, 27, "SC113", "net.ipv4.tcp_syncookies = 1"),
    (14, 1, "SC116", "# a semicolon comment"),
    (15, 30, "SC117", "put 'net.ipv4.conf.all.forwarding = 1' on its own line"),
    (17, 34, "SC119", "net.ipv6.conf.all.disable_ipv6 = 1"),
    (18, 1, "SC121", "net.ipv4.conf.eth0/10.rp_filter = 1"),
    (19, 32, "SC123", "net.ipv4.ip_local_port_range = 10000 60001"),
    (24, 46, "SC113", "net.ipv4.icmp_ignore_bogus_error_responses = 1"),
]


def test_every_class_without_kernel() -> None:
    result = lint_fixture("every-class.conf")
    got = [(f.line, f.column, f.code, f.suggestion) for f in result.findings]
    assert got == EVERY_CLASS
    for f in result.findings:
        rule = getattr(R, next(n for n, v in vars(R).items() if getattr(v, "code", None) == f.code))
        assert f.name == rule.name and f.path == "/etc/sysctl.d/every-class.conf"
        assert f.docs == f"hostnet explain {f.code}"


def test_every_class_keys_and_severities() -> None:
    by_line = {f.line: f for f in lint_fixture("every-class.conf").findings}
    assert by_line[2].key is None and by_line[3].key == "net.ipv4.tcp_fin_timeout"
    assert by_line[17].key == "net.ipv6.conf.all.disable_ipv6"
    assert by_line[18].key == "net.ipv4.conf.eth0.10.rp_filter"
    assert {f.code: str(f.severity) for f in by_line.values()} | {} == {
        "SC101": "error", "SC102": "error", "SC105": "warning", "SC106": "error",
        "SC107": "error", "SC108": "error", "SC109": "warning", "SC110": "warning",
        "SC112": "warning", "SC113": "warning", "SC116": "warning", "SC117": "warning",
        "SC119": "warning", "SC121": "error", "SC123": "info",
    }  # fmt: skip


def test_suppression_on_the_line_above_silences_only_that_code() -> None:
    result = lint_fixture("every-class.conf")
    assert 23 not in {f.line for f in result.findings}  # '# hostnet: ignore[SC113]' above
    assert (24, "SC113") in {(f.line, f.code) for f in result.findings}


def test_suppression_on_the_line_itself() -> None:
    assert lint("net.ipv4.tcp_tw_recycle = 1  # hostnet: ignore[SC105]\n").findings == []
    # a wrong code does not silence anything
    assert [f.code for f in lint("net.ipv4.tcp_tw_recycle = 1 # hostnet: ignore[SC104]\n").findings] == [
        "SC105"
    ]
    # on a numeric key the inline comment is still text after the value (SC109)
    codes = [f.code for f in lint("net.ipv4.tcp_syncookies = 0  # hostnet: ignore[SC113]\n").findings]
    assert codes == ["SC109"]


def test_suppressed_comment_findings() -> None:
    text = "# hostnet: ignore[SC116]\n; old comment\n; another\n"
    assert [(f.line, f.code) for f in lint(text).findings] == [(3, "SC116")]


# -- realistic files --------------------------------------------------------------------------


def test_blog_hardening_post() -> None:
    result = lint_fixture("blog-hardening.conf")
    assert [(f.line, f.code) for f in result.findings] == [
        (38, "SC105"),  # tcp_tw_recycle, removed in 4.12
        (40, "SC109"),  # '15 # default is 60'
        (43, "SC108"),  # "0" in quotes
        (47, "SC105"),  # ip_conntrack_max -> nf_conntrack_max
        (50, "SC119"),  # "Disable IPv6" with disable_ipv6 = 0
        (51, "SC119"),  # the same heading covers default.disable_ipv6 = 0
        (60, "SC123"),  # 2000 65000, both even
        (63, "SC105"),  # tcp_low_latency has no effect
        (66, "SC110"),  # tcp_syncookies = 1 again at the very end: info on the later line
    ]
    by_line = {f.line: f for f in result.findings}
    assert by_line[47].suggestion == "net.netfilter.nf_conntrack_max = 65536"
    assert "4.12" in by_line[38].message


def test_nat_router() -> None:
    result = lint_fixture("nat-router.conf")
    got = [(f.line, f.column, f.code, f.suggestion) for f in result.findings]
    assert got == [
        (8, 1, "SC121", "net.ipv4.conf.eth1/100.rp_filter = 1"),
        (9, 1, "SC121", "net.ipv4.conf.eth1/100.proxy_arp = 0"),
        (14, 42, "SC108", "net.netfilter.nf_conntrack_udp_timeout = 60"),
        (17, 34, "SC119", "net.ipv6.conf.all.disable_ipv6 = 0"),
        (20, 32, "SC119", "net.ipv6.conf.eth0.accept_ra = 2"),
        (23, 32, "SC107", "net.ipv4.ip_local_port_range = 1024 61001"),
        (27, 25, "SC112", "net.core.rmem_max = 8388608"),
        (28, 21, "SC112", "net.ipv4.tcp_rmem = 4096 87380 16777216"),
        (30, 1, "SC116", "# old-style comment from the previous admin"),
        (31, 1, "SC110", "remove this line"),
    ]
    ra = result.findings[4]
    assert f"{PATH.rsplit('/', 1)[0]}/nat-router.conf:18" in ra.message  # names the forwarding line


def test_nat_router_with_kernel_adds_module_and_interface_findings() -> None:
    result = lint_fixture("nat-router.conf", kview())
    extra = {(f.line, f.code) for f in result.findings} - {
        (f.line, f.code) for f in lint_fixture("nat-router.conf").findings
    }
    assert extra == {(12, "SC122"), (13, "SC122"), (14, "SC122")}
    sc122 = next(f for f in result.findings if f.code == "SC122")
    assert sc122.suggestion == "echo nf_conntrack > /etc/modules-load.d/nf_conntrack.conf"


# -- no false alarms ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["debian-sysctl.conf", "90-router.conf", "99-hardening.conf"])
def test_clean_files_have_no_findings(name: str) -> None:
    result = lint_fixture(f"clean/{name}")
    assert result.findings == [], table(result.findings)


def test_systemd_default_file_has_no_findings() -> None:
    result = lint_fixture("clean/50-default.conf")
    assert result.findings == [], table(result.findings)


def test_debian_default_file_with_kernel_view() -> None:
    assert lint_fixture("clean/debian-sysctl.conf", kview()).findings == []


VALID_LINES = [
    "-net.core.default_qdisc = fq_codel",
    "net.ipv4.conf.eth0/100.rp_filter = 1",
    "net/ipv4/conf/eth0.100/rp_filter = 1",
    "kernel.core_pattern = |/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h",
    "net.ipv4.ip_local_port_range = 32768 60999",
    "net.ipv4.ip_local_reserved_ports = 8080,9000-9100",
    "# net.ipv4.ip_forward = 1",
    "#net.ipv4.ip_forward=1",
    "# See net.ipv4.ip_forward = 1 in the docs",
    "net.ipv4.tcp_syncookies = 2",
    "net.ipv4.conf.*.rp_filter = 2",
    "net.ipv4.conf.eth[0-9].rp_filter = 2",
    "fs.protected_regular = 2",
    "net.ipv4.tcp_rmem = 4096 131072 6291456",
    "net.ipv4.tcp_congestion_control = bbr",
    "vm.swappiness = 10",
    "net.ipv6.conf.all.disable_ipv6 = 1",
    "net.ipv4.ping_group_range = 0 2147483647",
    "net.ipv4.tcp_keepalive_time = 0x258",
    "net.netfilter.nf_conntrack_max = 262144",
    "net.ipv4.ip_forward=1",
    "\tnet.ipv4.ip_forward\t=\t1\t",
]


@pytest.mark.parametrize("line", VALID_LINES)
def test_valid_line_has_no_findings(line: str) -> None:
    assert lint(line + "\n").findings == []


@pytest.mark.parametrize(
    "line",
    ["net.ipv4.ip_forward = 1", "net.ipv4.conf.eth0.rp_filter = 1", "net.core.somaxconn = 4096",
     "net.ipv4.ip_local_port_range = 32768 60999", "kernel.randomize_va_space = 2"],
)  # fmt: skip
def test_valid_line_has_no_findings_on_fixture_kernel(line: str) -> None:
    assert lint(line + "\n", kview()).findings == []


# -- single rules, details ------------------------------------------------------------------------


def test_sc101_fix_only_for_a_known_key() -> None:
    (f,) = lint("net.ipv4.ip_forward 1\n").findings
    assert f.suggestion == "net.ipv4.ip_forward = 1"
    (g,) = lint("this is not a setting\n").findings
    assert g.code == "SC101" and g.suggestion == "write it as key = value, or comment it out"
    assert lint("this is not a setting\n").edits == []


def test_sc105_legacy_name_with_dash_keeps_the_dash() -> None:
    (f,) = lint("-net.ipv4.netfilter.ip_conntrack_tcp_timeout_established = 7200\n").findings
    assert f.code == "SC105"
    assert f.suggestion == "-net.netfilter.nf_conntrack_tcp_timeout_established = 7200"


def test_sc107_reversed_port_range_fix() -> None:
    (f,) = lint("net.ipv4.ip_local_port_range = 60999 32768\n").findings
    assert (f.code, f.suggestion) == ("SC107", "net.ipv4.ip_local_port_range = 32768 60999")


def test_sc107_not_an_error_where_the_kernel_accepts_the_value() -> None:
    for line in ("net.ipv4.tcp_syncookies = 5", "net.ipv4.conf.all.rp_filter = 3"):
        (f,) = lint(line + "\n").findings
        assert f.code == "SC107" and f.severity < Severity.ERROR, f


def test_sc109_on_a_string_key_is_a_warning() -> None:
    (f,) = lint("net.core.default_qdisc = fq # fair queue\n", kview()).findings
    assert (f.code, f.severity, f.suggestion) == ("SC109", Severity.WARNING, "net.core.default_qdisc = fq")


def test_sc106_too_many_fields() -> None:
    (f,) = lint("net.ipv4.tcp_rmem = 4096 87380 6291456 8\n").findings
    assert (f.code, f.severity, f.suggestion) == (
        "SC106", Severity.WARNING, "net.ipv4.tcp_rmem = 4096 87380 6291456")


def test_sc110_points_at_the_earlier_line() -> None:
    (f,) = lint("net.ipv4.ip_forward = 0\n# later\nnet.ipv4.ip_forward = 1\n").findings
    assert (f.line, f.code) == (1, "SC110") and "line 3" in f.message


def test_sc111_across_files_names_the_winner() -> None:
    files = [
        parse_text("kernel.sysrq = 16\n", "/usr/lib/sysctl.d/50-default.conf"),
        parse_text("net.ipv4.tcp_fin_timeout = 30\n", "/etc/sysctl.d/10-a.conf"),
        parse_text("kernel.sysrq = 0\nnet.ipv4.tcp_fin_timeout = 15\n", "/etc/sysctl.d/90-b.conf"),
        parse_text("net.ipv4.tcp_fin_timeout = 15\n", "/etc/sysctl.d/95-same.conf"),
    ]
    result = lint_files(files, load(), NoKernel())
    got = [(f.path, f.line, f.code, str(f.severity), f.evidence["winner"]) for f in result.findings]
    assert got == [
        ("/etc/sysctl.d/10-a.conf", 1, "SC111", "warning", "/etc/sysctl.d/90-b.conf:2"),
        ("/usr/lib/sysctl.d/50-default.conf", 1, "SC111", "info", "/etc/sysctl.d/90-b.conf:1"),
    ]  # the same value again (95-same) is not an override
    assert result.effective["net.ipv4.tcp_fin_timeout"].path == "/etc/sysctl.d/95-same.conf"


def test_sc111_suppressed_in_the_losing_file() -> None:
    files = [
        parse_text("# hostnet: ignore[SC111]\nkernel.sysrq = 16\n", "/etc/sysctl.d/10-a.conf"),
        parse_text("kernel.sysrq = 0\n", "/etc/sysctl.d/90-b.conf"),
    ]
    assert lint_files(files, load(), NoKernel()).findings == []


def test_sc112_uses_the_running_max_when_the_file_sets_only_the_default() -> None:
    (f,) = lint("net.core.rmem_default = 1048576\n", kview()).findings
    assert f.code == "SC112" and "running value" in f.message and f.suggestion == "net.core.rmem_max = 1048576"


def test_sc112_pair_has_a_column() -> None:
    (f,) = lint("net.core.wmem_max = 8388608\nnet.core.wmem_default = 16777216\n").findings
    assert f.column is not None


def test_sc113_only_when_weaker_than_the_default() -> None:
    assert lint("net.ipv4.tcp_syncookies = 1\nkernel.kptr_restrict = 2\n").findings == []
    (f,) = lint("kernel.randomize_va_space = 0\n").findings
    assert (f.code, f.column, f.suggestion) == ("SC113", 29, "kernel.randomize_va_space = 2")


def test_sc117_glued_key_and_prose_mentions() -> None:
    (f,) = lint("# enable routingnet.ipv4.ip_forward = 1\n").findings
    assert (f.code, f.column, f.key) == ("SC117", 17, "net.ipv4.ip_forward")
    assert lint("# set net.ipv4.ip_forward = 1 to route\n").findings == []


def test_sc119_intent_from_the_file_name() -> None:
    result = lint("net.ipv6.conf.all.disable_ipv6 = 0\n", path="/etc/sysctl.d/99-disable-ipv6.conf")
    assert [(f.line, f.code) for f in result.findings] == [(1, "SC119")]
    assert lint("net.ipv6.conf.all.disable_ipv6 = 1\n", path="/etc/sysctl.d/99-disable-ipv6.conf").findings == []


def test_sc123_odd_odd_range() -> None:
    (f,) = lint("net.ipv4.ip_local_port_range = 1025 65535\n").findings
    # the top end cannot move up, so the bottom moves down: the range never shrinks
    assert (f.code, f.suggestion) == ("SC123", "net.ipv4.ip_local_port_range = 1024 65535")


# -- rules that need a kernel (fixture root lint-kernel) -------------------------------------------

KERNEL_DEPENDENT = [
    (2, 1, "SC103", "net.ipv4.tcp_syncookies = 1"),
    (3, 1, "SC104", "remove the line"),
    (4, 1, "SC114", None),
    (6, 1, "SC118", "net.ipv4.conf.all.rp_filter = 1"),
    (7, 1, "SC120", None),
    (8, 1, "SC122", "echo nf_conntrack > /etc/modules-load.d/nf_conntrack.conf"),
]


def test_kernel_dependent_rules() -> None:
    result = lint_fixture("kernel-dependent.conf", kview())
    assert [(f.line, f.column, f.code, f.suggestion) for f in result.findings] == KERNEL_DEPENDENT
    by_code = {f.code: f for f in result.findings}
    assert "did you mean net.ipv4.tcp_syncookies" in by_code["SC103"].message
    assert "br_netfilter" in by_code["SC114"].message
    assert by_code["SC120"].evidence == {"interfaces": ["eth0", "lo"]}


def test_kernel_dependent_rules_are_quiet_without_a_kernel() -> None:
    # only what the catalogue alone knows remains: a near-miss of a catalogue key (a guess,
    # so a warning) and tcp_available_congestion_control, which is read-only
    found = lint_fixture("kernel-dependent.conf").findings
    assert table(found) == [(2, 1, "SC103"), (3, 1, "SC104")]
    assert str(found[0].severity) == "warning"
    assert found[0].suggestion == "net.ipv4.tcp_syncookies = 1"


def test_sc103_unknown_key_without_a_guess_and_glued_junk() -> None:
    (f,) = lint("kernel.foo_bar_baz = 1\n", kview()).findings
    assert f.code == "SC103" and "sysctl -a" in (f.suggestion or "")
    (g,) = lint("xnet.ipv4.tcp_syncookies = 1\n", kview()).findings
    assert (g.code, g.suggestion) == ("SC103", "net.ipv4.tcp_syncookies = 1")


@pytest.fixture
def kernel_copy(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(KROOT, root, symlinks=True)
    return root


def test_sc104_from_the_file_mode(kernel_copy: Path) -> None:
    text = "kernel.osrelease = 7.0\n"
    assert lint(text, kview(kernel_copy)).findings == []  # 0644 in the fixture
    os.chmod(kernel_copy / "proc/sys/kernel/osrelease", 0o444)
    (f,) = lint(text, kview(kernel_copy)).findings
    assert (f.line, f.column, f.code) == (1, 1, "SC104")


def test_sc122_silent_when_the_module_loads_at_boot(kernel_copy: Path) -> None:
    text = "net.netfilter.nf_conntrack_max = 1048576\n"
    assert [f.code for f in lint(text, kview(kernel_copy)).findings] == ["SC122"]
    (kernel_copy / "etc/modules-load.d/conntrack.conf").write_text("# for sysctl\nnf_conntrack\n")
    assert lint(text, kview(kernel_copy)).findings == []


def test_sc120_not_for_all_default_or_existing_interfaces() -> None:
    text = "net.ipv4.conf.all.rp_filter = 1\nnet.ipv4.conf.default.rp_filter = 1\nnet.ipv4.conf.lo.rp_filter = 0\n"
    assert lint(text, kview()).findings == []


# -- fix ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["every-class.conf", "blog-hardening.conf", "nat-router.conf"])
def test_fix_removes_fixable_findings_and_keeps_comments(name: str) -> None:
    text = (SYSCTL / name).read_text()
    before = lint(text)
    fixed = apply_edits(text, before.edits)
    after = lint(fixed)
    edited = {e.line for e in before.edits}
    assert edited, "expected edits"
    # every comment line that no finding is about survives, in order
    comments = [
        line
        for n, line in enumerate(text.splitlines(), start=1)
        if line.lstrip().startswith("#") and n not in edited
    ]
    kept = [line for line in fixed.splitlines() if line in comments]
    assert kept == comments
    # codes with a certain fix do not come back
    for code in ("SC101", "SC105", "SC108", "SC109", "SC116", "SC117", "SC121"):
        assert code not in {f.code for f in after.findings}, (code, table(after.findings))


def test_fix_of_a_legacy_read_only_key_is_final() -> None:
    text = "net.ipv4.netfilter.ip_conntrack_count = 0\n"
    once = apply_edits(text, lint(text).edits)
    assert lint(once).findings == []


def test_findings_stay_within_the_severities_each_rule_declares() -> None:
    """What `hostnet rules` shows (the rule's severity plus sysctl.rules.EMITS) covers every
    severity lint emits on the fixtures and the corpus."""
    allowed = {code: {r.severity, *R.EMITS.get(code, ())} for code, r in _sc_rules().items()}
    texts = [p for p in (FIXTURES / "corpus").glob("*.conf")] + list(SYSCTL.rglob("*.conf"))
    for kernel in (NoKernel(), kview()):
        for p in texts:
            text = p.read_text(encoding="utf-8", errors="surrogateescape")
            for f in lint(text, kernel).findings:
                assert f.severity in allowed[f.code], (p.name, f.code, f.severity)


def _sc_rules() -> dict[str, object]:
    from hostnet.rules import all_rules

    return {c: r for c, r in all_rules().items() if c.startswith("SC")}
