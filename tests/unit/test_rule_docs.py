"""Every rule has a documentation page of the agreed shape, and every command is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from hostnet.cli.conntrack import SUBCOMMANDS
from hostnet.cli.main import COMMANDS, cli
from hostnet.rules import all_rules, rule_doc

RULES = all_rules()
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("code", sorted(RULES))
def test_rule_has_page(code: str) -> None:
    page = rule_doc(code)
    assert page is not None, f"{code} has no page in src/hostnet/knowledge/rules/{code}.md"
    rule = RULES[code]
    assert page.splitlines()[0].strip() == f"# {code} {rule.name}"
    for section in ("## Why", "## Bad", "## Good", "## References"):
        assert section in page, f"{code}: missing section {section}"


def test_codes_are_well_formed() -> None:
    for code, rule in RULES.items():
        assert re.fullmatch(r"(SC|CT|HD|TN|NT|V6|VM)\d{3}", code), code
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.name), rule.name


def test_no_orphan_pages() -> None:
    pages = {p.stem for p in (ROOT / "src/hostnet/knowledge/rules").glob("*.md")}
    assert pages <= set(RULES), f"pages without a rule: {sorted(pages - set(RULES))}"


def test_every_command_in_readme_and_help() -> None:
    readme = (ROOT / "README.md").read_text()
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
        assert f"hostnet {name}" in readme, f"README does not document 'hostnet {name}'"
    sub = CliRunner().invoke(cli, ["conntrack", "--help"])
    assert sub.exit_code == 0
    for name in SUBCOMMANDS:
        assert name in sub.output
        assert f"hostnet conntrack {name}" in readme, f"README lacks 'hostnet conntrack {name}'"
        help_ = CliRunner().invoke(cli, ["conntrack", name, "--help"])
        assert help_.exit_code == 0 and "Usage:" in help_.output, help_.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
