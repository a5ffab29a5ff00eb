"""Read the config and the host, check, and plan: everything ``plan`` and ``apply`` share.

Call it inside the target namespace (``hostnet.host.netns.entered``): the values read are
that namespace's. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from hostnet.config.load import ConfigInvalid, Loaded, parse
from hostnet.errors import ConfigError, InputError
from hostnet.host.root import Root
from hostnet.model.facts import Facts
from hostnet.observe.plan_facts import interfaces, kernel_root, observe
from hostnet.state.desired import ipv6_wants, wants
from hostnet.state.nat_step import add_nat_steps
from hostnet.state.plan import Plan, keys_needed, make_plan
from hostnet.state.validate import PORT_RANGE, check
from hostnet.state.vm_step import add_vm_steps

DEFAULT_CONFIG = Path("/etc/hostnet/hostnet.toml")


@dataclass(frozen=True, slots=True)
class Prepared:
    loaded: Loaded
    facts: Facts
    plan: Plan
    config_text: str
    live: bool
    files_root: Path


def load_config(path: Path) -> tuple[Loaded, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file",
                         hint="write one with 'hostnet init', or pass --config FILE") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    try:
        return parse(text, str(path)), text
    except ConfigInvalid as exc:
        raise config_error(path, [str(p) for p in exc.problems]) from None


def config_error(path: Path, problems: list[str]) -> ConfigError:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    body = "\n".join(f"  {p}" for p in problems)
    return ConfigError(f"{path}: {count}; nothing was changed:\n{body}", problems,
                       hint="fix the file and run 'hostnet plan' again")


def prepare(config: Path, *, netns: str | None, root_dir: Path | None) -> Prepared:
    loaded, text = load_config(config)
    live = root_dir is None or netns is not None
    write_files = netns is None or root_dir is not None
    files_root = Root(root_dir) if root_dir is not None else Root("/")
    kernel = Root("/") if netns is not None else kernel_root(root_dir)
    ifaces = interfaces(kernel)
    wanted = wants(loaded, netns=netns) + ipv6_wants(loaded, ifaces)
    sockets = any(w.key == PORT_RANGE or w.section == "ipv6" for w in wanted)
    facts = observe(kernel, files_root, keys_needed(wanted, ifaces), netns=netns, live=live,
                    files=write_files, source=str(config), sockets=sockets)
    from hostnet.knowledge.catalogue import load

    checked = check(wanted, facts, load())
    if checked.errors:
        raise config_error(config, list(checked.errors))
    plan = make_plan([w for w in wanted if w.key not in checked.skipped], facts)
    plan = replace(plan, warnings=checked.warnings + plan.warnings)
    plan = add_nat_steps(plan, loaded, text, config, netns=netns, live=live)
    plan = add_vm_steps(plan, loaded, config, netns=netns, live=live)
    return Prepared(loaded, facts, plan, text, live, files_root.path)
