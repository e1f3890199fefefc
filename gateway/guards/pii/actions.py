"""What a detected entity becomes: pure functions from a span of text to its replacement.

`merge` turns overlapping detections into disjoint spans (so no part of an entity is left
behind when another, overlapping one is chosen); `apply` rewrites a text span by span and keeps
every character outside the spans as it was.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable

from gateway.guards.pii.config import NER_TYPES, STRENGTH, PIIAction
from gateway.guards.pseudonyms import Pseudonyms
from gateway.guards.window import Span, rewrite

MASK = "****"
# Digits a masked value must have before its last four are shown (so at most half are).
MASK_KEEP_MIN_DIGITS = 8
HASH_HEX_CHARS = 16
# Our own outputs (`<EMAIL_ADDRESS>`, `<PERSON_1>`, `<US_SSN:3f2a...>`): never detected again.
OUR_TOKEN = re.compile(r"<[A-Z][A-Z0-9_]*(?::[0-9a-f]+)?>")

# The action for a span's label (None: not acted on).
ActionOf = Callable[[str], PIIAction | None]


def redact(label: str) -> str:
    return f"<{label}>"


def mask(value: str) -> str:
    """`****1111`: the last four digits, when the value has at least eight; else `****`."""
    digits = [c for c in value if c.isdigit()]
    if len(digits) < MASK_KEEP_MIN_DIGITS:
        return MASK
    return MASK + "".join(digits[-4:])


def hash_value(label: str, value: str, salt: bytes) -> str:
    """`<LABEL:16 hex>`: a keyed SHA-256 (HMAC) of the value, the same for the same value."""
    digest = hmac.new(salt, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return f"<{label}:{digest[:HASH_HEX_CHARS]}>"


def merge(spans: Iterable[Span], action_of: ActionOf) -> list[Span]:
    """Disjoint spans covering every input span.

    As Presidio's anonymizer does, a span inside another gives way to the one that contains it
    (an email's domain is not a separate URL), unless the container is a NER guess with a
    weaker action (a "LOCATION" that swallowed an email must not let the email through). Of
    two on the same characters, the stronger action wins, then a pattern's over the NER's,
    then the higher score. Spans that overlap otherwise become one span under the strongest
    action of the group, so no part of either is left behind.
    """
    ranked = sorted(
        (s for s in spans if s.end > s.start),
        key=lambda s: (s.start, -s.end, *(-r for r in _rank(s, action_of))),
    )
    outer: list[Span] = []
    for span in ranked:
        # Sorted by start, then longest first: a container always comes before what it holds.
        if outer and outer[-1].start <= span.start and span.end <= outer[-1].end:
            if _rank(outer[-1], action_of)[0] >= _rank(span, action_of)[0] or (
                outer[-1].label not in NER_TYPES
            ):
                continue
        outer.append(span)
    out: list[Span] = []
    group: list[Span] = []
    end = -1
    for span in outer:
        if group and span.start < end:
            group.append(span)
            end = max(end, span.end)
            continue
        if group:
            out.append(_one(group, end, action_of))
        group, end = [span], span.end
    if group:
        out.append(_one(group, end, action_of))
    return out


def _rank(span: Span, action_of: ActionOf) -> tuple[int, int, float]:
    action = action_of(span.label)
    return (STRENGTH[action] if action else -1, span.label not in NER_TYPES, span.score)


def _one(group: list[Span], end: int, action_of: ActionOf) -> Span:
    if len(group) == 1:
        return group[0]
    best = max(group, key=lambda s: _rank(s, action_of))
    return Span(group[0].start, end, best.label, max(s.score for s in group))


def apply(text: str, spans: list[Span], replace: Callable[[str, Span], str]) -> str:
    """`text` with each of the (disjoint, sorted) spans replaced; the rest kept as it is."""
    return rewrite(text, spans, replace)


def replacement(
    action: PIIAction,
    label: str,
    value: str,
    *,
    salt: bytes,
    pseudonyms: Pseudonyms | None,
    output: bool = False,
) -> str:
    """What `value` (an entity of type `label`) becomes under `action`.

    `block` is the caller's to handle (it never reaches here); `flag` keeps the value. On the
    output stage `pseudonymize` keeps a value the client itself sent (the restore step would
    bring it back anyway) and redacts any other: a new placeholder would only be restored.
    """
    if action is PIIAction.REDACT or action is PIIAction.BLOCK:
        return redact(label)
    if action is PIIAction.MASK:
        return mask(value)
    if action is PIIAction.HASH:
        return hash_value(label, value, salt)
    if action is PIIAction.PSEUDONYMIZE:
        if pseudonyms is None:
            return redact(label)
        if output:
            return value if pseudonyms.known(label, value) else redact(label)
        return pseudonyms.placeholder(label, value)
    return value
