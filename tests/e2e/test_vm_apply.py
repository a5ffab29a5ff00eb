"""``hostnet plan/apply/rollback`` with ``[[vm]]`` entries, on a throwaway namespace: apply
creates the tap, gateway address, /32 route, proxy entry and turns forwarding on, all in one
journaled generation; a second apply plans nothing; rollback removes exactly what apply
created (a link, address and proxy entry that were there before survive) and puts
forwarding back; drift (a route someone re-pointed) is left alone unless --force."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from tests.helpers.netns import Netns, bridge
from tests.helpers.vm_lab import WEB1_V4, hostnet, vm_host, wait_for


def _state(ns: Netns) -> dict[str, str]:
    def out(*cmd: str) -> str:
        return ns.run(list(cmd)).stdout.strip()

    return {"links": out("ip", "-br", "link"), "addrs": out("ip", "-br", "addr"),
            "routes": out("ip", "route"), "proxy": out("ip", "neigh", "show", "proxy"),
            "forward": ns.sysctl("net.ipv4.ip_forward")}


def _setup(netns: Callable[..., Netns], tmp_path: Path) -> tuple[Netns, list[str]]:
    lab = vm_host(netns, tmp_path, WEB1_V4, "va")
    ns = lab.host
    ns.sysctl("net.ipv4.ip_forward", "0")
    # what was there before apply: a bridge with an address, a proxy entry of its own
    bridge(ns, "keep0", addr="198.51.100.7/32")
    ns.run(["ip", "neigh", "add", "proxy", "203.0.113.99", "dev", "up0"])
    return ns, lab.common


def test_apply_creates_vm_links_and_rollback_removes_exactly_them(
        netns: Callable[..., Netns], tmp_path: Path) -> None:
    ns, common = _setup(netns, tmp_path)
    before = _state(ns)

    planned = hostnet("plan", *common, "--format", "json")
    assert planned.returncode == 0, planned.stderr
    changes = json.loads(planned.stdout)["changes"]
    assert changes[0]["kind"] == "sysctl" and changes[0]["key"] == "net.ipv4.ip_forward"
    kinds = [c["step"]["kind"] for c in changes if c["kind"] == "vm-link"]
    assert kinds == ["create-tap", "set-up", "add-address", "add-route", "add-proxy"]
    text = hostnet("plan", *common[:4]).stdout
    assert "vm web1: create tap tapweb1 owner 65534 group 65534" in text

    applied = hostnet("apply", *common, "--yes")
    assert applied.returncode == 0, applied.stderr
    assert "Applied generation 1: 6 change(s), all read back." in applied.stdout
    after = _state(ns)
    assert "tapweb1" in after["links"] and "203.0.113.2/32" in after["addrs"]
    assert "203.0.113.11 dev tapweb1" in after["routes"]
    assert "203.0.113.11 dev up0 proxy" in after["proxy"]
    assert after["forward"] == "1"
    tun = json.loads(ns.run(["ip", "-j", "-d", "link", "show", "tapweb1"]).stdout)[0]
    assert tun["linkinfo"]["info_data"]["type"] == "tap"

    again = hostnet("apply", *common, "--yes")
    assert again.returncode == 0, again.stderr
    assert "Nothing to do" in again.stdout
    journal = sorted((tmp_path / "state").rglob("*.json"))
    assert len([p for p in journal if p.parent.name != "vm"]) == 1  # no second generation

    back = hostnet("rollback", *common[2:], "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert _state(ns) == before  # keep0, its address and the foreign proxy entry survive


def test_rollback_leaves_a_repointed_route_alone_unless_forced(
        netns: Callable[..., Netns], tmp_path: Path) -> None:
    ns, common = _setup(netns, tmp_path)
    assert hostnet("apply", *common, "--yes").returncode == 0
    ns.run(["ip", "route", "replace", "203.0.113.11/32", "dev", "keep0"])  # someone else
    back = hostnet("rollback", *common[2:], "--yes")
    assert back.returncode == 1, back.stdout + back.stderr
    assert "drift" in (back.stdout + back.stderr).lower()
    assert "203.0.113.11 dev keep0" in ns.run(["ip", "route"]).stdout
    assert "tapweb1" not in ns.run(["ip", "-br", "link"]).stdout  # the rest was undone
    forced = hostnet("rollback", "1", *common[2:], "--yes", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "203.0.113.11" not in ns.run(["ip", "route"]).stdout


def test_a_failed_step_undoes_the_vm_links_already_made(
        netns: Callable[..., Netns], tmp_path: Path) -> None:
    ns, common = _setup(netns, tmp_path)
    before = _state(ns)
    env = {**os.environ, "HOSTNET_TEST_FAIL_AT_STEP": "4"}  # after the gateway address
    failed = hostnet("apply", *common, "--yes", env=env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "step 4 of 6" in failed.stderr and "nothing is left half-applied" in failed.stderr
    assert _state(ns) == before


def test_confirm_within_reverts_the_vm_links(netns: Callable[..., Netns],
                                             tmp_path: Path) -> None:
    ns, common = _setup(netns, tmp_path)
    before = _state(ns)
    applied = hostnet("apply", *common, "--yes", "--confirm-within", "2s")
    assert applied.returncode == 0, applied.stderr
    assert "tapweb1" in _state(ns)["links"]
    wait_for(lambda: _state(ns) == before, timeout=20, every=0.5)
    assert _state(ns) == before  # not confirmed: the armed revert removed the VM's links


def test_doctor_judges_the_applied_vm(netns: Callable[..., Netns], tmp_path: Path) -> None:
    ns, common = _setup(netns, tmp_path)
    cfg = ["--config", common[1], "--netns", ns.name]

    def codes() -> set[str]:
        proc = hostnet("doctor", *cfg, "--role", "vm-host", "--format", "json",
                       "--no-composition")
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr
        return {f["code"] for f in json.loads(proc.stdout)["findings"]
                if f["code"].startswith("VM")} - {"VM101"}  # /dev/net/tun is 0600 here

    assert codes() == {"VM104", "VM105"}  # before apply: no tap, no route, forwarding off
    assert hostnet("apply", *common, "--yes").returncode == 0
    assert codes() == set()
    ns.sysctl("net.ipv4.conf.up0.proxy_arp", "1")
    ns.sysctl("net.ipv4.ip_forward", "0")
    assert codes() == {"VM103", "VM105"}
    missing = hostnet("doctor", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_dual_stack_vm_and_a_killed_apply(netns: Callable[..., Netns], tmp_path: Path) -> None:
    ns, common = _setup(netns, tmp_path)
    cfg = Path(common[1])
    cfg.write_text(WEB1_V4.replace('["203.0.113.11"]', '["203.0.113.11", "2001:db8::11"]'))
    keys = ("net.ipv6.conf.all.forwarding", "net.ipv6.conf.up0.proxy_ndp",
            "net.ipv6.conf.up0.accept_ra", "net.ipv4.conf.up0.forwarding")

    def full() -> dict[str, str]:
        return {**_state(ns), **{k: ns.sysctl(k) for k in keys},
                "routes6": ns.run(["ip", "-6", "route"]).stdout.strip()}

    before = full()
    # killed right after the tap was made: the next run rolls the generation back first
    env = {**os.environ, "HOSTNET_TEST_KILL_AT_STEP": "5"}
    killed = hostnet("apply", *common, "--yes", env=env)
    assert killed.returncode == -9
    assert "tapweb1" in _state(ns)["links"]
    back = hostnet("rollback", *common[2:], "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert full() == before

    applied = hostnet("apply", *common, "--yes")
    assert applied.returncode == 0, applied.stderr
    assert "2001:db8::11 dev tapweb1" in ns.run(["ip", "-6", "route"]).stdout
    assert "2001:db8::11 dev up0 proxy" in ns.run(["ip", "-6", "neigh", "show", "proxy"]).stdout
    assert (ns.sysctl(keys[0]), ns.sysctl(keys[1])) == ("1", "1")
    assert "Nothing to do" in hostnet("apply", *common, "--yes").stdout
    assert hostnet("rollback", *common[2:], "--yes").returncode == 0
    assert full() == before
