"""What lint knows about the kernel it judges (pure).

``KernelView`` answers "does this key exist, is it writable, what is its value now" and hands
over raw facts about modules; on the live host hostnet.host.kernel_view reads them through a
Root, in tests a fixture tree does. The functions here turn those raw facts into answers:
is a module built in or loadable, does something load it before systemd-sysctl, which
qdiscs and congestion controls this kernel can take.

Sources: kernel/module/main.c (only loadable modules are listed in /proc/modules and have
/sys/module/NAME/initstate; built-in modules with parameters appear in /sys/module without
it; a kernel without CONFIG_MODULES has no /proc/modules); systemd's
systemd-sysctl.service is ordered After=systemd-modules-load.service, which loads the names
in modules-load.d(5); net/sched/sch_api.c (qdisc_set_default loads ``net-sch-NAME`` on
demand); net/ipv4/tcp_cong.c (tcp_set_default_congestion_control loads ``tcp_NAME``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hostnet.model.modules import ModuleFacts

PAGE_SIZE = 4096  # the common page size; tcp_mem/udp_mem are counted in pages


class KernelView(Protocol):
    def exists(self, key: str) -> bool | None: ...
    def writable(self, key: str) -> bool | None: ...
    def value(self, key: str) -> str | None: ...
    def all_keys(self) -> Sequence[str]: ...
    def interfaces(self) -> Sequence[str] | None: ...
    def modules(self) -> ModuleFacts | None: ...
    def meminfo(self) -> str | None: ...


class NoKernel:
    """A view that knows nothing (linting files for another machine)."""

    def exists(self, key: str) -> bool | None:
        return None

    def writable(self, key: str) -> bool | None:
        return None

    def value(self, key: str) -> str | None:
        return None

    def all_keys(self) -> Sequence[str]:
        return ()

    def interfaces(self) -> Sequence[str] | None:
        return None

    def modules(self) -> ModuleFacts | None:
        return None

    def meminfo(self) -> str | None:
        return None


class ModuleState(enum.Enum):
    BUILTIN = "built in"
    LOADABLE = "loadable module"
    ABSENT = "not in this kernel"
    UNKNOWN = "unknown"


def _norm(name: str) -> str:
    return name.strip().replace("-", "_")


def _module_names(text: str | None, *, paths: bool) -> frozenset[str] | None:
    if text is None:
        return None
    out: set[str] = set()
    for line in text.splitlines():
        word = line.split(":", 1)[0].strip() if paths else (line.split() or [""])[0]
        if not word:
            continue
        base = word.rsplit("/", 1)[-1]
        for ext in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
            if base.endswith(ext):
                base = base[: -len(ext)]
                break
        out.add(_norm(base))
    return frozenset(out)


def config_options(text: str | None) -> dict[str, str] | None:
    """CONFIG_X -> 'y' / 'm' / string value from a kernel config ("# ... is not set" omitted)."""
    if text is None:
        return None
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip().strip('"')
    return out


@dataclass(frozen=True, slots=True)
class Modules:
    """Interpreted module facts."""

    config: dict[str, str] | None
    loaded: frozenset[str] | None  # loadable modules loaded now (/proc/modules)
    no_module_support: bool  # /proc is there but /proc/modules is not (CONFIG_MODULES=n)
    sys_module: dict[str, bool] | None
    builtin: frozenset[str] | None
    loadable: frozenset[str] | None
    boot: frozenset[str] | None  # names loaded by systemd-modules-load before sysctl
    _cache: dict[str, ModuleState] = field(default_factory=dict, compare=False)

    def state(self, name: str, config: str | None = None) -> ModuleState:
        key = f"{name}:{config}"
        if key not in self._cache:
            self._cache[key] = self._state(_norm(name), config)
        return self._cache[key]

    def _state(self, name: str, config: str | None) -> ModuleState:
        opt = self.config.get(config) if (self.config is not None and config) else None
        if opt == "y" or (self.builtin is not None and name in self.builtin):
            return ModuleState.BUILTIN
        if self.sys_module is not None and self.sys_module.get(name) is False:
            return ModuleState.BUILTIN  # in /sys/module without initstate
        if self.no_module_support:
            # nothing can be loaded; built-in code without parameters has no /sys/module
            # entry, so absence there proves nothing (only the config can say ABSENT)
            if name in (self.sys_module or {}):
                return ModuleState.BUILTIN
            known = self.config is not None and bool(config)
            return ModuleState.ABSENT if known else ModuleState.UNKNOWN
        if opt == "m" or (self.loaded is not None and name in self.loaded):
            return ModuleState.LOADABLE
        if self.sys_module is not None and self.sys_module.get(name) is True:
            return ModuleState.LOADABLE
        if self.loadable is not None and name in self.loadable:
            return ModuleState.LOADABLE
        if self.config is not None and config:
            return ModuleState.ABSENT  # the config is readable and does not have it
        return ModuleState.UNKNOWN

    def loaded_at_boot(self, name: str) -> bool | None:
        """Whether systemd-modules-load loads ``name`` (or a module that needs it) before
        systemd-sysctl runs; None when the lists could not be read."""
        if self.boot is None:
            return None
        name = _norm(name)
        if name in self.boot:
            return True
        users = MODULE_USERS.get(name, ())
        return any(
            b == u or (u.endswith("*") and b.startswith(u[:-1])) for b in self.boot for u in users
        )


#: Modules whose loading pulls in the key's module (modinfo depends), as name or prefix*.
MODULE_USERS: dict[str, tuple[str, ...]] = {
    "nf_conntrack": (
        "nf_conntrack_*",
        "nf_nat*",
        "nf_defrag_*",
        "xt_conntrack",
        "xt_state",
        "xt_CT",
        "xt_nat",
        "xt_MASQUERADE",
        "xt_REDIRECT",
        "xt_connlimit",
        "xt_connmark",
        "nft_ct",
        "nft_nat",
        "nft_masq",
        "nft_redir",
        "nft_connlimit",
        "nft_flow_offload",
        "ip_vs*",
        "openvswitch",
        "iptable_nat",
        "ip6table_nat",
        "nf_flow_table*",
    ),
    "br_netfilter": (),
}


def interpret(facts: ModuleFacts) -> Modules:
    boot: frozenset[str] | None = None
    if facts.boot_lists is not None:
        names: set[str] = set()
        for text in facts.boot_lists:
            for line in text.splitlines():
                word = line.split("#", 1)[0].strip()
                if word and not word.startswith(";"):
                    names.add(_norm(word.split()[0]))
        boot = frozenset(names)
    return Modules(
        config=config_options(facts.config),
        loaded=_module_names(facts.proc_modules, paths=False),
        # a kernel without CONFIG_MODULES has neither /proc/modules nor kernel.modprobe
        no_module_support=facts.has_proc
        and facts.proc_modules is None
        and not facts.has_modprobe_key,
        sys_module=facts.sys_module,
        builtin=_module_names(facts.modules_builtin, paths=True),
        loadable=_module_names(facts.modules_dep, paths=True),
        boot=boot,
    )


# -- what this kernel offers for string keys ---------------------------------------------------

#: qdiscs compiled into every kernel with networking (net/sched/sch_generic.c, sch_fifo.c)
ALWAYS_QDISCS = frozenset({"pfifo_fast", "pfifo", "bfifo", "pfifo_head_drop", "noqueue", "mq"})


def qdisc_available(mods: Modules | None, name: str, current: str | None) -> bool | None:
    """Can ``net.core.default_qdisc = name`` be set here? None: cannot tell."""
    if name in ALWAYS_QDISCS or name == (current or "").strip():
        return True
    if mods is None:
        return None
    state = mods.state(f"sch_{name}", f"CONFIG_NET_SCH_{name.upper()}")
    if state in (ModuleState.BUILTIN, ModuleState.LOADABLE):
        return True
    if state is ModuleState.ABSENT:
        return False
    return None


def congestion_available(mods: Modules | None, name: str, available: str | None) -> bool | None:
    """Can ``net.ipv4.tcp_congestion_control = name`` be set here? None: cannot tell."""
    if available is not None and name in available.split():
        return True
    if name == "reno":
        return True  # always built in (net/ipv4/tcp_cong.c)
    if mods is None:
        return None
    state = mods.state(f"tcp_{name}", f"CONFIG_TCP_CONG_{name.upper()}")
    if state in (ModuleState.BUILTIN, ModuleState.LOADABLE):
        return True
    if state is ModuleState.ABSENT or (available is not None and mods.no_module_support):
        return False
    return None


def mem_total_pages(meminfo: str | None, page_size: int = PAGE_SIZE) -> int | None:
    """MemTotal from /proc/meminfo, in pages."""
    if meminfo is None:
        return None
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            try:
                kib = int(parts[1])
            except (IndexError, ValueError):
                return None
            return kib * 1024 // page_size
    return None
