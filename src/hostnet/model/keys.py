"""Sysctl key names and their /proc/sys paths (pure; used by the readers and the parser)."""

from __future__ import annotations


def normalize_key(key: str) -> str:
    """Return the canonical dotted form of a key, the way systemd-sysctl and procps read it.

    When the first separator in the key is ``/`` the key is a path: slashes separate
    components and dots belong to names (``net/ipv4/conf/eth0.100/rp_filter``). Otherwise dots
    separate and a ``/`` stands for a dot inside a name (``net.ipv4.conf.eth0/100.rp_filter``).
    The canonical form uses dots as separators and ``/`` for dots inside names.
    """
    key = key.strip()
    for ch in key:
        if ch == "/":
            return key.strip("/").translate(_SWAP)
        if ch == ".":
            break
    return key


_SWAP = str.maketrans({".": "/", "/": "."})


def key_to_path(key: str) -> str:
    """Relative path under /proc/sys for a canonical key (``a.b/c.d`` -> ``a/b.c/d``)."""
    return normalize_key(key).translate(_SWAP)


def path_to_key(path: str) -> str:
    """Canonical key for a path relative to /proc/sys."""
    return path.strip("/").translate(_SWAP)
