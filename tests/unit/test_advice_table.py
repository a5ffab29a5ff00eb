"""The advice proof table (tests/advice_proofs.toml) covers every rule, and its helpers hold.

* every rule in the registry has exactly one entry: a proof test (which exists, is named for
  the rule, and names a role and lab that exist), an ``unprovable`` reason that the rule's page
  repeats in its Proof section, ``no_fix`` (and the golden reports never show a suggestion
  for it), or ``pending`` (accepted for now and printed, for the lead to replace);
* every proof test in the proof file is listed in the table;
* tests/helpers/fixes.py applies only sysctl lines and hostnet's nft table and refuses the
  rest (modprobe options, shell commands, prose, other tables, host-wide keys), and applies
  lint suggestions to a file's text the way the proofs rely on.
"""

from __future__ import annotations

import ast
import json
import tomllib
import warnings
from pathlib import Path
from typing import Any

import pytest

from hostnet.rules import all_rules, rule_doc
from tests.helpers import fixes
from tests.helpers.labs import LABS, sysctl_path

ROOT = Path(__file__).resolve().parents[2]
TABLE_PATH = ROOT / "tests" / "advice_proofs.toml"
TABLE: dict[str, dict[str, Any]] = tomllib.loads(TABLE_PATH.read_text())
RULES = all_rules()
KINDS = ("test", "unprovable", "no_fix", "pending")
ROLES = ("server", "nat-router", "vm-host", "desktop")


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def _golden_suggestions() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests" / "golden").glob("*.json")):
        for f in json.loads(path.read_text()).get("findings", []):  # reports, not nat explain
            if f.get("suggestion"):
                out.setdefault(f["code"], []).append(f"{path.name}: {f['suggestion']!r}")
    return out


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_every_rule_has_one_entry_and_no_entry_is_unknown() -> None:
    missing = sorted(set(RULES) - set(TABLE))
    assert not missing, f"rules without an entry in {TABLE_PATH.name}: {missing}"
    unknown = sorted(set(TABLE) - set(RULES))
    assert not unknown, f"entries for codes the registry does not have: {unknown}"
    for code, entry in TABLE.items():
        kinds = [k for k in KINDS if k in entry]
        assert len(kinds) == 1, f"{code}: needs exactly one of {KINDS}, has {kinds}"
        extra = set(entry) - {*KINDS, "role", "lab", "also"}
        assert not extra, f"{code}: unknown fields {sorted(extra)}"


def _proofs(entry: dict[str, Any]) -> list[str]:
    return [str(entry["test"]), *map(str, entry.get("also", []))] if "test" in entry else []


@pytest.mark.parametrize("code", sorted(c for c, e in TABLE.items() if "test" in e))
def test_named_proof_exists(code: str) -> None:
    entry = TABLE[code]
    for proof in _proofs(entry):
        path, sep, name = proof.partition("::")
        assert sep, f"{code}: test must be FILE::FUNCTION, not {proof!r}"
        file = ROOT / path
        assert file.is_file(), f"{code}: {path} does not exist"
        assert name in _functions(file), f"{code}: {path} has no function {name}"
        assert name.startswith(f"test_{code}_"), f"{code}: {name} is not named for the rule"
    assert entry.get("role") in ROLES, f"{code}: role {entry.get('role')!r} not one of {ROLES}"
    lab = entry.get("lab", entry["role"])
    assert lab in LABS, f"{code}: no lab {lab!r} in tests/helpers/labs.py ({sorted(LABS)})"


def test_every_proof_in_the_proof_file_is_in_the_table() -> None:
    listed = {p.partition("::")[2] for e in TABLE.values() for p in _proofs(e)}
    proofs = {n for n in _functions(ROOT / "tests/kernel/test_advice_proofs.py")
              if n.startswith("test_")}
    assert proofs <= listed, f"proofs not in the table: {sorted(proofs - listed)}"


@pytest.mark.parametrize("code", sorted(c for c, e in TABLE.items() if "unprovable" in e))
def test_unprovable_reason_is_on_the_rule_page(code: str) -> None:
    reason = str(TABLE[code]["unprovable"]).strip()
    assert len(reason) > 20, f"{code}: say why the fix cannot be proven"
    page = rule_doc(code) or ""
    assert "## Proof" in page, f"{code}: its page needs a Proof section"
    proof = page.split("## Proof", 1)[1].split("\n## ", 1)[0]
    assert _squash(reason) in _squash(proof), (
        f"{code}: the page's Proof section does not give the table's reason {reason!r}")


def test_no_fix_rules_propose_nothing_in_the_golden_reports() -> None:
    shown = _golden_suggestions()
    wrong = {c: shown[c] for c, e in TABLE.items() if e.get("no_fix") and c in shown}
    assert not wrong, f"marked no_fix but the golden reports show a suggestion: {wrong}"
    assert all(e["no_fix"] is True for e in TABLE.values() if "no_fix" in e)
    also = [c for c, e in TABLE.items() if "also" in e and "test" not in e]
    assert not also, f"'also' without a main test: {also}"


def test_pending_entries_are_listed() -> None:
    pending = {c: str(e["pending"]) for c, e in TABLE.items() if "pending" in e}
    assert all(pending.values()), "a pending entry must say why"
    if pending:
        text = ", ".join(sorted(pending))
        print(f"\nadvice proofs pending ({len(pending)}): {text}")
        warnings.warn(f"advice proofs still pending for {len(pending)} rules: {text}",
                      stacklevel=1)


# -- tests/helpers/fixes.py -------------------------------------------------------------------


