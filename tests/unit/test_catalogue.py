"""The sysctl catalogue data (knowledge/sysctl.toml) is complete and self-consistent."""

from __future__ import annotations

import itertools

import pytest

from hostnet.knowledge.catalogue import COMBINES, TYPES, Catalogue, KeySpec, load, parse_catalogue


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load()


def _parse_value(spec: KeySpec, text: str) -> None:
    """Raise if ``text`` is not a valid value of the spec's type (as the kernel prints it)."""
    if spec.type in ("int", "bool", "enum"):
        value = int(text)
        if spec.type == "bool":
            assert value in (0, 1), f"{spec.key}: bool default {text!r}"
        if spec.type == "enum":
            assert value in spec.values, f"{spec.key}: default {text!r} not among values"
    elif spec.type == "tuple":
        parts = text.split()
        assert len(parts) == spec.arity, f"{spec.key}: default {text!r} has not {spec.arity} fields"
        for part in parts:
            int(part)
    elif spec.type == "list":
        for item in filter(None, text.split(",")):
            for port in item.split("-"):
                int(port)


def test_loads_with_enough_keys(cat: Catalogue) -> None:
    assert len(cat) >= 170
    assert len(cat.concrete_keys()) + len(cat.pattern_keys()) == len(cat)


def test_every_entry_has_description_and_reference(cat: Catalogue) -> None:
    for spec in cat.specs.values():
        assert spec.description.strip() and spec.description.strip()[-1] in ".)", spec.key
        assert spec.reference.strip(), spec.key
        assert spec.type in TYPES
        assert spec.combine is None or spec.combine in COMBINES


def test_enum_values_within_range(cat: Catalogue) -> None:
    enums = [s for s in cat.specs.values() if s.type == "enum"]
    assert len(enums) > 20
    for spec in enums:
        assert spec.values, spec.key
        if spec.min is not None:
            assert min(spec.values) >= spec.min, spec.key
        if spec.max is not None:
            assert max(spec.values) <= spec.max, spec.key


def test_ranges_are_ordered(cat: Catalogue) -> None:
    for spec in cat.specs.values():
        if spec.min is not None and spec.max is not None:
            assert spec.min <= spec.max, spec.key


def test_defaults_parse_under_their_type(cat: Catalogue) -> None:
    checked = 0
    for spec in cat.specs.values():
        for text in (spec.default, spec.default_all, spec.secure):
            if text is None:
                continue
            _parse_value(spec, text)
            checked += 1
            if spec.type in ("int", "bool", "enum") and spec.min is not None:
                assert spec.min <= int(text), spec.key
            if spec.type in ("int", "bool", "enum") and spec.max is not None:
                assert int(text) <= spec.max, spec.key
    assert checked > 150


def test_ram_dependent_defaults_are_explained(cat: Catalogue) -> None:
    for key in ("net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_buckets",
                "net.ipv4.tcp_mem", "kernel.pid_max", "fs.file-max"):
        spec = cat.get(key)
        assert spec is not None and spec.default is None and spec.default_note, key


def test_no_two_patterns_overlap(cat: Catalogue) -> None:
    patterns = [k.split(".") for k in cat.pattern_keys()]
    assert patterns
    for a, b in itertools.combinations(patterns, 2):
        same = len(a) == len(b) and all(x == y or "*" in (x, y) for x, y in zip(a, b, strict=True))
        assert not same, f"{'.'.join(a)} overlaps {'.'.join(b)}"


def test_removed_keys_have_version_and_no_live_flags(cat: Catalogue) -> None:
    removed = cat.removed()
    assert len(removed) >= 20
    for spec in removed:
        assert spec.removed_in and spec.removed_in[0].isdigit(), spec.key
        if spec.replacement is not None:
            target = cat.get(spec.replacement)
            assert target is not None and not target.gone, spec.key
    for key in ("net.ipv4.tcp_tw_recycle", "net.netfilter.nf_conntrack_helper",
                "net.core.hot_list_length", "net.ipv4.netfilter.ip_conntrack_max"):
        entry = cat.get(key)
        assert entry is not None and entry.gone, key


