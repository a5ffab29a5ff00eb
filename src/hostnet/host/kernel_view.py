"""The lint's view of a kernel, read from /proc/sys under a Root (cached per key)."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from hostnet.host.root import Root
from hostnet.model.keys import key_to_path

#: Where modules loaded at boot are listed (modules-load.d(5) plus Debian's /etc/modules).
MODULES_LOAD_DIRS = (
    "etc/modules-load.d",
    "run/modules-load.d",
    "usr/local/lib/modules-load.d",
    "usr/lib/modules-load.d",
    "lib/modules-load.d",
)


class RootKernelView:
    def __init__(self, root: Root) -> None:
        self.root = root
        self._keys: list[str] | None = None
        self._boot: frozenset[str] | None = None
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

    def boot_modules(self) -> frozenset[str] | None:
        """Modules listed for loading at boot, or None when this root has no /etc."""
        if self._boot is None:
            if not self.root.exists("etc"):
                return None
            names: set[str] = set()
            texts = [self.root.read_text("etc/modules") or ""]
            for d in MODULES_LOAD_DIRS:
                for name in self.root.listdir(d):
                    if name.endswith(".conf"):
                        texts.append(self.root.read_text(f"{d}/{name}") or "")
            for text in texts:
                for line in text.splitlines():
                    word = line.split("#", 1)[0].strip()
                    if word and not word.startswith(";"):
                        names.add(word.split()[0].replace("-", "_"))
            self._boot = frozenset(names)
        return self._boot
