"""The only layer that touches the host: readers over a Root, netns entry, command runners."""

from hostnet.host.root import Root, SysctlRead, SysctlState

__all__ = ["Root", "SysctlRead", "SysctlState"]
