"""Rules on the values every file together leaves in effect: defaults above maxima, triples
out of order (hostnet.sysctl.invariants), and IPv6 intent: disable_ipv6 against the comment
that explains it, accept_ra ignored while IPv6 forwards (pure)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from hostnet.sysctl import invariants as inv
from hostnet.sysctl import rules as R
from hostnet.sysctl.linter import Linter, find_file
from hostnet.sysctl.parser import Assignment, ParsedFile

_DISABLE = re.compile(
    r"\b(disabl\w*|turn(?:s|ing)?\s+(?:ipv6\s+)?off|switch(?:es|ing)?\s+(?:ipv6\s+)?off|"
    r"no ipv6|kill|without ipv6|ipv4[- ]only)\b",
    re.I,
)
_ENABLE = re.compile(r"\b(enabl\w*|turn(?:s|ing)? on|re-?enable)\b", re.I)


def _first_int(text: str | None) -> int | None:
    try:
        return int((text or "").split()[0])
    except (ValueError, IndexError):
        return None


def check_combined(lx: Linter, final: dict[str, Assignment], files: Sequence[ParsedFile]) -> None:
    kernel = lx.kernel
    for dkey, mkey in inv.DEFAULT_MAX_PAIRS:
        da, ma = final.get(dkey), final.get(mkey)
        if da is None and ma is None:
            continue
        d = _first_int(da.value if da else kernel.value(dkey))
        m = _first_int(ma.value if ma else kernel.value(mkey))
        found = inv.check_default_above_max(dkey, d, mkey, m)
        if found is None:
            continue
        at = da or ma
        assert at is not None
        lx.emit(
            R.DEFAULT_ABOVE_MAX,
            at.path,
            at.line,
            f"{dkey} = {found.default} is above {mkey} = {found.maximum}"
            f"{'' if ma else ' (the running value)'}: sockets cannot get the default",
            column=at.value_column,
            key=at.key,
            suggestion=f"{mkey} = {found.proposed_max}",
            parsed=find_file(files, at.path),
            evidence={dkey: found.default, mkey: found.maximum},
        )
    for key in inv.ORDERED_TRIPLES:
        a = final.get(key)
        order = inv.check_triple_order(key, a.value) if a is not None else None
        if a is None or order is None:
            continue
        lx.emit(
            R.DEFAULT_ABOVE_MAX,
            a.path,
            a.line,
            f"{key} = {a.value}: the three values should rise (min, default/pressure, max);"
            " the kernel does not check the order",
            key=key,
            column=a.value_column,
            parsed=find_file(files, a.path),
            suggestion=f"{key} = {order.proposed_text}",
        )
    for bkey, dkey in inv.DIRTY_PAIRS:
        ba, da_ = final.get(bkey), final.get(dkey)
        if ba is None:
            continue
        dval = da_.value if da_ is not None else kernel.value(dkey)
        found_bg = inv.check_background_below_dirty(
            bkey, _first_int(ba.value), dkey, _first_int(dval)
        )
        if found_bg is None:
            continue
        lx.emit(
            R.DEFAULT_ABOVE_MAX,
            ba.path,
            ba.line,
            f"{bkey} = {found_bg.background} is not below {dkey} = {found_bg.dirty}"
            f"{'' if da_ else ' (the running value)'}: the kernel then starts background "
            "writeback at half the dirty limit instead",
            column=ba.value_column,
            key=bkey,
            parsed=find_file(files, ba.path),
            evidence={bkey: found_bg.background, dkey: found_bg.dirty},
        )
    _check_exclusive(lx, final, files)
    _check_ipv6_intent(lx, final, files)


#: (bytes key, ratio key): mm/page-writeback.c, dirty_bytes_handler and dirty_ratio_handler:
#: writing one sets the other to 0, so only the one written last is in effect.
EXCLUSIVE_PAIRS = (
    ("vm.dirty_bytes", "vm.dirty_ratio"),
    ("vm.dirty_background_bytes", "vm.dirty_background_ratio"),
)


def _check_exclusive(
    lx: Linter, final: dict[str, Assignment], files: Sequence[ParsedFile]
) -> None:
    order = {pf.path: i for i, pf in enumerate(files)}
    for one, other in EXCLUSIVE_PAIRS:
        a, b = final.get(one), final.get(other)
        if a is None or b is None:
            continue
        first, last = sorted((a, b), key=lambda x: (order.get(x.path, 0), x.line))
        if _first_int(last.value) == 0:
            continue  # writing 0 to the ratio is refused anyway; nothing is replaced
        lx.emit(
            R.EXCLUSIVE_KEYS,
            first.path,
            first.line,
            f"{first.key} = {first.value} has no effect: {last.key} is set later "
            f"({last.path}:{last.line}), and writing it sets {first.key} to 0 (the kernel "
            "keeps only one of the two)",
            column=first.column,
            key=first.key,
            suggestion=f"keep either {one} or {other}, not both",
            evidence={"winner": f"{last.path}:{last.line}"},
            parsed=find_file(files, first.path),
        )


def _comment_block_above(pf: ParsedFile, line: int) -> str:
    """Text of the comment block heading the group of settings that ``line`` belongs to
    (comment lines directly above, possibly above a few other settings, up to a blank line)."""
    texts: list[str] = []
    n = line - 1
    in_comments = False
    while n >= 1:
        raw = pf.lines[n - 1].strip()
        if not raw:
            break
        if raw.startswith(("#", ";")):
            in_comments = True
            texts.append(raw.lstrip("#;").strip())
        elif in_comments:
            break
        n -= 1
    return " ".join(reversed(texts))


def _check_ipv6_intent(
    lx: Linter, final: dict[str, Assignment], files: Sequence[ParsedFile]
) -> None:
    for pf in files:
        for a in pf.assignments:
            leaf = a.key.rsplit(".", 1)[-1]
            if leaf != "disable_ipv6" or final.get(a.key) is not a:
                continue
            said = (_comment_block_above(pf, a.line) + " " + pf.path.rsplit("/", 1)[-1]).lower()
            if "ipv6" not in said and "v6" not in said:
                continue
            wants_off = bool(_DISABLE.search(said)) and not _ENABLE.search(said)
            wants_on = bool(_ENABLE.search(said)) and not _DISABLE.search(said)
            v = a.value.strip()
            if (wants_off and v == "0") or (wants_on and v == "1"):
                good = "1" if wants_off else "0"
                line = f"{a.raw_key} = {good}"
                lx.emit(
                    R.IPV6_INTENT,
                    pf.path,
                    a.line,
                    f"the comment says IPv6 should be {'off' if wants_off else 'on'}, but "
                    f"disable_ipv6 = {v} {'keeps it on' if v == '0' else 'turns it off'} "
                    "(1 disables, 0 enables)",
                    column=a.value_column,
                    key=a.key,
                    suggestion=line,
                    edit=(line,),
                    parsed=pf,
                )
    # IPv6 forwarding on + accept_ra = 1: router advertisements are ignored
    fwd_all = final.get("net.ipv6.conf.all.forwarding")
    for key, a in final.items():
        if not (key.startswith("net.ipv6.conf.") and key.endswith(".accept_ra")):
            continue
        iface = key.split(".")[3]
        fwd = final.get(f"net.ipv6.conf.{iface}.forwarding") or fwd_all
        found = inv.check_ra_with_forwarding(iface, fwd.value, a.value) if fwd else None
        if fwd is None or found is None:
            continue
        line = f"{a.raw_key} = {found.proposed_accept_ra}"
        lx.emit(
            R.IPV6_INTENT,
            a.path,
            a.line,
            f"{key} = 1 has no effect while IPv6 forwarding is on ({fwd.path}:{fwd.line}): "
            "a forwarding interface ignores router advertisements unless accept_ra = 2",
            column=a.value_column,
            key=key,
            suggestion=line,
            edit=(line,),
            parsed=find_file(files, a.path),
        )
