"""The VM part of a namespace's observation: the ``[[vm]]`` entries of hostnet.toml, the
namespace's links over rtnetlink and /dev/net/tun, for the VM checks (VM101-VM105).

Which hostnet.toml: the one the doctor was given (``--config``), else
``/etc/hostnet/hostnet.toml`` under the Root when it exists (declared in the registry, so a
snapshot from ``hostnet collect`` carries it). Without a config, or one without ``[[vm]]``,
there is no VM part and the VM checks stay silent; the config is read once for all
namespaces' observations by each of them (it is small).

Links, routes and proxy entries come from netlink (the same reader the VM planner uses), so
the VM part is observed on the live host only, and only in a namespace that holds a VM's
tap, uplink or bridge (:func:`belongs`); for a snapshot or host tree with ``[[vm]]``
entries the report says the VM checks were not run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from hostnet.errors import HostnetError
from hostnet.host.root import Root

if TYPE_CHECKING:
    from hostnet.model.vm import LinkSnapshot, VmCheckInput, VmLink

DEFAULT_CONFIG = "etc/hostnet/hostnet.toml"
_VM_TABLE = re.compile(r"^\s*\[\[\s*vm\s*\]\]", re.MULTILINE)


def _config_text(root: Root, config: Path | None) -> tuple[str, str] | None:
    if config is not None:
        return str(config), config.read_text(encoding="utf-8")
    try:
        text = root.read_text(DEFAULT_CONFIG)
    except PermissionError:
        return None
    return (None if text is None else ("/" + DEFAULT_CONFIG, text))


def observe_vm(root: Root, config: Path | None, notes: list[str]) -> VmCheckInput | None:
    """The VM checks' input for the namespace we are in (None: no VMs configured, or they
    cannot be observed here; then ``notes`` says why)."""
    try:
        found = _config_text(root, config)
    except (OSError, UnicodeDecodeError) as exc:
        notes.append(f"{config}: cannot read ({exc}): VM checks not run")
        return None
    if found is None or not _VM_TABLE.search(found[1]):
        return None
    path, text = found
    if not root.is_live:
        notes.append(f"{path} has [[vm]] entries, but VM links (taps, routes, proxy entries) "
                     "are read over netlink from the live host: VM checks not run on a "
                     "snapshot")
        return None
    from hostnet.config.vm import Accounts, parse_vm_text, resolve
    from hostnet.model.vm import VmCheckInput
    from hostnet.observe.links import read_snapshot, read_tun_node

    try:
        entries, where = parse_vm_text(text, path)
        vms = resolve(entries, Accounts.from_root(root.path), path, where)
        snap = read_snapshot(None)
    except HostnetError as exc:
        notes.append(f"VM checks not run: {exc.message.splitlines()[0]}")
        return None
    here = tuple(vm for vm in vms if belongs(vm, snap))
    if not here:
        return None
    return VmCheckInput(here, read_tun_node(str(root.path)), snap)


def belongs(vm: VmLink, snap: LinkSnapshot) -> bool:
    """Is this namespace the VM's host side? The config does not name a namespace, so a VM
    is judged where its tap, its uplink (routed) or its bridge (bridge mode) is: with
    ``--all-netns`` each VM is judged in its own namespace, not reported missing in all the
    others."""
    return any(name is not None and name in snap.links for name in (vm.tap, vm.uplink, vm.bridge))
