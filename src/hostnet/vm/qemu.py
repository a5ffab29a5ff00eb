"""QEMU command-line arguments that attach a VM to the tap hostnet prepared.

``script=no,downscript=no``: QEMU must not run its ifup scripts, the tap is already set up
(and owned by the user QEMU runs as). With ``multi_queue`` the tap was created with
IFF_MULTI_QUEUE, which QEMU's ``queues=N`` requires; virtio-net then needs ``mq=on`` and
2N+2 MSI-X vectors (one per rx and tx queue, one for config, one for control).
"""

from __future__ import annotations

import re
import shlex

from hostnet.model.vm import VmLink


def netdev_id(vm: VmLink) -> str:
    """A QEMU id for the VM's netdev (letters, digits, ``-._``, starting with a letter)."""
    return "net-" + re.sub(r"[^A-Za-z0-9._-]", "_", vm.name)


def qemu_args(vm: VmLink) -> list[str]:
    ident = netdev_id(vm)
    netdev = [f"tap,id={ident}", f"ifname={vm.tap}", "script=no", "downscript=no"]
    if vm.vhost:
        netdev.append("vhost=on")
    if vm.multi_queue:
        netdev.append(f"queues={vm.queues}")
    device = ["virtio-net-pci", f"netdev={ident}", f"mac={vm.guest_mac}"]
    if vm.multi_queue:
        device += ["mq=on", f"vectors={2 * vm.queues + 2}"]
    return ["-netdev", ",".join(netdev), "-device", ",".join(device)]


def qemu_args_line(vm: VmLink) -> str:
    return shlex.join(qemu_args(vm))
