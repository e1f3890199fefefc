"""Detection quality: the PII guard on the labeled set, injection and moderation on bench/data.

Each text goes through the guard's `check` as a one-message request, as the gateway would send
it; what the guard left in the body is what would have gone upstream.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gateway.guards.base import Decision, GuardContext, Verdict
from gateway.guards.texts import request_slots
from guardbench.corpus import user_body
from guardbench.labeled import Sample
from guardbench.scoring import Binary, Counts, Found, leaked, match_spans, outside_gold


async def _check(guard: Any, text: str) -> tuple[Decision, str]:
    body = user_body(text)
    decision = await guard.check(
        GuardContext("input", request_slots(body), metadata={"request": body})
    )
    return decision, body["messages"][0]["content"]


async def pii_quality(guard: Any, samples: list[Sample], asked: set[str]) -> dict[str, Any]:
    """Per entity type: precision, recall, leaks; over-redaction of the text around them.

    `asked`: the entity types the guard was configured for; the others are reported as such
    and left out of the totals (a guard not asked for names leaks every name).
    """
    per_label: dict[str, Counts] = {}
    gold_total: Counter[str] = Counter()
    leaks: Counter[str] = Counter()
    detected_outside = outside = 0
    clean = clean_touched = blocked = 0
    for sample in tqdm(samples, desc="PII quality", unit="text", file=sys.stderr, leave=False):
        decision, upstream = await _check(guard, sample.text)
        if decision.blocked:
            blocked += 1
            upstream = ""  # nothing went upstream
        found = [
            Found(span.start, span.end, span.label)
            for span in (await guard.detect([sample.text]))[0]
        ]
        for label, counts in match_spans(sample.gold, found).items():
            per_label.setdefault(label, Counts()).add(counts)
        gold_total.update(g.label for g in sample.gold)
        leaks.update(leaked(sample.text, sample.gold, upstream))
        more, of = outside_gold(len(sample.text), sample.gold, found)
        detected_outside += more
        outside += of
        if sample.kind == "clean":
            clean += 1
            clean_touched += upstream != sample.text
    entities = {}
    for label in sorted(set(gold_total) | set(per_label)):
        counts = per_label.get(label, Counts())
        entities[label] = {
            **counts.as_dict(),
            "gold": gold_total[label],
            "asked": label in asked,
            "leaked": leaks[label],
            "leak_rate": leaks[label] / gold_total[label] if gold_total[label] else None,
        }
    asked_gold = sum(n for label, n in gold_total.items() if label in asked)
    asked_leaks = sum(n for label, n in leaks.items() if label in asked)
    return {
        "samples": len(samples),
        "clean_samples": clean,
        "entities": entities,
        "leak_rate": asked_leaks / asked_gold if asked_gold else None,
        "over_redaction": detected_outside / outside if outside else None,
        "clean_samples_changed": clean_touched / clean if clean else None,
        "blocked": blocked,
    }


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _said(decision: Decision) -> bool:
    """The guard called it: blocked, or (with `action: flag`) flagged."""
    return decision.blocked or (decision.verdict is Verdict.ALLOW and decision.action == "flag")


async def classifier_quality(
    guard: Any, rows: list[dict[str, Any]], truth: str, groups: str, label: str
) -> dict[str, Any]:
    """Precision/recall per split (`dev`: what the rules were tuned on; `holdout`: not), and
    per group (`kind` of injection, moderation `categories`)."""
    splits: dict[str, Binary] = {}
    by_group: dict[str, Binary] = {}
    for row in tqdm(rows, desc=label, unit="text", file=sys.stderr, leave=False):
        decision, _ = await _check(guard, row["text"])
        said, expected = _said(decision), bool(row[truth])
        split = row.get("split")
        for name in ("all", split) if split else ("all",):
            splits.setdefault(name, Binary()).add(expected, said)
        names = row.get(groups)
        for name in names if isinstance(names, list) else [names] if names else []:
            by_group.setdefault(str(name), Binary()).add(expected, said)
    return {
        "splits": {name: b.as_dict() for name, b in sorted(splits.items())},
        groups: {name: b.as_dict() for name, b in sorted(by_group.items())},
    }
