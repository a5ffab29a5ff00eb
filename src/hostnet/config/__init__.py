"""Typed configuration (``hostnet.toml``) loaders."""
