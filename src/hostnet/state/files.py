"""The files hostnet owns and their text (pure).

* ``/etc/sysctl.d/90-hostnet.conf``: every sysctl value of the config, each under a comment
  naming its reason; read at boot by systemd-sysctl and ``sysctl --system``.
* ``/etc/modprobe.d/hostnet.conf``: ``options nf_conntrack hashsize=N`` (the conntrack hash
  size at module load).

Both start with :data:`HEADER`; hostnet refuses to overwrite a file without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hostnet.model.facts import MODPROBE_FILE, SYSCTL_FILE

__all__ = ["HEADER", "MODPROBE_FILE", "SYSCTL_FILE", "Line", "owned"]

HEADER = "# Written by hostnet"


@dataclass(frozen=True, slots=True)
class Line:
    key: str
    value: str
    reason: str


def owned(data: bytes | None) -> bool:
    """True when the file is absent or carries hostnet's header."""
    return data is None or data.startswith(HEADER.encode())


def _head(source: str, what: str) -> list[str]:
    return [
        f"{HEADER} ('hostnet apply') from {source}: {what}.",
        "# Do not edit: change hostnet.toml and run 'hostnet apply'; 'hostnet rollback' undoes",
        "# the last apply.",
        "",
    ]


def _comment(reason: str) -> str:
    # one line; no trailing full stop (lint reads a comment ending in '.' as a split key)
    return "# " + " ".join(reason.split()).rstrip(".")


def sysctl_text(lines: list[Line], source: str) -> str:
    out = _head(source, "sysctl values set at boot")
    for line in lines:
        out += [_comment(line.reason), f"{line.key} = {line.value}", ""]
    if not lines:
        out.append("# (no values: the config sets none)")
    return "\n".join(out).rstrip("\n") + "\n"


def modprobe_text(hashsize: int, reason: str, source: str) -> str:
    out = _head(source, "module options")
    out += [_comment(reason), f"options nf_conntrack hashsize={hashsize}"]
    return "\n".join(out) + "\n"


def parse_sysctl_values(text: str) -> dict[str, str]:
    """key -> value of a sysctl.d file (what an owned file said before)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip().lstrip("-")] = value.strip()
    return out


def parse_hashsize(text: str) -> str | None:
    for raw in text.splitlines():
        parts = raw.split()
        if len(parts) >= 3 and parts[0] == "options" and parts[1] == "nf_conntrack":
            for opt in parts[2:]:
                if opt.startswith("hashsize="):
                    return opt.split("=", 1)[1]
    return None
