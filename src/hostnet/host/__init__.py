"""The only layer that touches the host: readers over a Root, netns entry, command runners."""

from hostnet.host.root import Root
from hostnet.model.sysctl import SysctlRead, SysctlState

__all__ = ["Root", "SysctlRead", "SysctlState"]
