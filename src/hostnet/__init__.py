"""hostnet: keep the network side of a Linux kernel healthy."""

__version__ = "0.1.0"
