"""The planner, the checks before anything runs, and the owned files (pure, no host)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostnet.config.load import parse
from hostnet.errors import PlanError
from hostnet.host.root import Root
from hostnet.knowledge.catalogue import load as catalogue
from hostnet.model.facts import Facts, KeyFact, LaterSetting
from hostnet.observe.plan_facts import later_settings
from hostnet.state.desired import ipv6_wants, wants
from hostnet.state.files import HEADER, MODPROBE_FILE, SYSCTL_FILE, parse_sysctl_values
from hostnet.state.plan import Plan, make_plan
from hostnet.state.steps import SetSysctl, WriteOwnedFile
from hostnet.state.validate import check

BASE = {
    "net.core.somaxconn": "4096", "net.ipv4.tcp_fin_timeout": "60",
    "net.ipv4.ip_local_port_range": "32768\t60999", "net.ipv4.ip_unprivileged_port_start": "1024",
    "net.ipv4.ip_local_reserved_ports": "", "net.ipv4.ip_forward": "0",
    "net.ipv4.conf.all.forwarding": "0", "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv4.conf.eth0.forwarding": "0", "net.ipv4.conf.default.forwarding": "0",
    "net.ipv4.conf.lo.forwarding": "0", "net.netfilter.nf_conntrack_max": "262144",
    "net.netfilter.nf_conntrack_buckets": "262144", "net.netfilter.nf_conntrack_count": "10",
    "net.netfilter.nf_conntrack_udp_timeout": "30", "net.ipv4.tcp_syncookies": "1",
    "net.ipv6.conf.all.disable_ipv6": "0", "net.ipv6.conf.default.disable_ipv6": "0",
    "net.ipv6.conf.eth0.disable_ipv6": "0", "net.ipv6.conf.lo.disable_ipv6": "0",
    "net.netfilter.nf_conntrack_count_ro": "1",
}
READ_ONLY = {"net.netfilter.nf_conntrack_count"}


def facts(values: dict[str, str] | None = None, drop: tuple[str, ...] = (),
          **kw: object) -> Facts:
    vals = {k: v for k, v in {**BASE, **(values or {})}.items() if k not in drop}
    base: dict[str, object] = dict(
        values={k: KeyFact(k, v, "ok", k not in READ_ONLY) for k, v in vals.items()},
        interfaces=("eth0", "lo"), mem_bytes=24 << 30, cpus=2, kernel=(6, 18, 0),
        conntrack_module="builtin", owned_files={SYSCTL_FILE: None, MODPROBE_FILE: None},
        files=False, source="/etc/hostnet/hostnet.toml")
    base.update(kw)
    return Facts(**base)  # type: ignore[arg-type]


def plan_of(text: str, f: Facts) -> Plan:
    loaded = parse(text, "/etc/hostnet/hostnet.toml")
    ws = wants(loaded, netns=f.netns) + ipv6_wants(loaded, f.interfaces)
    result = check(ws, f, catalogue())
    assert not result.errors, result.errors
    return make_plan([w for w in ws if w.key not in result.skipped], f)


def errors_of(text: str, f: Facts) -> list[str]:
    loaded = parse(text, "/etc/hostnet/hostnet.toml")
    ws = wants(loaded, netns=f.netns) + ipv6_wants(loaded, f.interfaces)
    return list(check(ws, f, catalogue()).errors)


def sysctl_changes(p: Plan) -> dict[str, tuple[str | None, str]]:
    return {s.key: (s.old, s.new) for s in p.steps if isinstance(s, SetSysctl)}


def test_bounds_exact_values_and_reasons_with_lines() -> None:
    text = ('[sysctl]\n"net.core.somaxconn" = { at_least = 8192 }\n'
            '"net.ipv4.tcp_fin_timeout" = { at_most = 30 }\n'
            '"net.ipv4.ip_local_port_range" = "20000 60999"\n"net.ipv4.tcp_syncookies" = 1\n')
    p = plan_of(text, facts())
    assert sysctl_changes(p) == {"net.core.somaxconn": ("4096", "8192"),
                                 "net.ipv4.tcp_fin_timeout": ("60", "30"),
                                 "net.ipv4.ip_local_port_range": ("32768\t60999", "20000 60999")}
    reasons = {s.change()["key"]: s.change()["reason"] for s in p.steps}
    assert reasons["net.core.somaxconn"].startswith("/etc/hostnet/hostnet.toml:2: only ever raise")
    assert reasons["net.ipv4.ip_local_port_range"] == "/etc/hostnet/hostnet.toml:4"
    # bounds never move a value the other way
    higher = plan_of(text, facts({"net.core.somaxconn": "65535", "net.ipv4.tcp_fin_timeout": "10"}))
    assert "net.core.somaxconn" not in sysctl_changes(higher)
    assert "net.ipv4.tcp_fin_timeout" not in sysctl_changes(higher)


def test_plan_json_shape_and_empty_plan() -> None:
    p = plan_of('[sysctl]\n"net.core.somaxconn" = 8192\n', facts())
    assert p.to_json()["version"] == 1
    assert p.to_json()["changes"] == [{
        "kind": "sysctl", "netns": None, "key": "net.core.somaxconn", "old": "4096",
        "new": "8192", "reason": "/etc/hostnet/hostnet.toml:2", "effect": "live"}]
    same = plan_of('[sysctl]\n"net.core.somaxconn" = 4096\n', facts())
    assert same.empty and same.to_json()["changes"] == []


def test_role_values_join_the_plan_with_their_rule() -> None:
    p = plan_of('role = "server"\n', facts({"net.ipv4.tcp_syncookies": "0"}))
    change = next(s for s in p.steps if isinstance(s, SetSysctl)
                  and s.key == "net.ipv4.tcp_syncookies")
    assert change.new == "1" and "role server (HD101" in change.reason
    # the config's own value replaces the role's
    own = plan_of('role = "server"\n[sysctl]\n"net.ipv4.tcp_syncookies" = 2\n',
                  facts({"net.ipv4.tcp_syncookies": "0"}))
    assert sysctl_changes(own)["net.ipv4.tcp_syncookies"] == ("0", "2")


def test_ip_forward_goes_first_and_its_kernel_rewrites_are_predicted() -> None:
    text = ('[sysctl]\n"net.ipv4.conf.all.accept_redirects" = 0\n"net.core.somaxconn" = 8192\n'
            '"net.ipv4.ip_forward" = 0\n')
    # ip_forward 1 -> 0 makes the kernel set all.accept_redirects to 1: written again after it
    f = facts({"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.forwarding": "1"})
    p = plan_of(text, f)
    keys = [s.key for s in p.steps if isinstance(s, SetSysctl)]
    assert keys[0] == "net.ipv4.ip_forward"
    assert "net.ipv4.conf.all.accept_redirects" in keys
    first = p.steps[0]
    assert isinstance(first, SetSysctl) and first.side_prefixes == ("net.ipv4.conf",)
    # without the ip_forward change nothing needs rewriting
    assert "net.ipv4.conf.all.accept_redirects" not in sysctl_changes(plan_of(text, facts()))


def test_ipv6_disabled_writes_all_first_and_says_what_breaks() -> None:
    f = facts(v6_any=("tcp/22",), hosts_v6_loopback=True, slaac=("eth0",))
    p = plan_of("[ipv6]\nenabled = false\n", f)
    assert [s.key for s in p.steps if isinstance(s, SetSysctl)] == [
        "net.ipv6.conf.all.disable_ipv6"]  # all writes default and every interface
    text = " ".join(p.warnings)
    assert "tcp/22" in text and "::1" in text and "SLAAC" in text and "eth0" in text
    assert any("ipv6.disable=1" in n and "blacklist" in n for n in p.notes)
    listed = plan_of('[ipv6]\nenabled = ["eth0"]\n', f)
    assert sysctl_changes(listed) == {"net.ipv6.conf.eth0.disable_ipv6": ("0", "1")}


def test_conntrack_auto_uses_the_sizing_and_buckets_wait_in_a_namespace() -> None:
    text = '[conntrack]\nmax = "auto"\nbuckets = "auto"\n'
    small = facts({"net.netfilter.nf_conntrack_max": "1024",
                   "net.netfilter.nf_conntrack_buckets": "1024",
                   "net.netfilter.nf_conntrack_count": "0"})  # no load: the kernel default
    p = plan_of(text, small)
    changes = sysctl_changes(p)
    assert changes["net.netfilter.nf_conntrack_max"][1] == "262144"
    assert int(changes["net.netfilter.nf_conntrack_buckets"][1]) <= 2**31 // 8
    child = plan_of(text, facts({"net.netfilter.nf_conntrack_max": "1024"}, netns="ns1"))
    assert child.empty
    assert any("host-wide" in w and "read-only copy" in w for w in child.warnings)


def test_files_header_comments_and_modprobe() -> None:
    text = '[sysctl]\n"net.core.somaxconn" = 8192\n[conntrack]\nbuckets = 131072\n'
    p = plan_of(text, facts(files=True))
    files = {s.path: s for s in p.steps if isinstance(s, WriteOwnedFile)}
    body = files[SYSCTL_FILE].content
    assert body.startswith(HEADER)
    assert "# /etc/hostnet/hostnet.toml:2\nnet.core.somaxconn = 8192\n" in body
    assert "nf_conntrack_buckets" not in body  # buckets go to modprobe.d
    assert "options nf_conntrack hashsize=131072" in files[MODPROBE_FILE].content
    assert files[SYSCTL_FILE].change()["effect"] == "boot"
    assert files[MODPROBE_FILE].change()["effect"] == "module-load"
    assert any("built into this kernel" in w and "nf_conntrack.hashsize=131072" in w
               for w in p.warnings)
    modular = plan_of(text, facts(files=True, conntrack_module="module"))
    assert any("next time the nf_conntrack module loads" in w for w in modular.warnings)
    # a second run against the written files changes nothing
    again = plan_of(text, facts({"net.core.somaxconn": "8192",
                                 "net.netfilter.nf_conntrack_buckets": "131072"}, files=True,
                                owned_files={k: s.content.encode() for k, s in files.items()}))
    assert again.empty


def test_refuses_a_file_without_the_header() -> None:
    f = facts(files=True, owned_files={SYSCTL_FILE: b"net.core.somaxconn = 1\n",
                                       MODPROBE_FILE: None})
    with pytest.raises(PlanError, match="not written by hostnet"):
        plan_of('[sysctl]\n"net.core.somaxconn" = 8192\n', f)


def test_later_file_override_is_warned(tmp_path: Path) -> None:
    d = tmp_path / "etc/sysctl.d"
    d.mkdir(parents=True)
    (d / "99-local.conf").write_text("net.core.somaxconn = 1024\n")
    (d / "10-early.conf").write_text("net.core.somaxconn = 2048\n")
    later = later_settings(Root(tmp_path))
    assert later == (LaterSetting("/etc/sysctl.d/99-local.conf", 1, "net.core.somaxconn",
                                  "1024"),)
    p = plan_of('[sysctl]\n"net.core.somaxconn" = 8192\n', facts(files=True, later=later))
    assert any("99-local.conf:1" in w and "wins" in w for w in p.warnings)


@pytest.mark.parametrize(("text", "f", "expected"), [
    ('[sysctl]\n"net.core.somaxconm" = 5\n', facts(),
     "hostnet.toml:2: sysctl.\"net.core.somaxconm\": net.core.somaxconm is not a sysctl key on "
     "this kernel (did you mean net.core.somaxconn?)"),
    ('[sysctl]\n"net.netfilter.nf_conntrack_count" = 5\n', facts(), "is read-only"),
    ('[ipv6]\nenabled = ["eth7"]\n', facts(),
     "hostnet.toml:2: ipv6.enabled: interface eth7 does not exist here (interfaces: eth0, lo)"),
    ('[sysctl]\n"net.core.rmem_max" = 5\n', facts(netns="ns1"),
     "is host-wide: only the initial namespace can set it, not --netns ns1"),
    ('[sysctl]\n"net.ipv4.tcp_syncookies" = 7\n', facts(), "7 is not one of"),
    ('[sysctl]\n"net.core.somaxconn" = "lots"\n', facts(), "is not an integer"),
    ('[sysctl]\n"net.ipv4.ip_local_port_range" = { at_least = 3 }\n', facts(),
     "need a single number"),
    ('[sysctl]\n"net.ipv4.ip_local_port_range" = "20000 60999"\n',
     facts(listening=(("tcp", 22), ("tcp", 30000))), "takes in ports services listen on "
     "(tcp/30000)"),
    ('[sysctl]\n"net.ipv4.ip_local_port_range" = "500 60999"\n', facts(),
     "below ip_unprivileged_port_start (1024)"),
    ('[conntrack.timeouts]\nudp = 30\n',
     facts(drop=("net.netfilter.nf_conntrack_udp_timeout",), conntrack_module="not-loaded"),
     "exists only while the nf_conntrack module is loaded"),
])
def test_checks_before_anything_runs(text: str, f: Facts, expected: str) -> None:
    found = errors_of(text, f)
    assert any(expected in e for e in found), found


def test_reserved_ports_make_listening_ports_fine() -> None:
    text = ('[sysctl]\n"net.ipv4.ip_local_port_range" = "20000 60999"\n'
            '"net.ipv4.ip_local_reserved_ports" = "30000-30010"\n')
    assert errors_of(text, facts(listening=(("tcp", 30000),))) == []


def test_owned_file_parse_roundtrip() -> None:
    p = plan_of('[sysctl]\n"net.core.somaxconn" = 8192\n', facts(files=True))
    step = next(s for s in p.steps if isinstance(s, WriteOwnedFile))
    assert parse_sysctl_values(step.content) == {"net.core.somaxconn": "8192"}


def test_listening_sockets_from_proc_net() -> None:
    from hostnet.observe.plan_facts import listening_sockets

    tcp = ("  sl  local_address rem_address   st\n"
           "   0: 00000000:0016 00000000:0000 0A 0\n"
           "   1: 0100007F:1F90 00000000:0000 0A 0\n"
           "   2: 0100007F:A000 0200007F:0016 01 0\n")
    assert listening_sockets(tcp, "tcp") == [(22, "00000000"), (8080, "0100007F")]
    udp = ("  sl  local_address rem_address   st\n"
           "   0: 00000000:0035 00000000:0000 07 0\n"
           "   1: 00000000:1000 0200007F:0035 07 0\n")
    assert listening_sockets(udp, "udp") == [(53, "00000000")]


GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "plan"  # not beside findings reports


def test_plan_text_and_json_golden() -> None:
    """The rendered plan of a fixed host (regenerate: HOSTNET_REGOLD=1)."""
    import json
    import os

    from hostnet.cli.plan import render_text

    text = ('role = "server"\n[sysctl]\n"net.ipv4.ip_forward" = 1\n'
            '"net.core.somaxconn" = { at_least = 8192 }\n[conntrack]\nbuckets = 131072\n'
            '[conntrack.timeouts]\nudp = "1m"\n[ipv6]\nenabled = false\n')
    f = facts({"net.ipv4.tcp_synack_retries": "5", "net.ipv4.tcp_keepalive_time": "7200"},
              files=True, conntrack_module="module", v6_any=("tcp/22",))
    p = plan_of(text, f)
    got = {"plan.txt": render_text(p, "this host (live values and /etc files)"),
           "plan.json": json.dumps(p.to_json(), indent=2) + "\n"}
    for name, body in got.items():
        path = GOLDEN / f"server-router.{name.split('.')[1]}"
        if os.environ.get("HOSTNET_REGOLD"):
            path.write_text(body)
        assert body == path.read_text(), f"{path} differs (HOSTNET_REGOLD=1 rewrites it)"


def test_apply_needs_yes_without_a_terminal(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hostnet.cli.main import cli

    result = CliRunner().invoke(cli, ["apply", "--config", str(tmp_path / "x.toml"),
                                      "--state-dir", str(tmp_path)])
    assert result.exit_code != 0 and "stdin is not a terminal" in str(result.exception)
    assert not list(tmp_path.iterdir())
