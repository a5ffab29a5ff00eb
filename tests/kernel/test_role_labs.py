"""The role labs (tests/helpers/labs.py) carry their role's traffic, and their checks fail when
the thing they rely on is taken away (so a proof that "traffic still works" can fail).

* server: TCP 443/80 and UDP 53 from the client; with the service's port dropped by nft the
  check fails.
* dual-homed server: both asymmetric paths work with rp_filter 0 and loose (2); strict (1)
  drops both (the kernel behaviour HD107's loose advice for multi-homed hosts relies on);
  setting conf/all to 1 is enough for strict to win (the effective value is max(all, iface)).
* NAT router: LAN browsing and DNS leave with the router's address; the port forward reaches
  the LAN server with the real client's address; without the lab's NAT table LAN traffic and
  the port forward stop; with forwarding off they stop too.
* VM host: outside -> routed /32 VM and bridged VM, and both VMs -> outside; without the proxy
  ARP entry the routed VM is unreachable from outside.
* The fix applier (tests/helpers/fixes.py) loads hostnet's nft table in the lab and restore()
  removes it; a suggestion with a line it cannot apply (a host-wide key, a modprobe option)
  changes nothing; a write the kernel refuses fails loudly.
* A lab whose set-up fails half-way removes every namespace it had made.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable

import pytest

from tests.helpers import fixes, labs
from tests.helpers.labs import (
    LAB_NAT,
    Lab,
    dual_homed_lab,
    nat_router_lab,
    request,
    server_lab,
    vm_host_lab,
)
from tests.helpers.netns import LIVE, VETH_TMP, Netns

pytestmark = pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft")


def test_server_lab_traffic_and_its_check_can_fail() -> None:
    with server_lab() as lab:
        lab.check()
        lab.host.run(["nft", "-f", "-"], input="""
table inet labblock {
    chain block {
        type filter hook input priority 0; policy accept;
        tcp dport 443 drop
    }
}
""")
        lab.timeout = 1.0
        with pytest.raises(AssertionError, match="tcp/443"):
            lab.check()
        lab.host.run(["nft", "delete", "table", "inet", "labblock"])
        lab.check()


def test_dual_homed_asymmetric_paths_need_loose_or_no_rp_filter() -> None:
    keys = ["net.ipv4.conf.all.rp_filter", "net.ipv4.conf.eth0.rp_filter",
            "net.ipv4.conf.eth1.rp_filter"]
    with dual_homed_lab() as lab:
        assert all(lab.host.sysctl(k) == "0" for k in keys)
        lab.check()
        for key in keys:
            lab.set(key, "2")
        lab.check()  # loose: both directions, TCP and UDP
        for key in keys:
            lab.set(key, "1")
        for proto in ("tcp", "udp"):
            replies = lab.paths(proto, timeout=1.0)
            assert not any(r.ok for r in replies.values()), (proto, replies)
        lab.restore()
        lab.check()
        # strict on conf/all alone wins over the interfaces' 0 (max(all, iface))
        lab.set("net.ipv4.conf.all.rp_filter", "1")
        assert not any(r.ok for r in lab.paths("tcp", timeout=1.0).values())
        lab.restore()
        lab.check()


def test_nat_router_lab_traffic_needs_the_nat_and_forwarding() -> None:
    with nat_router_lab() as lab:
        assert lab.lan is not None and lab.internet is not None
        lab.check()
        lab.host.run(["nft", "delete", "table", "ip", "lab_nat"])
        assert not request(lab.lan, "tcp", "203.0.113.100", 443, timeout=1.0).ok
        assert not request(lab.lan, "udp", "203.0.113.100", 53, timeout=1.0).ok
        assert not request(lab.internet, "tcp", "203.0.113.1", 8080, timeout=1.0).ok
        lab.host.run(["nft", "-f", "-"], input=LAB_NAT)
        lab.check()
        lab.set("net.ipv4.ip_forward", "0")
        lab.timeout = 1.0
        with pytest.raises(AssertionError, match="LAN out tcp/443"):
            lab.check()
        assert not request(lab.internet, "tcp", "203.0.113.1", 8080, timeout=1.0).ok
        lab.restore()
        lab.check()


def test_vm_host_lab_reaches_both_vms_and_needs_the_proxy_entry() -> None:
    with vm_host_lab() as lab:
        assert lab.internet is not None
        lab.check()
        link = lab.host.run(["ip", "-d", "link", "show", "tap0"]).stdout
        assert "NO-CARRIER" in link and "tun type tap" in link
        lab.host.run(["ip", "neigh", "del", "proxy", "203.0.113.50", "dev", "eth0"])
        lab.internet.run(["ip", "neigh", "flush", "dev", "eth0"])
        assert not request(lab.internet, "tcp", "203.0.113.50", 443, timeout=1.0).ok
        lab.host.run(["ip", "neigh", "add", "proxy", "203.0.113.50", "dev", "eth0"])
        lab.check()


def test_fix_applier_in_a_lab_loads_hostnets_table_and_refuses_before_writing() -> None:
    notrack = """# /etc/nftables.d/hostnet.nft
