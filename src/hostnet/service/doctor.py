"""One doctor run: observe, judge, keep the counter readings for the next run's rates.

    from hostnet.service.doctor import run
    report = run(root=None, netns=[None, "blue"], composition=False)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hostnet.checks.runner import DEFAULT_MODULES, DoctorReport, evaluate
from hostnet.host.root import Root
from hostnet.model.host import HostState
from hostnet.observe.host import Want, observe


def keep_history(host: HostState, state_dir: Path) -> list[str]:
    """Store each namespace's reading for the next run; what could not be stored."""
    from hostnet.state import history

    problems: list[str] = []
    for ns in host.namespaces:
        ct = ns.conntrack
        if ct is None or ct.now is None:
            continue
        try:
            history.save(state_dir, ns.name, ct.now)
        except OSError as exc:
            problems.append(f"{state_dir}: cannot keep counter history ({exc.strerror})")
    return problems


def run(
    root: Root | None = None,
    *,
    role: str | None = None,
    netns: Sequence[str | None] = (None,),
    modules: Sequence[str] = DEFAULT_MODULES,
    composition: bool = True,
    interval: float | None = None,
    state_dir: Path | None = None,
    skip_denied: bool = False,
    config: Path | None = None,
) -> DoctorReport:
    """Observe the namespaces in ``netns`` and judge them.

    ``root`` is a fixture tree or unpacked snapshot (None: the live host); ``composition``
    False skips the expensive parts (table walk, kernel log scan); ``interval`` samples the
    counters for rates; ``state_dir`` keeps readings between runs; ``config``: the
    hostnet.toml whose [[vm]] entries the VM checks judge (default: /etc/hostnet/hostnet.toml
    under the root when it exists).
    """
    want = Want(composition=composition, log=composition, interval=interval,
                history_dir=state_dir, vm_config=config)
    host = observe(root, netns=netns, want=want, skip_denied=skip_denied)
    report = evaluate(host, role=role, modules=modules)
    if state_dir is not None:
        for problem in keep_history(host, state_dir):
            for ns in report.namespaces:
                ns.unreadable.append(problem)
    return report
