"""Names beside what spaCy's NER proposes: display names it missed, and guesses no name fits.

- A display name: one to four capitalized words right before an email address in angle
  brackets or parentheses (`Maria Garcia <maria@example.com>`, `Maria (maria@example.com)`),
  as mail headers, signatures and address books write them. Found by a regex, so also in
  streams, where the NER does not run.
- A `PERSON` or `LOCATION` guess is dropped when no name looks like it: punctuation of code or
  settings in it (`crm;User Id` in a connection string, `a=b`, `a/b`), digits in a person's
  name (a place may have them: `221B Baker Street`), an honorific alone (`Mrs`), an HTTP
  authentication scheme before its token (`Bearer`).
Pure: plain strings and spans, no spaCy.
"""

from __future__ import annotations

import re

from gateway.guards.window import Span

PERSON = "PERSON"
# What the NER reports that must look like a name to count.
NAME_TYPES = frozenset({"PERSON", "LOCATION"})
# The score of a display name: as sure as the NER's own entities.
DISPLAY_NAME_SCORE = 0.85

_BRACKETED_EMAIL = re.compile(r"[<(][ \t]*[\w.+'-]+@[\w-]+(?:\.[\w-]+)+[ \t]*[>)]")
# The words right before the bracket; at most this many characters back are looked at.
_WORDS_BEFORE = re.compile(r"(?<![\w'\u2019.-])(?:[^\W\d_][\w'\u2019.-]*[ \t]+){1,6}\Z")
_LOOKBACK_CHARS = 96
_NAME_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['\u2019.-](?=[^\W\d_]))*\.?")
_MAX_NAME_WORDS = 4
# Capitalized words before an address that are not (part of) a person's name: the words of a
# request or a header, greetings, and what role addresses are called.
_NOT_NAMES = frozenset(
    {"at", "bcc", "cc", "contact", "email", "e-mail", "from", "mail", "me", "or", "reply"}
    | {"send", "to", "us", "write", "dear", "hello", "hi", "hey", "thanks", "regards"}
    | {"admin", "billing", "desk", "help", "helpdesk", "info", "office", "sales", "security"}
    | {"service", "support", "team"}
)
# Never in a name or a place (`crm;User Id`, `key=Value`, `a/b`); digits never in a name. Not
# `@`: a guess that swallowed an email address still covers the name before it.
_NOT_NAME_CHARS = re.compile(r"[;=<>{}\[\]|\\/:#*_+$%^~`\"]")
_HONORIFICS = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "dame"})
_AUTH_SCHEMES = frozenset({"basic", "bearer", "digest", "negotiate", "token"})
# What follows an authentication scheme: its credentials, one token68-like word (with a digit,
# or too long for a word).
_CREDENTIALS = re.compile(
    r"[ \t]+(?:(?=[A-Za-z._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}|[A-Za-z0-9._~+/=-]{16,})"
)


def refine(text: str, spans: list[Span], *, display_names: bool) -> list[Span]:
    """`spans` without the name guesses no name looks like, and (if `display_names`) with the
    display names before email addresses as `PERSON` spans, in place of any other NER guess
    on their characters."""
    kept = [span for span in spans if span.label not in NAME_TYPES or _looks_like_name(text, span)]
    if not display_names or "@" not in text:
        return kept
    found = _display_names(text)
    if not found:
        return kept
    kept = [span for span in kept if not _other_guess_inside(span, found)]
    return kept + found


def _display_names(text: str) -> list[Span]:
    spans: list[Span] = []
    for email in _BRACKETED_EMAIL.finditer(text):
        offset = max(0, email.start() - _LOOKBACK_CHARS)
        before = _WORDS_BEFORE.search(text, offset, email.start())
        if before is None:
            continue
        name: list[re.Match[str]] = []
        for word in reversed(list(_NAME_WORD.finditer(text, before.start(), before.end()))):
            value = word.group()
            if not value[0].isupper() or value.lower().rstrip(".") in _NOT_NAMES:
                break
            name.insert(0, word)
        if name and len(name) <= _MAX_NAME_WORDS:
            spans.append(Span(name[0].start(), name[-1].end(), PERSON, DISPLAY_NAME_SCORE))
    return spans


def _other_guess_inside(span: Span, names: list[Span]) -> bool:
    return span.label in NAME_TYPES and any(
        n.start <= span.start and span.end <= n.end for n in names
    )


def _looks_like_name(text: str, span: Span) -> bool:
    value = text[span.start : span.end].strip()
    if _NOT_NAME_CHARS.search(value) or (span.label == PERSON and any(c.isdigit() for c in value)):
        return False
    word = value.lower().rstrip(".")
    if word in _HONORIFICS:
        return False
    return not (word in _AUTH_SCHEMES and _CREDENTIALS.match(text, span.end))
