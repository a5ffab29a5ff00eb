"""The VM part of a namespace's observation: the ``[[vm]]`` entries of hostnet.toml, the
namespace's links over rtnetlink and /dev/net/tun, for the VM checks (VM101-VM105).

Which hostnet.toml: the one the doctor was given (``--config``), else
``/etc/hostnet/hostnet.toml`` under the Root when it exists (declared in the registry, so a
snapshot from ``hostnet collect`` carries it; ``collect --config FILE`` stores FILE there
and its meta.json names FILE, so findings point where the live run points). Without a
config, or one without ``[[vm]]``, there is no VM part and the VM checks stay silent; the
config is read once for all namespaces' observations by each of them (it is small).

On the live host links, routes and proxy entries come from netlink (the same reader the VM
planner uses), accounts from NSS; on a snapshot from the ``ip -j`` output, /proc/sys,
/dev/net/tun's stat record and ``getent`` output it stores (a host tree without getent
output: its etc/passwd and etc/group). Both give the same LinkSnapshot. The VM part is
observed only in a namespace that holds a VM's tap, uplink or bridge (:func:`belongs`); a
snapshot that lacks what the VM part needs (an older hostnet's) gets a note instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from hostnet.errors import HostnetError
from hostnet.host.root import Root

if TYPE_CHECKING:
    from hostnet.config.vm import Accounts
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
    if text is None:
        return None
    shown = "/" + DEFAULT_CONFIG
    if not root.is_live:
        from hostnet.host.snapshot import read_meta

        meta = read_meta(root)
        shown = meta.config if meta is not None and meta.config else shown
    return shown, text


def _accounts(root: Root) -> Accounts:
    """NSS on the live host; a snapshot's getent output (what NSS said when collected), else
    the tree's etc/passwd and etc/group."""
    from hostnet.config.vm import Accounts
    from hostnet.observe import registry as reg

    if root.is_live:
        return Accounts.from_root("/")
    texts = []
    for cmd, rel in ((reg.GETENT_PASSWD, "etc/passwd"), (reg.GETENT_GROUP, "etc/group")):
        try:
            text = root.command_output(cmd.name, list(cmd.argv))
            texts.append(text if text is not None else root.read_text(rel) or "")
        except OSError:
            texts.append("")
    return Accounts.from_text(*texts)


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
    from hostnet.config.vm import parse_vm_text, resolve
    from hostnet.model.vm import VmCheckInput
    from hostnet.observe.links import read_snapshot, snapshot_from_root, tun_node

    try:
        entries, where = parse_vm_text(text, path)
        accounts = _accounts(root)
        vms = resolve(entries, accounts, path, where)
        if root.is_live:
            snap = read_snapshot(None)
        else:
            snap = snapshot_from_root(root, {n: u for n, (u, _g) in accounts.users.items()},
                                      accounts.groups)
        here = tuple(vm for vm in vms if belongs(vm, snap))
        tun = tun_node(root) if here else None
    except HostnetError as exc:
        notes.append(f"VM checks not run: {exc.message.splitlines()[0]}")
        return None
    if not here or tun is None:
        return None
    return VmCheckInput(here, tun, snap)


def belongs(vm: VmLink, snap: LinkSnapshot) -> bool:
    """Is this namespace the VM's host side? The config does not name a namespace, so a VM
    is judged where its tap, its uplink (routed) or its bridge (bridge mode) is: with
    ``--all-netns`` each VM is judged in its own namespace, not reported missing in all the
    others."""
    return any(name is not None and name in snap.links for name in (vm.tap, vm.uplink, vm.bridge))