table inet hostnet {
    chain raw_pre {
        type filter hook prerouting priority raw; policy accept;
        udp dport 53 notrack
    }
    chain raw_out {
        type filter hook output priority raw; policy accept;
        udp sport 53 notrack
    }
}
net.ipv4.tcp_fin_timeout = 30
"""
    with server_lab() as lab:
        lab.set("net.ipv4.tcp_fin_timeout", "45")
        steps = fixes.apply(lab.host, notrack, before_write=lab.remember)
        assert [type(s).__name__ for s in steps] == ["NftLoad", "SysctlWrite"]
        ruleset = lab.host.run(["nft", "list", "table", "inet", "hostnet"]).stdout
        assert "notrack" in ruleset
        lab.check()  # the server's own DNS service works untracked
        assert lab.read("net.ipv4.tcp_fin_timeout") == "30"
        # a suggestion with one line it cannot apply changes nothing at all
        before = lab.read("net.ipv4.tcp_syncookies")
        with pytest.raises(fixes.NotApplicable, match="host-wide"):
            fixes.apply(lab.host, "net.ipv4.tcp_syncookies = 0\nkernel.pid_max = 32768\n")
        with pytest.raises(fixes.NotApplicable, match="options nf_conntrack"):
            fixes.apply(lab.host, "net.ipv4.tcp_syncookies = 0\n"
                                  "# /etc/modprobe.d/hostnet.conf\noptions nf_conntrack x=1\n")
        assert lab.read("net.ipv4.tcp_syncookies") == before
        with pytest.raises(AssertionError, match="refused"):
            fixes.apply(lab.host, "net.core.rmem_max = 4194304")  # read-only in a child netns
        lab.restore()
        assert lab.host.run(["nft", "list", "table", "inet", "hostnet"],
                            check=False).returncode != 0
        assert lab.read("net.ipv4.tcp_fin_timeout") != "30"  # put back (to the namespace's own)


@pytest.mark.parametrize("build", [server_lab, dual_homed_lab, nat_router_lab, vm_host_lab])
def test_a_lab_that_fails_half_built_leaves_nothing(
    build: Callable[[], contextlib.AbstractContextManager[Lab]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[str] = []
    real_enter = Netns.__enter__

    def enter(self: Netns) -> Netns:
        made.append(self.name)
        return real_enter(self)

    def broken(ns: Netns, *specs: str) -> None:
        raise RuntimeError("service failed to start")

    monkeypatch.setattr(Netns, "__enter__", enter)
    monkeypatch.setattr(labs, "start_service", broken)
    with pytest.raises(RuntimeError, match="service failed"), build():
        pass
    assert len(made) >= 2
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            check=True).stdout
    assert not [n for n in made if n in listed], listed
    assert not set(made) & LIVE
    # no veth end was left behind in the initial namespace (read only: 'ip -o link show')
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=True).stdout
    assert not [w for w in links.split() if w.startswith(VETH_TMP)], links
