"""Role profiles (inheritance in roles.toml) and the role recommendation from host signals."""

from __future__ import annotations

import json

import pytest

from hostnet.checks.roles import Signals, recommend
from hostnet.findings import Severity
from hostnet.knowledge.roles import ROLES, RoleError, load, names, resolve
from hostnet.model.firewall import NatRule
from hostnet.model.net import Listener
from hostnet.observe.parse_net import parse_ip_addr_json, parse_proc_net_sockets
from hostnet.observe.parse_rules import parse_iptables_save, parse_nft_json
from hostnet.rules import all_rules


def test_every_role_loads_and_inherits_base() -> None:
    assert set(ROLES) | {"base"} <= set(names())
    for name in ROLES:
        role = load(name)
        assert role.chain[-1] == "base"
        assert "net.ipv4.tcp_syncookies" in role.expectations


def test_every_expectation_names_a_known_rule() -> None:
    rules = all_rules()
    for name in ROLES:
        for exp in load(name).expectations.values():
            assert exp.code in rules, (name, exp.key, exp.code)


def test_child_overrides_and_skips() -> None:
    assert load("base").expectations["net.ipv4.tcp_synack_retries"].bound == 5
    assert load("server").expectations["net.ipv4.tcp_synack_retries"].bound == 3
    assert "kernel.dmesg_restrict" in load("server").expectations
    assert "kernel.dmesg_restrict" not in load("desktop").expectations
    vm = load("vm-host")
    assert vm.chain == ("vm-host", "nat-router", "base")
    assert vm.iface("proxy_arp") == "allowed"  # own
    assert vm.iface("rp_filter") == "loose"  # from nat-router
    assert vm.expectations["net.ipv4.ip_forward"].severity is Severity.ERROR
    assert load("server").local_ports_min > load("nat-router").local_ports_min


def test_bad_profiles_are_refused() -> None:
    with pytest.raises(RoleError, match="cycle"):
        resolve({"roles": {"a": {"inherits": "b"}, "b": {"inherits": "a"}}}, "a")
    with pytest.raises(RoleError, match="unknown role"):
        resolve({"roles": {"a": {"inherits": "nope"}}}, "a")
    with pytest.raises(RoleError, match="exactly one"):
        resolve({"roles": {"a": {"sysctl": {"k": {"min": 1, "max": 2, "code": "HD101"}}}}}, "a")


def test_expectation_ops() -> None:
    role = resolve({"roles": {"r": {"sysctl": {
        "a": {"min": 2, "code": "X"}, "b": {"max": 2, "code": "X"},
        "c": {"equal": 1, "code": "X"}, "d": {"not": 0, "fix": 2, "code": "X"}}}}}, "r")
    e = role.expectations
    assert e["a"].met(2) and not e["a"].met(1)
    assert e["b"].met(2) and not e["b"].met(3)
    assert e["c"].met(1) and not e["c"].met(0)
    assert e["d"].met(1) and not e["d"].met(0) and e["d"].fix == 2


NFT = {"nftables": [
    {"metainfo": {"json_schema_version": 1}},
    {"chain": {"family": "ip", "table": "nat", "name": "post", "type": "nat",
               "hook": "postrouting"}},
    {"chain": {"family": "ip", "table": "nat", "name": "out", "type": "nat", "hook": "output"}},
    {"rule": {"family": "ip", "table": "nat", "chain": "post",
              "expr": [{"match": {}}, {"masquerade": None}]}},
    {"rule": {"family": "ip", "table": "nat", "chain": "out",
              "expr": [{"dnat": {"addr": "192.0.2.1"}}]}},
    {"rule": {"family": "ip", "table": "filter", "chain": "FORWARD",
              "expr": [{"accept": None}]}},
    {"rule": {"family": "ip", "table": "nat", "chain": "POSTROUTING",
              "expr": [{"xt": {"type": "target", "name": "MASQUERADE"}}]}},
]}


def test_parse_nft_json() -> None:
    rules = parse_nft_json(json.dumps(NFT)).nat
    assert [(r.kind, r.chain, r.hook, r.routed) for r in rules] == [
        ("masquerade", "post", "postrouting", True),
        ("dnat", "out", "output", False),  # output chain: only local traffic
        ("masquerade", "POSTROUTING", "postrouting", True),  # iptables-nft xt target
    ]
    assert rules[0].where() == "table ip nat"
    with pytest.raises(ValueError):
        parse_nft_json("not json")


