"""Observe a fixture tree into the typed state the checks take (the same code as the CLI)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from hostnet.checks.base import Check, Subject
from hostnet.checks.facts import facts
from hostnet.checks.roles import recommend_for
from hostnet.findings import Finding
from hostnet.host.root import Root
from hostnet.knowledge.catalogue import load as load_catalogue
from hostnet.knowledge.roles import load as load_role
from hostnet.model.host import HostState
from hostnet.observe.host import Want, observe

ROOTS = Path(__file__).resolve().parent.parent / "fixtures" / "roots"


def host_state(tree: str | Path, *, composition: bool = True, interval: float | None = None,
               state_dir: Path | None = None, child: str | None = None) -> HostState:
    """HostState of a fixture tree (a name under tests/fixtures/roots, or a path).

    ``child`` pretends the tree is a snapshot of the named (non-initial) namespace.
    """
    path = ROOTS / tree if isinstance(tree, str) else tree
    want = Want(composition=composition, log=composition, interval=interval,
                history_dir=state_dir)
    host = observe(Root(path), want=want)
    if child is not None:
        ns = dataclasses.replace(host.namespaces[0], snapshot_of=child)
        host = dataclasses.replace(host, namespaces=(ns,))
    return host


def subject(tree: str | Path, role: str | None = None, **kw: Any) -> Subject:
    host = host_state(tree, **kw)
    ns = host.namespaces[0]
    chosen = role or recommend_for(ns)[0]
    return Subject(host, ns, load_role(chosen), load_catalogue())


def run_checks(checks: tuple[Check, ...], tree: str | Path, role: str | None = None,
               **kw: Any) -> tuple[list[Finding], dict[str, Any]]:
    """Findings of ``checks`` on the tree and the facts the report would show."""
    s = subject(tree, role, **kw)
    found = [f for check in checks for f in check(s)]
    return found, facts(s.host, s.ns, recommend_for(s.ns)[0], found)
