"""The parts of a namespace's packet filter the checks reason about (nftables or iptables)."""

from __future__ import annotations

from dataclasses import dataclass

NAT_KINDS = ("masquerade", "snat", "dnat", "redirect")


@dataclass(frozen=True, slots=True)
class NatRule:
    kind: str  # masquerade, snat, dnat, redirect
    family: str  # ip, ip6, inet (nft) or ipv4 (iptables)
    table: str
    chain: str
    hook: str | None  # prerouting, postrouting, output, input (None: unknown)
    source: str  # "nft" or "iptables-save"
    #: DNAT/SNAT target addresses as written (``198.51.100.20``), when the rule names them.
    targets: tuple[str, ...] = ()

    def where(self) -> str:
        return f"table {self.family} {self.table}" if self.source == "nft" else (
            f"iptables table {self.table} chain {self.chain}")

    def describe(self) -> str:
        return f"{self.kind} in {self.where()} chain {self.chain}" if self.source == "nft" else (
            f"{self.kind} in {self.where()}")

    @property
    def routed(self) -> bool:
        """True unless the rule can only touch this host's own traffic (output chain, redirect)."""
        return self.kind != "redirect" and self.hook not in ("output", "input")


@dataclass(frozen=True, slots=True)
class BaseChain:
    """A chain attached to a netfilter hook, with what decides its packets' fate."""

    family: str
    table: str
    name: str
    hook: str  # prerouting, input, forward, output, postrouting, ingress
    priority: int
    type: str  # filter, nat, route
    policy: str  # accept or drop
    source: str  # "nft" or "iptables-save"
    rules: int = 0
    #: Verdict statements that appear in the chain's rules (accept, drop, reject, jump ...).
    verdicts: tuple[str, ...] = ()
    #: Verdicts found in the regular chains its rules jump or go to, followed to any depth
    #: (docker's FORWARD -> DOCKER-USER, firewalld's filter_FORWARD -> its zone chains).
    reached: tuple[str, ...] = ()
    #: NAT statements (dnat, snat, masquerade, redirect) in its rules or the chains it reaches.
    nat: tuple[str, ...] = ()

    @property
    def drops(self) -> bool:
        """A drop or reject rule in the chain or in a chain it reaches."""
        return bool({"drop", "reject"} & {*self.verdicts, *self.reached})

    @property
    def can_drop(self) -> bool:
        """Its policy drops, or a rule in it (or reached from it) drops or rejects."""
        return self.policy == "drop" or self.drops

    @property
    def accepts(self) -> bool:
        return "accept" in self.verdicts or "accept" in self.reached

    def describe(self) -> str:
        return (f"{self.family} {self.table} {self.name} (hook {self.hook}, priority "
                f"{self.priority}, policy {self.policy}, {self.rules} rules)")


@dataclass(frozen=True, slots=True)
class Ruleset:
    nat: tuple[NatRule, ...] = ()
    chains: tuple[BaseChain, ...] = ()
    #: Any rule matches on conntrack state or does NAT (so the namespace tracks connections).
    uses_conntrack: bool = False
    #: Commands the rules were read from (``nft -j list ruleset``, ``iptables-save``).
    sources: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return bool(self.sources)

    def hook(self, hook: str) -> list[BaseChain]:
        return sorted((c for c in self.chains if c.hook == hook), key=lambda c: c.priority)

    def forward_drops_new(self) -> bool:
        """Whether anything on the forward hook can drop (policy drop or a drop/reject rule)."""
        return any(c.policy == "drop" or {"drop", "reject"} & set(c.verdicts)
                   for c in self.hook("forward"))
