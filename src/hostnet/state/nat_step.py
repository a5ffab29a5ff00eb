"""The ``[nat]`` table as steps of ``hostnet apply``: journaled, read back, rolled back.

:func:`add_nat_steps` (called by :func:`hostnet.state.prepare.prepare`) compiles the config
(``nat.compile``), checks the file with ``nft -c`` and compares it with what the namespace has
loaded. A change becomes one :class:`LoadNftTable` step (``nft -f``: the old table is swapped
for the new one in one kernel transaction); what the table needs becomes ordinary steps: the
sysctls (ip_forward, IPv6 forwarding, route_localnet, proxy_ndp) as
:class:`~hostnet.state.steps.SetSysctl`, the proxy neighbour entry and /32 route of each 1:1
address with ``arp = "proxy"`` as :class:`NatLinkStep` (the VM link machinery: same journal
record, same three-way undo).

The loaded table carries a comment with the digest of its body (``nat.nftables.stamp_of``),
so a second apply of the same config plans nothing. After loading, the conntrack entries of
forwards whose target or allowlist changed (decided from the kernel's table, ``nat.live``)
are deleted, and only those; rollback puts the old table back exactly (the listing journaled
before the change) and deletes the entries the rolled-back translations made.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hostnet.errors import HostnetError, InputError, PlanError
from hostnet.nat.live import Translation
from hostnet.state import nat_table
from hostnet.state.hostio import HostIO
from hostnet.state.steps import Outcome, SetSysctl, Step, Undone, register
from hostnet.state.vm_step import VmLinkStep, _snapshot, live_sysctl
from hostnet.vm import steps as vs

if TYPE_CHECKING:
    from hostnet.config.load import Loaded
    from hostnet.model import nat as m
    from hostnet.model.vm import LinkSnapshot
    from hostnet.nat import ir
    from hostnet.state.plan import Plan

def digest_of(translations: Iterable[Translation]) -> str:
    doc = json.dumps([t.to_json() for t in sorted(translations)], separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


def _translations(netns: str | None = None) -> dict[Any, Translation]:
    from hostnet.nat.live import of_table

    return of_table(nat_table.read_table_json(netns))


@register
@dataclass(frozen=True, slots=True)
class LoadNftTable(Step):
    """Replace ``table inet hostnet`` with ``text`` (or remove it: ``stamp`` None)."""

    kind: ClassVar[str] = "nft-table"
    order: ClassVar[int] = 60
    netns: str | None
    nft_file: str  # the nft -f file
    stamp: str | None  # digest in the new table's comment; None: the step removes the table
    old_stamp: str | None  # what the loaded table's comment said at plan time
    had_table: bool
    expect: str  # digest_of() the translations the new table makes
    forwards: int  # public ports forwarded (for the plan's text)
    reason: str
    clear: tuple[Translation, ...] = ()  # after loading: entries of these are deleted
    undo_clear: tuple[Translation, ...] = ()  # after a rollback: entries of these
    effect: str = "live"
    #: filled by run(): what the conntrack clean-up deleted (shown by apply)
    cleared: list[nat_table.ConntrackCleared] = field(default_factory=list, compare=False)

    def change(self) -> dict[str, Any]:
        return {"kind": self.kind, "netns": self.netns,
                "action": "remove" if self.stamp is None else
                ("replace" if self.had_table else "create"),
                "stamp": self.stamp, "old_stamp": self.old_stamp, "forwards": self.forwards,
                "clear_conntrack": [t.describe() for t in self.clear],
                "reason": self.reason, "effect": self.effect}

    def text(self) -> str:
        if self.stamp is None:
            return "table inet hostnet: remove"
        verb = "replace" if self.had_table else "create"
        return f"table inet hostnet: {verb} ({self.forwards} forwarded port(s))"

    def record(self, io: HostIO) -> dict[str, Any]:
        return {"kind": self.kind, "netns": self.netns, "text": self.text(),
                "previous": nat_table.read_table(None), "stamp": self.stamp,
                "expect": self.expect,
                "undo_clear": [t.to_json() for t in self.undo_clear]}

    def run(self, io: HostIO) -> None:
        if not io.live:
            raise PlanError(f"{self.text()}: the NAT table is live state; --root alone "
                            "writes files")
        nat_table.replace(self.nft_file, None, read_back=False, previous=None)
        if self.clear:
            self.cleared.append(nat_table.clear_translations(list(self.clear)))

    def verify(self, io: HostIO) -> str | None:
        return _left_problem(nat_table.read_table(None), self.stamp, self.expect)

    @classmethod
    def undo(cls, record: dict[str, Any], io: HostIO, force: bool) -> list[Undone]:
        target = "table inet hostnet"
        previous = record.get("previous")
        now = nat_table.read_table(None)
        if now == previous:
            return [Undone(Outcome.UNCHANGED, target, "already as before")]
        stamp = record.get("stamp")
        left = _left_problem(now, stamp, str(record.get("expect", ""))) is None
        if not left and not force:
            return [Undone(Outcome.DRIFT, target, "changed since hostnet loaded it: left alone "
                           "(--force puts the old table back)")]
        nat_table.restore(previous if isinstance(previous, str) else None)
        said = "removed (there was none before)" if previous is None else \
            "the previous table put back exactly"
        gone = [Translation.from_json(t) for t in record.get("undo_clear") or []]
        if gone:
            try:
                cleared = nat_table.clear_translations(gone)
                said += f"; {cleared.deleted} conntrack entr(y/ies) of its forwards deleted"
            except HostnetError as exc:
                said += f"; conntrack entries not deleted: {exc.message}"
        return [Undone(Outcome.RESTORED if left else Outcome.FORCED, target, said)]


def _left_problem(listing: str | None, stamp: str | None, expect: str) -> str | None:
    """None when the namespace shows the table the step leaves, else what differs."""
    from hostnet.nat.nftables import stamp_of

    if stamp is None:
        return None if listing is None else "table inet hostnet is still loaded"
    if listing is None:
        return "table inet hostnet is not loaded"
    if stamp_of(listing) != stamp:
        return f"table inet hostnet is stamped {stamp_of(listing)}, not {stamp}"
    if digest_of(_translations().values()) != expect:
        return "table inet hostnet translates other ports than the config says"
    return None


@register
@dataclass(frozen=True, slots=True)
class NatLinkStep(VmLinkStep):
    """A proxy neighbour entry or /32 route a 1:1 address needs (VM link machinery)."""

    kind: ClassVar[str] = "nat-link"
    order: ClassVar[int] = 65

    def change(self) -> dict[str, Any]:
        return {**VmLinkStep.change(self), "kind": self.kind}

    @classmethod
    def label(cls, step: vs.Step) -> str:
        return step.vm


# -- planning ----------------------------------------------------------------------------


def sysctl_steps(needs: Iterable[ir.Sysctl], io: HostIO, netns: str | None,
                 planned: dict[str, str]) -> list[Step]:
    """SetSysctl steps for the values the table needs and the host lacks. A value the rest
    of the plan writes too is left to it; one it sets otherwise is a conflict."""
    out: list[Step] = []
    for need in needs:
        other = planned.get(need.key)
        if other is not None:
            if other.strip() != need.value:
                raise PlanError(f"{need.key}: the config sets {other} but the [nat] table "
                                f"needs {need.value} ({need.reason})",
                                hint=f"drop {need.key} from [sysctl] or change [nat]")
            continue
        old = io.read_sysctl(need.key)
        if old is None:
            raise PlanError(f"{need.key}: not in this kernel or namespace, and the [nat] "
                            f"table needs it ({need.reason})",
                            hint="check the interface names in [nat]")
        if old.strip() == need.value:
            continue
        out.append(live_sysctl(netns, need.key, old.strip(), need.value,
                               f"[nat]: {need.reason}"))
    return out


def _lan_link(snap: LinkSnapshot, private: m.IPAddress) -> str | None:
    for a in snap.addresses:
        if a.address.version == private.version and private in a.interface.network:
            return a.link
    return None


def link_steps(proxies: Iterable[ir.ProxyNeighbour], snap: LinkSnapshot, netns: str | None) \
        -> list[Step]:
    """Proxy entry and /32 (/128) route towards the private address for each 1:1 address
    with ``arp = "proxy"`` (the kernel answers only for addresses routed elsewhere)."""
    out: list[Step] = []
    for p in proxies:
        label = f"nat {p.origin.path}"
        why = f"{p.origin.label}: 1:1 NAT of {p.address}"
        lan = _lan_link(snap, p.route_towards)
        if lan is None:
            raise PlanError(f"{p.origin.label}: {p.route_towards} is on no interface of this "
                            "namespace, so the route for the public address has no device",
                            hint="put the private address's network on an interface first")
        if not snap.has_proxy(p.address, p.iface):
            out.append(NatLinkStep(netns, vs.AddProxy(label, why, str(p.address), p.iface),
                                   why))
        route = snap.route_to(p.address)
        if route is None or route.link != lan:
            out.append(NatLinkStep(netns, vs.AddRoute(
                label, why, str(p.address), p.address.max_prefixlen, lan,
                None if route is None else route.link), why))
    return out


def table_step(cfg: m.NatConfig, table: ir.Table, netns: str | None) -> LoadNftTable | None:
    """The step loading ``table`` (compiled from ``cfg``) on the namespace we are in (None:
    already loaded)."""
    from hostnet.nat import live
    from hostnet.nat.nftables import render, stamp_of

    text = render(table)
    stamp = stamp_of(text)
    listing = nat_table.read_table(None)
    loaded = _translations() if listing is not None else {}
    want = live.of_config(cfg)
    if listing is not None and stamp_of(listing) == stamp and loaded == want:
        return None
    try:
        nat_table.check(text)
    except HostnetError as exc:
        raise PlanError(exc.message, hint="nothing was changed; report this with the "
                        "config if 'hostnet nat compile' output looks right") from None
    return LoadNftTable(
        netns, text, stamp, stamp_of(listing), listing is not None,
        digest_of(want.values()), len(want), f"[nat] of {cfg.origin.file}",
        tuple(live.changed(loaded, want)), tuple(live.changed(want, loaded)))


def removal_step(netns: str | None) -> tuple[LoadNftTable | None, str | None]:
    """Without ``[nat]``: remove a table an earlier hostnet apply loaded (it carries the
    stamp); a table without it is left alone with a warning."""
    from hostnet.nat import live
    from hostnet.nat.nftables import restore_text, stamp_of

    listing = nat_table.read_table(None)
    if listing is None:
        return None, None
    if stamp_of(listing) is None:
        return None, ("table inet hostnet is loaded but not stamped by hostnet apply: left "
                      "alone (remove it with 'nft delete table inet hostnet')")
    loaded = _translations()
    return LoadNftTable(netns, restore_text(None), None, stamp_of(listing), True,
                        digest_of(()), 0, "[nat] is no longer in the config",
                        tuple(live.changed(loaded, {}))), None


def add_nat_steps(plan: Plan, loaded_config: Loaded, text: str, config: Path, *,
                  netns: str | None, live: bool) -> Plan:
    """``plan`` with the steps of the config's ``[nat]`` table (see the module doc)."""
    from dataclasses import replace

    has_nat = loaded_config.config.nat is not None
    if not live:
        if not has_nat:
            return plan
        return replace(plan, warnings=(*plan.warnings, (
            "[nat]: left out: the NAT table is live kernel state and --root alone writes "
            "files only (apply on the host, or add --netns)")))
    if not has_nat:
        step, warning = removal_step(netns)
        return replace(plan, steps=(*plan.steps, *([step] if step else []),
                                    *_iptables_removal(netns, "[nat] is no longer in the "
                                                       "config")),
                       warnings=(*plan.warnings, *([warning] if warning else [])))
    from hostnet.config.nat import checked
    from hostnet.config.nat_validate import check_connected
    from hostnet.nat.compile import compile_table
    from hostnet.state.prepare import config_error

    assert loaded_config.config.nat is not None
    try:
        loaded = checked(loaded_config.config.nat, text, str(config))
    except InputError as exc:
        raise config_error(config, exc.message.splitlines()) from None
    cfg = loaded.config
    router = nat_table.read_router(None)
    problems = check_connected(cfg, router.ifaces)
    errors = [p.render(str(config)) for p in problems if p.severity == "error"]
    if errors:
        raise config_error(config, errors)
    warnings = [f"[nat]: {p.render(str(config))}" for p in (*loaded.warnings, *problems)
                if p.severity != "error"]
    compiled = compile_table(cfg)
    needs = compiled.needs
    io = HostIO(Path("/"), live=True)
    planned = {s.key: s.new for s in plan.steps if isinstance(s, SetSysctl)}
    sysctls = sysctl_steps(needs.sysctls, io, netns, planned)
    if cfg.backend.value == "iptables":
        from hostnet.state.ipt_step import read_iptables_steps

        loads: list[Step] = read_iptables_steps(cfg, netns, f"[nat] of {cfg.origin.file}")
        old_table, _ = removal_step(netns)  # switched from nftables: drop our table
        loads += [old_table] if old_table else []
    else:
        table = table_step(cfg, compiled, netns)
        loads = [*([table] if table else []),
                 *_iptables_removal(netns, "[nat] backend is nftables now")]
    links = link_steps(needs.proxy_neighbours, _snapshot(), netns)
    return replace(plan, steps=(*sysctls, *plan.steps, *loads, *links),
                   warnings=(*plan.warnings, *warnings))


def _iptables_removal(netns: str | None, reason: str) -> list[Step]:
    """Steps removing HOSTNET-* chains an earlier iptables-backend apply loaded (none when
    the host has no iptables tools)."""
    import shutil

    if shutil.which("iptables-save") is None:
        return []
    from hostnet.state.ipt_step import read_removal_steps

    return read_removal_steps(netns, reason)


def cleared_report(steps: Iterable[Step]) -> list[str]:
    """Lines for apply: how many conntrack entries the table steps deleted, and of what."""
    out: list[str] = []
    for step in steps:
        if not isinstance(step, LoadNftTable):
            continue
        if not step.clear:
            out.append("conntrack: no forward changed its target or allowlist: no entries "
                       "deleted")
            continue
        for c in step.cleared:
            out.append(f"conntrack: {c.deleted} entr{'y' if c.deleted == 1 else 'ies'} of "
                       f"{len(c.per_translation)} changed or removed forwarded port(s) deleted; "
                       "other flows keep their translation")
            out += [f"  {what}: {n}" for what, n in c.per_translation if n]
    return out

