"""The packaged TOML knowledge, parsed once per change of the file.

Parsing sysctl.toml with tomllib takes about 20 ms, more than the doctor's own checks; the
parsed data is kept as a marshal file in the package's ``__pycache__`` (where Python keeps
its bytecode), keyed by the TOML file's size and mtime like a .pyc. A cache that cannot be
read or written (read-only install, zip) only costs the parse.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys
from pathlib import Path
from typing import Any


def _cache_file(path: Path) -> Path:
    return path.parent / "__pycache__" / f"{path.name}.{sys.implementation.cache_tag}.marshal"


def load_toml(name: str) -> dict[str, Any]:
    """A TOML file of hostnet.knowledge, parsed (from the cache when it is current)."""
    path = Path(__file__).with_name(name)
    if not path.is_file():  # zipped install: no file to stat or cache beside
        import tomllib
        from importlib import resources

        return tomllib.loads(resources.files("hostnet.knowledge").joinpath(name)
                            .read_text("utf-8"))
    return load_path(path)


def load_path(path: Path) -> dict[str, Any]:
    st = path.stat()
    key = (st.st_size, st.st_mtime_ns)
    cache = _cache_file(path)
    try:
        with open(cache, "rb") as fh:
            stored, data = marshal.load(fh)
        if tuple(stored) == key and isinstance(data, dict):
            return data
    except (OSError, EOFError, ValueError, TypeError):
        pass
    import tempfile
    import tomllib

    data = tomllib.loads(path.read_text("utf-8"))
    with contextlib.suppress(OSError, ValueError):
        blob = marshal.dumps((key, data))
        cache.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=cache.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o644)  # readable by every user, like a .pyc
                fh.write(blob)
            os.replace(tmp, cache)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return data
