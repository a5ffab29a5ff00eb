"""The VM checks' sysctl fixes proven on the vm-host lab (tests/advice_proofs.toml), in the
style of tests/kernel/test_advice_proofs.py: make the problem real in the lab's host
namespace, run ``hostnet doctor --netns HOST --role vm-host --config F`` with a hostnet.toml
whose ``[[vm]]`` describes the lab's routed VM (203.0.113.50 behind vmr0, uplink eth0),
apply exactly the finding's suggestion, see the finding gone and the lab's traffic flowing.

The routed VM sits behind a veth (vmr0) rather than a tap, because a tap carries frames only
while a program holds it; the VM checks judge vmr0 like a tap (VM102 looks at tun devices
only, and owner root may always open /dev/net/tun, so VM101 stays quiet on any host).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import proofs
from tests.helpers.labs import Lab, VmHostLab, request, vm_host_lab
from tests.helpers.vm_lab import resolve

pytestmark = pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft")

HOSTNET = proofs.HOSTNET
CONFIG = '''
[[vm]]
name = "vm2"
tap = "vmr0"
owner = "root"
mode = "routed"
uplink = "eth0"
addresses = ["203.0.113.50"]
'''


@pytest.fixture(scope="module")
def _vmhost() -> Iterator[VmHostLab]:
    with vm_host_lab() as lab:
        yield lab


@pytest.fixture
def vmhost(_vmhost: VmHostLab) -> Iterator[VmHostLab]:
    try:
        yield _vmhost
    finally:
        _vmhost.restore()


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vm-proof") / "hostnet.toml"
    path.write_text(CONFIG)
    return path


def doctor(lab: Lab, config: Path) -> list[dict[str, Any]]:
    return proofs.doctor(lab, "--config", str(config), "--no-composition")


def prove(lab: Lab, config: Path, code: str) -> list[str]:
    return proofs.prove(lab, ["--config", str(config), "--no-composition"], code)


def test_healthy_vm_host_has_no_vm_findings(vmhost: VmHostLab, config: Path) -> None:
    assert not [f for f in doctor(vmhost, config) if f["code"].startswith("VM")]


def _arp_answered(lab: VmHostLab, address: str) -> bool:
    """Does the host answer the outside's ARP request for ``address`` (on-link from there)?"""
    inet = lab.internet
    assert inet is not None
    inet.run(["ip", "route", "replace", f"{address}/32", "dev", "eth0"])
    try:
        return "lladdr" in resolve(inet, address, timeout=3.5)
    finally:
        inet.run(["ip", "route", "del", f"{address}/32", "dev", "eth0"])
        inet.run(["ip", "neigh", "flush", "to", address], check=False)


def test_VM103_proxy_arp_on_the_uplink(vmhost: VmHostLab, config: Path) -> None:
    vmhost.set("net.ipv4.conf.eth0.proxy_arp", "1")
    # the problem is real: the host claims an address that is not a VM's (192.0.2.77 is only
    # routed, via br0), so the provider's network would send its traffic here
    assert _arp_answered(vmhost, "192.0.2.77")
    fixed = prove(vmhost, config, "VM103")
    assert fixed == ["net.ipv4.conf.eth0.proxy_arp = 0"]
    # after the fix only the VM's own proxy entry answers
    assert not _arp_answered(vmhost, "192.0.2.77")
    assert _arp_answered(vmhost, "203.0.113.50")


def test_VM105_forwarding_off_with_a_routed_vm(vmhost: VmHostLab, config: Path) -> None:
    assert vmhost.internet is not None
    vmhost.set("net.ipv4.ip_forward", "0")
    # the problem is real: the outside cannot reach the routed VM
    assert not request(vmhost.internet, "tcp", "203.0.113.50", 443, timeout=1.0).ok
    fixed = prove(vmhost, config, "VM105")
    assert fixed == ["net.ipv4.ip_forward = 1"]
    assert request(vmhost.internet, "tcp", "203.0.113.50", 443, timeout=5.0).ok


# -- fixes that are commands: `hostnet vm up NAME` (VM104), `ip link del TAP && hostnet vm up
# NAME` (VM102), run as suggested with the doctor's --config and --netns carried along ------

TAP_VM = '''
[[vm]]
name = "vm3"
tap = "tapvm3"
owner = "root"
mode = "routed"
uplink = "eth0"
addresses = ["203.0.113.60"]
'''


@pytest.fixture
def with_tap(vmhost: VmHostLab, tmp_path: Path) -> Iterator[tuple[VmHostLab, Path, Path]]:
    """The lab plus a second routed VM on a real tap, tapvm3, created by 'hostnet vm up'."""
    cfg = tmp_path / "hostnet.toml"
    cfg.write_text(CONFIG + TAP_VM)
    state = tmp_path / "state"
    try:
        yield vmhost, cfg, state
    finally:
        vm_cmd("down", "vm3", cfg, vmhost, state)
        vmhost.host.run(["ip", "link", "del", "tapvm3"], check=False)


def vm_cmd(verb: str, name: str, cfg: Path, lab: Lab, state: Path) -> None:
    proc = subprocess.run([str(HOSTNET), "vm", verb, name, "--config", str(cfg), "--netns",
                           lab.host.name, "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def run_suggestion(lab: Lab, suggestion: str, cfg: Path, state: Path) -> None:
    """Run a suggested command line: 'ip ...' inside the lab's host namespace, 'hostnet vm
    up NAME' with the config, namespace and state directory the doctor was given."""
    for part in suggestion.split("&&"):
        words = part.split()
        if words[:3] == ["hostnet", "vm", "up"] and len(words) == 4:
            vm_cmd("up", words[3], cfg, lab, state)
        elif words[:3] == ["ip", "link", "del"] and len(words) == 4:
            lab.host.run(words)
        else:
            raise AssertionError(f"not a command this proof runs: {part!r}")


def test_VM104_tap_gone_with_its_route(with_tap: tuple[VmHostLab, Path, Path]) -> None:
    lab, cfg, state = with_tap
    vm_cmd("up", "vm3", cfg, lab, state)
    assert not [f for f in doctor(lab, cfg) if f["code"].startswith("VM")]
    lab.host.run(["ip", "link", "del", "tapvm3"])  # the hypervisor dropped the tap
    found = [f for f in doctor(lab, cfg) if f["code"] == "VM104"]
    assert [f["key"] for f in found] == ["203.0.113.60"]
    assert found[0]["suggestion"] == "hostnet vm up vm3"
    run_suggestion(lab, found[0]["suggestion"], cfg, state)
    assert not [f for f in doctor(lab, cfg) if f["code"] == "VM104"]
    assert "203.0.113.60 dev tapvm3" in lab.host.run(["ip", "route"]).stdout
    lab.check()


def test_VM102_tap_owned_by_another_user(with_tap: tuple[VmHostLab, Path, Path]) -> None:
    lab, cfg, state = with_tap
    lab.host.run(["ip", "tuntap", "add", "dev", "tapvm3", "mode", "tap", "user", "nobody"])
    found = [f for f in doctor(lab, cfg) if f["code"] == "VM102"]
    assert [f["key"] for f in found] == ["tapvm3"]
    run_suggestion(lab, found[0]["suggestion"], cfg, state)
    assert not [f for f in doctor(lab, cfg) if f["code"] in ("VM102", "VM104")]
    data = json.loads(lab.host.run(["ip", "-j", "-d", "link", "show", "tapvm3"]).stdout)[0]
    assert data["linkinfo"]["info_data"]["user"] in ("root", 0)
    lab.check()
