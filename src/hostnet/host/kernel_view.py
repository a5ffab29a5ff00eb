"""The lint's view of a kernel, read from /proc/sys under a Root (cached per key).

Only raw reads: file modes and values, and the raw facts about modules (the lists systemd
loads at boot, the kernel config, /proc/modules, /sys/module, modules.builtin/modules.dep);
hostnet.sysctl.kernel interprets them.
"""

from __future__ import annotations

import gzip
import os
import stat
from collections.abc import Sequence

from hostnet.host.root import Root
from hostnet.model.keys import key_to_path
from hostnet.model.modules import ModuleFacts

#: Where systemd-modules-load finds modules to load at boot (modules-load.d(5)), plus
#: Debian's /etc/modules (linked from /etc/modules-load.d/modules.conf there).
MODULES_LOAD_DIRS = (
    "etc/modules-load.d",
    "run/modules-load.d",
    "usr/local/lib/modules-load.d",
    "usr/lib/modules-load.d",
    "lib/modules-load.d",
)
#: Biggest config file read (a distribution config is ~250 KiB).
CONFIG_LIMIT = 4 << 20


class RootKernelView:
    def __init__(self, root: Root) -> None:
        self.root = root
        self._keys: list[str] | None = None
        self._facts: ModuleFacts | None = None
        self._has_proc = root.exists("proc/sys/kernel")
        self._modes: dict[str, int | None] = {}
        self._value: dict[str, str | None] = {}

    def _mode(self, key: str) -> int | None:
        """st_mode of the key's file (one stat per key, cached); None when missing."""
        if key not in self._modes:
            try:
                st = os.stat(self.root.file("proc/sys/" + key_to_path(key)))
            except OSError:
                self._modes[key] = None
            else:
                self._modes[key] = st.st_mode if stat.S_ISREG(st.st_mode) else None
        return self._modes[key]

    def exists(self, key: str) -> bool | None:
        if not self._has_proc:
            return None
        return self._mode(key) is not None

    def writable(self, key: str) -> bool | None:
        if not self._has_proc:
            return None
        mode = self._mode(key)
        return None if mode is None else bool(mode & 0o222)

    def value(self, key: str) -> str | None:
        if not self._has_proc:
            return None
        if key not in self._value:
            self._value[key] = self.root.sysctl_value(key)
        return self._value[key]

    def all_keys(self) -> Sequence[str]:
        if self._keys is None:
            self._keys = self.root.sysctl_keys() if self._has_proc else []
        return self._keys

    def interfaces(self) -> Sequence[str] | None:
        return self.root.net_interfaces() if self._has_proc else None

    def meminfo(self) -> str | None:
        return self._read("proc/meminfo") if self._has_proc else None

    def modules(self) -> ModuleFacts | None:
        """Raw module facts, or None when the root has neither /etc nor /proc nor /sys."""
        if self._facts is None:
            root = self.root
            has_proc = self._has_proc
            if not (root.exists("etc") or root.exists("proc") or root.exists("sys/module")):
                return None
            release = (self.value("kernel.osrelease") or "").strip()
            self._facts = ModuleFacts(
                boot_lists=self._boot_lists() if root.exists("etc") else None,
                config=self._config(release),
                proc_modules=self._read("proc/modules"),
                has_proc=has_proc,
                has_modprobe_key=bool(has_proc and self.exists("kernel.modprobe")),
                sys_module=self._sys_module(),
                modules_builtin=self._read(f"lib/modules/{release}/modules.builtin")
                if release
                else None,
                modules_dep=self._read(f"lib/modules/{release}/modules.dep") if release else None,
            )
        return self._facts

    def _read(self, rel: str) -> str | None:
        try:
            return self.root.read_text(rel)
        except (PermissionError, IsADirectoryError):
            return None

    def _boot_lists(self) -> tuple[str, ...]:
        texts = [self._read("etc/modules") or ""]
        for d in MODULES_LOAD_DIRS:
            for name in self.root.listdir(d):
                if name.endswith(".conf"):
                    texts.append(self._read(f"{d}/{name}") or "")
        return tuple(texts)

    def _config(self, release: str) -> str | None:
        if release:
            text = self._read(f"boot/config-{release}")
            if text is not None:
                return text
        try:
            with gzip.open(self.root.file("proc/config.gz"), "rt", errors="replace") as fh:
                return fh.read(CONFIG_LIMIT)
        except (OSError, EOFError):
            return None

    def _sys_module(self) -> dict[str, bool] | None:
        if not self.root.exists("sys/module"):
            return None
        return {
            name: self.root.exists(f"sys/module/{name}/initstate")
            for name in self.root.listdir("sys/module")
        }
