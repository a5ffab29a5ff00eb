"""Every fix the doctor proposes, proven on its role's lab (tests/advice_proofs.toml lists them).

Each proof: build (or reuse) the role's lab (tests/helpers/labs.py), make the problem real with
a sysctl write inside the lab's host namespace, run ``hostnet doctor --netns NAME --role ROLE
--format json`` through the installed command, find the finding, apply EXACTLY its suggestion
(tests/helpers/fixes.py: sysctl lines, nft snippets for table inet hostnet; anything else
fails the proof), run the doctor again, and require the finding gone and the role's traffic
still flowing (lab.check(): real TCP/UDP between the namespaces). Labs are shared per module;
after each proof every value written is put back (lab.restore()).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import fixes
from tests.helpers.labs import (
    DualHomedLab,
    Lab,
    NatRouterLab,
    ServerLab,
    VmHostLab,
    dual_homed_lab,
    nat_router_lab,
    server_lab,
    vm_host_lab,
)

pytestmark = pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft")

HOSTNET = Path(sys.executable).with_name("hostnet")


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("doctor-state")


@pytest.fixture(scope="module")
def _server() -> Iterator[ServerLab]:
    with server_lab() as lab:
        yield lab


@pytest.fixture(scope="module")
def _dual() -> Iterator[DualHomedLab]:
    with dual_homed_lab() as lab:
        yield lab


@pytest.fixture(scope="module")
def _router() -> Iterator[NatRouterLab]:
    with nat_router_lab() as lab:
        yield lab


@pytest.fixture(scope="module")
def _vmhost() -> Iterator[VmHostLab]:
    with vm_host_lab() as lab:
        yield lab


def _fresh(lab: Lab) -> Iterator[Lab]:
    try:
        yield lab
    finally:
        lab.restore()


@pytest.fixture
def server(_server: ServerLab) -> Iterator[Lab]:
    yield from _fresh(_server)


@pytest.fixture
def dual(_dual: DualHomedLab) -> Iterator[Lab]:
    yield from _fresh(_dual)


@pytest.fixture
def router(_router: NatRouterLab) -> Iterator[Lab]:
    yield from _fresh(_router)


@pytest.fixture
def vmhost(_vmhost: VmHostLab) -> Iterator[Lab]:
    yield from _fresh(_vmhost)


def doctor(lab: Lab, state: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(HOSTNET), "doctor", "--netns", lab.host.name, "--role", lab.role,
         "--format", "json", "--state-dir", str(state)],
        capture_output=True, text=True, timeout=120, check=False, cwd="/")
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["namespace"] == lab.host.name and doc["role"] == lab.role
    findings: list[dict[str, Any]] = doc["findings"]
    return findings


def prove(lab: Lab, state: Path, code: str, problem: dict[str, str],
          key: str | None = None) -> list[str]:
    """Make ``problem`` real, see ``code`` (for ``key``), apply its suggestion, see it gone and
    the role's traffic flow. Returns the suggestions applied."""
    for k, v in problem.items():
        lab.set(k, v)

    def matching(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [f for f in findings if f["code"] == code and (key is None or f["key"] == key)]

    found = matching(doctor(lab, state))
    assert found, f"{code} not reported after {problem}"
    applied = []
    for finding in found:
        assert finding["suggestion"], f"{code} proposes no fix: {finding}"
        fixes.apply(lab.host, finding["suggestion"], before_write=lab.remember)
        applied.append(finding["suggestion"])
    left = matching(doctor(lab, state))
    assert not left, f"{code} still reported after applying {applied}: {left}"
    lab.check()
    return applied


# -- server -----------------------------------------------------------------------------------


def test_HD101_syncookies_on_server(server: Lab, state: Path) -> None:
    fixed = prove(server, state, "HD101", {"net.ipv4.tcp_syncookies": "0"})
    assert fixed == ["net.ipv4.tcp_syncookies = 1"]


def test_HD102_synack_retries_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "HD102", {"net.ipv4.tcp_synack_retries": "5"})
    assert server.read("net.ipv4.tcp_synack_retries") == "3"


def test_HD103_accept_redirects_on_dual_homed_server(dual: Lab, state: Path) -> None:
    prove(dual, state, "HD103", {"net.ipv4.conf.all.accept_redirects": "1",
                                 "net.ipv4.conf.eth0.accept_redirects": "1",
                                 "net.ipv4.conf.eth1.accept_redirects": "1"})
    assert dual.read("net.ipv4.conf.eth1.accept_redirects") == "0"


def test_HD106_source_route_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "HD106", {"net.ipv4.conf.all.accept_source_route": "1",
                                   "net.ipv4.conf.eth0.accept_source_route": "1"})


def test_HD109_icmp_broadcast_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "HD109", {"net.ipv4.icmp_echo_ignore_broadcasts": "0"})


def test_HD110_bogus_icmp_errors_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "HD110", {"net.ipv4.icmp_ignore_bogus_error_responses": "0"})


def test_TN101_backlogs_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "TN101", {"net.core.somaxconn": "128"}, key="net.core.somaxconn")
    prove(server, state, "TN101", {"net.ipv4.tcp_max_syn_backlog": "128"},
          key="net.ipv4.tcp_max_syn_backlog")


def test_TN105_time_wait_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "TN105", {"net.ipv4.tcp_max_tw_buckets": "1000"},
          key="net.ipv4.tcp_max_tw_buckets")
    prove(server, state, "TN105", {"net.ipv4.tcp_tw_reuse": "0"}, key="net.ipv4.tcp_tw_reuse")


def test_TN106_keepalive_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "TN106", {"net.ipv4.tcp_keepalive_time": "7200"})


def test_TN107_fin_timeout_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "TN107", {"net.ipv4.tcp_fin_timeout": "120"})


def test_V6102_half_disabled_ipv6_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "V6102", {"net.ipv6.conf.eth0.disable_ipv6": "1"})
    assert server.read("net.ipv6.conf.eth0.disable_ipv6") == "0"


def test_V6103_ipv6_redirects_on_server(server: Lab, state: Path) -> None:
    prove(server, state, "V6103", {"net.ipv6.conf.eth0.accept_redirects": "1"})


# -- NAT router -------------------------------------------------------------------------------


def test_HD104_send_redirects_on_nat_router(router: Lab, state: Path) -> None:
    prove(router, state, "HD104", {"net.ipv4.conf.all.send_redirects": "1",
                                   "net.ipv4.conf.lan0.send_redirects": "1",
                                   "net.ipv4.conf.wan0.send_redirects": "1"})


def test_NT104_router_not_forwarding(router: Lab, state: Path) -> None:
    router.timeout = 1.0
    try:
        router.set("net.ipv4.ip_forward", "0")
        with pytest.raises(AssertionError):
            router.check()  # the problem is real: the LAN is cut off
    finally:
        router.timeout = 3.0
    fixed = prove(router, state, "NT104", {})
    assert fixed == ["net.ipv4.ip_forward = 1"]


# -- VM host ----------------------------------------------------------------------------------


def test_HD108_log_martians_on_vm_host(vmhost: Lab, state: Path) -> None:
    prove(vmhost, state, "HD108", {"net.ipv4.conf.all.log_martians": "0",
                                   "net.ipv4.conf.eth0.log_martians": "0"})


def test_V6101_forwarding_ignores_ra_on_vm_host(vmhost: Lab, state: Path) -> None:
    prove(vmhost, state, "V6101", {"net.ipv6.conf.all.forwarding": "1",
                                   "net.ipv6.conf.eth0.accept_ra": "1"})
    assert vmhost.read("net.ipv6.conf.eth0.accept_ra") == "2"
