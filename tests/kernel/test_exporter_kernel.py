"""The real exporter against the real kernel: scrape, load entries, scrape again."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hostnet.host.netns import entered
from hostnet.host.root import Root
from hostnet.service.exporter import NODE_STATS, Targets, read_sample, sample_all, sample_namespace
from tests.helpers.conntrack import count, enable_tracking, load_assured
from tests.helpers.netns import Netns, free_port

HOSTNET = str(Path(sys.executable).with_name("hostnet"))


def scrape(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample_value(families: dict[str, object], family: str, name: str, **labels: str) -> float:
    fam = families[family]
    for s in fam.samples:  # type: ignore[attr-defined]
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise AssertionError(f"no sample {name}{labels} in {family}")


def start_exporter(argv: list[str], port: int) -> subprocess.Popen[str]:
    """Start ``argv`` (an exporter on ``port``) and wait until it answers a scrape."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            scrape(port)
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"exporter did not start: {proc.stderr.read()}") from None  # type: ignore[union-attr]
            time.sleep(0.2)


def stop_exporter(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        assert proc.wait(timeout=10) == 0  # SIGTERM is a clean stop
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture
def exporter(netns: Callable[..., Netns]) -> Iterator[tuple[int, Netns]]:
    ns = netns("exp")
    enable_tracking(ns)
    port = free_port()
    proc = start_exporter(
        [HOSTNET, "exporter", "--listen", f"127.0.0.1:{port}", "--netns", ns.name], port)
    try:
        yield port, ns
    finally:
        stop_exporter(proc)


def test_scrape_follows_the_namespace_table(exporter: tuple[int, Netns]) -> None:
    port, ns = exporter
    before = scrape(port)
    assert sample_value(before, "hostnet_conntrack_entries", "hostnet_conntrack_entries",
                        netns=ns.name) == 0
    load_assured(ns, 500, timeout=120)
    loaded = count(ns)
    assert loaded >= 500
    after = scrape(port)
    assert sample_value(after, "hostnet_conntrack_entries", "hostnet_conntrack_entries",
                        netns=ns.name) == loaded
    ratio = sample_value(after, "hostnet_conntrack_usage_ratio",
                         "hostnet_conntrack_usage_ratio", netns=ns.name)
    limit = int(ns.sysctl("net.netfilter.nf_conntrack_max"))
    assert ratio == pytest.approx(loaded / limit)
    assert sample_value(after, "hostnet_conntrack_limit", "hostnet_conntrack_limit") == limit
    # conntrack -R inserts over ctnetlink, which the kernel counts in `insert`
    assert sample_value(after, "hostnet_conntrack_stat", "hostnet_conntrack_stat_total",
                        netns=ns.name, counter="insert") >= 500
    # the namespace we run in is reported too, and is not the test namespace
    assert "initial" in {s.labels.get("netns") for s in
                         after["hostnet_conntrack_entries"].samples}  # type: ignore[attr-defined]


def test_node_exporter_names_and_types(exporter: tuple[int, Netns]) -> None:
    port, _ns = exporter
    families = scrape(port)
    deadline = time.monotonic() + 30
    while "hostnet_findings" not in families and time.monotonic() < deadline:
        time.sleep(0.3)  # the slow families appear after the main thread's first refresh
        families = scrape(port)
    # node_exporter exposes every one of these as a gauge without _total
    for name in ("node_nf_conntrack_entries", "node_nf_conntrack_entries_limit",
                 *(f"node_nf_conntrack_stat_{s}" for s in NODE_STATS)):
        assert families[name].type == "gauge", name  # type: ignore[attr-defined]
        assert [s.name for s in families[name].samples] == [name]  # type: ignore[attr-defined]
    assert families["hostnet_conntrack_stat"].type == "counter"  # type: ignore[attr-defined]
    counters = {s.labels["counter"] for s in
                families["hostnet_conntrack_stat"].samples}  # type: ignore[attr-defined]
    # renamed columns appear under their current names on this kernel
    assert {"drop", "early_drop", "insert_failed", "clash_resolve", "chaintoolong"} <= counters
    assert "clashres" not in counters and "chainlength" not in counters
    assert families["hostnet_scrape_duration_seconds"].type == "gauge"  # type: ignore[attr-defined]
    assert families["hostnet_kernel_log_table_full_events"].type == "counter"  # type: ignore[attr-defined]
    findings = {s.labels["severity"] for s in
                families["hostnet_findings"].samples}  # type: ignore[attr-defined]
    assert findings == {"error", "warning", "info"}


def test_node_gauges_equal_the_stat_file_sum() -> None:
    """node_nf_conntrack_stat_* are sums over the per-CPU rows (read the file ourselves)."""
    from hostnet.service.exporter import families

    text = Path("/proc/net/stat/nf_conntrack").read_text()
    rows = [line.split() for line in text.splitlines()]
    header, values = rows[0], rows[1:]
    want = {h: sum(int(v[i], 16) for v in values) for i, h in enumerate(header)}
    got = {f.name: f.samples[0].value for f in families([read_sample(Root("/"))])
           if f.name.startswith("node_nf_conntrack_stat_")}
    for name in ("found", "invalid", "insert", "drop", "early_drop", "search_restart"):
        # counters only grow: the file was read first
        assert got[f"node_nf_conntrack_stat_{name}"] >= want[name]


def test_vanished_namespace_is_skipped(netns: Callable[..., Netns]) -> None:
    ns = netns("gone")
    name = ns.name
    ns.close()
    assert sample_namespace(name) is None
    samples = sample_all(Targets((name,)))
    assert [s.netns for s in samples] == [None]


def test_server_thread_reads_its_own_namespace(netns: Callable[..., Netns]) -> None:
    """setns moves one thread; /proc/net follows the main thread, /proc/thread-self/net
    and /proc/sys follow the calling thread. A scrape runs in a server thread, and Root
    reads proc/net through thread-self, so it sees the namespace the thread entered."""
    ns = netns("thr")
    enable_tracking(ns)
    load_assured(ns, 77, timeout=120)
    seen: dict[str, object] = {}

    def body() -> None:
        with entered(ns.name):
            root = Root("/")
            seen["root_proc_net"] = (root.read_text("proc/net/stat/nf_conntrack") or "").splitlines()
            seen["raw_proc_net"] = Path("/proc/net/stat/nf_conntrack").read_text().splitlines()
            seen["sample"] = read_sample(root, ns.name)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    sample = seen["sample"]
    assert sample.count == 77 and sample.counters.get("insert", 0) >= 77  # type: ignore[attr-defined]
    assert int(seen["root_proc_net"][1].split()[0], 16) == 77  # type: ignore[index]
    raw_entries = int(seen["raw_proc_net"][1].split()[0], 16)  # type: ignore[index]
    own = int(Path("/proc/sys/net/netfilter/nf_conntrack_count").read_text())
    assert raw_entries != 77 or own == 77  # plain /proc/net showed the main thread's table


def test_traffic_grows_entries_but_not_new_or_insert(netns: Callable[..., Netns]) -> None:
    """On this kernel `new` stays 0 and `insert` ignores connections confirmed from traffic,
    so watch shows growth from `entries`, not from a counter."""
    ns = netns("traffic")
    enable_tracking(ns)
    with entered(ns.name):
        before = read_sample(Root("/"), ns.name)
        for port in range(20):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"x", ("127.0.0.1", 20000 + port))
        after = read_sample(Root("/"), ns.name)
    assert (after.count or 0) - (before.count or 0) >= 20
    assert after.counters.get("new", 0) == before.counters.get("new", 0) == 0
    assert after.counters.get("insert", 0) == before.counters.get("insert", 0)


