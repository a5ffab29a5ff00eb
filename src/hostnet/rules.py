"""Registry of every rule hostnet knows, gathered from the modules that define them.

A rule module defines module-level :class:`~hostnet.findings.Rule` objects. Adding a family
means adding its module here; ``tests/unit/test_rule_docs.py`` then insists on a doc page.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib import resources

from hostnet.findings import Rule

RULE_MODULES: tuple[str, ...] = (
    "hostnet.sysctl.rules",
    "hostnet.checks.conntrack_table",
    "hostnet.checks.conntrack_composition",
    "hostnet.checks.conntrack_log",
    "hostnet.checks.conntrack_timeouts",
    "hostnet.checks.hardening",
    "hostnet.checks.tuning",
    "hostnet.checks.ipv6",
    "hostnet.checks.nat",
    "hostnet.checks.nat_coexist",
    "hostnet.checks.vm",
)


@cache
def all_rules() -> dict[str, Rule]:
    found: dict[str, Rule] = {}
    for name in RULE_MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, Rule):
                other = found.get(value.code)
                if other is not None and other != value:
                    raise RuntimeError(f"rule code {value.code} defined twice ({name})")
                found[value.code] = value
    return dict(sorted(found.items()))


def rule_doc(code: str) -> str | None:
    """The markdown page of a rule, or None when it has none."""
    page = resources.files("hostnet.knowledge").joinpath("rules", f"{code.upper()}.md")
    try:
        return page.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return None
