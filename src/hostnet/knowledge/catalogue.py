"""The sysctl catalogue: what each key means, takes and defaults to (data in sysctl.toml).

Patterns use ``*`` for one name component, for per-interface keys: ``net.ipv4.conf.*.rp_filter``
matches ``all``, ``default`` and every interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

TYPES = frozenset({"int", "bool", "enum", "tuple", "string", "list"})
COMBINES = frozenset({"max", "min", "or", "and", "and-if-forwarding"})
#: proc handlers that store any integer they can parse (kernel/sysctl.c): a key registered
#: with one of these has no range the kernel enforces, whatever its documentation says.
UNCHECKED_HANDLERS = frozenset(
    {
        "proc_dointvec",
        "proc_douintvec",
        "proc_dointvec_jiffies",
        "proc_dointvec_userhz_jiffies",
        "proc_dointvec_ms_jiffies",
        "sysrq_sysctl_handler",
    }
)


@dataclass(frozen=True, slots=True)
class DefaultChange:
    """The default became ``value`` in kernel ``version`` (e.g. conntrack sizing in 5.15)."""

    version: str
    value: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class KeySpec:
    key: str
    type: str
    description: str
    reference: str
    min: int | None = None
    max: int | None = None
    arity: int = 1
    values: dict[int, str] = field(default_factory=dict)
    unit: str | None = None
    default: str | None = None
    default_note: str | None = None
    default_history: tuple[DefaultChange, ...] = ()
    netns: bool = True
    init_ns_writable_only: bool = False
    readonly: bool = False
    writeonly: bool = False
    since: str | None = None
    removed_in: str | None = None
    replacement: str | None = None
    noop: bool = False
    combine: str | None = None
    stronger: str | None = None  # "higher" or "lower": direction that is more secure
    secure: str | None = None  # the recommended secure value, where one exists
    test_boundaries: bool = True  # kernel test may write min/max in a throwaway netns
    # Additions (kept optional so older data still loads):
    default_all: str | None = None  # what conf/all shows when it differs from conf/default
    inherits_init_ns: bool = False  # a new namespace copies the initial namespace's value
    module: str | None = None  # the key exists only while this module is loaded (or built in)
    config: str | None = None  # the key exists only with this kernel build option
    handler: str | None = None  # the kernel's proc handler (decides whether min/max is enforced)
    moved_to: str | None = None  # where a removed setting went (e.g. a debugfs file)
    noop_since: str | None = None  # kernel version since which writing it does nothing

    @property
    def range_enforced(self) -> bool | None:
        """True: the kernel rejects values outside min..max; False: it stores any integer;
        None: not recorded (test_boundaries tells what the kernel tests found)."""
        if self.handler is not None:
            return self.handler not in UNCHECKED_HANDLERS
        return None if self.test_boundaries else False

    @property
    def is_pattern(self) -> bool:
        return "*" in self.key

    @property
    def gone(self) -> bool:
        return self.removed_in is not None


def _spec(key: str, raw: dict[str, Any]) -> KeySpec:
    kind = raw.get("type", "int")
    if kind not in TYPES:
        raise ValueError(f"sysctl.toml: {key}: unknown type {kind!r}")
    combine = raw.get("combine")
    if combine is not None and combine not in COMBINES:
        raise ValueError(f"sysctl.toml: {key}: unknown combine {combine!r}")
    history = tuple(
        DefaultChange(str(h["version"]), str(h["value"]), str(h.get("note", "")))
        for h in raw.get("default_history", ())
    )
    values = {int(k): str(v) for k, v in raw.get("values", {}).items()}
    default = raw.get("default")
    return KeySpec(
        key=key,
        type=kind,
        description=raw["description"],
        reference=raw["reference"],
        min=raw.get("min"),
        max=raw.get("max"),
        arity=int(raw.get("arity", 1)),
        values=values,
        unit=raw.get("unit"),
        default=None if default is None else str(default),
        default_note=raw.get("default_note"),
        default_history=history,
        netns=bool(raw.get("netns", True)),
        init_ns_writable_only=bool(raw.get("init_ns_writable_only", False)),
        readonly=bool(raw.get("readonly", False)),
        writeonly=bool(raw.get("writeonly", False)),
        since=raw.get("since"),
        removed_in=raw.get("removed_in"),
        replacement=raw.get("replacement"),
        noop=bool(raw.get("noop", False)),
        combine=combine,
        stronger=raw.get("stronger"),
        secure=None if raw.get("secure") is None else str(raw["secure"]),
        test_boundaries=bool(raw.get("test_boundaries", True)),
        default_all=None if raw.get("default_all") is None else str(raw["default_all"]),
        inherits_init_ns=bool(raw.get("inherits_init_ns", False)),
        module=raw.get("module"),
        config=raw.get("config"),
        handler=raw.get("handler"),
        moved_to=raw.get("moved_to"),
        noop_since=None if raw.get("noop_since") is None else str(raw["noop_since"]),
    )


@dataclass(frozen=True, slots=True)
class KeyFamily:
    """Keys under ``prefix`` that only exist when a driver, module or build option is there
    (``dev.cdrom.`` with the CD-ROM driver): absent on a kernel without it, never a typo."""

    prefix: str
    provider: str  # what brings the keys, in words
    reference: str
    module: str | None = None
    config: str | None = None
    removed_in: str | None = None  # the whole family was removed (or moved) in this version
    moved_to: str | None = None


def _family(prefix: str, raw: dict[str, Any]) -> KeyFamily:
    return KeyFamily(
        prefix=prefix,
        provider=raw["provider"],
        reference=raw["reference"],
        module=raw.get("module"),
        config=raw.get("config"),
        removed_in=None if raw.get("removed_in") is None else str(raw["removed_in"]),
        moved_to=raw.get("moved_to"),
    )


class Catalogue:
    def __init__(
        self, specs: dict[str, KeySpec], families: dict[str, KeyFamily] | None = None
    ) -> None:
        self.specs = specs
        self.families = dict(sorted((families or {}).items(), key=lambda kv: -len(kv[0])))
        self._exact = {k: v for k, v in specs.items() if not v.is_pattern}
        # patterns indexed by (component count, prefix before '*')
        # patterns: (component count, index of the '*') -> {key with '*' there: spec}
        self._patterns: dict[tuple[int, int], dict[str, KeySpec]] = {}
        for k, v in specs.items():
            if v.is_pattern:
                parts = k.split(".")
                star = parts.index("*")
                self._patterns.setdefault((len(parts), star), {})[k] = v
        self._memo: dict[str, KeySpec | None] = {}

    def __len__(self) -> int:
        return len(self.specs)

    def get(self, key: str) -> KeySpec | None:
        """The spec for a concrete key (exact entry first, then a pattern)."""
        spec = self._exact.get(key)
        if spec is not None:
            return spec
        if key in self._memo:
            return self._memo[key]
        parts = key.split(".")
        n = len(parts)
        found: KeySpec | None = None
        for (count, star), group in self._patterns.items():
            if count != n:
                continue
            probe = ".".join([*parts[:star], "*", *parts[star + 1 :]])
            found = group.get(probe)
            if found is not None:
                break
        if len(self._memo) < 100_000:
            self._memo[key] = found
        return found

    def concrete_keys(self) -> list[str]:
        return sorted(self._exact)

    def pattern_keys(self) -> list[str]:
        return sorted(k for k in self.specs if "*" in k)

    def removed(self) -> list[KeySpec]:
        return [s for s in self.specs.values() if s.gone]

    def family_of(self, key: str) -> KeyFamily | None:
        """The longest family prefix that ``key`` starts with."""
        for prefix, fam in self.families.items():
            if key.startswith(prefix):
                return fam
        return None


def parse_catalogue(text: str) -> Catalogue:
    import tomllib

    return catalogue_from(tomllib.loads(text))


def catalogue_from(data: dict[str, Any]) -> Catalogue:
    return Catalogue(
        {k: _spec(k, v) for k, v in data.get("keys", {}).items()},
        {k: _family(k, v) for k, v in data.get("families", {}).items()},
    )


@cache
def load() -> Catalogue:
    from hostnet.knowledge.data import load_toml

    return catalogue_from(load_toml("sysctl.toml"))
