"""The [[vm]] loader: the issue's example as written, the kernel's interface name rules,
errors naming file:line and the dotted path, owners resolved to numeric ids."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from hostnet.config.vm import (
    Accounts,
    VmConfigError,
    ifname_problem,
    load_vms,
    parse_vm_text,
    resolve,
)
from hostnet.model.vm import DEFAULT_GATEWAY6, Mode

EXAMPLE = '''\
[[vm]]
name = "web1"
tap = "tapweb1"                 # at most 15 characters, kernel's interface name rules
owner = "qemu"                  # user (and optional group = "kvm") that opens the tap
mode = "routed"                 # routed | nat | bridge
uplink = "eth0"                 # routed: where the provider delivers the VM's public addresses
addresses = ["203.0.113.11", "2001:db8::11"]
# gateway = "203.0.113.1"       # address on the tap the VM uses as its gateway; default: the uplink's primary address
# multi_queue = true
# mtu = 1500
# bridge = "br0"                # mode = "bridge"
'''

PASSWD = "root:x:0:0:root:/root:/bin/sh\nqemu:x:107:110::/nonexistent:/usr/sbin/nologin\n"
GROUP = "root:x:0:\nkvm:x:110:qemu\nlibvirt:x:120:qemu,alice\n"
ACCOUNTS = Accounts.from_text(PASSWD, GROUP)


def load(tmp_path: Path, text: str) -> list:
    path = tmp_path / "hostnet.toml"
    path.write_text(text)
    return load_vms(path, ACCOUNTS)


def errors(tmp_path: Path, text: str) -> str:
    with pytest.raises(VmConfigError) as exc:
        load(tmp_path, text)
    assert exc.value.exit_code == 2
    return exc.value.message


def test_issue_example_as_written(tmp_path: Path) -> None:
    (vm,) = load(tmp_path, EXAMPLE)
    assert (vm.name, vm.tap, vm.mode, vm.uplink) == ("web1", "tapweb1", Mode.ROUTED, "eth0")
    assert vm.addresses == (ipaddress.ip_address("203.0.113.11"),
                            ipaddress.ip_address("2001:db8::11"))
    assert (vm.uid, vm.gid, vm.owner_gids) == (107, None, (110, 120))
    assert vm.gateway is None and vm.gateway6 == DEFAULT_GATEWAY6
    assert (vm.multi_queue, vm.queues, vm.line) == (False, 1, 1)


def test_uncommented_options(tmp_path: Path) -> None:
    text = EXAMPLE.replace("# gateway", "gateway").replace("# multi_queue", "multi_queue")
    text = text.replace("# mtu", "mtu").replace('owner = "qemu"', 'owner = "qemu"\ngroup = "kvm"')
    (vm,) = load(tmp_path, text)
    assert str(vm.gateway) == "203.0.113.1/32"
    assert (vm.multi_queue, vm.queues, vm.mtu, vm.gid, vm.group_name) == (True, 2, 1500, 110,
                                                                          "kvm")


@pytest.mark.parametrize(("name", "ok"), [
    ("a" * 15, True), ("a" * 16, False), ("", False), (".", False), ("..", False),
    ("tap/1", False), ("tap:1", False), ("tap 1", False), ("tap\t1", False),
    ("eth0.100", True), ("tap-web_1", True), ("é" * 8, False), ("é" * 7, True),
])
def test_interface_names_follow_dev_valid_name(name: str, ok: bool) -> None:
    assert (ifname_problem(name) is None) is ok


def test_errors_name_file_line_and_dotted_path(tmp_path: Path) -> None:
    text = EXAMPLE + '''
[[vm]]
name = "web2"
tap = "tapweb2-much-too-long"
owner = "qemu"
uplink = "eth0"
addresses = ["203.0.113.12", "not-an-address"]
colour = "blue"
'''
    msg = errors(tmp_path, text)
    path = str(tmp_path / "hostnet.toml")
    assert f"{path}:15: vm[1].tap: 'tapweb2-much-too-long' is 21 bytes; the kernel allows at most 15" in msg
    assert f"{path}:18: vm[1].addresses[1]: expected an IP address (IPv4 or IPv6)" in msg
    assert f"{path}:19: vm[1].colour: unknown key (expected one of: name, tap, owner" in msg


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    msg = errors(tmp_path, '[[vm]]\nname = "x\n')
    assert "not valid TOML" in msg and "line 2" in msg


@pytest.mark.parametrize(("extra", "expected"), [
    ('mode = "routed"\naddresses = ["203.0.113.5"]', "routed mode needs uplink"),
    ('mode = "routed"\nuplink = "eth0"', "routed mode needs addresses"),
    ('mode = "nat"', "nat mode needs gateway"),
    ('mode = "nat"\ngateway = "198.51.100.1"', "nat mode needs gateway"),
    ('mode = "bridge"', "bridge mode needs bridge"),
    ('mode = "bridge"\nbridge = "br0"\naddresses = ["203.0.113.5"]', "remove addresses"),
    ('mode = "bridged"', "Input should be 'routed', 'nat' or 'bridge'"),
    ('mode = "nat"\ngateway = "198.51.100.1/24"\nqueues = 4', "queues > 1 needs multi_queue"),
    ('mode = "nat"\ngateway = "198.51.100.1/24"\nmtu = 10', "greater than or equal to 68"),
    ('mode = "nat"\ngateway = "198.51.100.1/24"\nmac = "01:00:00:00:00:01"', "unicast"),
])
def test_mode_rules(tmp_path: Path, extra: str, expected: str) -> None:
    msg = errors(tmp_path, f'[[vm]]\nname = "a"\ntap = "tapa"\nowner = "qemu"\n{extra}\n')
    assert expected in msg
    assert "hostnet.toml:" in msg and ": vm[0]" in msg


def test_public_address_used_once(tmp_path: Path) -> None:
    text = EXAMPLE + EXAMPLE.replace('"web1"', '"web2"').replace('"tapweb1"', '"tapweb2"')
    msg = errors(tmp_path, text)
    assert "vm[1].addresses: address 203.0.113.11 is already used by vm[0] (web1)" in msg
    assert ":18: vm[1].addresses" in msg
    twice = EXAMPLE.replace('"2001:db8::11"]', '"2001:db8::11", "203.0.113.11"]')
    assert "203.0.113.11 is listed twice" in errors(tmp_path, twice)


def test_same_tap_twice(tmp_path: Path) -> None:
    other = EXAMPLE.replace('"web1"', '"web2"').replace("203.0.113.11", "203.0.113.12")
    other = other.replace("2001:db8::11", "2001:db8::12")
    assert "vm[1].tap: tap tapweb1 is already used by vm[0] (web1)" in errors(
        tmp_path, EXAMPLE + other)


def test_unknown_owner_and_group(tmp_path: Path) -> None:
    text = EXAMPLE.replace('owner = "qemu"', 'owner = "nosuch"\ngroup = "nogroup-here"')
    msg = errors(tmp_path, text)
    assert ":4: vm[0].owner: no such user 'nosuch'" in msg
    assert ":5: vm[0].group: no such group 'nogroup-here'" in msg


def test_numeric_owner_and_root_tree(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(PASSWD)
    (tmp_path / "etc/group").write_text(GROUP)
    accounts = Accounts.from_root(tmp_path)
    entries, where = parse_vm_text(EXAMPLE.replace('"qemu"', "107"), "f.toml")
    (vm,) = resolve(entries, accounts, "f.toml", where)
    assert (vm.uid, vm.owner_name, vm.owner_gids) == (107, "qemu", (110, 120))
    assert Accounts.from_root("/").users["root"] == (0, 0)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VmConfigError, match="no such file"):
        load_vms(tmp_path / "nope.toml", ACCOUNTS)


def test_other_sections_are_left_to_other_loaders(tmp_path: Path) -> None:
    text = 'role = "server"\n[sysctl]\n"net.core.somaxconn" = 1024\n\n' + EXAMPLE
    (vm,) = load(tmp_path, text)
    assert vm.line == 5


def test_missing_key_names_it(tmp_path: Path) -> None:
    msg = errors(tmp_path, '\n[[vm]]\nname = "a"\nowner = "qemu"\n')
    assert msg.endswith(":2: vm[0].tap: missing (required: tap = ...)")