def test_refuses_remote_listen_without_allow_remote() -> None:
    proc = subprocess.run([HOSTNET, "exporter", "--listen", "0.0.0.0:9469"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "not a loopback address" in proc.stderr and "--allow-remote" in proc.stderr


def test_unknown_namespace_is_a_clear_error() -> None:
    proc = subprocess.run([HOSTNET, "exporter", "--listen", f"127.0.0.1:{free_port()}",
                           "--netns", "hn-test-does-not-exist"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "hn-test-does-not-exist" in proc.stderr and "not found" in proc.stderr


def test_busy_port_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run([HOSTNET, "exporter", "--listen", f"127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr


CAP_SYS_ADMIN = 21


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_all_netns_without_cap_sys_admin_serves_what_it_can(
    netns: Callable[..., Netns],
) -> None:
    """setns needs CAP_SYS_ADMIN: without it the exporter still answers every scrape (never
    HTTP 500) with the namespace it runs in, and counts the named ones it had to skip."""
    ns = netns("nocap")
    enable_tracking(ns)
    port = free_port()
    drop = ["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin"]
    proc = start_exporter(
        [*drop, HOSTNET, "exporter", "--listen", f"127.0.0.1:{port}", "--all-netns"], port)
    try:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        eff = int(next(x for x in status.splitlines() if x.startswith("CapEff:")).split()[1], 16)
        assert not eff & (1 << CAP_SYS_ADMIN)  # the capability really is gone
        for _ in range(2):  # every scrape, not only the first
            fams = scrape(port)
            labels = {s.labels["netns"] for s in fams["hostnet_conntrack_entries"].samples}  # type: ignore[attr-defined]
            assert "initial" in labels and ns.name not in labels
            skipped = sample_value(fams, "hostnet_namespaces_skipped",
                                   "hostnet_namespaces_skipped")
            assert skipped >= 1  # ours, at least (other tests may have namespaces too)
    finally:
        stop_exporter(proc)
