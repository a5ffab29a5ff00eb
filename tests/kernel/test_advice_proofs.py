"""Every fix hostnet proposes, proven on its role's lab (tests/advice_proofs.toml lists them).

Doctor rules: build (or reuse) the role's lab (tests/helpers/labs.py), make the problem real
with a sysctl write inside the lab's host namespace, run ``hostnet doctor --netns NAME --role
ROLE --format json`` through the installed command, find the finding, apply EXACTLY its
suggestion (tests/helpers/fixes.py: sysctl lines, nft snippets for table inet hostnet;
anything else fails the proof), run the doctor again, and require the finding gone and the
role's traffic still flowing (lab.check(): real TCP/UDP between the namespaces).

Where the kernel behaviour can be shown with a few packets, the proof also shows the problem
doing harm before the fix and not after: a SYN flood locks a client out without SYN cookies
and not with them (HD101), a redirect from the gateway moves the server's route (HD103), a
source-routed datagram is answered (HD106), a broadcast ping is answered (HD109), the LAN is
cut off while the router does not forward (NT104).

Lint rules (SC): lint a small file with ``hostnet lint --netns NAME -``, apply the finding's
suggestion to the file (fixes.apply_to_file), lint again (finding gone), then apply the
corrected file inside the lab (the kernel takes every line) and check the traffic; where the
kernel refuses the original line, that is shown first.

Labs are shared per module; after each proof every value written is put back (lab.restore()).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import fixes, proofs
from tests.helpers.labs import (
    DualHomedLab,
    Lab,
    NatRouterLab,
    ServerLab,
    VmHostLab,
    dual_homed_lab,
    nat_router_lab,
    request,
    server_lab,
    start_service,
    sysctl_path,
    vm_host_lab,
)
from tests.helpers.probes import (
    broadcast_ping,
    route_gateway,
    send_redirect,
    source_routed,
    syn_flood,
)

pytestmark = pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft")

HOSTNET = proofs.HOSTNET


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("doctor-state")


@pytest.fixture(scope="module")
def _server() -> Iterator[ServerLab]:
    with server_lab() as lab:
        yield lab


@pytest.fixture(scope="module")
def _dual() -> Iterator[DualHomedLab]:
    with dual_homed_lab() as lab:
        yield lab


@pytest.fixture(scope="module")
def _router() -> Iterator[NatRouterLab]:
    with nat_router_lab() as lab:
        yield lab


@pytest.fixture(scope="module")
def _vmhost() -> Iterator[VmHostLab]:
    with vm_host_lab() as lab:
        yield lab


def _fresh(lab: Lab) -> Iterator[Lab]:
    try:
        yield lab
    finally:
        lab.restore()


@pytest.fixture
def server(_server: ServerLab) -> Iterator[Lab]:
    yield from _fresh(_server)


@pytest.fixture
def dual(_dual: DualHomedLab) -> Iterator[Lab]:
    yield from _fresh(_dual)


@pytest.fixture
def router(_router: NatRouterLab) -> Iterator[Lab]:
    yield from _fresh(_router)


@pytest.fixture
def vmhost(_vmhost: VmHostLab) -> Iterator[Lab]:
    yield from _fresh(_vmhost)


def doctor(lab: Lab, state: Path) -> list[dict[str, Any]]:
    return proofs.doctor(lab, "--state-dir", str(state))


def prove(lab: Lab, state: Path, code: str, problem: dict[str, str],
          key: str | None = None) -> list[str]:
    """:func:`tests.helpers.proofs.prove` with the doctor's state directory."""
    return proofs.prove(lab, ["--state-dir", str(state)], code, problem, key)


# -- server -----------------------------------------------------------------------------------


