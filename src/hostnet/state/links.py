"""Carry out VM link steps on the host (the only writer of VM links) and keep the record of
what hostnet created, so ``vm down`` removes exactly that.

Taps are not created over netlink: the writer opens /dev/net/tun inside the namespace,
TUNSETIFF (IFF_TAP|IFF_NO_PI, plus IFF_VNET_HDR and IFF_MULTI_QUEUE when asked), TUNSETOWNER,
TUNSETGROUP and TUNSETPERSIST. The ioctl numbers are computed per architecture here, because
pyroute2's table stops at a fixed list of machines (it has no riscv64, ppc64le or mips64).
Everything else goes through pyroute2. Each call that changes the kernel counts as one write.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import socket
import struct
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostnet.errors import HostnetError, InputError, PermissionDenied
from hostnet.host.netns import entered
from hostnet.model.vm import LinkSnapshot, VmLink
from hostnet.observe.links import NTF_PROXY, read_snapshot, route_socket
from hostnet.sysctl.keys import key_to_path
from hostnet.vm.planner import VmPlan, plan
from hostnet.vm.steps import (
    AddAddress,
    AddProxy,
    AddRoute,
    CreateTap,
    DelAddress,
    DeleteLink,
    DelProxy,
    DelRoute,
    SetMaster,
    SetMtu,
    SetSysctl,
    SetUp,
    Step,
    step_from_dict,
)
from hostnet.vm.undo import merge_record, plan_down

TUN_DEVICE = "/dev/net/tun"
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_MULTI_QUEUE = 0x0002, 0x1000, 0x4000, 0x0100
IFA_F_NODAD = 0x02
RTPROT_STATIC, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 4, 253, 255
DEFAULT_STATE_DIR = "/var/lib/hostnet"
#: Machines whose ioctl encoding has a 3-bit direction field with _IOC_WRITE = 4 (and 13
#: size bits): powerpc, mips, sparc, alpha. Every other Linux port uses the generic one.
_IOC_WRITE_4 = ("ppc", "mips", "sparc", "alpha")


def _iow(nr: int, size: int = 4, machine: str | None = None) -> int:
    """``_IOW('T', nr, int)`` for this (or the given) machine."""
    arch = (machine or platform.machine()).lower()
    if arch.startswith(_IOC_WRITE_4):
        return (4 << 29) | (size << 16) | (ord("T") << 8) | nr
    return (1 << 30) | (size << 16) | (ord("T") << 8) | nr


def tun_ioctls(machine: str | None = None) -> dict[str, int]:
    return {"TUNSETIFF": _iow(202, machine=machine), "TUNSETPERSIST": _iow(203, machine=machine),
            "TUNSETOWNER": _iow(204, machine=machine), "TUNSETGROUP": _iow(206, machine=machine)}


class LinkStepError(HostnetError):
    """A step failed on the kernel; what was already done has been undone."""


def create_tap(name: str, uid: int, gid: int | None, *, multi_queue: bool, vnet_hdr: bool,
               device: str = TUN_DEVICE) -> None:
    """Create a persistent tap owned by ``uid``/``gid`` in the current namespace."""
    codes = tun_ioctls()
    flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
    flags |= IFF_MULTI_QUEUE if multi_queue else 0
    ifr = struct.pack("16sH22x", name.encode(), flags)
    fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, codes["TUNSETIFF"], ifr)
        fcntl.ioctl(fd, codes["TUNSETOWNER"], uid)
        if gid is not None:
            fcntl.ioctl(fd, codes["TUNSETGROUP"], gid)
        fcntl.ioctl(fd, codes["TUNSETPERSIST"], 1)
    finally:
        os.close(fd)


@dataclass
class LinkWriter:
    """Runs steps in one namespace through an open IPRoute; ``writes`` counts kernel
    changes (netlink requests, ioctls on /dev/net/tun, sysctl writes)."""

    ipr: Any
    netns: str | None
    writes: int = 0
    _index: dict[str, int] = field(default_factory=dict)

    def index(self, link: str) -> int:
        known = self._index.get(link)
        if known is not None:
            return known
        with entered(self.netns):
            try:
                found = socket.if_nametoindex(link)
            except OSError:
                raise LinkStepError(f"link {link} does not exist"
                                    + (f" in namespace {self.netns}" if self.netns else ""),
                                    ) from None
        self._index[link] = found
        return found

    def run(self, step: Step) -> None:
        try:
            self._run(step)
        except HostnetError:
            raise
        except PermissionError as exc:
            raise PermissionDenied(f"{step.describe()}: {exc.strerror}",
                                   hint="run as root (CAP_NET_ADMIN)") from None
        except OSError as exc:
            raise LinkStepError(f"{step.describe()}: {os.strerror(exc.errno or 0)}",
                                hint=_hint(step, exc.errno)) from None
        except Exception as exc:  # pyroute2's NetlinkError carries the errno in .code
            code = getattr(exc, "code", None)
            if not isinstance(code, int):
                raise
            raise LinkStepError(f"{step.describe()}: {os.strerror(code)}",
                                hint=_hint(step, code)) from None

    def _run(self, step: Step) -> None:
        ipr = self.ipr
        if isinstance(step, CreateTap):
            with entered(self.netns):
                create_tap(step.tap, step.uid, step.gid, multi_queue=step.multi_queue,
                           vnet_hdr=step.vnet_hdr)
                self._index[step.tap] = socket.if_nametoindex(step.tap)
        elif isinstance(step, DeleteLink):
            ipr.link("del", index=self.index(step.link))
            self._index.pop(step.link, None)
        elif isinstance(step, SetMtu):
            ipr.link("set", index=self.index(step.link), mtu=step.mtu)
        elif isinstance(step, SetMaster):
            master = self.index(step.master) if step.master else 0
            ipr.link("set", index=self.index(step.link), master=master)
        elif isinstance(step, SetUp):
            ipr.link("set", index=self.index(step.link), state="up" if step.up else "down")
        elif isinstance(step, AddAddress | DelAddress):
            extra = {"flags": IFA_F_NODAD} if ":" in step.address else {}
            ipr.addr("add" if isinstance(step, AddAddress) else "del",
                     index=self.index(step.link), address=step.address,
                     prefixlen=step.prefixlen, **extra)
        elif isinstance(step, AddRoute):
            ipr.route("replace" if step.old_link else "add", dst=f"{step.dst}/{step.prefixlen}",
                      oif=self.index(step.link), proto=RTPROT_STATIC, scope=RT_SCOPE_LINK)
        elif isinstance(step, DelRoute):
            # scope "nowhere" matches the route whatever its scope (as 'ip route del' does)
            ipr.route("del", dst=f"{step.dst}/{step.prefixlen}", oif=self.index(step.link),
                      scope=RT_SCOPE_NOWHERE)
        elif isinstance(step, AddProxy | DelProxy):
            ipr.neigh("add" if isinstance(step, AddProxy) else "del", dst=step.address,
                      ifindex=self.index(step.link), flags=NTF_PROXY,
                      family=10 if ":" in step.address else 2)
        elif isinstance(step, SetSysctl):
            with entered(self.netns), open("/proc/sys/" + key_to_path(step.key), "w",
                                           encoding="ascii") as f:
                f.write(str(step.new))
        else:  # pragma: no cover - every step type is handled above
            raise TypeError(f"unknown step {step!r}")
        self.writes += 1


def _hint(step: Step, code: int | None) -> str | None:
    if isinstance(step, CreateTap) and code == errno.ENOENT:
        return f"{TUN_DEVICE} is missing: load the tun driver (modprobe tun)"
    if isinstance(step, CreateTap) and code == errno.EBUSY:
        return f"{step.tap} is in use with other flags; stop the process holding it"
    if isinstance(step, CreateTap) and code == errno.EINVAL:
        return f"{step.tap} exists with different tap flags (multi_queue must match)"
    if code in (errno.EPERM, errno.EACCES):
        return "run as root (changing links needs CAP_NET_ADMIN)"
    if code == errno.EEXIST:
        return "someone else changed the same thing at the same time; run it again"
    return None


@dataclass
class ApplyResult:
    done: list[Step]
    writes: int


def apply_steps(steps: Sequence[Step], netns: str | None, *,
                on_start: Callable[[Step], None] | None = None, ipr: Any = None,
                indexes: dict[str, int] | None = None) -> ApplyResult:
    """Run ``steps`` in order; on the first failure undo the ones already done (newest
    first) and raise the failure. ``on_start`` sees each step before it runs. ``ipr``:
    an open pyroute2 socket in ``netns`` to reuse; ``indexes``: link name -> ifindex known
    from the snapshot the steps were planned on (saves a lookup per step)."""
    if ipr is None:
        with route_socket(netns) as own:
            return apply_steps(steps, netns, on_start=on_start, ipr=own, indexes=indexes)
    done: list[Step] = []
    writer = LinkWriter(ipr, netns, _index=dict(indexes or {}))
    try:
        for step in steps:
            if on_start is not None:
                on_start(step)
            writer.run(step)
            done.append(step)
    except HostnetError as exc:
        left = _rollback(writer, done)
        note = "; everything before it was undone" if not left else (
            "; could not undo: " + ", ".join(left))
        raise type(exc)(exc.message + note, hint=exc.hint) from None
    return ApplyResult(done, writer.writes)


def _rollback(writer: LinkWriter, done: Sequence[Step]) -> list[str]:
    left: list[str] = []
    for step in reversed(done):
        undo = step.undo()
        if undo is None:
            continue
        try:
            writer.run(undo)
        except HostnetError:
            left.append(undo.describe())
    return left


# -- the record of what hostnet created ------------------------------------------------


def boot_id() -> str | None:
    """This boot's random id (kernel/random/boot_id), None where it cannot be read."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip() or None
    except OSError:
        return None


