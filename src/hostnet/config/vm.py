"""The ``[[vm]]`` entries of hostnet.toml: typed schema (pydantic v2), loader with
file:line and dotted-path errors, and validation against accounts and the observed host.

Other top-level sections of the file belong to other loaders and are left alone here.
Import this module lazily (only the ``vm`` commands need pydantic).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hostnet.errors import InputError
from hostnet.model.vm import DEFAULT_GATEWAY6, Mode, VmLink

DEFAULT_CONFIG = "/etc/hostnet/hostnet.toml"
IFNAMSIZ = 16  # include/uapi/linux/if.h, counting the terminating NUL
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_VM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class VmConfigError(InputError):
    """The ``[[vm]]`` configuration is wrong; the message lists every problem found."""


def ifname_problem(name: str) -> str | None:
    """Why the kernel would refuse ``name`` as an interface name (dev_valid_name in
    net/core/dev.c), or None: non-empty, shorter than IFNAMSIZ bytes, not ``.`` or ``..``,
    no ``/``, ``:`` or whitespace."""
    if not name:
        return "an interface name cannot be empty"
    if len(name.encode()) >= IFNAMSIZ:
        return f"{name!r} is {len(name.encode())} bytes; the kernel allows at most {IFNAMSIZ - 1}"
    if name in (".", ".."):
        return f"{name!r} is not allowed as an interface name"
    bad = sorted({c for c in name if c in "/:" or c.isspace()})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return f"{name!r} contains {shown}, not allowed in interface names"
    return None


def _ifname(value: str) -> str:
    problem = ifname_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class VmEntry(BaseModel):
    """One ``[[vm]]`` table as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    tap: str
    owner: str | int
    group: str | int | None = None
    mode: Literal["routed", "nat", "bridge"] = "routed"
    uplink: str | None = None
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = Field(default_factory=list)
    gateway: ipaddress.IPv4Interface | None = None
    gateway6: ipaddress.IPv6Interface = DEFAULT_GATEWAY6
    multi_queue: bool = False
    queues: int | None = Field(default=None, ge=1, le=256)
    vnet_hdr: bool = True
    vhost: bool = True
    mtu: int | None = Field(default=None, ge=68, le=65535)
    bridge: str | None = None
    mac: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _VM_NAME.match(value):
            raise ValueError("a VM name: letters, digits, '_', '.', '-', at most 64, "
                             "starting with a letter or digit")
        return value

    @field_validator("tap", "uplink", "bridge")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return None if value is None else _ifname(value)

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _MAC.match(value):
            raise ValueError("a MAC address like 52:54:00:12:34:56")
        if int(value[:2], 16) & 1:
            raise ValueError("a unicast MAC address (the first octet must be even)")
        return value.lower()

    @model_validator(mode="after")
    def _mode_rules(self) -> VmEntry:
        if self.mode == "routed":
            if not self.uplink:
                raise ValueError('routed mode needs uplink = "IFACE" (where the provider '
                                 "delivers the VM's addresses)")
            if not self.addresses:
                raise ValueError("routed mode needs addresses = [...] (the VM's public addresses)")
            if self.gateway is not None and self.gateway.network.prefixlen != 32:
                raise ValueError("routed mode: gateway is a single address (it goes on the tap "
                                 "as /32)")
        if self.mode == "nat" and (self.gateway is None or self.gateway.network.prefixlen == 32):
            raise ValueError('nat mode needs gateway = "ADDRESS/PREFIX" (the tap\'s address on '
                             "the VM network)")
        if self.mode == "bridge":
            if not self.bridge:
                raise ValueError('bridge mode needs bridge = "BRIDGE"')
            if self.addresses:
                raise ValueError("bridge mode: the VM configures its own addresses; remove "
                                 "addresses")
        if self.queues is not None and self.queues > 1 and not self.multi_queue:
            raise ValueError("queues > 1 needs multi_queue = true")
        return self


class VmFile(BaseModel):
    """The part of hostnet.toml this loader reads."""

    model_config = ConfigDict(extra="allow")

    vm: list[VmEntry] = Field(default_factory=list)


# -- where things are in the file -------------------------------------------------------

_HEADER = re.compile(r"^\s*\[\[\s*vm\s*\]\]\s*(#.*)?$")
_TABLE = re.compile(r"^\s*\[")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


