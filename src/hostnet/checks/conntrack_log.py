"""What the kernel log says about conntrack (codes CT108, CT111), when the caller had it
scanned (``Want(log=True)`` when observing).

``table full in netns N`` names a namespace by inode number, and the kernel reuses inode
numbers: a namespace created later can carry the number of one that filled its table and is
gone. Lines older than the namespace (``NetnsState.created``, the mtime of its /run/netns
file) are therefore not its own; lines whose time cannot be told (a ``[secs]`` stamp without
a boot time) or is too close to the creation to tell (the kernel's log clock drifts from wall
time: see logscan.stamp_epoch) are counted but marked as possibly from an earlier namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hostnet.checks.base import Subject
from hostnet.findings import Finding, Rule, Severity
from hostnet.model.conntrack import USAGE_CRITICAL

if TYPE_CHECKING:
    from hostnet.model.kernlog import LogSummary

LOG_TABLE_FULL = Rule("CT108", "conntrack-log-table-full", Severity.WARNING,
                      "The kernel log reports 'table full, dropping packet'")
EXPECT_FULL = Rule("CT111", "conntrack-expect-table-full", Severity.WARNING,
                   "The conntrack expectation table was full (helpers lost expectations)")

SYSCTL_FILE = "/etc/sysctl.d/90-hostnet.conf"


@dataclass(frozen=True, slots=True)
class Attribution:
    """A namespace's 'table full' lines, split by when they were written."""

    after: int  # written after the namespace was created (or no creation time to compare)
    uncertain: int  # time unknown or too close to tell: possibly an earlier namespace's
    before: int  # older than the namespace: another namespace's, left out

    @property
    def counted(self) -> int:
        return self.after + self.uncertain


def attribute(summary: LogSummary, inode: int | None, created: float | None,
              boot_time: float | None, now: float | None = None) -> Attribution:
    """Which of the lines naming ``inode`` can belong to a namespace created at ``created``."""
    total = summary.for_netns(inode)
    if inode is None or created is None:
        return Attribution(total, 0, 0)
    times = summary.netns_times.get(inode)
    if not times:
        return Attribution(0, total, 0)
    from hostnet.conntrack.logscan import stamp_epoch  # only when a log was scanned

    after = uncertain = before = 0
    for stamp, n in times.items():
        when = stamp_epoch(stamp, boot_time=boot_time, near=created, now=now)
        if when is None:
            uncertain += n
        elif when[0] + when[1] < created:
            before += n
        elif when[0] - when[1] >= created:
            after += n
        else:
            uncertain += n
    return Attribution(after, uncertain, before)


def evaluate_log(summary: LogSummary, inode: int | None, own_netns: str | None,
                 names: dict[int, str], drop: int | None, full_now: bool, *,
                 created: float | None = None, boot_time: float | None = None,
                 now: float | None = None) -> list[Finding]:
    """Findings from the kernel log. ``inode`` None means the initial namespace."""
    out: list[Finding] = []
    share = attribute(summary, inode, created, boot_time, now)
    mine = share.counted
    others = {(names.get(ns, str(ns)) if ns is not None else "initial"): n
              for ns, n in summary.by_netns.items() if ns != inode}
    sources = [f"{s.source} ({s.table_full})" for s in summary.sources if s.table_full]
    if mine:
        place = f"namespace {own_netns}" if own_netns else "the initial namespace"
        drop_txt = (f"; the `drop` counter says {drop} packets" if drop is not None else "")
        doubt = ""
        if share.uncertain:
            doubt = (f". {share.uncertain} of these lines have no time that can be compared "
                     "with the namespace's creation: they are possibly from an earlier "
                     "namespace that had the same inode number")
        if share.before:
            doubt += (f". {share.before} older lines naming the same inode predate this "
                      "namespace and were left out")
        evidence: dict[str, Any] = {"lines": mine, "first": summary.first, "last": summary.last,
                    "suppressed": summary.suppressed, "sources": sources,
                    "other_namespaces": others,
                    "examples": [e for s in summary.sources for e in s.examples][:3]}
        if inode is not None and created is not None:
            evidence.update({"after_creation": share.after,
                             "possibly_earlier_namespace": share.uncertain,
                             "older_than_namespace": share.before,
                             "namespace_created": created})
        out.append(LOG_TABLE_FULL.finding(
            f"kernel log: {mine} 'table full, dropping packet' lines for {place}, first "
            f"{summary.first or '?'}, last {summary.last or '?'}. The log undercounts: the "
            f"kernel rate-limits these warnings (it folded {summary.suppressed} messages into "
            f"'callbacks suppressed' notices){drop_txt}{doubt}",
            key="kernel-log",
            severity=Severity.WARNING if full_now else Severity.INFO,
            evidence=evidence,
            suggestion=None if not full_now else
            "# size the table: hostnet conntrack size\nnet.netfilter.nf_conntrack_max = "
            "(see CT101)",
        ))
    if summary.expect_full:
        out.append(EXPECT_FULL.finding(
            f"kernel log: {summary.expect_full} 'expectation table full' lines: connection "
            "helpers (FTP, SIP, ...) could not register related flows, so those data "
            "connections fail",
            key="net.netfilter.nf_conntrack_expect_max",
            evidence={"lines": summary.expect_full, "sources": sources},
            suggestion=f"# {SYSCTL_FILE} (initial namespace)\n"
                       "net.netfilter.nf_conntrack_expect_max = 4096",
        ))
    return out


def check_kernel_log(s: Subject) -> list[Finding]:
    """'table full' and 'expectation table full' in the kernel log (when it was scanned)."""
    summary = s.host.log
    if summary is None:
        return []
    inode = s.ns.inode if s.ns.is_child else None
    netns = s.ns.label if s.ns.is_child else None  # a snapshot of a named namespace too
    ct = s.ns.conntrack
    usage = ct.usage if ct is not None else None
    drop = ct.counter("drop") if ct is not None else None
    return evaluate_log(summary, inode, netns, s.host.namespace_names, drop,
                        usage is not None and usage >= USAGE_CRITICAL,
                        created=s.ns.created, boot_time=s.host.kernel.boot_time,
                        now=s.host.kernel.observed_at)


CHECKS = (check_kernel_log,)
