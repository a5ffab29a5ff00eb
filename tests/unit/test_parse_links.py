"""The VM part of a snapshot: ``ip -j`` text parsed into the LinkSnapshot netlink gives, and
observe_vm judging a snapshot tree (iproute2 6.1 output, captured in a namespace)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from hostnet.checks.vm import evaluate
from hostnet.host.root import COMMANDS_DIR, META_FILE, STAT_FILE, Root
from hostnet.observe.parse_links import parse_host_routes, parse_links, parse_proxies
from hostnet.observe.vm import observe_vm

ADDR = json.dumps([
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "mtu": 65536,
     "link_type": "loopback", "address": "00:00:00:00:00:00",
     "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifindex": 3, "link": "up0p", "ifname": "up0", "flags": ["BROADCAST", "UP", "LOWER_UP"],
     "mtu": 1500, "link_type": "ether", "address": "A2:C7:D9:E7:8C:AC",
     "linkinfo": {"info_kind": "veth"},
     "addr_info": [{"family": "inet", "local": "192.0.2.1", "prefixlen": 24},
                   {"family": "inet6", "local": "2001:db8::1", "prefixlen": 64}]},
    {"ifindex": 4, "ifname": "tap0", "flags": ["NO-CARRIER", "BROADCAST", "UP"], "mtu": 1500,
     "link_type": "ether", "address": "66:fd:0d:0d:5c:73", "master": "br0",
     "linkinfo": {"info_kind": "tun", "info_data": {
         "type": "tap", "pi": False, "vnet_hdr": False, "multi_queue": True, "numqueues": 2,
         "numdisabled": 0, "persist": True, "user": "nobody", "group": "nogroup"}},
     "addr_info": []},
    {"ifindex": 5, "ifname": "tap1", "flags": ["BROADCAST"], "mtu": 1500,
     "linkinfo": {"info_kind": "tun", "info_data": {
         "type": "tap", "pi": False, "vnet_hdr": True, "multi_queue": False, "persist": True,
         "user": 4242}}},
    {"ifindex": 6, "ifname": "gre1", "flags": ["POINTOPOINT", "NOARP"], "mtu": 1476,
     "link_type": "gre", "address": "198.51.100.7", "linkinfo": {"info_kind": "gre"}},
])
ROUTES = json.dumps([
    {"dst": "192.0.2.0/24", "dev": "up0", "protocol": "kernel", "scope": "link"},
    {"dst": "2001:db8::10", "dev": "tap0", "metric": 1024},
    {"dst": "192.0.2.10", "dev": "tap0", "scope": "link"},
    {"dst": "192.0.2.11/32", "dev": "up0"},
    {"type": "local", "dst": "192.0.2.1", "dev": "up0", "table": "local"},
    {"dst": "192.0.2.12", "dev": "tap0", "table": "100"},
    {"type": "blackhole", "dst": "192.0.2.13"},
    {"dst": "default", "via": "192.0.2.254", "dev": "up0"},
    {"dst": "192.0.2.14", "nexthops": [{"gateway": "192.0.2.2", "dev": "up0"}]},
])
PROXIES = '[{"dst":"192.0.2.10","dev":"up0","proxy":null},' \
          '{"dst":"2001:db8::10","dev":"up0","proxy":null}]'
USERS, GROUPS = {"nobody": 65534, "root": 0}, {"nogroup": 65534}


def conf(family: str, link: str, leaf: str) -> int | None:
    return {("ipv4", "up0", "proxy_arp"): 1, ("ipv6", "up0", "accept_ra"): 2}.get(
        (family, link, leaf), 0 if family == "ipv4" else None)


def test_links_addresses_and_tun_owners() -> None:
    links, addresses = parse_links(ADDR, conf, USERS, GROUPS)
    assert list(links) == ["lo", "up0", "tap0", "tap1", "gre1"]
    up0, tap0, tap1 = links["up0"], links["tap0"], links["tap1"]
    assert (up0.kind, up0.up, up0.carrier, up0.mac) == ("veth", True, True, "a2:c7:d9:e7:8c:ac")
    assert (up0.proxy_arp, up0.accept_ra, up0.forwarding, up0.proxy_ndp) == (1, 2, 0, None)
    assert tap0.tun is not None and tap0.master == "br0" and not tap0.carrier
    assert (tap0.tun.tap, tap0.tun.owner, tap0.tun.group, tap0.tun.multi_queue,
            tap0.tun.queues, tap0.tun.vnet_hdr) == (True, 65534, 65534, True, 2, False)
    assert tap1.tun is not None and (tap1.tun.owner, tap1.tun.group) == (4242, None)
    assert not tap1.up and tap1.tun.vnet_hdr and tap1.mac == ""
    assert links["gre1"].mac == "c6:33:64:07"  # ip prints a tunnel's address as an IP
    # IPv4 first, then IPv6, as the netlink dump gives them
    assert [(a.link, str(a.address), a.prefixlen) for a in addresses] == [
        ("lo", "127.0.0.1", 8), ("up0", "192.0.2.1", 24), ("up0", "2001:db8::1", 64)]


def test_an_owner_name_the_accounts_do_not_know_is_an_error() -> None:
    with pytest.raises(ValueError, match="tap tap0: owner 'nobody' is not in"):
        parse_links(ADDR, conf, {}, GROUPS)
    with pytest.raises(ValueError, match="not the JSON list"):
        parse_links('{"ifname": "x"}', conf, USERS, GROUPS)


def test_host_routes_of_the_main_table_only() -> None:
    got = [(str(r.dst), r.prefixlen, r.link) for r in parse_host_routes(ROUTES)]
    assert got == [("192.0.2.10", 32, "tap0"), ("192.0.2.11", 32, "up0"),
                   ("192.0.2.14", 32, None), ("2001:db8::10", 128, "tap0")]
    assert parse_host_routes("") == ()


def test_proxies_of_both_families() -> None:
    assert [(str(p.address), p.link) for p in parse_proxies(PROXIES)] == [
        ("192.0.2.10", "up0"), ("2001:db8::10", "up0")]
    assert parse_proxies("[]") == ()


CONFIG = """[[vm]]
name = "web"
tap = "tap1"
owner = "nobody"
uplink = "up0"
addresses = ["192.0.2.10", "192.0.2.20"]
"""


def _snapshot_tree(base: Path, *, stat: bool = True) -> Path:
    for rel, text in {
        META_FILE: json.dumps({"hostnet": "x", "config": "/srv/vm.toml"}),
        f"{COMMANDS_DIR}/ip-addr.json": ADDR, f"{COMMANDS_DIR}/ip-route.json": ROUTES,
        f"{COMMANDS_DIR}/ip-neigh-proxy.json": PROXIES,
        f"{COMMANDS_DIR}/getent-passwd": "root:x:0:0::/root:/bin/sh\n"
                                         "nobody:x:65534:65534::/:/bin/false\n",
        f"{COMMANDS_DIR}/getent-group": "root:x:0:\nnogroup:x:65534:\n",
        "etc/hostnet/hostnet.toml": CONFIG,
        "proc/sys/net/ipv4/ip_forward": "0\n",
        "proc/sys/net/ipv6/conf/all/forwarding": "0\n",
        "proc/sys/net/ipv4/conf/all/proxy_arp": "0\n",
        "proc/sys/net/ipv4/conf/up0/proxy_arp": "1\n",
    }.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(text)
    if stat:
        (base / STAT_FILE).write_text(json.dumps({"dev/net/tun": {
            "mode": 0o20600, "uid": 0, "gid": 0, "major": 10, "minor": 200}}))
    return base


def test_a_snapshot_gets_the_vm_checks(tmp_path: Path) -> None:
    notes: list[str] = []
    data = observe_vm(Root(_snapshot_tree(tmp_path)), None, notes)
    assert notes == [] and data is not None
    assert data.tun.path == "/dev/net/tun" and data.tun.is_tun and data.tun.mode == 0o600
    assert data.links.ip_forward == 0 and data.links.links["up0"].proxy_arp == 1
    assert data.vms[0].source == "/srv/vm.toml"  # as the collected host named the config
    found = {(f.code, f.key) for f in evaluate(data)}
    assert found == {("VM101", "web"),  # 0600 root: nobody cannot open it
                     ("VM102", "tap1"),  # owned by 4242, the config says nobody
                     ("VM103", "net.ipv4.conf.up0.proxy_arp"),
                     ("VM104", "192.0.2.10"), ("VM104", "192.0.2.20"),
                     ("VM105", "net.ipv4.ip_forward")}
    route = data.links.route_to(ipaddress.ip_address("192.0.2.10"))
    assert route is not None and route.link == "tap0"


def test_a_snapshot_without_the_tun_record_is_a_note(tmp_path: Path) -> None:
    notes: list[str] = []
    assert observe_vm(Root(_snapshot_tree(tmp_path, stat=False)), None, notes) is None
    assert notes and "no record of /dev/net/tun" in notes[0]


def test_root_stat_reads_the_record_and_refuses_a_broken_one(tmp_path: Path) -> None:
    root = Root(_snapshot_tree(tmp_path))
    st = root.stat("dev/net/tun")
    assert st is not None and (st.major, st.minor, st.uid) == (10, 200, 0)
    (tmp_path / STAT_FILE).write_text('{"dev/net/tun": null}')
    assert root.stat("dev/net/tun") is None
    (tmp_path / STAT_FILE).write_text('{"dev/net/tun": {"mode": 1}}')
    from hostnet.errors import InputError

    with pytest.raises(InputError, match="damaged"):
        root.stat("dev/net/tun")