@dataclass
class Locator:
    """Line numbers of each ``[[vm]]`` table and of the keys inside it."""

    tables: list[int] = field(default_factory=list)
    keys: list[dict[str, int]] = field(default_factory=list)

    @classmethod
    def scan(cls, text: str) -> Locator:
        loc = cls()
        current: dict[str, int] | None = None
        for number, line in enumerate(text.splitlines(), 1):
            if _HEADER.match(line):
                loc.tables.append(number)
                current = {}
                loc.keys.append(current)
            elif _TABLE.match(line):
                current = None
            elif current is not None:
                m = _KEY.match(line)
                if m:
                    current.setdefault(m.group(1), number)
        return loc

    def line(self, index: int | None, key: str | None = None) -> int | None:
        if index is None or index >= len(self.tables):
            return self.tables[0] if self.tables and index is None else None
        if key is not None and key in self.keys[index]:
            return self.keys[index][key]
        return self.tables[index]


def dotted(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _problems(exc: ValidationError, path: str, where: Locator) -> list[str]:
    grouped: dict[tuple[int | str, ...], list[str]] = {}
    inputs: dict[tuple[int | str, ...], object] = {}
    for err in exc.errors():
        loc = [p for p in err["loc"] if isinstance(p, int | str)]
        if err["type"] == "extra_forbidden":
            parts = loc
            msg = f"unknown key (expected one of: {', '.join(VmEntry.model_fields)})"
        elif err["type"] == "missing":
            parts = loc
            msg = f"missing (required: {loc[-1]} = ...)"
        else:
            # union members show up as extra loc parts ("str", "int", ...): drop them
            parts = [p for p in loc if isinstance(p, int) or p in VmEntry.model_fields
                     or p == "vm"]
            msg = str(err["msg"]).removeprefix("Value error, ")
        key = tuple(parts)
        if msg not in grouped.setdefault(key, []):
            grouped[key].append(msg)
        inputs.setdefault(key, err.get("input"))
    out: list[str] = []
    for where_key, msgs in grouped.items():
        parts_t = where_key
        index = parts_t[1] if len(parts_t) > 1 and isinstance(parts_t[1], int) else None
        name = parts_t[2] if len(parts_t) > 2 and isinstance(parts_t[2], str) else None
        line = where.line(index, name)
        got = inputs[where_key]
        shown = f" (got {got!r})" if isinstance(got, str | int | float | bool) else ""
        text = " or ".join(msgs)
        if all(m.startswith("Input is not a valid IPv") for m in msgs):
            text = "expected an IP address (IPv4 or IPv6)" if len(msgs) > 1 else msgs[0]
        out.append(f"{path}:{line or 1}: {dotted(parts_t) or 'vm'}: {text}{shown}")
    return out


def parse_vm_text(text: str, path: str) -> tuple[list[VmEntry], Locator]:
    """Parse and check the ``[[vm]]`` tables of a TOML text (VmConfigError on any problem)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise VmConfigError(f"{path}: not valid TOML: {exc}",
                            hint="fix the syntax; see the [[vm]] example in the README") from None
    where = Locator.scan(text)
    try:
        model = VmFile.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc, path, where)
        raise VmConfigError("\n".join(problems), hint="fix the [[vm]] entries above") from None
    problems = duplicates(model.vm, path, where)
    if problems:
        raise VmConfigError("\n".join(problems), hint="each VM, tap and address once") from None
    return model.vm, where


def duplicates(entries: Sequence[VmEntry], path: str, where: Locator) -> list[str]:
    """Names, taps and addresses that appear more than once."""
    out: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for i, e in enumerate(entries):
        items = [("name", e.name), ("tap", e.tap)] + [("addresses", str(a)) for a in e.addresses]
        local: set[tuple[str, str]] = set()
        for key, value in items:
            ident = (key, value)
            line = where.line(i, key) or 1
            if ident in local:
                out.append(f"{path}:{line}: vm[{i}].{key}: {value} is listed twice")
                continue
            local.add(ident)
            if ident in seen:
                what = "address" if key == "addresses" else key
                out.append(f"{path}:{line}: vm[{i}].{key}: {what} {value} is already used by "
                           f"vm[{seen[ident]}] ({entries[seen[ident]].name})")
            else:
                seen[ident] = i
    return out


# -- accounts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Accounts:
    """Users and groups: name -> (uid, primary gid), name -> gid, gid -> member names."""

    users: dict[str, tuple[int, int]]
    groups: dict[str, int]
    members: dict[int, frozenset[str]]

    @classmethod
    def from_text(cls, passwd: str, group: str) -> Accounts:
        users: dict[str, tuple[int, int]] = {}
        for line in passwd.splitlines():
            f = line.split(":")
            if len(f) >= 4 and f[2].isdigit() and f[3].isdigit():
                users.setdefault(f[0], (int(f[2]), int(f[3])))
        groups: dict[str, int] = {}
        members: dict[int, frozenset[str]] = {}
        for line in group.splitlines():
            f = line.split(":")
            if len(f) >= 4 and f[2].isdigit():
                groups.setdefault(f[0], int(f[2]))
                members[int(f[2])] = frozenset(m for m in f[3].split(",") if m)
        return cls(users, groups, members)

    @classmethod
    def from_root(cls, root: str | Path = "/") -> Accounts:
        """The account database of a root tree: NSS (pwd/grp) for ``/``, else its etc/ files."""
        if Path(root) == Path("/"):
            import grp
            import pwd

            return cls({p.pw_name: (p.pw_uid, p.pw_gid) for p in pwd.getpwall()},
                       {g.gr_name: g.gr_gid for g in grp.getgrall()},
                       {g.gr_gid: frozenset(g.gr_mem) for g in grp.getgrall()})
        def read(rel: str) -> str:
            try:
                return (Path(root) / rel).read_text(encoding="utf-8", errors="replace")
            except OSError:
                return ""
        return cls.from_text(read("etc/passwd"), read("etc/group"))

    def gids_of(self, user: str, primary: int) -> tuple[int, ...]:
        extra = sorted(g for g, names in self.members.items() if user in names)
        return tuple(dict.fromkeys([primary, *extra]))


def resolve(entries: Sequence[VmEntry], accounts: Accounts, path: str,
            where: Locator) -> list[VmLink]:
    """Typed VM links with numeric owner and group (VmConfigError naming each unknown one)."""
    out: list[VmLink] = []
    problems: list[str] = []
    for i, e in enumerate(entries):
        uid, primary, owner_name = _user(e.owner, accounts)
        if uid is None:
            problems.append(f"{path}:{where.line(i, 'owner') or 1}: vm[{i}].owner: no such user "
                            f"{e.owner!r} (expected a user name from /etc/passwd or a uid)")
        gid: int | None = primary if e.group is None else None
        group_name = ""
        if e.group is not None:
            gid, group_name = _group(e.group, accounts)
            if gid is None:
                problems.append(f"{path}:{where.line(i, 'group') or 1}: vm[{i}].group: no such "
                                f"group {e.group!r} (expected a group name or a gid)")
        if uid is None or (e.group is not None and gid is None):
            continue
        gids = accounts.gids_of(owner_name, primary) if primary is not None else ()
        queues = (e.queues or 2) if e.multi_queue else 1
        out.append(VmLink(
            name=e.name, tap=e.tap, uid=uid, gid=gid if e.group is not None else None,
            mode=Mode(e.mode), uplink=e.uplink, addresses=tuple(e.addresses),
            gateway=e.gateway, gateway6=e.gateway6, multi_queue=e.multi_queue, queues=queues,
            vnet_hdr=e.vnet_hdr, vhost=e.vhost, mtu=e.mtu, bridge=e.bridge, mac=e.mac,
            owner_name=owner_name, group_name=group_name, owner_gids=gids, source=path,
            line=where.line(i)))
    if problems:
        raise VmConfigError("\n".join(problems),
                            hint="create the user/group first or fix owner/group")
    return out


def _user(owner: str | int, accounts: Accounts) -> tuple[int | None, int | None, str]:
    if isinstance(owner, int):
        for name, (uid, gid) in accounts.users.items():
            if uid == owner:
                return uid, gid, name
        return (owner, None, str(owner)) if owner >= 0 else (None, None, "")
    found = accounts.users.get(owner)
    return (found[0], found[1], owner) if found else (None, None, owner)


def _group(group: str | int, accounts: Accounts) -> tuple[int | None, str]:
    if isinstance(group, int):
        name = next((n for n, g in accounts.groups.items() if g == group), str(group))
        return (group, name) if group >= 0 else (None, "")
    gid = accounts.groups.get(group)
    return gid, group


def load_vms(path: str | Path, accounts: Accounts | None = None) -> list[VmLink]:
    """Read ``path`` and return its VMs resolved (VmConfigError / InputError, exit 2)."""
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VmConfigError(f"{shown}: no such file",
                            hint=f"pass --config FILE (default {DEFAULT_CONFIG})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VmConfigError(f"{shown}: cannot read: {exc}") from None
    entries, where = parse_vm_text(text, shown)
    return resolve(entries, accounts or Accounts.from_root("/"), shown, where)
