"""The only writer of the host: sysctl writes in the current network namespace and atomic
writes of owned files under a root directory.

A transaction gets one :class:`HostIO`. ``live`` says whether /proc/sys may be written at all
(``--root DIR`` alone writes files only); ``files_root`` is where ``/etc/...`` paths land.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from hostnet.errors import StepFailed
from hostnet.model.keys import key_to_path, path_to_key


def norm(value: str | None) -> str | None:
    """A sysctl value as compared: whitespace runs (the kernel prints tabs) become one space."""
    return None if value is None else " ".join(value.split())


class HostIO:
    def __init__(self, files_root: str | os.PathLike[str] = "/", *, live: bool = True,
                 proc_root: str | os.PathLike[str] = "/") -> None:
        self.files_root = Path(files_root)
        self.proc_sys = Path(proc_root) / "proc/sys"
        self.live = live

    # -- sysctl ------------------------------------------------------------------------------
    def read_sysctl(self, key: str) -> str | None:
        try:
            with open(self.proc_sys / key_to_path(key), encoding="utf-8") as fh:
                return fh.read().rstrip("\n")
        except OSError:
            return None

    def sysctl_keys(self, prefix: str) -> list[str]:
        """Concrete keys below a dotted prefix (for journaling conf/* before ip_forward)."""
        base = self.proc_sys / key_to_path(prefix)
        out: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, self.proc_sys)
            for name in files:
                path = os.path.join(dirpath, name)
                if os.access(path, os.W_OK) and os.access(path, os.R_OK):
                    out.append(path_to_key(f"{rel}/{name}"))
        return sorted(out)

    def write_sysctl(self, key: str, value: str) -> None:
        if not self.live:
            raise StepFailed(f"{key}: live values are not written with --root alone")
        path = self.proc_sys / key_to_path(key)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StepFailed(f"{key}: no such key on this kernel") from None
        except PermissionError:
            raise StepFailed(f"{key}: read-only or not writable by this user") from None
        try:
            os.write(fd, value.encode())
        except OSError as exc:
            why = {errno.EINVAL: "the kernel refused the value",
                   errno.ENOENT: "the kernel knows no such value (a module not loaded?)",
                   errno.EPERM: "not permitted here",
                   errno.EACCES: "not permitted here"}.get(exc.errno or 0, exc.strerror)
            raise StepFailed(f"{key} = {value}: {why} ({errno.errorcode.get(exc.errno or 0)})") \
                from None
        finally:
            os.close(fd)

    # -- files -------------------------------------------------------------------------------
    def file_path(self, path: str) -> Path:
        return self.files_root / path.lstrip("/")

    def read_file(self, path: str) -> bytes | None:
        try:
            return self.file_path(path).read_bytes()
        except FileNotFoundError:
            return None

    def write_file(self, path: str, data: bytes | None, mode: int = 0o644) -> None:
        """Replace ``path`` atomically (temporary file, fsync, rename, fsync of the directory);
        ``None`` removes it. A full disk leaves the old file as it was."""
        target = self.file_path(path)
        try:
            if data is None:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
                fsync_dir(target.parent)
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, data, mode)
        except OSError as exc:
            raise StepFailed(f"{path}: {exc.strerror or exc} (under {self.files_root})") from None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(target: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``target`` so that a reader sees the old or the new bytes, never a part,
    even across a crash: temporary file in the same directory, fsync, rename, fsync the dir."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
