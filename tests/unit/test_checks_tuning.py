"""TN checks: port range, buffers, pid_max (pure) and the fixture trees."""

from __future__ import annotations

from pathlib import Path

from hostnet.checks import tuning as tn
from hostnet.findings import Finding
from hostnet.model.net import Listener
from tests.helpers.state import run_checks

FIX = Path(__file__).resolve().parents[1] / "fixtures/roots"


def _view(rng: str, reserved: str = "", listen: tuple[int, ...] = (), ports_min: int = 1000,
          start: int | None = 1024) -> tn.PortView:
    return tn.PortView(rng, reserved, start,
                       tuple(Listener("tcp", p, "00000000", False) for p in listen),
                       "server", ports_min)


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def test_default_range_is_clean() -> None:
    assert tn.evaluate_ports(_view("32768\t60999")) == []


def test_invalid_ranges() -> None:
    for bad in ("60999 32768", "0 100", "500 60999", "1 2 3", "32768 70000"):
        assert codes(tn.evaluate_ports(_view(bad))) == ["TN108"], bad
    assert tn.evaluate_ports(_view("abc")) == []


def test_parity() -> None:
    [f] = tn.evaluate_ports(_view("32768 60998"))
    # the parity fix moves the top end up (never shrinking the range)
    assert f.code == "TN109" and f.suggestion == "net.ipv4.ip_local_port_range = 32768 60999"


def test_parity_and_small_range_propose_one_value() -> None:
    # regression: TN109 proposed "60000 60009" (shrinking a tiny range) and TN111
    # "60000 65535" for the same key
    got = tn.evaluate_ports(_view("60000 60010", ports_min=1000))
    assert codes(got) == ["TN109", "TN111"]
    assert {f.suggestion for f in got} == {"net.ipv4.ip_local_port_range = 60000 65535"}
    # a big minimum: the bottom moves down and the parity still differs
    got = tn.evaluate_ports(_view("60000 60010", ports_min=20000))
    [fix] = {f.suggestion for f in got}
    low, high = map(int, (fix or "").split("= ")[1].split())
    assert high == 65535 and high - low + 1 >= 20000 and low % 2 != high % 2


def test_invalid_range_proposal_satisfies_every_invariant() -> None:
    [f] = tn.evaluate_ports(_view("60999 32768"))
    assert f.suggestion == "net.ipv4.ip_local_port_range = 32768 60999"
    [f] = tn.evaluate_ports(_view("500 60999", start=1024))
    assert f.suggestion == "net.ipv4.ip_local_port_range = 1024 60999"
    [f] = tn.evaluate_ports(_view("1024 65536"))
    assert f.suggestion == "net.ipv4.ip_local_port_range = 1024 65535"


def test_overlap_with_listeners_and_reserved() -> None:
    [f] = tn.evaluate_ports(_view("32768 60999", listen=(80, 40000, 50000)))
    assert f.code == "TN110" and "tcp/40000" in f.message and "tcp/80" not in f.message
    assert f.suggestion == "net.ipv4.ip_local_reserved_ports = 40000,50000"
    [f] = tn.evaluate_ports(_view("32768 60999", "40000", listen=(40000, 50000)))
    assert f.suggestion == "net.ipv4.ip_local_reserved_ports = 40000,50000"
    assert tn.evaluate_ports(_view("32768 60999", "40000-50000", listen=(40000, 50000))) == []


def test_small_range_counts_reserved_ports() -> None:
    [f] = tn.evaluate_ports(_view("50000 50999", ports_min=28000))
    assert f.code == "TN111" and f.evidence["usable_ports"] == 1000
    low, high = map(int, (f.suggestion or "").split("= ")[1].split())
    assert high - low + 1 >= 28000 and low % 2 != high % 2
    [f] = tn.evaluate_ports(_view("32768 60999", "32768-60000", ports_min=10000))
    assert f.evidence["usable_ports"] == 999


def test_parse_reserved() -> None:
    assert tn.parse_reserved("8080, 9000-9010,") == [(8080, 8080), (9000, 9010)]
    assert tn.parse_reserved(None) == []


def test_buffers() -> None:
    assert tn.evaluate_buffers(6291456, 4194304, "4096 131072 6291456", "4096 16384 4194304") == []
    [f] = tn.evaluate_buffers(None, None, "4096 6291456 131072", None)
    assert f.code == "TN102" and f.suggestion == "net.ipv4.tcp_rmem = 4096 131072 6291456"
    [f] = tn.evaluate_buffers(65536, None, "4096 131072 6291456", None)
    assert f.code == "TN103" and f.suggestion == "net.core.rmem_max = 6291456"


def test_pid_max_default_and_finding() -> None:
    assert tn.pid_max_default(2) == 32768
    assert tn.pid_max_default(64) == 65536
    assert tn.pid_max_default(10000) == 4194304
    assert tn.evaluate_pid_max(4194304, 2) == []
    [f] = tn.evaluate_pid_max(16384, 40)
    assert f.suggestion == "kernel.pid_max = 40960"


def test_webserver_fixture() -> None:
    ctx = run_checks(tn.CHECKS, FIX / "doctor-webserver", "server")[0]
    got = sorted({f.code for f in ctx})
    assert got == ["TN109", "TN110", "TN112"]


def test_role_changes_the_verdict() -> None:
    ctx = run_checks(tn.CHECKS, FIX / "doctor-router", "nat-router")[0]
    assert sorted({f.code for f in ctx}) == ["TN104"]
    ctx = run_checks(tn.CHECKS, FIX / "doctor-router", "server")[0]
    assert sorted({f.code for f in ctx}) == []


def test_host_wide_keys_are_left_to_the_initial_namespace() -> None:
    ctx = run_checks(tn.CHECKS, FIX / "doctor-webserver", "server", child="blue")[0]
    got = {f.code for f in ctx}
    assert "TN112" not in got and "TN110" in got  # pid_max is global, ports per namespace
