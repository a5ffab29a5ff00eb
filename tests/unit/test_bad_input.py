"""Bad input never crashes, never lies (issue 8): snapshots, --root trees, --nagios failures,
namespace names, conntrack top --file, unreadable sources.

Everything goes through ``hostnet.cli.main.main`` in-process, the same handler the installed
command uses, so exit codes and the exact stderr lines are what a user sees.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from hostnet.checks.runner import DoctorReport, NamespaceReport
from hostnet.cli.main import main
from hostnet.errors import InputError
from hostnet.host.netns import validate_name
from hostnet.host.snapshot import inside_link, opened, unpack
from hostnet.model.conntrack import ConntrackStats
from hostnet.model.host import ConntrackView
from hostnet.render.doctor import nagios, perf_label

ROOTS = Path(__file__).resolve().parents[1] / "fixtures" / "roots"
WEB = ROOTS / "doctor-webserver"


def hostnet(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 0), out, err


def tree_members(tree: Path) -> list[tuple[str, bytes, int]]:
    out = []
    for p in sorted(tree.rglob("*")):
        if p.is_file():
            out.append((p.relative_to(tree).as_posix(), p.read_bytes(), p.stat().st_mode))
    return out


def write_archive(path: Path, members: Iterable[tuple[str, bytes, int]],
                  meta: dict[str, object] | None, *, members_in_meta: bool = True) -> Path:
    members = list(members)
    with tarfile.open(path, "w:gz") as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode & 0o777
            tar.addfile(info, io.BytesIO(data))
        if meta is not None:
            doc = dict(meta)
            if members_in_meta:
                doc.setdefault("members", len(members))
            data = json.dumps(doc).encode()
            info = tarfile.TarInfo(".hostnet/meta.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


META = {"hostnet": "0.1.0", "netns": None, "uid": 0, "skipped": []}


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    """A complete snapshot of the web server fixture tree (plus what collect always has)."""
    members = tree_members(WEB)
    members.append(("proc/meminfo", b"MemTotal: 2048000 kB\n", 0o444))
    members.append(("proc/sys/net/netfilter/nf_conntrack_max", b"262144\n", 0o444))
    return write_archive(tmp_path / "web.tar.gz", members, META)


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hostnet: error: "), err
    for bad in ("Aborted", "Traceback", "tarfile", "ReadError", "EOFError", "internal error"):
        assert bad not in err
    return lines[0]


# -- snapshots -------------------------------------------------------------------------------


def test_complete_snapshot_is_analysed(capsys: pytest.CaptureFixture[str],
                                       snapshot: Path) -> None:
    code, out, err = hostnet(capsys, "doctor", "--root", str(snapshot), "--format", "json",
                             "--no-composition")
    assert code in (0, 1), err
    assert json.loads(out)["role"] == "server"


@pytest.mark.parametrize("cut", [0.5, 0.9, 30])
def test_truncated_snapshot_is_one_clear_line(capsys: pytest.CaptureFixture[str],
                                              snapshot: Path, cut: float) -> None:
    data = snapshot.read_bytes()
    size = int(len(data) * cut) if cut < 1 else int(cut)
    bad = snapshot.with_name("cut.tar.gz")
    bad.write_bytes(data[:size])
    code, out, err = hostnet(capsys, "doctor", "--root", str(bad))
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "truncated or corrupted" in line or "not a snapshot" in line


def test_corrupted_snapshot_is_one_clear_line(capsys: pytest.CaptureFixture[str],
                                              snapshot: Path) -> None:
    data = bytearray(snapshot.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x5A
    bad = snapshot.with_name("flipped.tar.gz")
    bad.write_bytes(bytes(data))
    code, _, err = hostnet(capsys, "lint", "--system", "--root", str(bad))
    assert code == 2
    assert "truncated or corrupted" in one_error_line(err)


def test_snapshot_without_meta_is_refused(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    bad = write_archive(tmp_path / "nometa.tar.gz", tree_members(WEB), None)
    code, out, err = hostnet(capsys, "doctor", "--root", str(bad))
    assert code == 2 and out == ""
    assert ".hostnet/meta.json is missing" in one_error_line(err)


def test_snapshot_missing_essential_files_is_refused(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    members = [m for m in tree_members(WEB) if m[0] != "proc/sys/kernel/osrelease"]
    bad = write_archive(tmp_path / "half.tar.gz", members, META)
    code, out, err = hostnet(capsys, "doctor", "--root", str(bad))
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "incomplete snapshot" in line and "proc/sys/kernel/osrelease" in line


def test_snapshot_with_fewer_members_than_meta_says(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    members = [*tree_members(WEB), ("proc/meminfo", b"MemTotal: 1 kB\n", 0o444)]
    meta = {**META, "members": len(members) + 5}
    bad = write_archive(tmp_path / "short.tar.gz", members, meta)
    code, _, err = hostnet(capsys, "doctor", "--root", str(bad))
    assert code == 2
    assert "incomplete snapshot" in one_error_line(err)


def test_broken_meta_json_is_refused(capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    tree = tmp_path / "unpacked"
    (tree / ".hostnet").mkdir(parents=True)
    (tree / "proc/sys/net").mkdir(parents=True)
    (tree / ".hostnet/meta.json").write_text("{not json")
    code, _, err = hostnet(capsys, "doctor", "--root", str(tree))
    assert code == 2
    assert "not valid JSON" in one_error_line(err)


def test_unpack_never_calls_extractall(monkeypatch: pytest.MonkeyPatch, snapshot: Path,
                                       tmp_path: Path) -> None:
    """Python 3.11.2 (Debian 12) has no extractall(filter=...): the reader must not need it."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise TypeError("extractall() got an unexpected keyword argument 'filter'")

    monkeypatch.setattr(tarfile.TarFile, "extractall", refuse)
    monkeypatch.setattr(tarfile.TarFile, "extract", refuse)
    with opened(str(snapshot)) as root:
        assert root.sysctl_value("net.ipv4.ip_forward") == "0"
        # modes survive the unpacking: a read-only key stays read-only
        assert root.sysctl_writable("net.netfilter.nf_conntrack_max") is False
        assert root.sysctl_writable("net.ipv4.ip_forward") is True


