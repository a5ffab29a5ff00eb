"""The typed schema of ``hostnet.toml`` (top level: role, sysctl, conntrack, ipv6).

Values that take more than one shape (a number or ``"auto"``, seconds or ``"1d"``, a value or
``{ at_least = N }``) are validated by one function each, so an error says in one sentence what
was expected instead of listing every alternative. Every model forbids unknown keys; the loader
adds a did-you-mean from the model's field names.

To add a section: define its model in a module of its own and add one field to
:class:`HostnetConfig` (``nat: NatConfig | None = None``, ``vm: list[VmConfig] = []``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator

from hostnet.config.nat import NatSchema
from hostnet.config.vm import VmEntry

ROLES = ("server", "nat-router", "vm-host", "desktop")
INT_MAX = 2**31 - 1
#: The kernel refuses more buckets than this (nf_conntrack_hash_resize: INT_MAX / 8 heads).
BUCKETS_MAX = INT_MAX // 8
_KEY = re.compile(r"^[A-Za-z0-9_\-]+([./][A-Za-z0-9_\-@:+]+)+$")
_IFACE = re.compile(r"^[^\s/]{1,15}$")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+)\s*([a-z]*)\s*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def describe(value: Any) -> str:
    """A value as TOML would show it, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


class Bound(Strict):
    """``{ at_least = N }`` only ever raises, ``{ at_most = N }`` only ever lowers."""

    at_least: int | None = None
    at_most: int | None = None

    def clamp(self, current: int) -> int:
        value = current
        if self.at_least is not None and value < self.at_least:
            value = self.at_least
        if self.at_most is not None and value > self.at_most:
            value = self.at_most
        return value

    def text(self) -> str:
        parts = []
        if self.at_least is not None:
            parts.append(f"at_least = {self.at_least}")
        if self.at_most is not None:
            parts.append(f"at_most = {self.at_most}")
        return "{ " + ", ".join(parts) + " }"


def _sysctl_value(value: Any) -> int | str | Bound:
    if isinstance(value, bool):
        raise ValueError(f"expected a number or a string (write 1 or 0), got {describe(value)}")
    if isinstance(value, int | str):
        return value
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"at_least", "at_most"})
        if unknown:
            raise ValueError(f"unknown bound {unknown[0]!r}: expected at_least or at_most")
        if not value:
            raise ValueError("empty table: expected { at_least = N } or { at_most = N }")
        for name, bound in value.items():
            if isinstance(bound, bool) or not isinstance(bound, int):
                raise ValueError(f"{name}: expected an integer, got {describe(bound)}")
        bound_model = Bound(**value)
        if (bound_model.at_least is not None and bound_model.at_most is not None
                and bound_model.at_least > bound_model.at_most):
            raise ValueError("at_least is above at_most")
        return bound_model
    raise ValueError(
        "expected a number, a string or { at_least = N } / { at_most = N }, "
        f"got {describe(value)}")


def _key_name(value: Any) -> str:
    if not isinstance(value, str) or not _KEY.match(value):
        raise ValueError(f"{describe(value)} is not a sysctl key name such as net.core.somaxconn")
    return value


def _auto_or(limit: int) -> Any:
    def check(value: Any) -> int | Literal["auto"]:
        if value == "auto":
            return "auto"
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f'expected "auto" or a number, got {describe(value)}')
        if not 1 <= value <= limit:
            raise ValueError(f"expected 1 to {limit} (the kernel refuses more), got {value}")
        return value

    return check