def test_flags_are_consistent(cat: Catalogue) -> None:
    for spec in cat.specs.values():
        assert not (spec.readonly and spec.writeonly), spec.key
        assert spec.stronger in (None, "higher", "lower"), spec.key
        if spec.init_ns_writable_only:
            assert not spec.netns and not spec.readonly, spec.key
        if spec.combine is not None:
            assert spec.is_pattern, spec.key
        if spec.arity != 1:
            assert spec.type == "tuple", spec.key


def test_patterns_resolve_concrete_interfaces(cat: Catalogue) -> None:
    spec = cat.get("net.ipv4.conf.eth0.rp_filter")
    assert spec is not None and spec.key == "net.ipv4.conf.*.rp_filter" and spec.combine == "max"
    assert cat.get("net.ipv4.conf.all.accept_redirects").combine == "and-if-forwarding"  # type: ignore[union-attr]
    assert cat.get("net.ipv4.neigh.default.gc_thresh3").key == "net.ipv4.neigh.default.gc_thresh3"  # type: ignore[union-attr]
    assert cat.get("net.ipv4.no_such_key") is None


def test_facts_encoded(cat: Catalogue) -> None:
    """A few facts from FACTS.md that lint rules depend on."""
    somax = cat.get("net.core.somaxconn")
    assert somax is not None and somax.default == "4096"
    assert [(h.version, h.value) for h in somax.default_history] == [("5.4", "4096")]
    for key in ("net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_buckets",
                "net.netfilter.nf_conntrack_expect_max", "net.core.rmem_max"):
        spec = cat.get(key)
        assert spec is not None and spec.init_ns_writable_only, key
    for key in ("net.ipv4.tcp_low_latency", "net.ipv4.tcp_fack"):
        spec = cat.get(key)
        assert spec is not None and spec.noop, key
    flush = cat.get("net.ipv4.route.flush")
    assert flush is not None and flush.writeonly


def test_parse_rejects_unknown_type_and_combine() -> None:
    with pytest.raises(ValueError, match="unknown type"):
        parse_catalogue('[keys."a.b"]\ntype = "float"\ndescription = "x."\nreference = "y"\n')
    with pytest.raises(ValueError, match="unknown combine"):
        parse_catalogue(
            '[keys."a.*.b"]\ncombine = "xor"\ndescription = "x."\nreference = "y"\n'
        )


def test_handlers_decide_whether_ranges_are_enforced(cat: Catalogue) -> None:
    # kernel/sysctl.c registers these with plain proc_dointvec: any integer is stored
    for key in ("kernel.panic_on_oops", "kernel.randomize_va_space", "kernel.sysrq",
                "kernel.perf_event_paranoid"):
        spec = cat.get(key)
        assert spec is not None and spec.handler is not None and spec.range_enforced is False
    dirty = cat.get("vm.dirty_bytes")
    assert dirty is not None and dirty.range_enforced is True and dirty.min == 8192
    unknown = cat.get("net.ipv4.tcp_syncookies")
    assert unknown is not None and unknown.handler is None


def test_families_cover_driver_keys_longest_prefix_first(cat: Catalogue) -> None:
    fam = cat.family_of("dev.cdrom.autoclose")
    assert fam is not None and fam.config == "CONFIG_CDROM" and fam.reference
    conntrack = cat.family_of("net.netfilter.nf_conntrack_max")
    assert conntrack is not None and conntrack.module == "nf_conntrack"
    assert cat.family_of("net.core.somaxconn") is None
    for prefix, f in cat.families.items():
        assert f.prefix == prefix and f.provider and f.reference, prefix


def test_moved_and_noop_keys_say_since_when(cat: Catalogue) -> None:
    moved = cat.get("kernel.sched_migration_cost_ns")
    assert moved is not None and moved.removed_in == "5.13" and moved.moved_to
    for key, since in (("net.ipv4.route.max_size", "3.6"),
                       ("kernel.random.write_wakeup_threshold", "5.18"),
                       ("net.ipv4.tcp_adv_win_scale", "6.6")):
        spec = cat.get(key)
        assert spec is not None and spec.noop and spec.noop_since == since, key


def test_families_parse_from_text() -> None:
    cat = parse_catalogue(
        '[families."dev.x."]\nprovider = "the x driver"\nmodule = "x"\nreference = "drivers/x.c"\n'
    )
    fam = cat.family_of("dev.x.y")
    assert fam is not None and fam.module == "x" and cat.family_of("dev.xy") is None
