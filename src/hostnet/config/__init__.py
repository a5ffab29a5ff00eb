"""Typed configuration (hostnet.toml) models and loaders.

``schema`` holds the top-level model (role, sysctl, conntrack, ipv6, and the sections of
their own modules: ``[nat]`` in ``nat``, ``[[vm]]`` in ``vm``, one field each). ``load`` turns
TOML text into the model, with errors that name the file, the line and the dotted path.
Nothing here touches the host.
"""