def _special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


UNSAFE = {
    "absolute": (tarfile.TarInfo("/tmp/hn-escape"), "absolute path"),
    "dotdot": (tarfile.TarInfo("proc/../../hn-escape"), "'..'"),
    "symlink-out": (_special("etc/hn-link", tarfile.SYMTYPE, "../../../../../../etc/passwd"),
                    "points outside"),
    "hardlink-abs": (_special("etc/hn-hard", tarfile.LNKTYPE, "/etc/passwd"), "points outside"),
    "hardlink-dotdot": (_special("etc/hn-hard", tarfile.LNKTYPE, "../etc/passwd"),
                        "points outside"),
    "chardev": (_special("dev/hn-mem", tarfile.CHRTYPE), "device node"),
    "blockdev": (_special("dev/hn-sda", tarfile.BLKTYPE), "device node"),
    "fifo": (_special("run/hn-fifo", tarfile.FIFOTYPE), "FIFO"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_members_are_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                    case: str) -> None:
    member, reason = UNSAFE[case]
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data, mode in tree_members(WEB):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode & 0o777
            tar.addfile(info, io.BytesIO(data))
        if member.isreg():
            member.size = 1
        tar.addfile(member, io.BytesIO(b"x") if member.isreg() else None)
    code, out, err = hostnet(capsys, "doctor", "--root", str(archive))
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "refused" in line and reason in line, line
    assert not Path("/tmp/hn-escape").exists()


def test_link_chain_out_of_the_snapshot_is_refused(tmp_path: Path) -> None:
    """Each link alone looks harmless; resolved together they leave the snapshot."""
    archive = tmp_path / "chain.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(_special("a", tarfile.SYMTYPE, "."))
        tar.addfile(_special("a/b", tarfile.SYMTYPE, "../../../../etc"))
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(InputError, match="points outside"):
        unpack(str(archive), str(dest))


def test_absolute_symlink_means_the_collected_host(tmp_path: Path) -> None:
    """/etc/sysctl.d/99-sysctl.conf -> /etc/sysctl.conf must read the snapshot's file, never
    the file of the host doing the analysis."""
    assert inside_link("etc/sysctl.d/99-sysctl.conf", "/etc/sysctl.conf") == "../sysctl.conf"
    assert inside_link("etc/sysctl.d/x.conf", "/dev/null") == "../../dev/null"
    assert inside_link("etc/sysctl.d/x.conf", "../sysctl.conf") == "../sysctl.conf"
    archive = tmp_path / "abs.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"# from the snapshot\n"
        info = tarfile.TarInfo("etc/sysctl.conf")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.addfile(_special("etc/sysctl.d/99-sysctl.conf", tarfile.SYMTYPE, "/etc/sysctl.conf"))
        tar.addfile(_special("etc/hostname-link", tarfile.SYMTYPE, "/etc/hostname"))
    dest = tmp_path / "out"
    dest.mkdir()
    unpack(str(archive), str(dest))
    assert (dest / "etc/sysctl.d/99-sysctl.conf").read_bytes() == data
    assert not (dest / "etc/hostname-link").exists()  # dangling inside, not the real one


def test_directory_that_is_not_a_host_tree(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    code, out, err = hostnet(capsys, "doctor", "--root", str(tmp_path))
    assert code == 2 and out == ""  # no verdict, and above all no role guess
    line = one_error_line(err)
    assert "not a host tree or a snapshot" in line and "role" not in line
    code, out, err = hostnet(capsys, "doctor", "--root", str(tmp_path), "--nagios")
    assert code == 3 and out.startswith("HOSTNET UNKNOWN - ") and "role" not in out


def test_config_only_tree_is_for_lint_only(capsys: pytest.CaptureFixture[str]) -> None:
    config_only = str(ROOTS / "lint-system")  # etc/sysctl.d and friends, no proc/sys
    code, out, err = hostnet(capsys, "doctor", "--root", config_only)
    assert code == 2 and out == "" and "not a host tree" in one_error_line(err)
    code, out, _ = hostnet(capsys, "lint", "--system", "--root", config_only,
                           "--format", "json")
    assert code in (0, 1) and json.loads(out)["findings"]


def test_snapshot_of_a_namespace_is_labelled_with_it(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    members = [*tree_members(WEB), ("proc/meminfo", b"MemTotal: 2048000 kB\n", 0o444)]
    snap = write_archive(tmp_path / "blue.tar.gz", members, {**META, "netns": "blue"})
    _, out, _ = hostnet(capsys, "doctor", "--root", str(snap), "--no-composition")
    assert out.splitlines()[0].endswith("on namespace blue"), out
    assert "this host (initial namespace)" not in out and "initial" not in out.splitlines()[0]
    _, out, _ = hostnet(capsys, "doctor", "--root", str(snap), "--format", "json",
                        "--no-composition")
    doc = json.loads(out)
    assert doc["namespace"] == "blue"
    assert all(f["evidence"]["namespace"] == "blue" for f in doc["findings"])


def test_what_collect_could_not_read_is_listed(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    members = [*tree_members(WEB), ("proc/meminfo", b"MemTotal: 2048000 kB\n", 0o444)]
    skipped = ["dmesg --time-format iso: dmesg: read kernel buffer failed: Operation not "
               "permitted", "/proc/slabinfo (Permission denied)"]
    snap = write_archive(tmp_path / "nobody.tar.gz", members,
                         {**META, "uid": 65534, "skipped": skipped})
    _, out, _ = hostnet(capsys, "doctor", "--root", str(snap), "--format", "json")
    unreadable = json.loads(out)["unreadable"]
    assert [u for u in unreadable if u.startswith("snapshot: ")] == [
        f"snapshot: {s}" for s in skipped]


def test_kernel_log_under_dmesg_restrict_is_listed(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for rel, text in (("proc/sys/kernel/osrelease", "6.1.0\n"),
                      ("proc/sys/kernel/dmesg_restrict", "1\n"),
                      ("proc/sys/net/ipv4/ip_forward", "0\n")):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    _, out, _ = hostnet(capsys, "doctor", "--root", str(tree), "--format", "json")
    ring = [u for u in json.loads(out)["unreadable"] if u.startswith("kernel ring buffer")]
    assert ring and "kernel.dmesg_restrict = 1" in ring[0]
    # --no-composition does not read the kernel log, so it does not list it
    _, out, _ = hostnet(capsys, "doctor", "--root", str(tree), "--format", "json",
                        "--no-composition")
    assert not [u for u in json.loads(out)["unreadable"] if "ring buffer" in u]
    # with the restriction off, or the ring buffer stored, nothing is missing
    (tree / "proc/sys/kernel/dmesg_restrict").write_text("0\n")
    _, out, _ = hostnet(capsys, "doctor", "--root", str(tree), "--format", "json")
    assert not [u for u in json.loads(out)["unreadable"] if "ring buffer" in u]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_log_file_is_listed(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "proc/sys/kernel").mkdir(parents=True)
    (tree / "proc/sys/kernel/osrelease").write_text("6.1.0\n")
    (tree / "var/log").mkdir(parents=True)
    (tree / "var/log/kern.log").write_text("x\n")
    (tree / "var/log/kern.log").chmod(0)
    _, out, _ = hostnet(capsys, "doctor", "--root", str(tree), "--format", "json")
    assert "/var/log/kern.log (permission denied)" in json.loads(out)["unreadable"]


# -- --nagios --------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["--role", "bogus"],
    ["--no-such-option"],
    ["--interval", "soon"],
    ["--fail-on"],
    ["--netns", "x", "--all-netns"],
    ["--root", "/nonexistent/snapshot.tar.gz"],
    ["--root", str(ROOTS / "lint-system")],
    ["--netns", ""],
])
def test_nagios_every_failure_is_unknown(capsys: pytest.CaptureFixture[str],
                                         argv: list[str]) -> None:
    code, out, err = hostnet(capsys, "doctor", "--nagios", *argv)
    assert code == 3, (out, err)
    assert out.startswith("HOSTNET UNKNOWN - ") and out.count("\n") == 1 and "|" not in out
    assert err == ""


def test_nagios_unreadable_snapshot_is_unknown(capsys: pytest.CaptureFixture[str],
                                               snapshot: Path) -> None:
    bad = snapshot.with_name("cut.tar.gz")
    bad.write_bytes(snapshot.read_bytes()[:200])
    code, out, _ = hostnet(capsys, "doctor", "--root", str(bad), "--nagios")
    assert code == 3 and out.startswith("HOSTNET UNKNOWN - ") and "truncated" in out


def _ns(name: str | None) -> NamespaceReport:
    facts = {"conntrack_usage": 0.5, "conntrack_count": 10, "conntrack_max": 20,
             "conntrack_drop": 0}
    view = ConntrackView(count=10, max=20, buckets=None,
                         stats=ConntrackStats(10, {"drop": 0}))
    return NamespaceReport(name, "server", "x", False, [], facts, [], True, conntrack=view)


def test_perfdata_labels_are_quoted() -> None:
    assert perf_label("conntrack_usage") == "'conntrack_usage'"
    assert perf_label("it's") == "'it''s'"
    assert perf_label("a=b") == "'a_b'"
    assert perf_label("new\nline") == "'new_line'"
    _, line = nagios(DoctorReport([_ns(None), _ns("o'neil x=1")]))
    text, perf = line.split(" | ")
    assert text == "HOSTNET OK - no findings"
    assert perf.startswith("'initial_conntrack_usage'=50.0%;75;90;0;100 "
                           "'initial_conntrack_entries'=10;;;0;20 'initial_drops'=0c ")
    assert "'o''neil x_1_conntrack_usage'=50.0%;75;90;0;100" in perf


def test_nagios_says_how_many_namespaces_were_skipped() -> None:
    report = DoctorReport([_ns(None)], notes=["namespace a: cannot enter"], skipped=["a", "b"])
    code, line = nagios(report)
    text, perf = line.split(" | ")
    assert code == 0 and "2 namespaces skipped (not checked: a, b)" in text
    assert "'namespaces_skipped'=2" in perf.split()


# -- namespace names ---------------------------------------------------------------------------


BAD_NAMES = ["", "a" * 256, "é" * 128, "a/b", ".", ".."]


@pytest.mark.parametrize("name", BAD_NAMES, ids=["empty", "256-bytes", "256-utf8", "slash",
                                                 "dot", "dotdot"])
@pytest.mark.parametrize("command", [["lint", "--system"], ["conntrack", "top"],
                                     ["doctor"], ["collect", "-o", "{tmp}/x.tar.gz"]])
def test_bad_namespace_names(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str,
                             command: list[str]) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in command]
    code, out, err = hostnet(capsys, *argv, "--netns", name)
    assert code == 2 and out == ""
    assert list(tmp_path.iterdir()) == []  # nothing written
    line = one_error_line(err)
    assert "namespace name" in line and "1-255 bytes" in line


def test_namespace_name_limit() -> None:
    validate_name("a" * 255)
    validate_name("blue-1.example")
    with pytest.raises(Exception, match="256 bytes"):
        validate_name("a" * 256)


# -- conntrack top --file ------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "reason"), [
    ("/proc/self/mem", "cannot read"),
    ("/dev/null", "not a regular file"),
    ("/dev/zero", "not a regular file"),
    ("/", "is a directory"),
])
def test_top_file_special_inputs(capsys: pytest.CaptureFixture[str], path: str,
                                 reason: str) -> None:
    code, out, err = hostnet(capsys, "conntrack", "top", "--file", path)
    assert code == 2 and out == ""
    assert reason in one_error_line(err)


def test_top_file_where_nothing_parses(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("root:x:0:0:root:/root:/bin/bash\nhello world\n")
    code, out, err = hostnet(capsys, "conntrack", "top", "--file", str(junk))
    assert code == 2 and out == ""
    assert "no line looked like a conntrack entry" in one_error_line(err)
    empty = tmp_path / "empty.txt"
    empty.write_text("")  # an empty table is a table: 0 entries, not an error
    code, out, _ = hostnet(capsys, "conntrack", "top", "--file", str(empty))
    assert code == 0 and "0 entries" in out


def test_top_file_truncated_gzip(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import gzip

    gz = tmp_path / "table.gz"
    gz.write_bytes(gzip.compress(b"ipv4 2 tcp 6 10 ESTABLISHED src=192.0.2.1\n" * 500)[:40])
    code, _, err = hostnet(capsys, "conntrack", "top", "--file", str(gz))
    assert code == 2
    assert "truncated or corrupted" in one_error_line(err)


def test_collect_to_an_unwritable_place(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    code, out, err = hostnet(capsys, "collect", "-o", str(tmp_path / "no/such/dir/x.tar.gz"))
    assert code == 2 and out == ""
    assert "cannot write the snapshot" in err.splitlines()[0] and "internal error" not in err
