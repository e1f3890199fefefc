"""Credentials in text: API keys, tokens, private keys and passwords, found by our own rules.

Each rule is a precompiled regex plus a validation that rejects look-alikes (a key's alphabet,
length and character mix; a JWT header that must decode to JSON naming its `alg`). Rules are
pure and fast (microseconds per KB), so they also run on streamed text. Long tokens (JWTs,
PEM blocks, project keys) still match while truncated at the end of a text, so a stream holds
them back until they are whole instead of letting their start out.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from gateway.guards.window import Span

SCORE = 1.0


@dataclass(frozen=True, slots=True)
class SecretRule:
    """One kind of secret: `pattern`'s group `group` is the secret; `valid` must accept it."""

    label: str
    pattern: re.Pattern[str]
    group: int = 0
    valid: Callable[[str, str, int], bool] | None = None


def _mixed(value: str, _text: str, _start: int) -> bool:
    """Random-looking: letters and digits both (rules out words like `sk-this-is-not-a-key`)."""
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def _base32_key_id(value: str, _text: str, _start: int) -> bool:
    # AWS key ids are base32 after the 4-character prefix: A-Z and 2-7, never 0, 1, 8 or 9.
    return all(c in _BASE32 for c in value[4:])


def _jwt(value: str, _text: str, _start: int) -> bool:
    header = value.split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and isinstance(decoded.get("alg"), str)


def _stripe(value: str, text: str, start: int) -> bool:
    """The prefix is the evidence: 24 or more key characters count whatever their mix (a random
    key of letters alone is not rare); a shorter key needs letters and digits."""
    key = value[value.index("_", 3) + 1 :]
    return len(key) >= _STRIPE_KEY_CHARS or _mixed(key, text, start)


def _slack(value: str, _text: str, _start: int) -> bool:
    return sum(c.isdigit() for c in value) >= 8


def _aws_secret(value: str, text: str, start: int) -> bool:
    """A 40-character base64 string counts only right after a key id or a secret-key label."""
    if not _mixed(value, text, start) or not any(c.isupper() for c in value):
        return False
    before = text[max(0, start - _AWS_SECRET_LOOKBEHIND) : start]
    return bool(_AWS_SECRET_CONTEXT.search(before))


def _password(value: str, _text: str, _start: int) -> bool:
    # Not a value at all: an environment reference, a mask or one of our own placeholders.
    return not (value.startswith(("$", "%", "{")) or set(value) <= {"*", "x", "X", "•"})


_BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
# Key characters after a Stripe prefix that make a key without needing a digit.
_STRIPE_KEY_CHARS = 24
# How far back a key id or a label may stand from an AWS secret key (within a stream window).
_AWS_SECRET_LOOKBEHIND = 100
_AWS_SECRET_CONTEXT = re.compile(
    r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}|secret[\s_-]?(?:access[\s_-]?)?key|aws_secret",
    re.IGNORECASE,
)
_NOT_BEFORE = r"(?<![A-Za-z0-9_-])"
_NOT_AFTER = r"(?![A-Za-z0-9_-])"

RULES: tuple[SecretRule, ...] = (
    SecretRule(
        "ANTHROPIC_API_KEY",
        re.compile(_NOT_BEFORE + r"sk-ant-(?:[a-z]{3,6}\d{2}-)?[A-Za-z0-9_-]{20,400}"),
        valid=_mixed,
    ),
    SecretRule(
        "OPENAI_API_KEY",
        re.compile(
            _NOT_BEFORE + r"sk-(?!ant-)(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,400}"
        ),
        valid=_mixed,
    ),
    SecretRule(
        "AWS_ACCESS_KEY_ID",
        re.compile(
            r"(?<![A-Za-z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"
        ),
        valid=_base32_key_id,
    ),
    SecretRule(
        "AWS_SECRET_ACCESS_KEY",
        re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"),
        valid=_aws_secret,
    ),
    SecretRule(
        "GITHUB_TOKEN",
        re.compile(
            _NOT_BEFORE
            + r"(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})"
            + _NOT_AFTER
        ),
        valid=_mixed,
    ),
    SecretRule(
        "SLACK_TOKEN",
        re.compile(_NOT_BEFORE + r"xox[abposr]-[A-Za-z0-9]+(?:-[A-Za-z0-9]+){1,5}"),
        valid=_slack,
    ),
    SecretRule(
        # Secret and restricted keys, live and test; publishable keys when live only (test
        # ones are printed in every tutorial).
        "STRIPE_KEY",
        re.compile(
            _NOT_BEFORE + r"(?:(?:sk|rk)_(?:live|test)|pk_live)_[A-Za-z0-9]{16,250}" + _NOT_AFTER
        ),
        valid=_stripe,
    ),
    SecretRule(
        # Header and dot are enough: a token cut at the end of a text (a stream) still counts.
        "JWT",
        re.compile(_NOT_BEFORE + r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?"),
        valid=_jwt,
    ),
    SecretRule(
        # A whole block, or a block cut short: its header and the key lines that follow it.
        "PRIVATE_KEY",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[\s\S]{0,16384}?-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----"
            r"|(?:\r?\n[A-Za-z0-9+/=:, -]{0,100}){0,400})"
        ),
    ),
    SecretRule(
        # scheme://user:password@host: the password alone.
        "PASSWORD",
        re.compile(
            r"\b[A-Za-z][A-Za-z0-9+.-]{1,30}://[^\s:/?#@<>\"'\\]{0,128}:([^\s/?#@<>\"'\\]{1,256})@"
            r"(?=[A-Za-z0-9\[])"
        ),
        group=1,
        valid=_password,
    ),
    SecretRule(
        # Connection strings and settings: `Password=...;`, `pwd=...`, `DB_PASSWORD=...`.
        "PASSWORD",
        re.compile(
            r"(?<![A-Za-z])(?:password|passwd|pwd)(?![A-Za-z])[ \t]*=[ \t]*"
            r"(?:\"([^\"\\\r\n]{1,256})\"|'([^'\\\r\n]{1,256})'|((?:[^\s;'\"<>&,\\]|\\\S){1,256}))",
            re.IGNORECASE,
        ),
        group=-1,
        valid=_password,
    ),
    SecretRule(
        # JSON settings: `"password": "..."`, `"dbPassword": "..."`.
        "PASSWORD",
        re.compile(
            r"\"[A-Za-z_]{0,30}(?:password|passwd|pwd)\"[ \t]*:[ \t]*"
            r"\"((?:[^\"\\\r\n]|\\.){1,256})\"",
            re.IGNORECASE,
        ),
        group=1,
        valid=_password,
    ),
)

# Every secret type these rules can report.
SECRET_TYPES: frozenset[str] = frozenset(rule.label for rule in RULES)


def scan_secrets(text: str) -> list[Span]:
    """The secrets in `text`, as spans over just the secret part (possibly overlapping)."""
    spans: list[Span] = []
    for rule in RULES:
        for match in rule.pattern.finditer(text):
            start, end = _group_span(match, rule.group)
            if start < 0 or end <= start:
                continue
            value = text[start:end]
            if rule.valid is None or rule.valid(value, text, start):
                spans.append(Span(start, end, rule.label, SCORE))
    return spans


def _group_span(match: re.Match[str], group: int) -> tuple[int, int]:
    if group >= 0:
        return match.span(group)
    # The first alternative group that took part (quoted or bare value).
    for index in range(1, (match.re.groups or 0) + 1):
        if match.start(index) >= 0:
            return match.span(index)
    return (-1, -1)
