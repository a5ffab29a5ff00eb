"""``hostnet collect`` snapshots: everything hostnet reads, in one .tar.gz (written by
hostnet.host.collect), and reading them back.

The archive mirrors the host's paths (proc/sys/..., etc/sysctl.d/...), keeps file modes (so
read-only keys stay read-only) and stores command output under .hostnet/commands/. Any
read-only command accepts it back with ``--root FILE.tar.gz``: the same readers then run on it.

``.hostnet/meta.json`` is written last and records the namespace collected, the user, what
could not be read and how many members come before it, so a truncated archive (no meta.json,
or fewer members) is refused instead of being analysed as a half-empty host. Archives are
unpacked member by member (not with ``extractall``, whose ``filter=`` needs Python 3.11.4):
absolute names, ``..``, links that leave the snapshot and device nodes are refused. An absolute
symlink target means a path on the collected host, so it is resolved inside the snapshot.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hostnet.errors import InputError
from hostnet.host.root import META_FILE, Root


def inside_link(rel: str, target: str) -> str:
    """A symlink target at ``rel`` made relative, so it resolves inside the snapshot (an
    absolute target names a path on the collected host, not on the one reading it)."""
    if not target.startswith("/"):
        return target
    parent = os.path.dirname(rel) or "."
    return os.path.relpath(os.path.normpath(target.lstrip("/")) or ".", parent)




# -- reading a snapshot back ---------------------------------------------------------------------

#: meta.json "format" written by this version (absent in snapshots of hostnet 0.1.0).
META_FORMAT = 1
#: Files every snapshot has: collect always writes them, and nothing can be judged without.
ESSENTIAL_FILES = ("proc/sys/kernel/osrelease", "proc/meminfo")
ESSENTIAL_DIRS = ("proc/sys/net",)
#: A tree without proc/sys may still be linted for its sysctl configuration (lint --system).
CONFIG_PLACES = ("etc/sysctl.conf", "etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d",
                 "usr/lib/sysctl.d", "lib/sysctl.d")
#: What --root accepts (shown in --help and the README).
ROOT_RULE = (
    "a .tar.gz from 'hostnet collect', a directory unpacked from one (it has "
    ".hostnet/meta.json), or a host tree with proc/sys (a fixture tree, a mounted disk)"
)
_CORRUPT = "the snapshot archive is truncated or corrupted; collect it again"


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """What ``.hostnet/meta.json`` says about a snapshot."""

    netns: str | None = None  # what 'collect --netns' was given
    uid: int | None = None  # who collected it
    members: int | None = None  # tar members before meta.json
    skipped: tuple[str, ...] = ()
    netns_inode: int | None = None  # that namespace's inode (names 'netns N' log lines)
    #: Named namespaces by inode when it was collected.
    namespace_names: tuple[tuple[int, str], ...] = ()
    time: float | None = None  # when it was collected (epoch seconds)
    #: The hostnet.toml given to 'collect --config' (stored as CONFIG_FILE), as the host
    #: named it; None: the host's own /etc/hostnet/hostnet.toml, if any, was stored.
    config: str | None = None


def _stamp(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


def read_meta(root: Root) -> SnapshotMeta | None:
    """The snapshot's metadata; None for a plain host tree (no meta.json).
    Raises InputError when meta.json is there but broken."""
    try:
        text = root.read_text(META_FILE)
    except OSError as exc:
        raise InputError(f"{root.path / META_FILE}: cannot read ({exc.strerror})") from None
    if text is None:
        return None
    where = root.path / META_FILE
    try:
        doc: Any = json.loads(text)
    except ValueError:
        raise InputError(f"{where}: not valid JSON; the snapshot is damaged") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("hostnet"), str):
        raise InputError(f"{where}: not a hostnet snapshot's metadata (no 'hostnet' version)")

    def get(key: str, kind: type) -> Any:
        value = doc.get(key)
        if value is not None and not isinstance(value, kind):
            raise InputError(f"{where}: {key!r} should be {kind.__name__}, not {value!r}")
        return value

    names = get("namespace_names", dict) or {}
    return SnapshotMeta(netns=get("netns", str), uid=get("uid", int),
                        members=get("members", int),
                        skipped=tuple(str(s) for s in get("skipped", list) or []),
                        netns_inode=get("netns_inode", int), time=_stamp(get("time", str)),
                        config=get("config", str),
                        namespace_names=tuple(sorted((int(k), str(v)) for k, v in names.items()
                                                     if str(k).isdigit())))


def check_tree(root: Root, shown: str, *, config_only: bool = False) -> SnapshotMeta | None:
    """Refuse what is neither a snapshot nor a host tree (see ROOT_RULE); the snapshot's
    metadata, or None for a host tree. ``config_only`` also accepts a tree that holds only
    sysctl configuration (lint --system reads nothing else)."""
    meta = read_meta(root)
    if meta is not None:
        missing = [rel for rel in ESSENTIAL_FILES if not root.file(rel).is_file()]
        missing += [rel + "/" for rel in ESSENTIAL_DIRS if not root.file(rel).is_dir()]
        if missing:
            raise InputError(f"{shown}: incomplete snapshot, missing {', '.join(missing)}; "
                             "collect it again")
        return meta
    if root.file("proc/sys").is_dir():
        return None
    if config_only and any(root.exists(rel) for rel in CONFIG_PLACES):
        return None
    raise InputError(f"{shown}: not a host tree or a snapshot (no proc/sys, no "
                     f"{META_FILE}); --root takes {ROOT_RULE}")


def _member_path(member: tarfile.TarInfo) -> str | None:
    """The member's path relative to the snapshot, or None for the top directory itself.
    Raises InputError for names that would land outside."""
    name = member.name
    if name.startswith("/") or "\x00" in name:
        raise InputError(f"refused: member {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InputError(f"refused: member {name!r} climbs out with '..'")
    return "/".join(parts) or None


def _inside(base: str, path: str) -> bool:
    return os.path.commonpath([base, path]) == base


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: str) -> None:
    src = tar.extractfile(member)
    if src is None:  # pragma: no cover - isreg() members always have data
        return
    if os.path.lexists(dest):
        os.unlink(dest)  # a later copy of the same member wins, as with tar
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "wb") as out, src:
        shutil.copyfileobj(src, out, 1 << 20)
    os.chmod(dest, member.mode & 0o777)  # no setuid/setgid/sticky from an archive


def unpack(path: str, dest: str) -> int:
    """Unpack the archive ``path`` into the empty directory ``dest`` safely (see the module
    docstring); the number of members before meta.json. Raises InputError."""
    base = os.path.realpath(dest)
    links: list[tuple[tarfile.TarInfo, str]] = []
    dirs: list[tuple[str, int]] = []
    members = 0
    current = ""
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile):
        raise InputError(f"{path}: not a snapshot (neither a directory nor a .tar.gz written "
                         "by 'hostnet collect')") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        with tar:
            for member in tar:
                current = member.name
                try:
                    rel = _member_path(member)
                except InputError as exc:
                    raise InputError(f"{path}: {exc.message}") from None
                if rel is None:
                    continue
                if rel != META_FILE:
                    members += 1
                target = os.path.join(base, rel)
                if member.isdir():
                    os.makedirs(target, 0o700, exist_ok=True)
                    dirs.append((target, member.mode & 0o777))
                    continue
                if member.issym() or member.islnk():
                    links.append((member, rel))
                    continue
                if not member.isreg():
                    kind = ("a device node" if member.ischr() or member.isblk() else
                            "a FIFO" if member.isfifo() else "not a regular file")
                    raise InputError(f"{path}: refused: member {member.name!r} is {kind}")
                os.makedirs(os.path.dirname(target), 0o700, exist_ok=True)
                _write_file(tar, member, target)
            # a damaged header ends tarfile's loop quietly: read the stream to its end so
            # gzip checks its CRC and length (a corrupt or cut archive raises here)
            assert tar.fileobj is not None
            while tar.fileobj.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile):
        raise InputError(f"{path}: {_CORRUPT}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot unpack member {current!r}: "
                         f"{exc.strerror or exc}") from None
    # links last: no file is ever written through one, and each must resolve inside
    for member, rel in links:
        try:
            _make_link(path, base, member, rel)
        except OSError as exc:  # e.g. a link over a directory of the same name
            raise InputError(f"{path}: refused: member {member.name!r}: "
                             f"{exc.strerror or exc}") from None
    for target, mode in reversed(dirs):
        os.chmod(target, mode | 0o700)  # keep it removable
    return members


def _make_link(path: str, base: str, member: tarfile.TarInfo, rel: str) -> None:
    where = os.path.join(base, rel)
    parent = os.path.dirname(where)
    os.makedirs(parent, 0o700, exist_ok=True)
    if not _inside(base, os.path.realpath(parent)):
        raise InputError(f"{path}: refused: member {member.name!r} lies behind a link that "
                         "points outside the snapshot")
    if os.path.lexists(where):
        os.unlink(where)
    if member.islnk():  # a hard link names another member
        try:
            other = _member_path(tarfile.TarInfo(member.linkname))
        except InputError:
            other = None
        source = os.path.realpath(os.path.join(base, other)) if other else ""
        if not other or not _inside(base, source) or not os.path.isfile(source):
            raise InputError(f"{path}: refused: hard link {member.name!r} -> "
                             f"{member.linkname!r} points outside the snapshot")
        os.link(source, where, follow_symlinks=False)
        return
    os.symlink(inside_link(rel, member.linkname), where)
    if not _inside(base, os.path.realpath(where)):
        os.unlink(where)
        raise InputError(f"{path}: refused: link {member.name!r} -> {member.linkname!r} "
                         "points outside the snapshot")


@contextmanager
def opened(path: str, *, config_only: bool = False) -> Iterator[Root]:
    """A Root over a host tree, an unpacked snapshot or a snapshot archive (unpacked into a
    temporary directory, removed afterwards). Refuses what is none of these (check_tree)."""
    p = Path(path)
    if p.is_dir():
        root = Root(p)
        check_tree(root, path, config_only=config_only)
        yield root
        return
    if not p.exists():
        raise InputError(f"{path}: no such file or directory; --root takes {ROOT_RULE}")
    if not p.is_file():
        raise InputError(f"{path}: not a regular file or a directory; --root takes {ROOT_RULE}")
    tmp = tempfile.mkdtemp(prefix="hostnet-root-")
    try:
        members = unpack(path, tmp)
        root = Root(tmp)
        meta = read_meta(root)
        if meta is None:
            raise InputError(f"{path}: not a hostnet snapshot ({META_FILE} is missing: the "
                             "archive is truncated or was not written by 'hostnet collect')")
        if meta.members is not None and meta.members != members:
            raise InputError(f"{path}: incomplete snapshot: {META_FILE} lists {meta.members} "
                             f"members, the archive holds {members}; collect it again")
        check_tree(root, path)
        yield root
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

