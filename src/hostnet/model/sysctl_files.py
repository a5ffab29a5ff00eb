"""The sysctl configuration directories as read raw from a root (names, links, texts)."""

from __future__ import annotations

from dataclasses import dataclass

SYSCTL_DIRS = (
    "etc/sysctl.d",
    "run/sysctl.d",
    "usr/local/lib/sysctl.d",
    "usr/lib/sysctl.d",
    "lib/sysctl.d",
)
SYSCTL_CONF = "etc/sysctl.conf"


@dataclass(frozen=True, slots=True)
class DirEntry:
    name: str
    is_file: bool  # a regular file (after following links)
    link: str | None  # readlink() of a symbolic link, else None
    text: str | None = None  # contents, read only for names that do not end in .conf


@dataclass(frozen=True, slots=True)
class SysctlDir:
    rel: str  # "etc/sysctl.d"
    ident: tuple[int, int] | None  # (st_dev, st_ino); None when the directory is missing
    entries: tuple[DirEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class SysctlTree:
    dirs: tuple[SysctlDir, ...]
    sysctl_conf: str | None  # text of /etc/sysctl.conf, None when absent
