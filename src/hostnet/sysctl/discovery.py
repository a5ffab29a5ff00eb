"""Which sysctl files the host reads at boot, and in what order (pure).

hostnet.host.sysctl_files reads the directories raw (names, links, which directories are the
same, the text of files that might hold settings); this module applies systemd-sysctl's
precedence: the directories below, highest priority first, a name in an earlier directory
hides the same name in a later one, only ``*.conf`` files count, files are applied in name
order, a link to /dev/null masks a name. procps' ``sysctl --system`` reads the same set and
then /etc/sysctl.conf, which systemd-sysctl does not read (sysctl.d(5), sysctl(8)).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hostnet.model.sysctl_files import SYSCTL_CONF, SYSCTL_DIRS, DirEntry, SysctlDir, SysctlTree
from hostnet.sysctl import rules as R
from hostnet.sysctl.lint_result import FileNote

__all__ = ["SYSCTL_CONF", "SYSCTL_DIRS", "DirEntry", "SysctlDir", "SysctlSource", "SysctlTree",
           "system_sources"]

@dataclass(frozen=True, slots=True)
class SysctlSource:
    path: str  # as the host names it: /etc/sysctl.d/99-x.conf
    real: str  # the file to read under the root


def system_sources(tree: SysctlTree) -> tuple[list[SysctlSource], list[FileNote]]:
    """Files in application order (later wins) and notes about files nothing reads."""
    chosen: dict[str, tuple[str, DirEntry]] = {}  # file name -> (dir, entry)
    notes: list[FileNote] = []
    seen_dirs: set[tuple[int, int]] = set()
    for d in tree.dirs:
        if d.ident is None or d.ident in seen_dirs:
            continue  # missing, or the same directory again (/lib -> /usr/lib)
        seen_dirs.add(d.ident)
        for entry in d.entries:
            name = entry.name
            full = f"/{d.rel}/{name}"
            if not name.endswith(".conf"):
                if _looks_like_settings(entry):
                    stem = name.rsplit(".", 1)[0] if "." in name else name
                    notes.append(
                        FileNote(
                            R.FILE_NOT_READ,
                            full,
                            "only files ending in .conf are read from sysctl.d; "
                            "this one is ignored",
                            suggestion=f"rename it to {stem}.conf",
                        )
                    )
                continue
            if name in chosen:
                notes.append(
                    FileNote(
                        R.MASKED_FILE,
                        full,
                        f"/{chosen[name][0]}/{name} has the same name and a higher priority, "
                        "so this file is never read",
                    )
                )
                continue
            chosen[name] = (d.rel, entry)
    sources: list[SysctlSource] = []
    reads_sysctl_conf = False
    for name in sorted(chosen):
        rel, entry = chosen[name]
        if entry.link is not None:
            if entry.link == "/dev/null":
                continue  # masked on purpose
            if os.path.normpath(os.path.join(f"/{rel}", entry.link)) == f"/{SYSCTL_CONF}":
                reads_sysctl_conf = True
        if not entry.is_file:
            continue
        sources.append(SysctlSource(f"/{rel}/{name}", f"{rel}/{name}"))
    conf_text = tree.sysctl_conf
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


def _looks_like_settings(entry: DirEntry) -> bool:
    """A file that holds key = value lines (not a README): a .conf that will be missed."""
    if entry.name.startswith(".") or not entry.is_file or entry.text is None:
        return False
    for line in entry.text.splitlines()[:200]:
        body = line.strip().lstrip("-")
        key, eq, _ = body.partition("=")
        key = key.strip()
        if eq and "." in key and " " not in key and key[:1].isalpha():
            return True
    return False
