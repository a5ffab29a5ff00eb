"""IR -> one ``nft -f`` file that replaces ``table inet hostnet`` atomically (pure).

The file starts with ``table inet hostnet {}`` (creates the table if missing) and
``delete table inet hostnet``, then declares the full table: nft runs the whole file as one
transaction, so the old table is swapped for the new one or nothing changes. It never flushes
the ruleset and names no other table.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from hostnet.model import nat as m
from hostnet.nat import ir

REPLACE_PREAMBLE = f"table {ir.TABLE_FAMILY} {ir.TABLE_NAME} {{}}\ndelete table " \
                   f"{ir.TABLE_FAMILY} {ir.TABLE_NAME}\n"


def value(v: ir.Value) -> str:
    if isinstance(v, ir.Jump):
        return f"jump {v.chain}"
    if isinstance(v, m.Proto):
        return v.value
    if isinstance(v, m.PortRange):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace('"', "") + '"'
    if isinstance(v, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(v.network_address) if v.prefixlen == v.max_prefixlen else str(v)
    return str(v)


def quote(text: str) -> str:
    return '"' + text.replace('"', "'").replace("\\", "/") + '"'


def element(s: ir.NamedSet, e: ir.Element) -> str:
    text = " . ".join(value(v) for v in e.key)
    if e.origin is not None and s.comments:
        text += f" comment {quote(e.origin.label)}"
    if s.is_map:
        text += " : " + " . ".join(value(v) for v in e.value)
    return text


def render_set(s: ir.NamedSet) -> list[str]:
    kind = "map" if s.is_map else "set"
    type_ = " . ".join(f.nft_type for f in s.key)
    if s.is_map:
        type_ += " : " + " . ".join(s.value_types)
    out = [f"\t{kind} {s.name} {{", f"\t\ttype {type_}"]
    if s.interval:
        out.append("\t\tflags interval")
    if s.about:
        out.append(f"\t\tcomment {quote(s.about)}")
    items = [element(s, e) for e in s.elements]
    out.append("\t\telements = { " + ",\n\t\t\t     ".join(items) + " }")
    out.append("\t}")
    return out


def key_text(key: tuple[ir.Field, ...]) -> str:
    return " . ".join(f.value for f in key)


def match(x: ir.Match) -> str:
    if isinstance(x, ir.Lookup):
        return f"{key_text(x.key)} {'!= ' if x.negate else ''}@{x.set_name}"
    if isinstance(x, ir.FibLocal):
        return f"fib daddr{' . iif' if x.on_iif else ''} type {'!= ' if x.negate else ''}local"
    if isinstance(x, ir.CtStateNew):
        return "ct state new"
    if isinstance(x, ir.CtDnat):
        # ct status is a bitmask: "!= dnat" would compare the whole value; "! dnat" tests the bit
        return f"ct status {'! ' if x.negate else ''}dnat"
    if isinstance(x, ir.FamilyIs):
        return f"meta nfproto ipv{x.family.value}"
    if isinstance(x, ir.ProtoIn):
        return "meta l4proto { " + ", ".join(p.value for p in x.protos) + " }"
    if x.family is m.Family.V4:
        return "ip daddr != 127.0.0.0/8"
    return "ip6 daddr != ::1"


def action(a: ir.Action) -> str:
    if isinstance(a, ir.Verdict):
        return a.value
    if isinstance(a, ir.Notrack):
        return "notrack"
    if isinstance(a, ir.Masquerade):
        return "masquerade"
    if isinstance(a, ir.Vmap):
        return f"{key_text(a.key)} vmap @{a.map_name}"
    fam = "ip" if a.family is m.Family.V4 else "ip6"
    verb = "dnat" if isinstance(a, ir.Dnat) else "snat"
    return f"{verb} {fam} to {key_text(a.key)} map @{a.map_name}"


def rule_text(r: ir.Rule) -> str:
    parts = [match(x) for x in r.matches] + [action(r.action)]
    return " ".join(parts)


def render_chain(c: ir.Chain) -> list[str]:
    out = [f"\tchain {c.name} {{"]
    if c.hook is not None:
        out.append(f"\t\ttype {c.type.value} hook {c.hook.value} priority {c.priority_text}; "
                   f"policy {c.policy.value};")
    out += [f"\t\t{rule_text(r)} comment {quote(r.comment)}" for r in c.rules]
    out.append("\t}")
    return out


def render_table(t: ir.Table) -> str:
    """``table inet hostnet { ... }`` alone (as ``nft list table`` would show it)."""
    body: list[str] = []
    for s in t.sets:
        body += [*render_set(s), ""]
    for c in t.chains:
        body += [*render_chain(c), ""]
    if body:
        body.pop()
    text = "\n".join(body)
    stamp = f'\tcomment "{STAMP_PREFIX}{digest(text)}"\n'
    return f"table {ir.TABLE_FAMILY} {ir.TABLE_NAME} {{\n" + stamp + text + "\n}\n"


#: The table's comment: ``hostnet sha256:`` and the first 16 hex digits of the digest of its
#: body, so a plan can tell from ``nft list table`` whether the loaded table is this one.
STAMP_PREFIX = "hostnet sha256:"
_STAMP = re.compile(r'^\tcomment "' + re.escape(STAMP_PREFIX) + r'([0-9a-f]{16})"$', re.M)


def digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def stamp_of(listing: str | None) -> str | None:
    """The digest in a listed table's comment (None: no table, or not stamped by hostnet)."""
    found = _STAMP.search(listing or "")
    return found.group(1) if found else None


def render(t: ir.Table) -> str:
    """The complete ``nft -f`` file: header comments, atomic replacement, the table."""
    head = [f"# hostnet NAT table compiled from {t.source}; load with 'nft -f FILE' "
            "(check first with 'nft -c -f FILE').",
            "# The next two lines and the table run as one transaction: the old table is",
            "# replaced as a whole or not at all. No other table is touched."]
    for s in t.needs.sysctls:
        head.append(f"# needs sysctl {s.key} = {s.value} ({s.reason})")
    for p in t.needs.proxy_neighbours:
        head.append(f"# needs ip neigh add proxy {p.address} dev {p.iface}; route "
                    f"{p.address} towards {p.route_towards} ({p.origin.label})")
    return "\n".join(head) + "\n" + REPLACE_PREAMBLE + render_table(t)


def restore_text(previous: str | None) -> str:
    """The ``nft -f`` file that puts back ``previous`` (``nft list table`` text) exactly, or
    removes the table when there was none."""
    if previous is None:
        return REPLACE_PREAMBLE
    return REPLACE_PREAMBLE + previous
