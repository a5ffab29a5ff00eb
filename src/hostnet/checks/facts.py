"""The values that drove the doctor's decisions, for JSON output (pure).

Keys (all optional):

``conntrack_count``, ``conntrack_max``, ``conntrack_buckets``, ``conntrack_usage`` (0..1),
``conntrack_drop``, ``conntrack_early_drop``, ``conntrack_insert_failed`` (counters),
``conntrack_peak``, ``conntrack_drop_rate``, ``conntrack_early_drop_rate`` and
``conntrack_rate_source`` (when rates are known), ``conntrack_composition``,
``conntrack_recommended_max`` / ``_buckets`` (when CT101/CT102 sized the table),
``conntrack_log_events`` / ``_all`` (when the kernel log was scanned), ``interfaces`` (name ->
kind), ``ipv6``, ``listening``, ``nat_rules``, ``nat_rules_read_from``, ``role_recommended``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hostnet.findings import Finding
from hostnet.model.host import HostState, NetnsState

SIZING_CODES = ("CT101", "CT102")


def facts(host: HostState, ns: NetnsState, recommended: str,
          findings: Sequence[Finding]) -> dict[str, Any]:
    out: dict[str, Any] = {"role_recommended": recommended}
    out["nat_rules"] = [r.describe() for r in ns.ruleset.nat]
    out["nat_rules_read_from"] = list(ns.ruleset.sources)
    out["interfaces"] = {i.name: i.kind for i in ns.network.interfaces}
    out["listening"] = sorted({f"{x.proto}/{x.port}" + (" (loopback)" if x.loopback else "")
                               for x in ns.listeners})
    ct = ns.conntrack
    if ct is not None:
        usage = ct.usage
        out.update({
            "conntrack_count": ct.count, "conntrack_max": ct.max,
            "conntrack_buckets": ct.buckets,
            "conntrack_usage": None if usage is None else round(usage, 6),
            "conntrack_drop": ct.counter("drop"), "conntrack_early_drop": ct.counter("early_drop"),
            "conntrack_insert_failed": ct.counter("insert_failed"), "conntrack_peak": ct.peak,
        })
        if ct.rates is not None:
            out["conntrack_drop_rate"] = ct.rate("drop")
            out["conntrack_early_drop_rate"] = ct.rate("early_drop")
            out["conntrack_rate_source"] = ct.rate_source
    if ns.composition is not None:
        out["conntrack_composition"] = ns.composition.to_dict()
    for f in findings:
        if f.code in SIZING_CODES and "recommended_max" in f.evidence:
            out["conntrack_recommended_max"] = f.evidence["recommended_max"]
            out["conntrack_recommended_buckets"] = f.evidence["recommended_buckets"]
    if host.log is not None:
        out["conntrack_log_events_all"] = host.log.table_full
        out["conntrack_log_events"] = host.log.for_netns(
            ns.inode if ns.is_child else None)
    if not ns.ipv6:
        out["ipv6"] = "not available"
    return dict(sorted(out.items()))
