"""Sysctl key names and their /proc/sys paths (the functions live in hostnet.model.keys,
where the host readers can use them too)."""

from __future__ import annotations

from hostnet.model.keys import key_to_path, normalize_key, path_to_key

__all__ = ["key_to_path", "normalize_key", "path_to_key"]