def test_fix_parser_takes_sysctl_lines_comments_and_hostnets_table() -> None:
    steps = fixes.parse(
        "# /etc/sysctl.d/90-hostnet.conf\n"
        "net.ipv4.tcp_syncookies = 1\n\n"
        "net.ipv4.conf.eth0/100.rp_filter = 2\n"
        "table inet hostnet {\n    chain raw {\n        type filter hook prerouting priority raw;\n"
        "        udp dport 53 notrack\n    }\n}\n"
        "net.ipv4.ip_local_port_range = 32768 60999\n")
    assert [type(s).__name__ for s in steps] == ["SysctlWrite", "SysctlWrite", "NftLoad",
                                                  "SysctlWrite"]
    first, dotted, table, last = steps
    assert isinstance(first, fixes.SysctlWrite) and first.value == "1"
    assert isinstance(dotted, fixes.SysctlWrite)
    assert dotted.path == "/proc/sys/net/ipv4/conf/eth0.100/rp_filter"
    assert isinstance(table, fixes.NftLoad) and table.text.rstrip().endswith("}")
    assert "notrack" in table.text and table.line == 5
    assert isinstance(last, fixes.SysctlWrite) and last.value == "32768 60999"


@pytest.mark.parametrize("text", [
    "# /etc/modprobe.d/hostnet.conf\noptions nf_conntrack hashsize=65536",
    "echo nf_conntrack > /etc/modules-load.d/nf_conntrack.conf",
    "remove the line",
    "put 'net.ipv4.tcp_fin_timeout = 30' on its own line",
    "kernel.pid_max = 4194304",
    "vm.swappiness = 10",
    "net.ipv4.tcp_syncookies =",
    "table ip nat {\n chain post { type nat hook postrouting priority srcnat; }\n}",
    "table inet hostnet {\n chain x {",
    "# only a comment",
    "",
])
def test_fix_parser_refuses_what_it_cannot_apply(text: str) -> None:
    with pytest.raises(fixes.NotApplicable):
        fixes.parse(text)


def test_fix_refuses_a_namespace_that_is_not_a_test_namespace() -> None:
    from tests.helpers.netns import Netns

    ns = Netns.__new__(Netns)
    ns.name, ns.procs = "default", []
    with pytest.raises(AssertionError, match="outside a test namespace"):
        fixes.apply(ns, "net.ipv4.tcp_syncookies = 1")


def test_lint_suggestion_applied_to_a_file() -> None:
    real = {"net.ipv4.tcp_syncookies", "net.core.rmem_default", "net.core.rmem_max",
            "net.ipv4.tcp_fin_timeout"}

    def exists(key: str) -> bool:
        return key in real

    apply = fixes.apply_to_file
    text = "a = 1\nnet.ipv4.tcp_syncookie = 1\nnet.ipv4.tcp_fin_timeout = 30\n"
    # an unknown key is replaced
    assert apply(text, 2, "net.ipv4.tcp_syncookies = 1", exists).splitlines()[1] == (
        "net.ipv4.tcp_syncookies = 1")
    # a real key set elsewhere in the file is re-valued there, the flagged line stays
    pair = "net.core.rmem_default = 9\nnet.core.rmem_max = 4\n"
    assert apply(pair, 1, "net.core.rmem_max = 9", exists) == (
        "net.core.rmem_default = 9\nnet.core.rmem_max = 9\n")
    # a real key the file does not set is added after the flagged line, which stays
    assert apply("net.core.rmem_default = 9\n", 1, "net.core.rmem_max = 9", exists) == (
        "net.core.rmem_default = 9\nnet.core.rmem_max = 9\n")
    # removal, and a comment for a ';' comment
    assert apply(text, 2, "remove the line", exists) == "a = 1\nnet.ipv4.tcp_fin_timeout = 30\n"
    assert apply("; old\nx = 1\n", 1, "# old", exists) == "# old\nx = 1\n"
    with pytest.raises(fixes.NotApplicable):
        apply(text, 3, "# a comment does not replace a setting", exists)
    with pytest.raises(fixes.NotApplicable):
        apply(text, 9, "net.ipv4.tcp_syncookies = 1", exists)
    with pytest.raises(fixes.NotApplicable):
        apply(text, 2, "check the spelling against 'sysctl -a'", exists)


def test_sysctl_path_swaps_dots_and_slashes() -> None:
    assert sysctl_path("net.ipv4.conf.eth0/10.rp_filter") == (
        "/proc/sys/net/ipv4/conf/eth0.10/rp_filter")
    assert sysctl_path("net.core.somaxconn") == "/proc/sys/net/core/somaxconn"


# A lint variant that proposes no edit, only a hint: SC103 when no key is close enough to guess.
HINTS = {("SC103", "check the spelling against 'sysctl -a'")}


def test_golden_suggestions_of_proven_rules_are_applicable() -> None:
    """What the golden reports propose for a rule with a proof parses as something a lab can
    apply (for lint rules also 'remove the line' and a comment line replacing a comment), so
    the proofs cover the real advice."""
    refused = {}
    for code, shown in _golden_suggestions().items():
        if "test" not in TABLE.get(code, {}):
            continue
        for item in shown:
            text = ast.literal_eval(item.split(": ", 1)[1])
            if code.startswith("SC") and (text in fixes.REMOVE or (code, text) in HINTS or (
                    text.startswith("#") and "\n" not in text)):
                continue
            try:
                fixes.parse(text)
            except fixes.NotApplicable as exc:
                refused[code] = f"{item}: {exc}"
    assert not refused, refused
