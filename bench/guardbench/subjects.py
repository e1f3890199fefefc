"""The guards under test, built the way the gateway builds them from a policy entry.

Each guard's entry is what a deployment would plausibly write. A guard whose module is missing
or whose entry does not validate is skipped with the reason, and the rest still run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from guardbench.labeled import SECRETS, STRUCTURED
from guardbench.options import Options

KEYWORDS = ["project bluebird", "nightjar", "falcon-9 rollout", "codename kestrel"]


def pii_entities(presidio: bool) -> dict[str, str]:
    """What the PII guard acts on: everything the labeled set holds, or only the secrets."""
    entities = dict.fromkeys(SECRETS, "redact")
    if presidio:
        entities |= dict.fromkeys(STRUCTURED, "redact")
        entities |= {"PERSON": "pseudonymize", "LOCATION": "redact"}
        entities |= {"CREDIT_CARD": "mask", "IBAN_CODE": "mask"}
    return entities


def policy_entries(opts: Options) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {
        "validation": {
            "type": "validation",
            "max_message_chars": 100_000,
            "max_total_tokens": 200_000,
            "nfkc": True,
        },
        "pii": {"type": "pii", "entities": pii_entities(opts.presidio)},
        "injection": {"type": "injection"},
        "moderation": {"type": "moderation"},
        "keyword_filter": {
            "type": "plugin",
            "name": "keyword_filter",
            "path": "plugins.keyword_filter:KeywordFilterGuard",
            "options": {
                "keywords": KEYWORDS,
                "patterns": {"ticket": r"TCK-\d{6}"},
                "action": "redact",
            },
        },
    }
    return {name: entries[name] for name in opts.guards}


def asked_entities(entry: dict[str, Any]) -> set[str]:
    return set(entry.get("entities", {})) if entry.get("type") == "pii" else set()


@dataclass
class Subject:
    name: str
    entry: dict[str, Any]
    guard: Any = None
    skipped: str | None = None
    start_s: float | None = None  # `start()`: loading models and the like


async def build(name: str, entry: dict[str, Any]) -> Subject:
    """The guard for `entry`, started; or a Subject saying why it was skipped."""
    subject = Subject(name, entry)
    try:
        from gateway.config.guards import guard_config
        from gateway.guards.runner import build_guard

        subject.guard = build_guard(guard_config(entry))
    except Exception as exc:  # a guard still being written, or missing: skip it, say why
        subject.skipped = f"{type(exc).__name__}: {exc}"
        return subject
    started = time.perf_counter()
    start = getattr(subject.guard, "start", None)
    if start is not None:
        await start()
    subject.start_s = time.perf_counter() - started
    return subject


async def pipeline(entries: list[dict[str, Any]]) -> Any:
    """The input stage of a gateway with these guards: the pipeline's own GuardSet, started."""
    from gateway.config.guards import GuardsConfig
    from gateway.guards.runner import GuardSet

    guards = GuardSet(GuardsConfig(input=tuple(entries)))
    await guards.start()
    return guards