def test_HD101_syncookies_on_server(server: Lab, state: Path) -> None:
    # a listener of its own (port 8443), so the half-open connections of the flood go away
    # with it and do not linger in the shared lab
    assert isinstance(server, ServerLab) and server.client is not None
    client = server.client
    server.set("net.ipv4.tcp_syncookies", "0")
    listener = start_service(server.host, "tcp:8443")
    try:
        assert request(client, "tcp", "192.0.2.10", 8443, timeout=5.0).ok
        syn_flood(client, "192.0.2.200", "192.0.2.10", 8443, 200)
        # the problem is real: a flood of 200 spoofed SYNs locks a real client out
        assert not request(client, "tcp", "192.0.2.10", 8443, timeout=1.0).ok
        fixed = prove(server, state, "HD101", {})
        assert fixed == ["net.ipv4.tcp_syncookies = 1"]
        syn_flood(client, "192.0.2.200", "192.0.2.10", 8443, 200)
        # the fix works: with the queue still full, SYN cookies let the client in
        assert request(client, "tcp", "192.0.2.10", 8443, timeout=5.0).ok
    finally:
        listener.kill()
        listener.wait(timeout=5)


def test_HD102_synack_retries_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "HD102", {"net.ipv4.tcp_synack_retries": "5"})
    assert server.read("net.ipv4.tcp_synack_retries") == "3"


def test_TN102_tcp_buffer_order_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "TN102", {"net.ipv4.tcp_rmem": "4096 6291456 131072"})
    assert server.read("net.ipv4.tcp_rmem").split() == ["4096", "131072", "6291456"]


def test_TN109_port_range_parity_on_server(server: Lab, state: Path) -> None:
    fixed = prove(server, state, "TN109", {"net.ipv4.ip_local_port_range": "32768 60998"})
    low, high = map(int, server.read("net.ipv4.ip_local_port_range").split())
    assert low % 2 != high % 2 and high >= 60998, fixed  # the top end moved up


def test_TN110_service_in_port_range_on_server(server: Lab, state: Path) -> None:
    listener = start_service(server.host, "tcp:40000")
    try:
        prove(server, state, "TN110", {"net.ipv4.ip_local_port_range": "32768 60999"})
        assert "40000" in server.read("net.ipv4.ip_local_reserved_ports")
    finally:
        listener.kill()
        listener.wait(timeout=5)


def test_TN111_port_range_small_on_server(server: Lab, state: Path) -> None:
    # one value for the key: the range fix also fixes the parity (issue 8 item 7)
    prove(server, state, "TN111", {"net.ipv4.ip_local_port_range": "60000 60010"})
    low, high = map(int, server.read("net.ipv4.ip_local_port_range").split())
    assert high - low + 1 >= 10000 and low % 2 != high % 2


def _redirected(lab: DualHomedLab) -> bool:
    """Whether a redirect from the server's gateway (192.0.2.1) moves its route to
    203.0.113.77 onto 192.0.2.254 (a neighbour the server knows)."""
    assert lab.client is not None
    lab.host.run(["ip", "route", "flush", "cache"])
    assert route_gateway(lab.host, "203.0.113.77") == "192.0.2.1"
    send_redirect(lab.client, "192.0.2.10", "203.0.113.77", "192.0.2.254")
    moved = route_gateway(lab.host, "203.0.113.77") == "192.0.2.254"
    lab.host.run(["ip", "route", "flush", "cache"])
    return moved


def test_HD103_accept_redirects_on_dual_homed_server(dual: Lab, state: Path) -> None:
    assert isinstance(dual, DualHomedLab)
    dual.host.run(["ip", "neigh", "replace", "192.0.2.254", "lladdr", "02:00:00:00:02:fe",
                   "dev", "eth0", "nud", "permanent"])
    try:
        for key in ("all", "eth0", "eth1"):
            dual.set(f"net.ipv4.conf.{key}.accept_redirects", "1")
        dual.set("net.ipv4.conf.all.shared_media", "1")
        assert _redirected(dual)  # the problem is real: the gateway can move our route
        prove(dual, state, "HD103", {})
        assert dual.read("net.ipv4.conf.eth1.accept_redirects") == "0"
        assert not _redirected(dual)  # the fix works
    finally:
        dual.host.run(["ip", "neigh", "del", "192.0.2.254", "dev", "eth0"], check=False)


