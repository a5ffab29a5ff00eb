"""The overlap sweep of nat_validate finds exactly the pairs the obvious double loop finds."""

from __future__ import annotations

import ipaddress
import random

from hostnet.config.nat_validate import _overlapping
from hostnet.model import nat as m


def _forward(rng: random.Random, k: int) -> m.Forward:
    first = rng.randint(1, 200)
    last = first + rng.choice([0, 0, 0, 1, 5, 30])
    to = ipaddress.ip_address(rng.choice(["198.51.100.20", "2001:db8::20"]))
    return m.Forward(rng.choice(["wan0", "wan1"]), rng.choice(list(m.Proto)),
                     m.PortRange(first, min(last, 65535)), to, None, None, False,
                     m.Origin("t.toml", k + 1, f"nat.forward[{k}]"))


def test_sweep_matches_the_double_loop() -> None:
    rng = random.Random(7)
    for _ in range(50):
        fwds = tuple(_forward(rng, k) for k in range(rng.randint(0, 60)))
        want: dict[int, list[int]] = {}
        for i, f in enumerate(fwds):
            for j, g in enumerate(fwds[:i]):
                if (g.proto, g.family) == (f.proto, f.family) and g.ports.overlaps(f.ports):
                    want.setdefault(i, []).append(j)
        assert _overlapping(fwds) == want
