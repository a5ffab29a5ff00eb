"""Text of a commented starting ``hostnet.toml`` for a role, and of the ``doctor --fix-config``
snippet (pure: callers pass the role's expectations and the findings)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_\-]+(?:[./][A-Za-z0-9_\-@:+]+)+)\s*=\s*(\S.*?)\s*$")
CT_KEYS = {"net.netfilter.nf_conntrack_max": "max", "net.netfilter.nf_conntrack_buckets":
           "buckets"}


@dataclass(frozen=True, slots=True)
class RoleLine:
    """One expectation of the role, as the starter file lists it."""

    key: str
    wanted: str  # ">= 1"
    code: str


def toml_value(text: str) -> str:
    """A sysctl value as TOML: integers bare, the rest as a basic string."""
    if re.fullmatch(r"-?\d+", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_key(key: str) -> str:
    return '"' + key + '"'


def starter(role: str, why: str, expectations: Iterable[RoleLine]) -> str:
    routes = role in ("nat-router", "vm-host")
    lines = [
        "# hostnet.toml: the network state this host should have.",
        "# 'hostnet plan' shows what 'hostnet apply' would change; 'hostnet rollback' undoes an",
        "# apply. Over SSH use 'hostnet apply --confirm-within 120s' and confirm from a new",
        "# connection. Schema: 'hostnet config schema'.",
        "",
        f"# Role detected: {why}" if why else "# Role chosen on the command line.",
        f'role = "{role}"   # the role\'s values join the plan, each with its reason',
        "",
        "[sysctl]",
        "# key = value sets a value; { at_least = N } only ever raises it and",
        "# { at_most = N } only ever lowers it. Values the role already asks for:",
    ]
    for exp in expectations:
        lines.append(f"#   {exp.key} {exp.wanted}  ({exp.code})")
    lines += [
        '# "net.ipv4.ip_local_port_range" = "20000 60999"',
        '# "net.core.somaxconn" = { at_least = 8192 }',
        "",
        "[conntrack]",
        "# Table size from RAM and CPUs (\"auto\") or a number; buckets are set live and",
        "# persisted as 'options nf_conntrack hashsize=' in /etc/modprobe.d/hostnet.conf.",
        ('max = "auto"' if routes else '# max = "auto"'),
        ('buckets = "auto"' if routes else '# buckets = "auto"'),
        "",
        "[conntrack.timeouts]",
        "# Durations (\"1d\", \"5m\") or seconds.",
        ('tcp_established = "1d"   # the kernel keeps idle flows 5 days by default'
         if routes else '# tcp_established = "1d"'),
        "# udp = 30",
        "",
        "[ipv6]",
        "# enabled = false         # off on all, default and every interface; or a list of",
        "#                         # interfaces: enabled = [\"eth1\"]",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Fix:
    """A finding's suggestion that is a ``key = value`` line."""

    code: str
    message: str
    key: str
    value: str


def fixes(findings: Iterable[tuple[str, str, str | None]]) -> list[Fix]:
    """(code, message, suggestion) -> the key = value fixes, first per key."""
    out: dict[str, Fix] = {}
    for code, message, suggestion in findings:
        for line in (suggestion or "").splitlines():
            m = _ASSIGN.match(line)
            if m and "." in m.group(1) and m.group(1) not in out:
                out[m.group(1)] = Fix(code, message, m.group(1), m.group(2))
    return list(out.values())


def fix_config(findings: Iterable[tuple[str, str, str | None]]) -> str:
    """The fixes as a hostnet.toml snippet ([sysctl] and [conntrack] tables)."""
    found = fixes(findings)
    if not found:
        return "# hostnet doctor: no finding suggests a key = value fix.\n"
    ct: Mapping[str, Fix] = {CT_KEYS[f.key]: f for f in found if f.key in CT_KEYS}
    lines = ["# From 'hostnet doctor --fix-config': merge into /etc/hostnet/hostnet.toml,",
             "# then review with 'hostnet plan'."]
    plain = [f for f in found if f.key not in CT_KEYS]
    if plain:
        lines += ["", "[sysctl]"]
        for f in plain:
            lines += [f"# {f.code}: {_one_line(f.message)}",
                      f"{toml_key(f.key)} = {toml_value(f.value)}"]
    if ct:
        lines += ["", "[conntrack]"]
        for name, f in ct.items():
            lines += [f"# {f.code}: {_one_line(f.message)}", f"{name} = {toml_value(f.value)}"]
    return "\n".join(lines) + "\n"


def _one_line(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."