def test_HD106_source_route_on_server(server: Lab, state: Path) -> None:
    assert isinstance(server, ServerLab) and server.client is not None
    assert not source_routed(server.client, "192.0.2.1", "192.0.2.10", 53)  # the default
    server.set("net.ipv4.conf.all.accept_source_route", "1")
    server.set("net.ipv4.conf.eth0.accept_source_route", "1")
    # the problem is real
    assert source_routed(server.client, "192.0.2.1", "192.0.2.10", 53, timeout=5.0)
    prove(server, state, "HD106", {})
    assert not source_routed(server.client, "192.0.2.1", "192.0.2.10", 53)  # the fix works


def test_HD109_icmp_broadcast_on_server(server: Lab, state: Path) -> None:
    assert isinstance(server, ServerLab) and server.client is not None
    server.set("net.ipv4.icmp_echo_ignore_broadcasts", "0")
    answered = broadcast_ping(server.client, "192.0.2.255", timeout=5.0, until="192.0.2.10")
    assert "192.0.2.10" in answered  # the problem is real
    prove(server, state, "HD109", {})
    assert "192.0.2.10" not in broadcast_ping(server.client, "192.0.2.255")  # the fix works


def test_HD110_bogus_icmp_errors_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "HD110", {"net.ipv4.icmp_ignore_bogus_error_responses": "0"})


def test_TN101_backlogs_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "TN101", {"net.core.somaxconn": "128"}, key="net.core.somaxconn")
    prove(server, state, "TN101", {"net.ipv4.tcp_max_syn_backlog": "128"},
          key="net.ipv4.tcp_max_syn_backlog")


def test_TN105_time_wait_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "TN105", {"net.ipv4.tcp_max_tw_buckets": "1000"},
          key="net.ipv4.tcp_max_tw_buckets")
    prove(server, state, "TN105", {"net.ipv4.tcp_tw_reuse": "0"}, key="net.ipv4.tcp_tw_reuse")


def test_TN106_keepalive_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "TN106", {"net.ipv4.tcp_keepalive_time": "7200"})


def test_TN107_fin_timeout_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "TN107", {"net.ipv4.tcp_fin_timeout": "120"})


def test_V6102_half_disabled_ipv6_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "V6102", {"net.ipv6.conf.eth0.disable_ipv6": "1"})
    assert server.read("net.ipv6.conf.eth0.disable_ipv6") == "0"


def test_V6103_ipv6_redirects_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "V6103", {"net.ipv6.conf.eth0.accept_redirects": "1"})


# -- NAT router -------------------------------------------------------------------------------


def test_HD104_send_redirects_on_nat_router(router: Lab, state: Path) -> None:
    prove(router, state, "HD104", {"net.ipv4.conf.all.send_redirects": "1",
                                   "net.ipv4.conf.lan0.send_redirects": "1",
                                   "net.ipv4.conf.wan0.send_redirects": "1"})


def test_HD103_accept_redirects_on_nat_router(router: Lab, state: Path) -> None:
    # forwarding interfaces combine accept_redirects as all AND interface: the fix may leave
    # conf/all alone and set the interfaces' own values
    prove(router, state, "HD103", {"net.ipv4.conf.all.accept_redirects": "1",
                                   "net.ipv4.conf.lan0.accept_redirects": "1",
                                   "net.ipv4.conf.wan0.accept_redirects": "1"})
    assert router.read("net.ipv4.conf.wan0.accept_redirects") == "0"


def test_NT104_router_not_forwarding(router: Lab, state: Path) -> None:
    assert isinstance(router, NatRouterLab) and router.lan is not None
    router.set("net.ipv4.ip_forward", "0")
    # the problem is real: the LAN is cut off
    assert not request(router.lan, "tcp", "203.0.113.100", 443, timeout=1.0).ok
    fixed = prove(router, state, "NT104", {})
    assert fixed == ["net.ipv4.ip_forward = 1"]


def test_NT102_forwarding_on_dual_homed_server(dual: Lab, state: Path) -> None:
    # two interfaces, so not an open router (NT105): forwarding on a server is NT102
    fixed = prove(dual, state, "NT102", {"net.ipv4.ip_forward": "1"},
                  key="net.ipv4.ip_forward")
    assert fixed == ["net.ipv4.ip_forward = 0"]


