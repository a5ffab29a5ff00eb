"""Every read observe makes is declared in the registry, so a snapshot holds it."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from hostnet.host.root import COMMANDS_DIR, META_FILE, STAT_FILE, Root
from hostnet.observe import registry as reg
from hostnet.observe.host import Want, observe

ROOTS = Path(__file__).resolve().parents[1] / "fixtures" / "roots"
#: Directories only tested for existence (what kind of tree this is).
PARENTS = frozenset({"etc", "proc", "sys", "sys/module", "proc/sys/kernel"})


class Recording(Root):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.files: set[str] = set()
        self.commands: set[str] = set()

    def file(self, rel: str) -> Path:
        self.files.add(rel.lstrip("/"))
        return super().file(rel)

    def command_output(self, name: str, argv: list[str], timeout: float = 10.0) -> str | None:
        self.commands.add(name)
        return super().command_output(name, argv, timeout)


def declared(rel: str) -> bool:
    if rel.startswith(("proc/sys/", "sys/class/net/")) or rel in (META_FILE, STAT_FILE,
                                                                   reg.CONNTRACK_TABLE):
        return True
    if rel in reg.NETNS_FILES or rel in reg.HOST_FILES or rel in reg.STATS:
        return True
    if any(fnmatch.fnmatch(rel, p.format(release="*")) for p in reg.RELEASE_FILES):
        return True
    if any(fnmatch.fnmatch(rel, g) for g in reg.GLOBS) or rel in PARENTS:
        return True
    if any(rel == t or rel.startswith(t + "/") for t in reg.TREES):
        return True
    if rel.startswith(COMMANDS_DIR + "/"):
        name = rel[len(COMMANDS_DIR) + 1:]
        return any(name == c.name or name in c.legacy
                   for c in reg.NETNS_COMMANDS + reg.HOST_COMMANDS)
    if rel == "var/log":
        return True
    return rel.startswith("var/log/") and any(
        fnmatch.fnmatch(rel[len("var/log/"):], g) for g in reg.LOG_GLOBS)


@pytest.mark.parametrize("tree", sorted(p.name for p in ROOTS.iterdir() if p.is_dir()))
def test_every_read_is_in_the_registry(tree: str) -> None:
    root = Recording(ROOTS / tree)
    observe(root, want=Want(composition=True, log=True))
    assert any(f.startswith("proc/net/") for f in root.files), "nothing recorded"
    stray = sorted(f for f in root.files if not declared(f))
    assert not stray, f"read but not declared in observe/registry.py: {stray}"
    names = {c.name for c in reg.NETNS_COMMANDS + reg.HOST_COMMANDS}
    assert root.commands <= names, f"commands not in the registry: {root.commands - names}"


def test_the_registry_names_each_command_once() -> None:
    cmds = reg.NETNS_COMMANDS + reg.HOST_COMMANDS
    assert len({c.name for c in cmds}) == len(cmds)
    assert len({c.argv for c in cmds}) == len(cmds)


def test_role_expectation_keys_are_read() -> None:
    from hostnet.knowledge.roles import ROLES, load

    keys = set(reg.scalar_keys())
    for name in ROLES:
        assert set(load(name).expectations) <= keys


@pytest.mark.parametrize("tree", ["lint-kernel", "lint-builtin", "lint-system"])
def test_every_lint_read_is_in_the_registry(tree: str) -> None:
    from hostnet.state.lint_fix import LintRequest, run_lint

    root = Recording(ROOTS / tree)
    run_lint(root, LintRequest(system=True))
    assert root.files, "nothing recorded"
    stray = sorted(f for f in root.files if not declared(f))
    assert not stray, f"lint read but not declared in observe/registry.py: {stray}"
