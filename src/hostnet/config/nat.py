"""The ``[nat]`` table of hostnet.toml: pydantic v2 schema and a loader with file:line errors.

The schema checks each field; :mod:`hostnet.config.nat_validate` checks the entries against
each other (overlaps, forwards that can never match, notrack on NAT traffic). Errors name the
file, the line and the dotted path (``nat.forward[2].port``) and say what was expected; the
CLI exits 2. Import this module lazily: pydantic is not needed for ``hostnet --help`` or ``lint``.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from hostnet.config.nat_validate import Problem, validate
from hostnet.errors import InputError
from hostnet.model import nat as m


def _ports(value: Any) -> m.PortRange:
    if isinstance(value, bool):
        raise ValueError("expected a port 1-65535 or a range like \"8000-8100\"")
    if isinstance(value, int):
        first = last = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*(-\s*\d+\s*)?", value):
        parts = [int(p) for p in value.split("-")]
        first, last = parts[0], parts[-1]
    else:
        raise ValueError(f"expected a port 1-65535 or a range like \"8000-8100\", got {value!r}")
    for port in (first, last):
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is out of range: expected 1-65535")
    if first > last:
        raise ValueError(f"range {first}-{last} is backwards: expected LOW-HIGH")
    return m.PortRange(first, last)


def _network(value: Any) -> m.IPNetwork:
    if not isinstance(value, str):
        raise ValueError(f"expected an address or network as a string, got {value!r}")
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError:
        try:
            ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise ValueError(f"expected an address or CIDR network, got {value!r}") from None
        raise ValueError(f"{value!r} has host bits set: expected a network address") from None


def _address(value: Any) -> m.IPAddress:
    if not isinstance(value, str):
        raise ValueError(f"expected an address as a string, got {value!r}")
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"expected an IPv4 or IPv6 address, got {value!r}") from None


def _target(value: Any) -> tuple[m.IPAddress, int | None]:
    """``ADDR``, ``ADDR:PORT``, ``IPV6`` or ``[IPV6]:PORT``."""
    hint = 'expected "ADDR" or "ADDR:PORT" (IPv6: "[ADDR]:PORT")'
    if not isinstance(value, str):
        raise ValueError(f"{hint}, got {value!r}")
    text = value.strip()
    port: int | None = None
    bracket = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text)
    if bracket:
        text, port_text = bracket.group(1), bracket.group(2)
        port = int(port_text) if port_text else None
    elif text.count(":") == 1:
        text, port_text = text.split(":")
        if not port_text.isdigit():
            raise ValueError(f"{hint}, got {value!r}")
        port = int(port_text)
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{hint}, got {value!r}") from None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range: expected 1-65535")
    return addr, port


Ports = Annotated[m.PortRange, BeforeValidator(_ports)]
Network = Annotated[m.IPNetwork, BeforeValidator(_network)]
Address = Annotated[m.IPAddress, BeforeValidator(_address)]
Target = Annotated[tuple[m.IPAddress, int | None], BeforeValidator(_target)]
Iface = Annotated[str, Field(min_length=1, max_length=15, pattern=r"^[^\s/]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True,
                              populate_by_name=True)


class MasqueradeSchema(_Strict):
    source: list[Network] = Field(min_length=1)
    out: Iface
    snat_to: Address | None = None


class ForwardSchema(_Strict):
    in_: Iface = Field(alias="in")
    proto: Literal["tcp", "udp"]
    port: Ports
    to: Target
    allow: list[Network] | None = None
    hairpin: bool = False


class OneToOneSchema(_Strict):
    public: Address
    private: Address
    arp: Literal["proxy", "none"] = "proxy"
    out: Iface | None = None


class NotrackSchema(_Strict):
    proto: Literal["tcp", "udp"]
    port: Ports


class NatSchema(_Strict):
    backend: Literal["nftables", "iptables"] = "nftables"
    masquerade: list[MasqueradeSchema] = []
    forward: list[ForwardSchema] = []
    one_to_one: list[OneToOneSchema] = []
    notrack: list[NotrackSchema] = []


@dataclass(frozen=True)
class LoadedNat:
    config: m.NatConfig
    warnings: tuple[Problem, ...]


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=")


def line_map(text: str) -> dict[str, int]:
    """Dotted paths (``nat.forward[1].port``) -> 1-based line, for tables and their keys."""
    lines: dict[str, int] = {}
    counters: dict[str, int] = {}
    current = ""
    for number, raw in enumerate(text.splitlines(), 1):
        header = _HEADER.match(raw)
        if header:
            name = ".".join(p.strip().strip("\"'") for p in header.group(2).split("."))
            if header.group(1) == "[[":
                index = counters.get(name, 0)
                counters[name] = index + 1
                current = f"{name}[{index}]"
            else:
                current = name
            lines.setdefault(current, number)
            continue
        key = _KEY.match(raw)
        if key:
            dotted = f"{current}.{key.group(1).strip(chr(34))}" if current else key.group(1)
            lines.setdefault(dotted, number)
    return lines


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = "nat"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{'in' if part == 'in_' else part}"
    return out


def _line_of(lines: dict[str, int], dotted: str) -> int:
    path = dotted
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return 0


def _message(err: Any) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown key: expected one of the documented keys (see 'hostnet nat --help')"
    if err["type"] == "missing":
        return "missing: this key is required"
    if err["type"] == "literal_error":
        return msg.replace("Input should be", "expected")
    return msg


def _origin(name: str, lines: dict[str, int], path: str) -> m.Origin:
    return m.Origin(name, _line_of(lines, path), path)


def build(schema: NatSchema, name: str, lines: dict[str, int]) -> m.NatConfig:
    """The typed configuration from a checked schema (``name``: file name for origins)."""
    return m.NatConfig(
        backend=m.Backend(schema.backend),
        masquerade=tuple(
            m.Masquerade(tuple(x.source), x.out, x.snat_to,
                         _origin(name, lines, f"nat.masquerade[{i}]"))
            for i, x in enumerate(schema.masquerade)
        ),
        forward=tuple(
            m.Forward(x.in_, m.Proto(x.proto), x.port, x.to[0], x.to[1],
                      None if x.allow is None else tuple(x.allow), x.hairpin,
                      _origin(name, lines, f"nat.forward[{i}]"))
            for i, x in enumerate(schema.forward)
        ),
        one_to_one=tuple(
            m.OneToOne(x.public, x.private, m.ArpMode(x.arp), x.out,
                       _origin(name, lines, f"nat.one_to_one[{i}]"))
            for i, x in enumerate(schema.one_to_one)
        ),
        notrack=tuple(
            m.Notrack(m.Proto(x.proto), x.port, _origin(name, lines, f"nat.notrack[{i}]"))
            for i, x in enumerate(schema.notrack)
        ),
        origin=_origin(name, lines, "nat"),
    )


def parse_nat(text: str, path: str = "hostnet.toml") -> LoadedNat:
    """Check the ``[nat]`` table of a TOML document; raise InputError naming file:line:path."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}",
                         hint="fix the syntax at the line and column named") from None
    section = doc.get("nat")
    if not isinstance(section, dict):
        raise InputError(f"{path}: no [nat] table",
                         hint="add a [nat] table (see 'hostnet nat compile --help')")
    lines = line_map(text)
    try:
        schema = NatSchema.model_validate(section)
    except ValidationError as exc:
        found = []
        for err in exc.errors():
            dotted = _dotted(tuple(err["loc"]))
            found.append(f"{path}:{_line_of(lines, dotted)}: {dotted}: {_message(err)}")
        raise InputError("\n".join(found), hint="fix the keys named above") from None
    return checked(schema, text, path, lines)


def checked(schema: NatSchema, text: str, path: str,
            lines: dict[str, int] | None = None) -> LoadedNat:
    """The typed configuration of an already validated schema (the ``[nat]`` of a loaded
    hostnet.toml), after the checks that span entries; raise InputError on errors."""
    lines = line_map(text) if lines is None else lines
    config = build(schema, Path(path).name, lines)
    problems = [replace(p, origin=replace(p.origin, line=_line_of(lines, p.origin.path)
                                          or p.origin.line)) for p in validate(config)]
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise InputError("\n".join(p.render(path) for p in errors),
                         hint="fix the entries named above") from None
    return LoadedNat(config, tuple(p for p in problems if p.severity != "error"))


def load_nat(path: str | Path) -> LoadedNat:
    """Read and check a file containing a ``[nat]`` table."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{file}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{file}: not UTF-8 text") from None
    return parse_nat(text, str(file))