class Records:
    """One JSON file per VM (and ``_host.json`` for shared sysctls) under
    ``STATE_DIR/vm/NETNS/``, written ahead of a VM's steps (see :func:`vm_up`) and
    replaced atomically (rename), so a killed process leaves a whole record.

    No fsync: everything recorded here (links, addresses, routes, proxy entries, live
    sysctls) is kernel state that a power loss or reboot takes away with the record's
    meaning, while a crash of the process keeps the page cache. For the same reason a
    record from an earlier boot (its ``boot_id`` differs) describes nothing that still
    exists and reads as empty: after a reboot the hypervisor's taps are not hostnet's."""

    HOST = "_host"

    def __init__(self, state_dir: str | os.PathLike[str], netns: str | None) -> None:
        self.dir = Path(state_dir) / "vm" / (netns or "_initial")

    def path(self, vm: str) -> Path:
        return self.dir / f"{vm or self.HOST}.json"

    def load(self, vm: str) -> list[Step]:
        path = self.path(vm)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("boot_id") not in (None, boot_id()):
                return []
            return [step_from_dict(d) for d in data["steps"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: unreadable record: {exc}",
                             hint="move the file away to forget what it recorded") from None

    def names(self) -> list[str]:
        try:
            return sorted(p.stem for p in self.dir.glob("*.json") if p.stem != self.HOST)
        except OSError:
            return []

    def save(self, vm: str, steps: Sequence[Step]) -> None:
        path = self.path(vm)
        if not steps:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = json.dumps({"version": 1, "vm": vm, "boot_id": boot_id(),
                           "steps": [s.to_dict() for s in steps]}, indent=1)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# -- up and down ---------------------------------------------------------------------


@dataclass
class UpResult:
    plan: VmPlan
    done: list[Step]
    writes: int


def vm_up(vms: Sequence[VmLink], netns: str | None, state_dir: str | os.PathLike[str], *,
          create_taps: bool = True, snap: LinkSnapshot | None = None,
          ipr: Any = None) -> UpResult:
    """Make ``vms`` match: read, plan, apply. Nothing is written (not even the record)
    when everything is in place.

    Recording: before a VM's first step its record gets the steps about to run (written
    ahead, so a killed process never leaves something created and unrecorded; ``down``
    undoes only what it finds still in place, so a step recorded but never run is
    skipped). After a failure, which undoes the steps already run, the records are put
    back as they were. A repair of things already recorded writes no record at all."""
    snap = read_snapshot(netns) if snap is None else snap
    plan_ = plan(vms, snap, create_taps=create_taps)
    if plan_.empty:
        return UpResult(plan_, [], 0)
    records = Records(state_dir, netns)
    before: dict[str, list[Step]] = {}
    by_vm: dict[str, list[Step]] = {}
    for step in plan_.steps:
        by_vm.setdefault(step.vm, []).append(step)

    def start(step: Step) -> None:
        if step.vm in before:
            return
        before[step.vm] = records.load(step.vm)
        ahead = merge_record(before[step.vm], by_vm[step.vm])
        if ahead != before[step.vm]:
            records.save(step.vm, ahead)

    indexes = {name: link.index for name, link in snap.links.items()}
    try:
        result = apply_steps(plan_.steps, netns, on_start=start, ipr=ipr, indexes=indexes)
    except HostnetError:
        for vm, steps in before.items():
            records.save(vm, steps)
        raise
    return UpResult(plan_, result.done, result.writes)


@dataclass
class DownResult:
    steps: list[Step]
    writes: int


def vm_down(name: str, netns: str | None, state_dir: str | os.PathLike[str]) -> DownResult:
    """Undo what hostnet recorded for VM ``name``; the shared sysctls go back only when no
    other VM's record is left in that namespace."""
    records = Records(state_dir, netns)
    record = records.load(name)
    snap = read_snapshot(netns)
    others = [n for n in records.names() if n != name]
    host = [] if others else records.load("")
    with entered(netns):
        sysctls = {s.key: _read_int(s.key) for s in host if isinstance(s, SetSysctl)}
    steps = plan_down(record, snap) + plan_down(host, snap, sysctls)
    result = apply_steps(steps, netns)
    records.save(name, [])
    if not others:
        records.save("", [])
    return DownResult(result.done, result.writes)


def _read_int(key: str) -> int | None:
    try:
        with open("/proc/sys/" + key_to_path(key), encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
