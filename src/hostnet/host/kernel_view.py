"""The lint's view of a kernel, read from /proc/sys under a Root (cached per key)."""

from __future__ import annotations

from collections.abc import Sequence

from hostnet.host.root import Root

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
        self._exists: dict[str, bool] = {}
        self._writable: dict[str, bool | None] = {}
        self._value: dict[str, str | None] = {}

    def exists(self, key: str) -> bool | None:
        if not self._has_proc:
            return None
        hit = self._exists.get(key)
        if hit is None:
            hit = self._exists[key] = self.root.sysctl_exists(key)
        return hit

    def writable(self, key: str) -> bool | None:
        if not self._has_proc:
            return None
        if key not in self._writable:
            self._writable[key] = self.root.sysctl_writable(key)
        return self._writable[key]

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
