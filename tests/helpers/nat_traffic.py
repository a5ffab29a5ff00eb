"""The traffic every NAT router test expects through ``CONFIG`` (tests/helpers/nat_lab.py),
whoever loaded the table: the compiler test, ``hostnet apply``."""

from __future__ import annotations

from tests.helpers.nat_lab import Topology, conntrack_entries
from tests.helpers.nat_lab import probe as p


def assert_nat_traffic(topo: Topology) -> None:
    """Real TCP and UDP through a router with CONFIG's table loaded: masquerade, allowlisted
    forwards (and what the service saw), hairpin, 1:1 both ways, the router's own traffic to
    its public address, notrack."""
    topo.clear_logs()
    topo.router.run(["conntrack", "-F"], check=False)
    res = topo.probe_all({
        "inet": [p("fwd-ok-tcp", "tcp", "203.0.113.50", "203.0.113.1", 3389),
                 p("fwd-ok-udp", "udp", "192.0.2.5", "203.0.113.1", 5000),
                 p("fwd-no-tcp", "tcp", "203.0.113.51", "203.0.113.1", 3389),
                 p("fwd-no-udp", "udp", "192.0.2.16", "203.0.113.1", 5000),
                 p("direct-no", "tcp", "203.0.113.50", "198.51.100.20", 3389),
                 p("o2o-in", "tcp", "203.0.113.52", "203.0.113.11", 7000),
                 p("notrack", "udp", "203.0.113.52", "203.0.113.1", 53)],
        "lanc": [p("hairpin-ok", "tcp", "198.51.100.33", "203.0.113.1", 3389),
                 p("hairpin-ok-udp", "udp", "198.51.100.34", "203.0.113.1", 5000),
                 p("hairpin-no", "tcp", "198.51.100.30", "203.0.113.1", 3389),
                 p("masq-tcp", "tcp", "198.51.100.31", "203.0.113.254", 9100),
                 p("masq-udp", "udp", "198.51.100.31", "203.0.113.254", 9100),
                 p("o2o-hairpin", "udp", "198.51.100.36", "203.0.113.11", 7000)],
        "srv": [p("o2o-out", "tcp", "198.51.100.11", "203.0.113.254", 9100),
                p("srv-out", "udp", "198.51.100.20", "203.0.113.254", 9100)],
        "router": [p("self-public", "tcp", "203.0.113.1", "203.0.113.1", 3389)],
    }, wait=2.0)
    seen = topo.seen()
    ok = {k for k, v in res.items() if v["result"] == "ok"}
    assert ok == {"fwd-ok-tcp", "fwd-ok-udp", "o2o-in", "notrack", "hairpin-ok",
                  "hairpin-ok-udp", "masq-tcp", "masq-udp", "o2o-hairpin", "o2o-out",
                  "srv-out", "self-public"}, res
    # the forwarded service saw the allowlisted client as it is, nothing of the others
    assert (seen["fwd-ok-tcp"]["local"], seen["fwd-ok-tcp"]["peer"]) == (
        "198.51.100.20:3389", "203.0.113.50")
    assert seen["fwd-ok-udp"]["local"] == "198.51.100.20:15000"
    for pid in ("fwd-no-tcp", "fwd-no-udp", "direct-no", "hairpin-no"):
        assert pid not in seen, seen.get(pid)
        assert res[pid]["result"] == "timeout"
    # hairpin: the server answers through the router (source is the router's LAN address)
    assert seen["hairpin-ok"]["peer"] == "198.51.100.1"
    assert seen["hairpin-ok"]["server"] == "srv"
    # LAN -> internet with the router's address; the 1:1 host with its public address
    assert seen["masq-tcp"]["peer"] == seen["masq-udp"]["peer"] == "203.0.113.1"
    assert seen["srv-out"]["peer"] == "203.0.113.1"
    assert seen["o2o-out"]["peer"] == "203.0.113.11"
    assert (seen["o2o-in"]["local"], seen["o2o-in"]["peer"]) == ("198.51.100.11:7000",
                                                                "203.0.113.52")
    # the router's own traffic to its public address is forwarded too (nat output hook)
    assert (seen["self-public"]["server"], seen["self-public"]["peer"]) == ("srv",
                                                                          "203.0.113.1")
    assert seen["notrack"]["server"] == "router"
    entries = conntrack_entries(topo.router)
    assert not [e for e in entries if "53" in (e["dport"], e["sport"])], entries
    assert [e for e in entries if e["dport"] == "3389" and e["rsrc"] == "198.51.100.20"]
