"""Parse ``hostnet.toml`` text into the typed model, with errors that point at the line.

tomllib gives the data; pydantic validates it; :class:`Locator` maps a pydantic ``loc`` (such
as ``("sysctl", "net.core.somaxconn")`` or ``("nat", "forward", 2, "port")``) back to the line
of the TOML text that holds it, by following table headers, array-of-table headers, dotted
keys, inline tables and multi-line arrays of inline tables.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from dataclasses import dataclass
from typing import Any

from hostnet.config.schema import HostnetConfig, describe

Path = tuple[str | int, ...]
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")
_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the file: where, and what was expected."""

    path: str  # the file
    line: int | None
    where: str  # dotted path, e.g. sysctl."net.core.somaxconn"
    message: str

    def __str__(self) -> str:
        at = f"{self.path}:{self.line}" if self.line else self.path
        return f"{at}: {self.where}: {self.message}" if self.where else f"{at}: {self.message}"


class ConfigInvalid(ValueError):
    """The file is not valid TOML or does not match the schema (``problems`` lists why)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Loaded:
    config: HostnetConfig
    path: str
    locator: Locator

    def line_of(self, *loc: str | int) -> int | None:
        return self.locator.line(tuple(loc))

    def origin(self, *loc: str | int) -> str:
        """``hostnet.toml:5`` for a config path (the file alone when the line is unknown)."""
        line = self.line_of(*loc)
        return f"{self.path}:{line}" if line else self.path


def dotted(loc: Path) -> str:
    """``sysctl."net.core.somaxconn"``, ``nat.forward[2].port``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = part if _BARE.match(part) else '"' + part.replace('"', '\\"') + '"'
        out += ("." if out else "") + name
    return out


def _split_key(text: str) -> list[str]:
    """Dotted TOML key -> parts (quotes removed)."""
    parts: list[str] = []
    cur = ""
    quote: str | None = None
    for ch in text.strip():
        if quote:
            if ch == quote:
                quote = None
            else:
                cur += ch
        elif ch in "\"'":
            quote = ch
        elif ch == ".":
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def _split_assignment(line: str) -> tuple[str, str] | None:
    quote: str | None = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "=":
            return line[:i], line[i + 1 :]
        elif ch == "#":
            return None
    return None


class Locator:
    """Path -> first line that defines it (longest known prefix wins)."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path, int] = {}
        table: Path = ()
        counts: dict[Path, int] = {}
        array_key: Path | None = None
        array_index = -1
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if array_key is not None:
                if line.startswith("{"):
                    array_index += 1
                    self._add((*array_key, array_index), n)
                    self._inline(line, (*array_key, array_index), n)
                if line.startswith("]"):
                    array_key = None
                continue
            if line.startswith("[["):
                name = tuple(_split_key(line[2 : line.index("]]")]))
                counts[name] = counts.get(name, -1) + 1
                table = (*name, counts[name])
                self._add(name, n)
                self._add(table, n)
                continue
            if line.startswith("["):
                table = self._resolve(tuple(_split_key(line[1 : line.index("]")])), counts)
                self._add(table, n)
                continue
            split = _split_assignment(line)
            if split is None:
                continue
            parts = _split_key(split[0])
            key = (*table, *parts)
            self._add(key, n)
            if len(parts) > 1:  # an unquoted sysctl name: flattened by the loader
                self._add((*table, ".".join(parts)), n)
            value = split[1].split("#", 1)[0].strip() if '"' not in split[1] else split[1].strip()
            if value.startswith("{"):
                self._inline(value, key, n)
            elif value.startswith("[") and "]" not in value:
                array_key, array_index = key, -1

    @staticmethod
    def _resolve(name: Path, counts: dict[Path, int]) -> Path:
        """[vm.disk] after [[vm]] means the last vm element's disk."""
        out: Path = ()
        for part in name:
            out = (*out, part)
            if out in counts:
                out = (*out, counts[out])
        return out

    def _inline(self, value: str, prefix: Path, n: int) -> None:
        for m in re.finditer(r"([A-Za-z0-9_\-\"'.]+)\s*=", value):
            self._add((*prefix, *_split_key(m.group(1))), n)

    def _add(self, path: Path, n: int) -> None:
        self.lines.setdefault(path, n)

    def line(self, loc: Path) -> int | None:
        for end in range(len(loc), 0, -1):
            hit = self.lines.get(loc[:end])
            if hit is not None:
                return hit
        return None


def _fields_at(loc: Path) -> list[str]:
    """Field names of the model reached by following ``loc`` from the top-level model."""
    hint: Any = HostnetConfig
    for part in loc:
        hint = _model_of(hint)
        if hint is None:
            return []
        if isinstance(part, int):
            continue
        field = hint.model_fields.get(part)
        if field is None:
            return []
        hint = field.annotation
    model = _model_of(hint)
    return list(model.model_fields) if model is not None else []


def _model_of(hint: Any) -> Any:
    """The pydantic model inside ``X``, ``X | None`` or ``list[X]`` (None if there is none)."""
    if isinstance(hint, type) and hasattr(hint, "model_fields"):
        return hint
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType, list, tuple, typing.Annotated):
        for arg in typing.get_args(hint):
            model = _model_of(arg)
            if model is not None:
                return model
    return None


def _message(err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = describe(err["input"]) if "input" in err else "nothing"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "literal_error":
        return f"expected {ctx.get('expected', 'one of the listed values')}, got {got}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in ("dict_type", "model_type"):
        return f"expected a table, got {got}"
    if kind in ("int_type", "int_parsing"):
        return f"expected an integer, got {got}"
    if kind in ("string_type",):
        return f"expected a string, got {got}"
    if kind in ("bool_type",):
        return f"expected true or false, got {got}"
    return f"{err['msg']} (got {got})"


def problems_from(exc: Any, path: str, locator: Locator) -> list[Problem]:
    """pydantic ValidationError -> Problems with lines and did-you-mean."""
    out: list[Problem] = []
    for err in exc.errors():
        loc: Path = tuple(p for p in err["loc"] if isinstance(p, str | int) and p != "[key]")
        message = _message(err)
        if err["type"] == "extra_forbidden" and loc:
            known = _fields_at(loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
            message += f" (did you mean {close[0]}?)" if close else (
                f"; known here: {', '.join(known)}" if known else "")
        out.append(Problem(path, locator.line(loc), dotted(loc), message))
    return sorted(out, key=lambda p: p.line or 0)


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``net.core.somaxconn = 1`` written without quotes is a nested table in TOML: join the
    names back. A quoted name (it holds dots) or a table of at_least/at_most is a value."""
    out: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{prefix}.{name}" if prefix else name
        if (isinstance(value, dict) and value and "." not in name
                and not set(value) <= {"at_least", "at_most"}):
            out.update(_flatten(value, key))
        else:
            out[key] = value
    return out


def parse(text: str, path: str = "hostnet.toml") -> Loaded:
    """Text -> Loaded, or ConfigInvalid with every problem found."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS.search(msg)
        line = int(m.group(1)) if m else None
        reason = _TOML_POS.sub("", msg).strip()
        raise ConfigInvalid([Problem(path, line, "", f"not valid TOML: {reason}")]) from None
    from pydantic import ValidationError

    locator = Locator(text)
    if isinstance(data.get("sysctl"), dict):
        data["sysctl"] = _flatten(data["sysctl"])
    try:
        config = HostnetConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigInvalid(problems_from(exc, path, locator)) from None
    return Loaded(config, path, locator)