def test_parse_iptables_save() -> None:
    text = ("*filter\n-A FORWARD -j MASQUERADE\nCOMMIT\n*nat\n:POSTROUTING ACCEPT [0:0]\n"
            "-A POSTROUTING -o wan0 -j MASQUERADE\n-A PREROUTING -p tcp -j DNAT "
            "--to-destination 192.0.2.1\n-A OUTPUT -j REDIRECT --to-ports 3128\nCOMMIT\n")
    rules = parse_iptables_save(text).nat
    assert [(r.kind, r.chain) for r in rules] == [
        ("masquerade", "POSTROUTING"), ("dnat", "PREROUTING"), ("redirect", "OUTPUT")]
    assert [r.routed for r in rules] == [True, True, False]


def test_parse_proc_net_sockets() -> None:
    tcp = ("  sl  local_address rem_address   st\n"
           "   0: 00000000:0050 00000000:0000 0A 0\n"
           "   1: 0100007F:1538 00000000:0000 0A 0\n"
           "   2: 0200000A:C350 0300000A:0050 01 0\n")
    got = parse_proc_net_sockets(tcp, "tcp")
    assert [(x.port, x.loopback) for x in got] == [(80, False), (5432, True)]
    tcp6 = ("  sl  local_address rem_address st\n"
            "   0: 00000000000000000000000001000000:0016 "
            "00000000000000000000000000000000:0000 0A 0\n")
    assert parse_proc_net_sockets(tcp6, "tcp")[0].loopback
    udp = ("  sl  local_address rem_address   st\n"
           "   0: 00000000:0035 00000000:0000 07 0\n"
           "   1: 0200000A:D000 08080808:0035 01 0\n")
    assert [x.port for x in parse_proc_net_sockets(udp, "udp")] == [53]


def test_parse_ip_link_json() -> None:
    text = json.dumps([
        {"ifname": "lo", "link_type": "loopback"},
        {"ifname": "br0", "linkinfo": {"info_kind": "bridge"}},
        {"ifname": "vnet0", "linkinfo": {"info_kind": "tun", "info_data": {"type": "tap"}}},
        {"ifname": "eth0", "link_type": "ether"},
    ])
    assert {i.name: i.kind for i in parse_ip_addr_json(text)} == {"lo": "loopback", "br0": "bridge", "vnet0": "tap",
                                        "eth0": "ether"}


def _sig(fwd: int = 0, nat: tuple[NatRule, ...] = (), kinds: dict[str, str] | None = None,
         listen: tuple[Listener, ...] = ()) -> Signals:
    return Signals(ip_forward=fwd, ipv6_forward=0, nat=nat, kinds=kinds or {"eth0": "ether"},
                   listening=listen)


MASQ = NatRule("masquerade", "ip", "nat", "postrouting", "postrouting", "nft")
WEB = (Listener("tcp", 443, "00000000", False), Listener("tcp", 5432, "0100007F", True))


def test_recommend_nat_router_says_why() -> None:
    role, why = recommend(_sig(1, (MASQ,)))
    assert role == "nat-router"
    assert why == "IPv4 forwarding on and a masquerade rule in table ip nat"


def test_recommend_vm_host_from_taps_or_bridged_veths() -> None:
    role, why = recommend(_sig(1, (MASQ,), {"eth0": "ether", "vnet0": "tap", "br0": "bridge"}))
    assert role == "vm-host" and "vnet0" in why
    role, why = recommend(_sig(1, (), {"docker0": "bridge", "veth1": "veth"}))
    assert role == "vm-host" and "bridge" in why


def test_recommend_plain_router_server_desktop() -> None:
    assert recommend(_sig(1))[0] == "nat-router"
    role, why = recommend(_sig(0, (), None, WEB))
    assert role == "server" and "tcp/443" in why and "5432" not in why  # loopback left out
    role, why = recommend(_sig(0, (MASQ,), None, WEB))
    assert role == "server" and "NAT rules present" in why and "forwarding off" in why
    assert recommend(_sig(0, (), None, WEB[1:]))[0] == "desktop"


def test_recommend_open_router_is_not_a_nat_router() -> None:
    """Issue 8 item 10: forwarding on, one interface, no NAT, an accepting forward chain."""
    role, why = recommend(Signals(1, 0, (), {"eth0": "ether"}, WEB, open_router="eth0"))
    assert role == "server" and "open router (NT105)" in why and "eth0" in why
    role, why = recommend(Signals(1, 0, (), {"eth0": "ether"}, (), open_router="eth0"))
    assert role == "desktop" and "open router" in why


def test_open_router_fixture_recommendation() -> None:
    from tests.helpers.state import host_state

    ns = host_state("doctor-openrouter").namespaces[0]
    from hostnet.checks.roles import open_router, recommend_for

    assert open_router(ns) == "eth0"
    assert recommend_for(ns)[0] == "desktop"
    # a forward chain that drops, or a second interface, or NAT: not an open router
    assert open_router(host_state("doctor-bridge-ports").namespaces[0]) is None
