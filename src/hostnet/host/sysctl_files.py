"""Find the sysctl files the host reads at boot, in the order they are applied."""

from __future__ import annotations

import os
from dataclasses import dataclass

from hostnet.host.root import Root
from hostnet.sysctl import rules as R
from hostnet.sysctl.lint import FileNote

#: systemd-sysctl's directories, highest priority first (a name in an earlier directory hides
#: the same name in a later one). procps' ``sysctl --system`` reads the same set.
SYSCTL_DIRS = (
    "etc/sysctl.d",
    "run/sysctl.d",
    "usr/local/lib/sysctl.d",
    "usr/lib/sysctl.d",
    "lib/sysctl.d",
)
SYSCTL_CONF = "etc/sysctl.conf"


@dataclass(frozen=True, slots=True)
class SysctlSource:
    path: str  # as the host names it: /etc/sysctl.d/99-x.conf
    real: str  # the file to read under the root


def _same_dir_key(root: Root, rel: str) -> tuple[int, int] | None:
    try:
        st = os.stat(root.file(rel))
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def system_sources(root: Root) -> tuple[list[SysctlSource], list[FileNote]]:
    """Files in application order (later wins) and notes about files nothing reads."""
    chosen: dict[str, str] = {}  # file name -> dir it is taken from
    notes: list[FileNote] = []
    seen_dirs: set[tuple[int, int]] = set()
    for d in SYSCTL_DIRS:
        ident = _same_dir_key(root, d)
        if ident is None or ident in seen_dirs:
            continue  # missing, or the same directory again (/lib -> /usr/lib)
        seen_dirs.add(ident)
        for name in root.listdir(d):
            full = f"/{d}/{name}"
            if not name.endswith(".conf"):
                if _looks_like_settings(root, f"{d}/{name}"):
                    notes.append(
                        FileNote(
                            R.FILE_NOT_READ,
                            full,
                            "only files ending in .conf are read from sysctl.d; "
                            "this one is ignored",
                            suggestion=f"rename it to {name.rsplit('.', 1)[0]}.conf"
                            if "." in name
                            else f"rename it to {name}.conf",
                        )
                    )
                continue
            if name in chosen:
                notes.append(
                    FileNote(
                        R.MASKED_FILE,
                        full,
                        f"/{chosen[name]}/{name} has the same name and a higher priority, so this "
                        "file is never read",
                    )
                )
                continue
            chosen[name] = d
    sources: list[SysctlSource] = []
    reads_sysctl_conf = False
    for name in sorted(chosen):
        d = chosen[name]
        rel = f"{d}/{name}"
        target = root.file(rel)
        if target.is_symlink():
            link = os.readlink(target)
            if link == "/dev/null":
                continue  # masked on purpose
            if os.path.normpath(os.path.join(f"/{d}", link)) == f"/{SYSCTL_CONF}":
                reads_sysctl_conf = True
        if not target.exists():
            continue
        sources.append(SysctlSource(f"/{rel}", rel))
    conf_text = root.read_text(SYSCTL_CONF)
    if conf_text is not None and not reads_sysctl_conf:
        has_settings = any(
            line.strip() and not line.strip().startswith(("#", ";"))
            for line in conf_text.splitlines()
        )
        if has_settings:
            notes.append(
                FileNote(
                    R.FILE_NOT_READ,
                    f"/{SYSCTL_CONF}",
                    "systemd-sysctl does not read /etc/sysctl.conf and no sysctl.d link points "
                    "to it, so these settings are applied at boot only if something runs "
                    "'sysctl --system' or 'sysctl -p'",
                    suggestion="move the settings to /etc/sysctl.d/90-local.conf (or link "
                    "/etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf)",
                )
            )
        # procps' sysctl --system reads it last
        sources.append(SysctlSource(f"/{SYSCTL_CONF}", SYSCTL_CONF))
    return sources, notes


def _looks_like_settings(root: Root, rel: str) -> bool:
    """A file that holds key = value lines (not a README): a .conf that will be missed."""
    if rel.rsplit("/", 1)[-1].startswith(".") or not root.file(rel).is_file():
        return False
    try:
        text = root.read_text(rel) or ""
    except PermissionError:
        return False
    for line in text.splitlines()[:200]:
        body = line.strip().lstrip("-")
        key, eq, _ = body.partition("=")
        key = key.strip()
        if eq and "." in key and " " not in key and key[:1].isalpha():
            return True
    return False
