"""What the config asks for, as a flat list of wanted sysctl values with their reasons (pure).

The role profile's expectations come first; the config's own ``[sysctl]`` entries replace
them key by key; ``[conntrack]`` and ``[ipv6]`` add their keys. Interface expansion (IPv6 on
every interface) and ``auto`` sizing wait for the planner, which knows the host.
"""

from __future__ import annotations

from dataclasses import dataclass

from hostnet.config.load import Loaded, dotted
from hostnet.config.schema import Bound

AUTO_MAX = "conntrack-max"
AUTO_BUCKETS = "conntrack-buckets"
CT_MAX = "net.netfilter.nf_conntrack_max"
CT_BUCKETS = "net.netfilter.nf_conntrack_buckets"


@dataclass(frozen=True, slots=True)
class Want:
    """One wanted value. Exactly one of ``value``, ``bound``, ``fix``/``op`` or ``auto``."""

    key: str
    reason: str
    where: str  # config path (sysctl."net.core.somaxconn"), or role:NAME
    line: int | None
    value: str | None = None
    bound: Bound | None = None
    role_op: str | None = None  # min, max, equal, not (role expectations)
    role_bound: int | None = None
    role_fix: int | None = None
    auto: str | None = None  # AUTO_MAX, AUTO_BUCKETS
    from_role: bool = False
    section: str = "sysctl"  # sysctl, conntrack, ipv6, role

    def target(self, current: str | None) -> str | None:
        """The value to write given the current one (None: leave it)."""
        if self.value is not None:
            return self.value
        cur = _int(current)
        if self.bound is not None:
            if cur is None:
                return str(self.bound.at_least if self.bound.at_least is not None
                           else self.bound.at_most)
            return str(self.bound.clamp(cur))
        if self.role_op is not None and self.role_bound is not None:
            if cur is not None and _met(self.role_op, cur, self.role_bound):
                return current
            return str(self.role_fix if self.role_fix is not None else self.role_bound)
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value.split()[0]) if value else None
    except ValueError:
        return None


def _met(op: str, value: int, bound: int) -> bool:
    return {"min": value >= bound, "max": value <= bound, "equal": value == bound,
            "not": value != bound}[op]


def _value_text(value: int | str) -> str:
    return str(value)


def wants(loaded: Loaded, *, netns: str | None = None) -> list[Want]:
    """Every wanted value of the config, role first, then the config's own (pure)."""
    cfg = loaded.config
    out: dict[str, Want] = {}
    if cfg.role is not None:
        from hostnet.knowledge.catalogue import load as catalogue
        from hostnet.knowledge.roles import load as role_load

        cat = catalogue()
        role = role_load(cfg.role)
        for key, exp in role.expectations.items():
            spec = cat.get(key)
            if netns is not None and (key.startswith("kernel.") or (
                    spec is not None and (not spec.netns or spec.init_ns_writable_only))):
                continue  # host-wide: the initial namespace's business
            out[key] = Want(
                key=key, reason=f"role {cfg.role} ({exp.code}: {exp.wanted()}): {exp.reason}",
                where=f"role:{cfg.role}", line=loaded.line_of("role"), role_op=exp.op,
                role_bound=exp.bound, role_fix=exp.fix, from_role=True, section="role")
    for key, value in cfg.sysctl.items():
        where = dotted(("sysctl", key))
        line = loaded.line_of("sysctl", key)
        origin = loaded.origin("sysctl", key)
        if isinstance(value, Bound):
            what = "only ever raise" if value.at_least is not None else "only ever lower"
            out[key] = Want(key, f"{origin}: {what} ({value.text()})", where, line, bound=value)
        else:
            out[key] = Want(key, f"{origin}", where, line, value=_value_text(value))
    ct = cfg.conntrack
    if ct is not None:
        for name, key in (("max", CT_MAX), ("buckets", CT_BUCKETS)):
            setting = getattr(ct, name)
            if setting is None:
                continue
            origin = loaded.origin("conntrack", name)
            where, line = dotted(("conntrack", name)), loaded.line_of("conntrack", name)
            if setting == "auto":
                auto = AUTO_MAX if name == "max" else AUTO_BUCKETS
                out[key] = Want(key, f"{origin}: {name} = auto", where, line, auto=auto,
                                section="conntrack")
            else:
                out[key] = Want(key, origin, where, line, value=str(setting),
                                section="conntrack")
        if ct.timeouts is not None:
            for name, (key, seconds) in ct.timeouts.keys().items():
                origin = loaded.origin("conntrack", "timeouts", name)
                out[key] = Want(key, origin, dotted(("conntrack", "timeouts", name)),
                                loaded.line_of("conntrack", "timeouts", name),
                                value=str(seconds), section="conntrack")
    return list(out.values())


def ipv6_wants(loaded: Loaded, interfaces: tuple[str, ...]) -> list[Want]:
    """``[ipv6] enabled``: disable_ipv6 on all, default and every interface (or the listed)."""
    cfg = loaded.config.ipv6
    if cfg is None or cfg.enabled is None:
        return []
    origin = loaded.origin("ipv6", "enabled")
    where, line = dotted(("ipv6", "enabled")), loaded.line_of("ipv6", "enabled")
    if isinstance(cfg.enabled, tuple):
        names, value = list(cfg.enabled), "1"
        why = f"{origin}: IPv6 disabled on this interface"
    else:
        names = ["all", "default", *interfaces]
        value = "0" if cfg.enabled else "1"
        why = f"{origin}: IPv6 {'enabled' if cfg.enabled else 'disabled'} everywhere"
    return [Want(f"net.ipv6.conf.{n.replace('.', '/')}.disable_ipv6", why, where, line, value=value,
                 section="ipv6") for n in names]
