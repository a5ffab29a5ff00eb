"""Typed configuration (hostnet.toml) models and loaders."""
