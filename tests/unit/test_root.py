"""Root readers on fixture trees: the same code that reads the live host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hostnet.errors import InputError
from hostnet.host.root import Root, SysctlState
from hostnet.observe.kernel import count_cpu_list, observe_kernel, parse_kernel_version
from hostnet.sysctl.keys import key_to_path, normalize_key, path_to_key


def make_tree(tmp_path: Path) -> Root:
    files = {
        "proc/sys/kernel/osrelease": "5.10.0-28-amd64\n",
        "proc/sys/net/core/somaxconn": "4096\n",
        "proc/sys/net/ipv4/ip_local_port_range": "32768\t60999\n",
        "proc/sys/net/ipv4/conf/eth0.100/rp_filter": "2\n",
        "proc/meminfo": "MemTotal:       16303428 kB\nMemFree:  1 kB\nHugePages_Total: 0\n",
        "sys/devices/system/cpu/online": "0-3,8-11\n",
        "sys/module/nf_conntrack/parameters/hashsize": "65536\n",
        "sys/class/net/br0/bridge/stp_state": "0\n",
        "sys/class/net/tap0/tun_flags": "0x1002\n",
        "sys/class/net/veth1/uevent": "DEVTYPE=veth\nINTERFACE=veth1\n",
    }
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    ro = tmp_path / "proc/sys/net/netfilter/nf_conntrack_count"
    ro.parent.mkdir(parents=True)
    ro.write_text("12\n")
    ro.chmod(0o444)
    return Root(tmp_path)


def test_sysctl_reads(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    assert root.sysctl_value("net.core.somaxconn") == "4096"
    assert root.sysctl_int("net.core.somaxconn") == 4096
    assert root.sysctl_value("net.ipv4.ip_local_port_range") == "32768\t60999"
    assert root.sysctl("net.core.nope").state is SysctlState.MISSING
    # a VLAN interface name keeps its dot in the path; the key spells it with '/'
    assert root.sysctl_value("net.ipv4.conf.eth0/100.rp_filter") == "2"
    assert root.sysctl_writable("net.netfilter.nf_conntrack_count") is False
    assert root.sysctl_writable("net.core.somaxconn") is True
    assert "net.ipv4.conf.eth0/100.rp_filter" in root.sysctl_keys()
    assert root.sysctl_keys("net.netfilter") == ["net.netfilter.nf_conntrack_count"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_sysctl_denied(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    p = tmp_path / "proc/sys/net/core/somaxconn"
    p.chmod(0o200)
    assert root.sysctl("net.core.somaxconn").state is SysctlState.DENIED


def test_machine_facts(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    kernel = observe_kernel(root)
    assert kernel.version == (5, 10, 0)
    assert kernel.mem_total == 16303428 * 1024
    assert kernel.cpus == 8
    assert root.module_params("nf_conntrack") == {"hashsize": "65536"}
    assert root.interface_kind("br0") == "bridge"
    assert root.interface_kind("tap0") == "tun"
    assert root.interface_kind("veth1") == "veth"
    assert root.net_interfaces() == ["br0", "tap0", "veth1"]


def test_command_output_from_snapshot(tmp_path: Path) -> None:
    root = make_tree(tmp_path)
    (tmp_path / ".hostnet/commands").mkdir(parents=True)
    (tmp_path / ".hostnet/commands/dmesg.txt").write_text("hello\n")
    assert root.command_output("dmesg.txt", ["dmesg"]) == "hello\n"
    assert root.command_output("nft-ruleset.json", ["nft", "-j", "list", "ruleset"]) is None


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        Root(tmp_path / "missing")


@pytest.mark.parametrize(
    ("written", "canonical", "path"),
    [
        ("net.ipv4.ip_forward", "net.ipv4.ip_forward", "net/ipv4/ip_forward"),
        ("net/ipv4/ip_forward", "net.ipv4.ip_forward", "net/ipv4/ip_forward"),
        (
            "net.ipv4.conf.eth0/100.rp_filter",
            "net.ipv4.conf.eth0/100.rp_filter",
            "net/ipv4/conf/eth0.100/rp_filter",
        ),
        (
            "net/ipv4/conf/eth0.100/rp_filter",
            "net.ipv4.conf.eth0/100.rp_filter",
            "net/ipv4/conf/eth0.100/rp_filter",
        ),
        ("  kernel.pid_max ", "kernel.pid_max", "kernel/pid_max"),
    ],
)
def test_key_forms(written: str, canonical: str, path: str) -> None:
    assert normalize_key(written) == canonical
    assert key_to_path(written) == path
    assert path_to_key(path) == canonical


def test_versions_and_cpu_lists() -> None:
    assert parse_kernel_version("6.18.44-fc-v657") == (6, 18, 44)
    assert parse_kernel_version("4.9") == (4, 9, 0)
    assert parse_kernel_version("") == (0, 0, 0)
    assert count_cpu_list("0") == 1
    assert count_cpu_list("0-1") == 2
    assert count_cpu_list("0-3,8-11,16") == 9