def test_NT103_proxy_arp_on_dual_homed_server(dual: Lab, state: Path) -> None:
    prove(dual, state, "NT103", {"net.ipv4.conf.all.proxy_arp": "1",
                                 "net.ipv4.conf.eth1.proxy_arp": "1"})
    assert dual.read("net.ipv4.conf.all.proxy_arp") == "0"


# -- VM host ----------------------------------------------------------------------------------


def test_HD108_log_martians_on_vm_host(vmhost: Lab, state: Path) -> None:
    prove(vmhost, state, "HD108", {"net.ipv4.conf.all.log_martians": "0",
                                   "net.ipv4.conf.eth0.log_martians": "0"})


def test_HD104_send_redirects_on_vm_host(vmhost: Lab, state: Path) -> None:
    prove(vmhost, state, "HD104", {"net.ipv4.conf.all.send_redirects": "1",
                                   "net.ipv4.conf.br0.send_redirects": "1",
                                   "net.ipv4.conf.vmr0.send_redirects": "1"})


def test_V6101_forwarding_ignores_ra_on_vm_host(vmhost: Lab, state: Path) -> None:
    prove(vmhost, state, "V6101", {"net.ipv6.conf.all.forwarding": "1",
                                   "net.ipv6.conf.eth0.accept_ra": "1"})
    assert vmhost.read("net.ipv6.conf.eth0.accept_ra") == "2"


# -- lint (SC rules): the suggestion applied to the file, then the file applied to the lab ----

CONTEXT = "net.ipv4.tcp_keepalive_time = 600\n"  # a valid setting every test file also holds


def lint(lab: Lab, text: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(HOSTNET), "lint", "--netns", lab.host.name, "--format", "json", "-"],
        input=text, capture_output=True, text=True, timeout=120, check=False, cwd="/")
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    findings: list[dict[str, Any]] = json.loads(proc.stdout)["findings"]
    return findings


def exists(lab: Lab, key: str) -> bool:
    return lab.host.run(["test", "-e", sysctl_path(key)], check=False).returncode == 0


def kernel_takes(lab: Lab, text: str) -> bool:
    """Whether writing every ``key = value`` of ``text`` as written (quotes and all) works."""
    for raw in text.splitlines():
        key, eq, value = raw.strip().partition("=")
        if not eq or raw.lstrip().startswith(("#", ";")):
            continue
        if not lab.try_set(key.strip(), value.strip()):
            return False
    return True


def prove_lint(lab: Lab, code: str, bad: str, *, refused: bool = False) -> str:
    """Lint ``bad`` (plus a valid line) in the lab's namespace, see ``code``, apply its
    suggestion to the file (fixes.apply_to_file), lint again: ``code`` gone; then apply the
    corrected file in the namespace (the kernel takes every line) and check the traffic.
    ``refused``: the kernel refuses the original file (the problem is real)."""
    text = bad + CONTEXT
    found = [f for f in lint(lab, text) if f["code"] == code]
    assert found, f"{code} not reported for {bad!r}"
    finding = found[0]
    assert finding["suggestion"], f"{code} proposes no fix: {finding}"
    if refused:
        assert not kernel_takes(lab, text), f"the kernel takes {bad!r}"
        lab.restore()
    corrected = fixes.apply_to_file(text, finding["line"], finding["suggestion"],
                                    lambda k: exists(lab, k))
    assert corrected != text
    left = [f for f in lint(lab, corrected) if f["code"] == code]
    assert not left, f"{code} still reported on {corrected!r}: {left}"
    fixes.apply(lab.host, corrected, before_write=lab.remember)
    lab.check()
    return corrected


def test_SC101_line_without_equals(server: Lab) -> None:
    fixed = prove_lint(server, "SC101", "net.ipv4.tcp_syncookies 1\n")
    assert fixed.startswith("net.ipv4.tcp_syncookies = 1\n")


