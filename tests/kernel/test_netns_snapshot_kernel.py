"""netns entry and snapshots against the real kernel (throwaway namespaces only)."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from hostnet.errors import NamespaceError
from hostnet.host.netns import entered, list_named
from hostnet.host.root import Root
from hostnet.host.snapshot import opened
from hostnet.observe.collect import collect
from hostnet.observe.kernel import observe_kernel
from tests.helpers.netns import Netns

KEY = "net.ipv4.tcp_fin_timeout"


def test_entered_reads_the_namespace(netns: Callable[..., Netns]) -> None:
    ns = netns("enter")
    ns.sysctl(KEY, "17")
    host_before = Root("/").sysctl_value(KEY)
    assert ns.name in list_named()
    with entered(ns.name):
        assert Root("/").sysctl_value(KEY) == "17"
        assert Path("/proc/net/dev").read_text().count(":") == 1  # only lo inside
    assert Root("/").sysctl_value(KEY) == host_before  # back home, host untouched


def test_entered_unknown_namespace() -> None:
    with pytest.raises(NamespaceError) as info, entered("hn-test-does-not-exist"):
        pass
    assert "not found" in info.value.message
    assert info.value.hint is not None


def test_collect_netns_and_read_back(netns: Callable[..., Netns], tmp_path: Path) -> None:
    ns = netns("snap")
    ns.sysctl(KEY, "23")
    out = tmp_path / "snap.tar.gz"
    report = collect(str(out), netns=ns.name)
    assert report.files > 500
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        meta = json.load(tar.extractfile(".hostnet/meta.json"))  # type: ignore[arg-type]
    assert "proc/sys/net/ipv4/tcp_fin_timeout" in names
    assert meta["netns"] == ns.name
    with opened(str(out)) as root:
        assert root.sysctl_value(KEY) == "23"
        assert observe_kernel(root).version == observe_kernel(Root("/")).version
        assert observe_kernel(root).cpus == observe_kernel(Root("/")).cpus
        # modes survive: conntrack max is read-only inside a child namespace
        if root.sysctl_exists("net.netfilter.nf_conntrack_max"):
            assert root.sysctl_writable("net.netfilter.nf_conntrack_max") is False
        tmpdir = root.path
    assert not tmpdir.exists()  # unpacked copy removed


def test_cli_collect_then_lint_root(netns: Callable[..., Netns], tmp_path: Path) -> None:
    ns = netns("cli")
    out = tmp_path / "s.tar.gz"
    run = [sys.executable, "-m", "hostnet"]
    done = subprocess.run(
        [*run, "collect", "-o", str(out), "--netns", ns.name, "--no-table"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    lint = subprocess.run(
        [*run, "lint", "--system", "--root", str(out), "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode in (0, 1), lint.stderr
    assert json.loads(lint.stdout)["version"] == 1
    bad = subprocess.run(
        [*run, "lint", "--system", "--root", str(tmp_path / "nope.tar.gz")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "no such file" in bad.stderr


def test_root_reads_proc_net_of_the_thread(netns: Callable[..., Netns]) -> None:
    """setns is per thread; /proc/net follows the main thread only, so Root reads
    /proc/thread-self/net: a worker thread inside a namespace sees that namespace."""
    import threading

    ns = netns("thread")
    seen: dict[str, str | None] = {}

    def worker() -> None:
        with entered(ns.name):
            seen["dev"] = Root("/").read_text("proc/net/dev")

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["dev"] is not None
    names = [line.split(":")[0].strip() for line in seen["dev"].splitlines()[2:]]
    assert names == ["lo"]


def test_lint_netns_checks_that_namespace_keys(
    netns: Callable[..., Netns], tmp_path: Path
) -> None:
    """Per-interface keys exist per namespace: an interface that only the namespace has is
    'missing' (SC120) on the host and fine with --netns."""
    from tests.helpers.netns import link

    a, b = netns("linta"), netns("lintb")
    link(a, b, "192.0.2.1/24", "192.0.2.2/24", name_a="hnlint0", name_b="hnlint0")
    conf = tmp_path / "90-if.conf"
    conf.write_text("net.ipv4.conf.hnlint0.rp_filter = 2\n")
    run = [sys.executable, "-m", "hostnet", "lint", "--format", "json", str(conf)]
    host = subprocess.run(run, capture_output=True, text=True, check=False)
    inside = subprocess.run([*run, "--netns", a.name], capture_output=True, text=True,
                            check=False)
    assert [f["code"] for f in json.loads(host.stdout)["findings"]] == ["SC120"]
    assert json.loads(inside.stdout)["findings"] == [], inside.stdout
    assert inside.returncode == 0


def test_collect_netns_then_doctor_root_judges_that_namespace(
    netns: Callable[..., Netns], tmp_path: Path
) -> None:
    """meta.json records the namespace; doctor --root reports on it, labelled with it, and
    judges it as a child namespace (not 'this host (initial namespace)')."""
    from tests.helpers.netns import link

    ns, peer = netns("snapdoc"), netns("snappeer")
    link(ns, peer, "192.0.2.1/24", "192.0.2.2/24", name_a="hnsnap0")
    ns.sysctl("net.ipv4.ip_forward", "1")  # something the initial namespace does not show
    out = tmp_path / "ns.tar.gz"
    run = [sys.executable, "-m", "hostnet"]
    done = subprocess.run([*run, "collect", "-o", str(out), "--netns", ns.name, "--no-table"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    doc = json.loads(subprocess.run(
        [*run, "doctor", "--root", str(out), "--format", "json", "--no-composition"],
        capture_output=True, text=True, check=False).stdout)
    assert doc["namespace"] == ns.name
    assert "hnsnap0" in doc["facts"]["interfaces"]  # the namespace's links, not the host's
    assert "forwarding on" in doc["role_reason"]
    assert all(f["evidence"].get("namespace") == ns.name for f in doc["findings"])
    text = subprocess.run([*run, "doctor", "--root", str(out), "--no-composition"],
                          capture_output=True, text=True, check=False).stdout
    assert text.splitlines()[0].endswith(f"on namespace {ns.name}")
    assert "this host (initial namespace)" not in text
