"""What a root shows about kernel modules (raw texts; judged in hostnet.sysctl.kernel)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModuleFacts:
    """Raw reads about modules; None means "could not be read here" (not "empty")."""

    boot_lists: tuple[str, ...] | None = None  # /etc/modules + modules-load.d/*.conf texts
    config: str | None = None  # /boot/config-RELEASE or /proc/config.gz, decompressed
    proc_modules: str | None = None  # /proc/modules
    has_proc: bool = False  # /proc/sys is there
    has_modprobe_key: bool = True  # /proc/sys/kernel/modprobe exists (only with CONFIG_MODULES)
    sys_module: dict[str, bool] | None = None  # /sys/module entries -> has initstate
    modules_builtin: str | None = None  # /lib/modules/RELEASE/modules.builtin
    modules_dep: str | None = None  # /lib/modules/RELEASE/modules.dep (every loadable module)
