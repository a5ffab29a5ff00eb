"""Typed steps of a VM link plan. Each step says what it does (``describe``), how to undo it
(``undo``: the step that puts back what was there before, or None when nothing needs undoing)
and round-trips through JSON (``to_dict``/``step_from_dict``) so the record of what hostnet
created survives between ``up`` and ``down``.

Fields are plain strings and ints so records and the future journal stay readable.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Step:
    vm: str  # the VM this step serves ("" for shared host settings)
    reason: str

    kind: ClassVar[str] = ""

    def describe(self) -> str:
        raise NotImplementedError

    def undo(self) -> Step | None:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["kind"] = self.kind
        return out

    @property
    def target(self) -> tuple[str, ...]:
        """Identity of the thing the step touches (two steps with one target conflict)."""
        return (self.kind,)


@dataclass(frozen=True, slots=True)
class CreateTap(Step):
    tap: str
    uid: int
    gid: int | None
    multi_queue: bool
    vnet_hdr: bool

    kind: ClassVar[str] = "create-tap"

    def describe(self) -> str:
        flags = ["tap", "no_pi"] + ["vnet_hdr"] * self.vnet_hdr + ["multi_queue"] * self.multi_queue
        group = "" if self.gid is None else f" group {self.gid}"
        return f"create tap {self.tap} owner {self.uid}{group} flags {','.join(flags)}, persistent"

    def undo(self) -> Step | None:
        return DeleteLink(self.vm, f"undo: {self.reason}", self.tap)

    @property
    def target(self) -> tuple[str, ...]:
        return ("link", self.tap)


@dataclass(frozen=True, slots=True)
class DeleteLink(Step):
    link: str

    kind: ClassVar[str] = "delete-link"

    def describe(self) -> str:
        return f"delete link {self.link}"

    def undo(self) -> Step | None:
        return None  # a deleted tap is recreated by the plan, not by an undo

    @property
    def target(self) -> tuple[str, ...]:
        return ("link", self.link)


@dataclass(frozen=True, slots=True)
class SetMtu(Step):
    link: str
    mtu: int
    old: int

    kind: ClassVar[str] = "set-mtu"

    def describe(self) -> str:
        return f"set {self.link} mtu {self.mtu} (was {self.old})"

    def undo(self) -> Step | None:
        return SetMtu(self.vm, f"undo: {self.reason}", self.link, self.old, self.mtu)

    @property
    def target(self) -> tuple[str, ...]:
        return ("mtu", self.link)


@dataclass(frozen=True, slots=True)
class SetMaster(Step):
    link: str
    master: str | None
    old: str | None

    kind: ClassVar[str] = "set-master"

    def describe(self) -> str:
        return (f"attach {self.link} to bridge {self.master}" if self.master
                else f"detach {self.link} from bridge {self.old}")

    def undo(self) -> Step | None:
        return SetMaster(self.vm, f"undo: {self.reason}", self.link, self.old, self.master)

    @property
    def target(self) -> tuple[str, ...]:
        return ("master", self.link)


@dataclass(frozen=True, slots=True)
class SetUp(Step):
    link: str
    up: bool = True

    kind: ClassVar[str] = "set-up"

    def describe(self) -> str:
        return f"set {self.link} {'up' if self.up else 'down'}"

    def undo(self) -> Step | None:
        return SetUp(self.vm, f"undo: {self.reason}", self.link, not self.up)

    @property
    def target(self) -> tuple[str, ...]:
        return ("updown", self.link)


@dataclass(frozen=True, slots=True)
class AddAddress(Step):
    link: str
    address: str
    prefixlen: int

    kind: ClassVar[str] = "add-address"

    def describe(self) -> str:
        return f"add address {self.address}/{self.prefixlen} on {self.link}"

    def undo(self) -> Step | None:
        return DelAddress(self.vm, f"undo: {self.reason}", self.link, self.address,
                          self.prefixlen)

    @property
    def target(self) -> tuple[str, ...]:
        return ("address", self.link, self.address, str(self.prefixlen))


@dataclass(frozen=True, slots=True)
class DelAddress(Step):
    link: str
    address: str
    prefixlen: int

    kind: ClassVar[str] = "del-address"

    def describe(self) -> str:
        return f"delete address {self.address}/{self.prefixlen} from {self.link}"

    def undo(self) -> Step | None:
        return AddAddress(self.vm, f"undo: {self.reason}", self.link, self.address,
                          self.prefixlen)

    @property
    def target(self) -> tuple[str, ...]:
        return ("address", self.link, self.address, str(self.prefixlen))


@dataclass(frozen=True, slots=True)
class AddRoute(Step):
    """A host route (/32 or /128) to a VM address via its tap. ``old_link`` is the device
    the route used before when it pointed elsewhere (the step then replaces it)."""

    dst: str
    prefixlen: int
    link: str
    old_link: str | None = None

    kind: ClassVar[str] = "add-route"

    def describe(self) -> str:
        was = f" (was via {self.old_link})" if self.old_link else ""
        return f"route {self.dst}/{self.prefixlen} dev {self.link}{was}"

    def undo(self) -> Step | None:
        if self.old_link:
            return AddRoute(self.vm, f"undo: {self.reason}", self.dst, self.prefixlen,
                            self.old_link, self.link)
        return DelRoute(self.vm, f"undo: {self.reason}", self.dst, self.prefixlen, self.link)

    @property
    def target(self) -> tuple[str, ...]:
        return ("route", self.dst, str(self.prefixlen))


@dataclass(frozen=True, slots=True)
class DelRoute(Step):
    dst: str
    prefixlen: int
    link: str

    kind: ClassVar[str] = "del-route"

    def describe(self) -> str:
        return f"delete route {self.dst}/{self.prefixlen} dev {self.link}"

    def undo(self) -> Step | None:
        return AddRoute(self.vm, f"undo: {self.reason}", self.dst, self.prefixlen, self.link)

    @property
    def target(self) -> tuple[str, ...]:
        return ("route", self.dst, str(self.prefixlen))


@dataclass(frozen=True, slots=True)
class AddProxy(Step):
    """``ip neigh add proxy ADDRESS dev LINK``: answer ARP (IPv4) or neighbour solicitations
    (IPv6, with proxy_ndp on LINK) for exactly this address."""

    address: str
    link: str

    kind: ClassVar[str] = "add-proxy"

    def describe(self) -> str:
        return f"proxy neighbour {self.address} on {self.link}"

    def undo(self) -> Step | None:
        return DelProxy(self.vm, f"undo: {self.reason}", self.address, self.link)

    @property
    def target(self) -> tuple[str, ...]:
        return ("proxy", self.address, self.link)


@dataclass(frozen=True, slots=True)
class DelProxy(Step):
    address: str
    link: str

    kind: ClassVar[str] = "del-proxy"

    def describe(self) -> str:
        return f"delete proxy neighbour {self.address} on {self.link}"

    def undo(self) -> Step | None:
        return AddProxy(self.vm, f"undo: {self.reason}", self.address, self.link)

    @property
    def target(self) -> tuple[str, ...]:
        return ("proxy", self.address, self.link)


@dataclass(frozen=True, slots=True)
class SetSysctl(Step):
    """A live sysctl in the VM host's namespace (``net.ipv4.ip_forward``,
    ``net.ipv6.conf.eth0.proxy_ndp``); ``old`` is the value read when planning."""

    key: str
    new: int
    old: int | None

    kind: ClassVar[str] = "sysctl"

    def describe(self) -> str:
        return f"sysctl {self.key} = {self.new} (was {self.old})"

    def undo(self) -> Step | None:
        if self.old is None:
            return None
        return SetSysctl(self.vm, f"undo: {self.reason}", self.key, self.old, self.new)

    @property
    def target(self) -> tuple[str, ...]:
        return ("sysctl", self.key)


STEP_TYPES: dict[str, type[Step]] = {
    t.kind: t for t in (CreateTap, DeleteLink, SetMtu, SetMaster, SetUp, AddAddress, DelAddress,
                        AddRoute, DelRoute, AddProxy, DelProxy, SetSysctl)
}


def step_from_dict(data: dict[str, Any]) -> Step:
    """The step a record line describes (ValueError on an unknown kind or fields)."""
    values = dict(data)
    kind = values.pop("kind", None)
    cls = STEP_TYPES.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown step kind {kind!r}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"bad {kind} step: {exc}") from None