def parse_duration(value: Any) -> int:
    """Seconds from a number or a string such as ``"30"``, ``"90s"``, ``"5m"``, ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected seconds or a duration such as \"1d\", got {describe(value)}")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and (m := _DURATION.match(value.lower())):
        unit = m.group(2) or "s"
        if unit not in _UNITS:
            raise ValueError(f"{describe(value)}: unknown unit {unit!r} (s, m, h, d, w)")
        seconds = int(m.group(1)) * _UNITS[unit]
    else:
        raise ValueError(f"expected seconds or a duration such as \"1d\", got {describe(value)}")
    if not 1 <= seconds <= INT_MAX // 1000:
        raise ValueError(f"{describe(value)}: expected 1 s to {INT_MAX // 1000} s")
    return seconds


def _ipv6_enabled(value: Any) -> bool | tuple[str, ...]:
    if isinstance(value, bool):
        return value
    if isinstance(value, list):
        for name in value:
            if not isinstance(name, str) or not _IFACE.match(name):
                raise ValueError(f"{describe(name)} is not an interface name")
        return tuple(value)
    raise ValueError(
        f"expected true, false or a list of interfaces to disable IPv6 on, got {describe(value)}")


SysctlKey = Annotated[str, PlainValidator(_key_name, json_schema_input_type=str)]
SysctlValue = Annotated[
    int | str | Bound, PlainValidator(_sysctl_value, json_schema_input_type=int | str | Bound)]
ConntrackMax = Annotated[
    int | Literal["auto"],
    PlainValidator(_auto_or(INT_MAX), json_schema_input_type=Annotated[
        int, Field(ge=1, le=INT_MAX)] | Literal["auto"])]
ConntrackBuckets = Annotated[
    int | Literal["auto"],
    PlainValidator(_auto_or(BUCKETS_MAX), json_schema_input_type=Annotated[
        int, Field(ge=1, le=BUCKETS_MAX)] | Literal["auto"])]
Duration = Annotated[int, PlainValidator(parse_duration, json_schema_input_type=int | str)]
Ipv6Enabled = Annotated[
    bool | tuple[str, ...], PlainValidator(_ipv6_enabled, json_schema_input_type=bool | list[str])]

#: [conntrack.timeouts] name -> sysctl key.
TIMEOUT_KEYS: dict[str, str] = {
    **{f"tcp_{s}": f"net.netfilter.nf_conntrack_tcp_timeout_{s}" for s in (
        "syn_sent", "syn_recv", "established", "fin_wait", "close_wait", "last_ack",
        "time_wait", "close", "max_retrans", "unacknowledged")},
    "udp": "net.netfilter.nf_conntrack_udp_timeout",
    "udp_stream": "net.netfilter.nf_conntrack_udp_timeout_stream",
    "icmp": "net.netfilter.nf_conntrack_icmp_timeout",
    "icmpv6": "net.netfilter.nf_conntrack_icmpv6_timeout",
    "generic": "net.netfilter.nf_conntrack_generic_timeout",
}


class Timeouts(Strict):
    """Conntrack timeouts, in seconds or as durations (``"1d"``)."""

    tcp_syn_sent: Duration | None = None
    tcp_syn_recv: Duration | None = None
    tcp_established: Duration | None = None
    tcp_fin_wait: Duration | None = None
    tcp_close_wait: Duration | None = None
    tcp_last_ack: Duration | None = None
    tcp_time_wait: Duration | None = None
    tcp_close: Duration | None = None
    tcp_max_retrans: Duration | None = None
    tcp_unacknowledged: Duration | None = None
    udp: Duration | None = None
    udp_stream: Duration | None = None
    icmp: Duration | None = None
    icmpv6: Duration | None = None
    generic: Duration | None = None

    def keys(self) -> dict[str, tuple[str, int]]:
        """Config name -> (sysctl key, seconds) for the timeouts that are set."""
        out: dict[str, tuple[str, int]] = {}
        for name, key in TIMEOUT_KEYS.items():
            value = getattr(self, name)
            if value is not None:
                out[name] = (key, value)
        return out


class ConntrackConfig(Strict):
    """Table size: ``"auto"`` sizes from RAM, CPUs and the role; or a number."""

    max: ConntrackMax | None = None
    buckets: ConntrackBuckets | None = None
    timeouts: Timeouts | None = None


class Ipv6Config(Strict):
    """``enabled = false`` disables IPv6 on all, default and every interface; a list of
    interfaces disables it on those only; ``true`` enables it everywhere."""

    enabled: Ipv6Enabled | None = None


class HostnetConfig(Strict):
    """The whole of ``hostnet.toml``."""

    role: Literal["server", "nat-router", "vm-host", "desktop"] | None = Field(
        default=None, description="the role profile whose values join the plan")
    sysctl: dict[SysctlKey, SysctlValue] = Field(
        default_factory=dict,
        description="key = value, or { at_least = N } / { at_most = N }")
    conntrack: ConntrackConfig | None = None
    ipv6: Ipv6Config | None = None
    nat: NatSchema | None = Field(default=None, description="[nat]: see hostnet nat")
    vm: list[VmEntry] = Field(default_factory=list, description="[[vm]]: see hostnet vm")


def json_schema() -> dict[str, Any]:
    schema = HostnetConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "hostnet.toml"
    return schema
