"""Check a value against what the kernel accepts for its key (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from hostnet.findings import Rule, Severity
from hostnet.knowledge.catalogue import KeySpec
from hostnet.sysctl import rules as R

#: Keys whose range is judged by hostnet.sysctl.invariants (cross-checked with other keys).
CROSS_CHECKED = frozenset({"net.ipv4.ip_local_port_range"})


@dataclass(frozen=True, slots=True)
class ValueProblem:
    rule: Rule
    message: str
    fixed: str | None = None  # a corrected value, when one is certain
    severity: Severity | None = None


def _int(token: str) -> int | None:
    try:
        return int(token, 0) if token.lower().startswith(("0x", "-0x")) else int(token)
    except ValueError:
        return None


def _ints(tokens: list[str]) -> list[int] | None:
    out = []
    for t in tokens:
        v = _int(t)
        if v is None:
            return None
        out.append(v)
    return out


def unquote(value: str) -> str | None:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1].strip()
    return None


def strip_inline_comment(value: str) -> str | None:
    """The value before an inline '#'/';' comment, or None when there is none."""
    if "#" not in value and ";" not in value:
        return None
    cut = min((i for i in (value.find("#"), value.find(";")) if i >= 0), default=-1)
    if cut < 0:
        return None
    return value[:cut].strip()


def check_value(spec: KeySpec | None, value: str, current: str | None = None) -> list[ValueProblem]:
    """Problems with ``value`` for the key described by ``spec`` (or, without a spec, by the
    shape of the kernel's ``current`` value). Empty list: the kernel will take it."""
    problems: list[ValueProblem] = []
    inner = unquote(value)
    if inner is not None:
        problems.append(
            ValueProblem(
                R.QUOTED_VALUE,
                f"the value {value} is written with its quotes; the kernel rejects or stores them",
                fixed=inner,
            )
        )
        value = inner
    kind = spec.type if spec is not None else _shape(current)
    if kind is None or kind == "string":
        head = strip_inline_comment(value)
        if head is not None and kind == "string":
            problems.append(
                ValueProblem(
                    R.TRAILING_TEXT,
                    f"'{value}' contains a comment marker; everything after '=' is the value",
                    fixed=head or None,
                    severity=Severity.WARNING,
                )
            )
        return problems
    head = strip_inline_comment(value)
    if head is not None:
        glued = value[len(head) : len(head) + 1] in ("#", ";") and not value[
            len(head) - 1 : len(head)
        ].isspace()
        problems.append(
            ValueProblem(
                R.TRAILING_TEXT,
                f"'{value}' has a comment after the value; sysctl files have no inline comments"
                + (
                    ", and glued to the number like this the kernel rejects the write"
                    if glued
                    else "; the kernel happens to stop at the first space today, but the "
                    "comment is part of the value every tool sees"
                ),
                fixed=head or None,
                severity=None if glued else Severity.WARNING,
            )
        )
        value = head
        if not value:
            return problems
    arity = spec.arity if spec is not None else len((current or "").split()) or 1
    if kind == "tuple" or (spec is None and arity > 1):
        return problems + _check_tuple(spec, value, arity)
    if kind == "list":
        return problems + _check_list(spec, value)
    tokens = value.split()
    first = _int(tokens[0]) if tokens else None
    if first is None:
        expected = "0 or 1" if kind == "bool" else "an integer"
        problems.append(ValueProblem(R.INVALID_VALUE, f"'{value}' is not {expected}"))
        return problems
    if len(tokens) > 1 and _ints(tokens) is not None:
        problems.append(
            ValueProblem(
                R.INVALID_VALUE,
                f"'{value}' is {len(tokens)} numbers but the key takes one; the kernel uses "
                f"the first ({tokens[0]}) and ignores the rest",
                fixed=tokens[0],
                severity=Severity.WARNING,
            )
        )
    elif len(tokens) > 1:
        problems.append(
            ValueProblem(
                R.TRAILING_TEXT,
                f"'{value}' has text after the number; the kernel reads the first number and "
                "ignores the rest, so the extra text does nothing",
                fixed=tokens[0],
                severity=Severity.WARNING,
            )
        )
    if spec is not None:
        problems.extend(_check_range(spec, [first], value))
    return problems


def _shape(current: str | None) -> str | None:
    if current is None:
        return None
    tokens = current.split()
    if tokens and _ints(tokens) is not None:
        return "tuple" if len(tokens) > 1 else "int"
    return "string"


def _check_tuple(spec: KeySpec | None, value: str, arity: int) -> list[ValueProblem]:
    tokens = value.split()
    nums = _ints(tokens[:arity])
    if nums is None or not tokens:
        return [
            ValueProblem(
                R.INVALID_VALUE,
                f"'{value}' should be {arity} integers separated by spaces",
            )
        ]
    if len(tokens) < arity:
        # the kernel's int-vector handlers fill the fields given and keep the rest
        # (kernel/sysctl.c, __do_proc_dointvec): legal, but only part of the key is set
        fewer = [
            ValueProblem(
                R.INVALID_VALUE,
                f"'{value}' sets only the first {len(tokens)} of the key's {arity} fields; the "
                "kernel keeps the current value of the others",
                severity=Severity.INFO,
            )
        ]
        return fewer + (_check_range(spec, nums, value) if spec is not None else [])
    problems: list[ValueProblem] = []
    if len(tokens) > arity:
        problems.append(
            ValueProblem(
                R.INVALID_VALUE if _ints(tokens) is not None else R.TRAILING_TEXT,
                f"'{value}' has {len(tokens)} fields; the key takes {arity} and the kernel "
                "ignores the rest",
                fixed=" ".join(tokens[:arity]),
                severity=Severity.WARNING,
            )
        )
    if spec is not None and spec.key not in CROSS_CHECKED:
        problems.extend(_check_range(spec, nums, value))
    return problems


def _check_list(spec: KeySpec | None, value: str) -> list[ValueProblem]:
    if value == "":
        return []
    nums: list[int] = []
    for part in value.split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        a, b = _int(lo.strip()), (_int(hi.strip()) if dash else None)
        if a is None or (dash and b is None):
            return [
                ValueProblem(
                    R.INVALID_VALUE, f"'{value}' should be numbers or ranges separated by commas"
                )
            ]
        nums.append(a)
        if b is not None:
            if b < a:
                return [ValueProblem(R.OUT_OF_RANGE, f"range '{part}' runs backwards")]
            nums.append(b)
    return _check_range(spec, nums, value) if spec is not None else []


def _check_range(spec: KeySpec, nums: list[int], value: str) -> list[ValueProblem]:
    if spec.handler is not None and spec.range_enforced is False:
        return []  # the handler stores any integer (plain proc_dointvec and friends)
    if spec.type == "enum" and spec.values:
        bad = [n for n in nums if n not in spec.values]
        if bad:
            allowed = ", ".join(f"{k} ({v})" for k, v in sorted(spec.values.items()))
            return [ValueProblem(R.OUT_OF_RANGE, f"{bad[0]} is not one of: {allowed}")]
        return []
    lo, hi = spec.min, spec.max
    if spec.type == "bool" and lo is None and hi is None:
        bad = [n for n in nums if n not in (0, 1)]
        if bad:
            return [
                ValueProblem(
                    R.OUT_OF_RANGE,
                    f"{bad[0]} for an on/off key: the kernel treats any non-zero value as 1",
                    fixed="1" if bad[0] else "0",
                    severity=Severity.WARNING,
                )
            ]
        return []
    for n in nums:
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            span = f"{'' if lo is None else lo}..{'' if hi is None else hi}"
            unit = f" {spec.unit}" if spec.unit else ""
            return [ValueProblem(R.OUT_OF_RANGE, f"{n} is outside {span}{unit} in '{value}'")]
    return []
