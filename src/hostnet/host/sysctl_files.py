"""Raw reads of the sysctl configuration directories under a Root: names, links, which
directories are the same, file texts. The precedence rules are in hostnet.sysctl.discovery."""

from __future__ import annotations

import os

from hostnet.errors import InputError
from hostnet.host.root import Root
from hostnet.model.sysctl_files import SYSCTL_CONF, SYSCTL_DIRS, DirEntry, SysctlDir, SysctlTree

#: Non-.conf files bigger than this are not read to see whether they hold settings.
PEEK_LIMIT = 64 << 10


def read_tree(root: Root) -> SysctlTree:
    dirs: list[SysctlDir] = []
    for rel in SYSCTL_DIRS:
        try:
            st = os.stat(root.file(rel))
        except OSError:
            dirs.append(SysctlDir(rel, None))
            continue
        entries: list[DirEntry] = []
        for name in root.listdir(rel):
            path = root.file(f"{rel}/{name}")
            link = os.readlink(path) if path.is_symlink() else None
            is_file = path.is_file()
            text = None
            if is_file and not name.endswith(".conf") and not name.startswith("."):
                text = _peek(path)
            entries.append(DirEntry(name, is_file, link, text))
        dirs.append(SysctlDir(rel, (st.st_dev, st.st_ino), tuple(entries)))
    try:
        conf = root.read_text(SYSCTL_CONF)
    except PermissionError:
        conf = None
    return SysctlTree(tuple(dirs), conf)


def _peek(path: os.PathLike[str]) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(PEEK_LIMIT)
    except OSError:
        return None


def read_config_file(path: str, shown: str | None = None) -> str:
    """The text of a sysctl file (undecodable bytes kept with surrogateescape)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputError(f"{shown or path}: no such file", hint="check the path") from None
    except IsADirectoryError:
        raise InputError(f"{shown or path}: is a directory") from None
    except PermissionError:
        raise InputError(f"{shown or path}: permission denied", hint="run as root") from None
    except OSError as exc:
        raise InputError(f"{shown or path}: {exc.strerror}") from None


def expand_paths(paths: tuple[str, ...]) -> list[str]:
    """Directories become their *.conf files in name order; '-' and files stay."""
    out: list[str] = []
    for p in paths:
        if p != "-" and os.path.isdir(p):
            out.extend(os.path.join(p, n) for n in sorted(os.listdir(p)) if n.endswith(".conf"))
        else:
            out.append(p)
    return out
