"""What every doctor check gets: the observed host, the namespace it judges, the role and the
catalogue. A check is a pure function ``(Subject) -> Iterable[Finding]``: it reads nothing,
writes nothing, sleeps never, and does not depend on which other checks ran before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hostnet.findings import Finding
from hostnet.knowledge.catalogue import Catalogue
from hostnet.knowledge.roles import Role
from hostnet.model.host import HostState, NetnsState


@dataclass(frozen=True)
class Subject:
    host: HostState
    ns: NetnsState
    role: Role
    catalogue: Catalogue

    @property
    def role_name(self) -> str:
        return self.role.name

    def where(self) -> str:
        return f"namespace {self.ns.label}" if self.ns.is_child else \
            "this host (initial namespace)"


Check = Callable[[Subject], Iterable[Finding]]
