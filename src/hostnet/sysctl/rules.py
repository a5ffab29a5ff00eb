"""The SC rules: mistakes in sysctl configuration files. Pages: knowledge/rules/SC*.md."""

from __future__ import annotations

from hostnet.findings import Rule, Severity

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO

NOT_ASSIGNMENT = Rule(
    "SC101", "not-an-assignment", E, "A line that is neither a comment nor key = value."
)
EMPTY_VALUE = Rule("SC102", "empty-value", E, "key = with nothing after it.")
UNKNOWN_KEY = Rule(
    "SC103", "unknown-key", E, "The key exists on no kernel hostnet knows of, or is misspelt."
)
READ_ONLY_KEY = Rule("SC104", "read-only-key", E, "The key can be read but never written.")
REMOVED_KEY = Rule(
    "SC105", "removed-key", W, "The key was removed from the kernel or no longer has any effect."
)
INVALID_VALUE = Rule(
    "SC106", "invalid-value", E, "The value has the wrong type or number of fields for the key."
)
OUT_OF_RANGE = Rule(
    "SC107", "out-of-range", E, "The value is outside what the kernel accepts for the key."
)
QUOTED_VALUE = Rule(
    "SC108", "quoted-value", E, "Quotes are written to the kernel as part of the value."
)
TRAILING_TEXT = Rule(
    "SC109", "trailing-text", E, "Text after the value (an inline comment) is part of the value."
)
DUPLICATE_KEY = Rule(
    "SC110", "duplicate-key", W, "The same key is set twice in one file; the last one wins."
)
OVERRIDDEN_KEY = Rule(
    "SC111", "overridden-key", W, "A later file sets the key again, so this line has no effect."
)
DEFAULT_ABOVE_MAX = Rule(
    "SC112",
    "inconsistent-limits",
    W,
    "A default above its maximum, or min/default/max out of order.",
)
WEAKER_THAN_DEFAULT = Rule(
    "SC113", "weaker-than-default", W, "A security setting made weaker than the kernel default."
)
NOT_ON_THIS_KERNEL = Rule(
    "SC114",
    "not-on-this-kernel",
    I,
    "The key exists on other kernels or with a module not loaded here.",
)
FILE_NOT_READ = Rule("SC115", "file-not-read", W, "Nothing reads this file at boot on this system.")
SEMICOLON_COMMENT = Rule(
    "SC116", "semicolon-comment", W, "';' comments are not comments for the newest systemd."
)
COMMENTED_ASSIGNMENT = Rule(
    "SC117",
    "assignment-in-comment",
    W,
    "An assignment glued onto a comment, so it is never applied.",
)
SPLIT_KEY = Rule("SC118", "split-key", E, "A key broken across two lines.")
IPV6_INTENT = Rule(
    "SC119",
    "ipv6-intent",
    W,
    "disable_ipv6/forwarding/accept_ra set to the opposite of what the file says it wants.",
)
MISSING_INTERFACE = Rule(
    "SC120", "missing-interface", I, "A per-interface key for an interface that does not exist now."
)
DOTTED_INTERFACE = Rule(
    "SC121",
    "dotted-interface-name",
    E,
    "An interface name with a dot (VLAN) written with '.' instead of '/'.",
)
MODULE_KEY_AT_BOOT = Rule(
    "SC122",
    "module-key-at-boot",
    W,
    "The key belongs to a module that may load after sysctl is applied at boot.",
)
PORT_PARITY = Rule(
    "SC123",
    "port-range-parity",
    I,
    "ip_local_port_range ends of the same parity halve the usable ports.",
)
MASKED_FILE = Rule(
    "SC124",
    "masked-file",
    I,
    "A file with the same name in a higher-priority directory hides this one.",
)
PARSER_DISAGREEMENT = Rule(
    "SC125",
    "parser-disagreement",
    W,
    "systemd-sysctl and procps sysctl read this line differently.",
)
NOT_OFFERED = Rule(
    "SC126",
    "not-offered-by-kernel",
    E,
    "A congestion control or qdisc this kernel neither has built in nor can load.",
)
UNIT_MISMATCH = Rule(
    "SC127",
    "unit-mismatch",
    W,
    "A value in the wrong unit (bytes written where the kernel counts pages).",
)
EXCLUSIVE_KEYS = Rule(
    "SC128",
    "exclusive-keys",
    W,
    "Two keys that set the same limit in different units; writing one zeroes the other.",
)

#: Every severity each rule can emit (the Rule's own severity first). ``hostnet rules``
#: shows these; tests/unit/test_lint_rules.py checks findings never leave them.
EMITS: dict[str, tuple[Severity, ...]] = {
    "SC103": (E, W),  # warning: a near-miss guessed without a kernel
    "SC106": (E, W, I),  # warning: extra integer fields; info: fewer fields than the key has
    "SC107": (E, W),  # warning: outside the documented range where the kernel stores it anyway
    "SC109": (E, W),  # warning: a space before the comment, the kernel stops there
    "SC110": (W, I),  # info: set again to the same value
    "SC111": (W, I),  # info: a vendor file overridden by /etc
}
