"""The apply adapter for VM links (hostnet.state.vm_step), its pure parts: which planner
steps become which transaction steps, conflicts with the config's sysctls, the three-way
judgement of a journaled step against what the host shows now, and the doctor's VM part."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from hostnet.errors import PlanError
from hostnet.host.root import Root
from hostnet.model.vm import LinkSnapshot, Mode, ObservedAddress, ObservedLink, VmLink
from hostnet.observe.vm import observe_vm
from hostnet.state.steps import KINDS, SetSysctl
from hostnet.state.vm_step import VmLinkStep, _as_before, _left, _state, _undo_step, vm_steps
from hostnet.vm import steps as vs

ip = ipaddress.ip_address
VM = VmLink(name="web1", tap="tapweb1", uid=107, gid=None, mode=Mode.ROUTED, uplink="eth0",
            addresses=(ip("203.0.113.11"),))
ETH0 = ObservedLink("eth0", 2, "", True, True, 1500, proxy_arp=0)


def snap() -> LinkSnapshot:
    return LinkSnapshot("ns", {"eth0": ETH0}, (ObservedAddress("eth0", ip("203.0.113.2"), 24),),
                        (), (), 0, 0, 0)


def test_planner_steps_become_sysctl_first_and_link_steps() -> None:
    sysctls, links = vm_steps([VM], snap(), "ns", {})
    assert [type(s) for s in sysctls] == [SetSysctl]
    fwd = sysctls[0]
    assert isinstance(fwd, SetSysctl)
    assert (fwd.key, fwd.old, fwd.new, fwd.first) == ("net.ipv4.ip_forward", "0", "1", True)
    assert fwd.side_prefixes == ("net.ipv4.conf",)  # the kernel rewrites conf.*.forwarding
    assert [s.step.kind for s in links if isinstance(s, VmLinkStep)] == [
        "create-tap", "set-up", "add-address", "add-route", "add-proxy"]
    assert KINDS["vm-link"] is VmLinkStep
    change = links[0].change()
    assert (change["kind"], change["vm"], change["effect"]) == ("vm-link", "web1", "live")
    assert links[0].text() == "vm web1: create tap tapweb1 owner 107 flags tap,no_pi,vnet_hdr, " \
                              "persistent"


def test_a_sysctl_the_config_writes_too_is_left_to_it_and_a_clash_refused() -> None:
    sysctls, _ = vm_steps([VM], snap(), None, {"net.ipv4.ip_forward": "1"})
    assert sysctls == []
    with pytest.raises(PlanError, match="the config sets 0"):
        vm_steps([VM], snap(), None, {"net.ipv4.ip_forward": "0"})


def test_nothing_planned_when_everything_is_in_place() -> None:
    sysctls, links = vm_steps([VM], snap(), None, {})
    done = snap()
    # a second apply sees the links in place: build the snapshot the first one leaves
    from dataclasses import replace

    from hostnet.model.vm import ObservedRoute, ProxyEntry, TunInfo

    tun = TunInfo(tap=True, owner=107, group=None, pi=False, vnet_hdr=True,
                  multi_queue=False, persist=True)
    done = replace(done, links={**done.links, "tapweb1": ObservedLink(
        "tapweb1", 5, "tun", True, False, 1500, tun=tun)},
        addresses=(*done.addresses, ObservedAddress("tapweb1", ip("203.0.113.2"), 32)),
        routes=(ObservedRoute(ip("203.0.113.11"), 32, "tapweb1"),),
        proxies=(ProxyEntry(ip("203.0.113.11"), "eth0"),), ip_forward=1)
    assert len(sysctls) + len(links) == 6
    assert vm_steps([VM], done, None, {}) == ([], [])


ROUTE = vs.AddRoute("web1", "r", "203.0.113.11", 32, "tapweb1")
MOVED = vs.AddRoute("web1", "r", "203.0.113.11", 32, "tapweb1", old_link="eth1")
TAP = vs.CreateTap("web1", "t", "tapweb1", 107, None, False, True)


@pytest.mark.parametrize(("step", "before", "now", "left", "as_before"), [
    (ROUTE, {"via": None}, {"via": "tapweb1"}, True, False),  # as apply left it: undo
    (ROUTE, {"via": None}, {"via": None}, False, True),  # already gone
    (ROUTE, {"via": None}, {"via": "keep0"}, False, False),  # re-pointed since: drift
    (MOVED, {"via": "eth1"}, {"via": "eth1"}, False, True),
    (TAP, {"exists": False}, {"exists": True, "tap": True, "owner": 107, "group": None},
     True, False),
    (TAP, {"exists": False}, {"exists": True, "tap": True, "owner": 0, "group": None},
     False, False),  # recreated by someone else with another owner: drift
    (TAP, {"exists": False}, {"exists": False}, False, True),
    # set up on a tap the apply created, killed before it ran: nothing to undo
    (vs.SetUp("web1", "u", "tapweb1"), {"exists": False},
     {"exists": True, "mtu": 1500, "master": None, "up": False}, False, True),
    (vs.SetMtu("web1", "m", "eth0", 9000, 1500), {"exists": True, "mtu": 1500},
     {"exists": True, "mtu": 1400, "master": None, "up": True}, False, False),
])
def test_three_way(step: vs.Step, before: dict[str, object], now: dict[str, object],
                   left: bool, as_before: bool) -> None:
    assert _left(step, now) is left
    assert _as_before(step, before, now) is as_before


def test_undo_steps() -> None:
    assert isinstance(_undo_step(ROUTE, {"via": "tapweb1"}), vs.DelRoute)
    forced = _undo_step(ROUTE, {"via": "keep0"})
    assert isinstance(forced, vs.DelRoute) and forced.link == "keep0"
    back = _undo_step(MOVED, {"via": "tapweb1"})
    assert isinstance(back, vs.AddRoute) and back.link == "eth1"
    assert isinstance(_undo_step(TAP, {}), vs.DeleteLink)
    assert _state(TAP, snap()) == {"exists": False}


def test_a_snapshot_without_the_vm_reads_is_a_note(tmp_path: Path) -> None:
    """A tree or an older hostnet's snapshot has no 'ip -j' output: the VM checks are not run
    (a note says why), they do not judge an empty namespace."""
    (tmp_path / "proc/sys").mkdir(parents=True)
    (tmp_path / "etc/hostnet").mkdir(parents=True)
    (tmp_path / "etc/hostnet/hostnet.toml").write_text(
        '[[vm]]\nname = "a"\ntap = "tapa"\nowner = 0\nuplink = "eth0"\n'
        'addresses = ["203.0.113.5"]\n')
    notes: list[str] = []
    assert observe_vm(Root(tmp_path), None, notes) is None
    assert notes and notes[0].startswith("VM checks not run: the snapshot has no 'ip -j")


def test_no_vm_part_without_vms(tmp_path: Path) -> None:
    cfg = tmp_path / "hostnet.toml"
    cfg.write_text('role = "server"\n')
    notes: list[str] = []
    assert observe_vm(Root("/"), cfg, notes) is None and notes == []
    assert observe_vm(Root(tmp_path), None, notes) is None and notes == []


def test_a_broken_config_is_a_note_not_a_crash(tmp_path: Path) -> None:
    cfg = tmp_path / "hostnet.toml"
    cfg.write_text('[[vm]]\nname = "a"\ntap = "this-name-is-far-too-long"\nowner = 0\n')
    notes: list[str] = []
    assert observe_vm(Root("/"), cfg, notes) is None
    assert notes and notes[0].startswith("VM checks not run:")


def test_a_vm_belongs_where_its_tap_uplink_or_bridge_is() -> None:
    from dataclasses import replace

    from hostnet.observe.vm import belongs

    assert belongs(VM, snap())  # the uplink eth0 is here
    assert not belongs(replace(VM, uplink="wan9"), snap())  # another namespace's VM
    assert belongs(replace(VM, uplink="wan9", tap="eth0"), snap())


def test_files_only_apply_leaves_the_vms_out_with_a_warning(tmp_path: Path) -> None:
    from hostnet.config.load import parse
    from hostnet.state.plan import Plan
    from hostnet.state.vm_step import add_vm_steps

    text = ('[[vm]]\nname = "a"\ntap = "tapa"\nowner = 0\nuplink = "eth0"\n'
            'addresses = ["203.0.113.5"]\n')
    cfg = tmp_path / "hostnet.toml"
    cfg.write_text(text)
    plan = add_vm_steps(Plan(()), parse(text, str(cfg)), cfg, netns=None, live=False)
    assert plan.steps == () and "1 VM(s) left out" in plan.warnings[0]
    plain = parse('role = "server"\n', str(cfg))
    assert add_vm_steps(Plan(()), plain, cfg, netns=None, live=True) == Plan(())