def test_SC103_misspelt_key(server: Lab) -> None:
    prove_lint(server, "SC103", "net.ipv4.tcp_syncookie = 1\n", refused=True)
    assert server.read("net.ipv4.tcp_syncookies") == "1"


def test_SC104_read_only_key(server: Lab) -> None:
    fixed = prove_lint(server, "SC104", "net.ipv4.tcp_available_congestion_control = reno\n",
                       refused=True)
    assert fixed == CONTEXT


def test_SC105_removed_key(server: Lab) -> None:
    prove_lint(server, "SC105", "net.ipv4.tcp_tw_recycle = 1\n", refused=True)
    fixed = prove_lint(server, "SC105",
                       "net.ipv4.netfilter.ip_conntrack_tcp_timeout_established = 3600\n",
                       refused=True)
    assert fixed.startswith("net.netfilter.nf_conntrack_tcp_timeout_established = 3600\n")
    assert server.read("net.netfilter.nf_conntrack_tcp_timeout_established") == "3600"


def test_SC107_reversed_port_range(server: Lab) -> None:
    prove_lint(server, "SC107", "net.ipv4.ip_local_port_range = 61000 32768\n", refused=True)
    # the ends put in order, with the top moved up so they differ in parity (one value per key)
    assert server.read("net.ipv4.ip_local_port_range").split() == ["32768", "61001"]


def test_SC108_quoted_value(server: Lab) -> None:
    prove_lint(server, "SC108", 'net.core.somaxconn = "8192"\n', refused=True)
    assert server.read("net.core.somaxconn") == "8192"


def test_SC109_trailing_comment(server: Lab) -> None:
    prove_lint(server, "SC109", "net.ipv4.tcp_fin_timeout = 15 # short\n")
    assert server.read("net.ipv4.tcp_fin_timeout") == "15"


def test_SC110_duplicate_key(server: Lab) -> None:
    fixed = prove_lint(server, "SC110",
                       "net.ipv4.tcp_fin_timeout = 30\nnet.ipv4.tcp_fin_timeout = 20\n")
    assert fixed.startswith("net.ipv4.tcp_fin_timeout = 20\n")  # the line that won is kept


def test_SC112_limits_out_of_order(server: Lab) -> None:
    # (the other variant, net.core.rmem_default above rmem_max, cannot be written in a child
    # namespace: both keys are read-only there)
    fixed = prove_lint(server, "SC112", "net.ipv4.tcp_rmem = 4096 16777216 87380\n")
    assert fixed.startswith("net.ipv4.tcp_rmem = 4096 87380 16777216\n")


def test_SC113_weaker_than_default(server: Lab) -> None:
    prove_lint(server, "SC113", "net.ipv4.tcp_syncookies = 0\n")


def test_SC116_semicolon_comment(server: Lab) -> None:
    prove_lint(server, "SC116", "; tuning\n")


def test_SC118_split_key(server: Lab) -> None:
    fixed = prove_lint(server, "SC118", "# the lab's filter net.ipv4.conf.all.\nrp_filter = 2\n")
    assert "net.ipv4.conf.all.rp_filter = 2" in fixed.splitlines()


def test_SC119_ipv6_intent(server: Lab) -> None:
    prove_lint(server, "SC119", "# disable ipv6\nnet.ipv6.conf.all.disable_ipv6 = 0\n")
    assert server.read("net.ipv6.conf.eth0.disable_ipv6") == "1"


def test_SC121_dotted_interface(server: Lab) -> None:
    # a VLAN-style name (veth: this kernel has no 8021q); removed again below
    server.host.run(["ip", "link", "add", "eth0.100", "type", "veth", "peer", "name", "v100"])
    try:
        prove_lint(server, "SC121", "net.ipv4.conf.eth0.100.accept_redirects = 0\n",
                   refused=True)
        assert server.read("net.ipv4.conf.eth0/100.accept_redirects") == "0"
    finally:
        server.restore()
        server.host.run(["ip", "link", "del", "eth0.100"])


def test_SC123_port_range_parity(server: Lab) -> None:
    prove_lint(server, "SC123", "net.ipv4.ip_local_port_range = 10000 60000\n")
