"""One guard benchmark from start to finish, read top to bottom in run().

Build and start each guard as the gateway would; time each one on fresh messages of three
sizes; time the input pipeline on fresh 1 KB messages and on 20-turn chats; score the PII guard
on the seeded labeled set and the injection and moderation guards on bench/data; print the
report and save the JSON.
"""

from __future__ import annotations

import asyncio
from typing import Any

from engine.results import write_results
from overhead.console import log
from overhead.cpu import cpu_busy

from guardbench import subjects
from guardbench.labeled import labeled_set
from guardbench.latency import messages, time_chats, time_guard, time_pipeline
from guardbench.options import SIZES_BYTES, WARMUP_CALLS, Options
from guardbench.quality import classifier_quality, pii_quality, read_jsonl
from guardbench.report import format_report
from guardbench.results import results_document, results_path
from guardbench.scoring import percentiles

# The example plugin is timed on its own but is not part of a deployment's input pipeline.
NOT_IN_PIPELINE = frozenset({"keyword_filter"})


def run(opts: Options) -> int:
    busy_before = _check_cpus_quiet()
    measured = asyncio.run(measure(opts))
    report = format_report(opts, measured)
    print(report)
    write_results(results_path(opts), results_document(opts, measured, busy_before, report))
    return 0


async def measure(opts: Options) -> dict[str, Any]:
    entries = subjects.policy_entries(opts)
    ready: dict[str, subjects.Subject] = {}
    skipped: dict[str, str] = {}
    for name, entry in entries.items():
        log(f"starting {name}")
        subject = await subjects.build(name, entry)
        if subject.skipped is not None:
            log(f"    skipped: {subject.skipped}")
            skipped[name] = subject.skipped
        else:
            log(f"    ready in {subject.start_s:.2f} s")
            ready[name] = subject
    out: dict[str, Any] = {"entries": entries, "skipped": skipped}
    if opts.latency:
        out["latency"] = {name: await _guard_latency(opts, s) for name, s in ready.items()}
        chain = [name for name in ready if name not in NOT_IN_PIPELINE]
        if chain:
            out["pipeline"] = await _pipeline_latency(opts, chain, [entries[n] for n in chain])
    if opts.quality:
        out["quality"] = await _quality(opts, ready, skipped)
    return out


async def _guard_latency(opts: Options, subject: subjects.Subject) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    for size in SIZES_BYTES:
        bodies = messages(opts.seed, size, opts.samples + WARMUP_CALLS)
        label = f"{subject.name}, {size} B"
        samples = await time_guard(subject.guard, bodies, WARMUP_CALLS, label)
        sizes[str(size)] = {**percentiles(samples), "samples_s": samples}
    return {"start_s": subject.start_s, "sizes": sizes}


async def _pipeline_latency(
    opts: Options, chain: list[str], entries: list[dict[str, Any]]
) -> dict[str, Any]:
    guards = await subjects.pipeline(entries)
    bodies = messages(opts.seed + 1, 1024, opts.samples + WARMUP_CALLS)
    fresh, blocked = await time_pipeline(guards, bodies, record_from=WARMUP_CALLS)
    chat = await time_chats(guards, opts.seed, opts.conversations, opts.turns)
    request_bytes = chat.pop("request_bytes")
    return {
        "guards": chain,
        "fresh_1kb": {
            "latency": percentiles(fresh),
            "samples_s": fresh,
            "request_bytes_mean": 1024,
            "blocked": blocked,
        },
        "chat": {
            "latency": percentiles(chat["samples_s"]),
            "samples_s": chat["samples_s"],
            "request_bytes_mean": sum(request_bytes) / len(request_bytes) if request_bytes else 0,
            "blocked": chat["blocked"],
            "chats": opts.conversations,
            "turns": opts.turns,
        },
    }


async def _quality(
    opts: Options, ready: dict[str, subjects.Subject], skipped: dict[str, str]
) -> dict[str, Any]:
    quality: dict[str, Any] = {}
    if "pii" in ready:
        samples = labeled_set(opts.seed, opts.pii_samples, opts.clean_samples)
        asked = subjects.asked_entities(ready["pii"].entry)
        quality["pii"] = await pii_quality(ready["pii"].guard, samples, asked)
    for name, truth, groups in (
        ("injection", "label", "kind"),
        ("moderation", "flagged", "categories"),
    ):
        if name not in ready:
            continue
        path = opts.data_dir / f"{name}.jsonl"
        if not path.exists():
            skipped[f"{name} quality"] = f"{path} is missing"
            continue
        rows = read_jsonl(path)
        quality[name] = await classifier_quality(
            ready[name].guard, rows, truth, groups, f"{name} quality"
        )
    return quality


def _check_cpus_quiet() -> dict[int, float]:
    busy = cpu_busy()
    noisy = {cpu: frac for cpu, frac in busy.items() if frac > 0.10}
    if noisy:
        log(
            "warning: other processes are using the CPUs before the start ("
            + ", ".join(f"CPU {cpu} {frac:.0%} busy" for cpu, frac in sorted(noisy.items()))
            + "); the latency figures will be noisy"
        )
    return busy
