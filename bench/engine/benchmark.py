"""One benchmark from start to finish, read top to bottom in run().

Build the workloads, measure the GEMM rate, run the engine and HF generate() on the main workload,
run the shared-prefix variant with caching off and on, print the report, save the JSON.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from overhead.console import log
from overhead.cpu import cpu_busy
from overhead.pinning import parse_cpu_list

from engine.corpus import TextSource, text_source
from engine.jobs import EngineJob, GemmJob, HFJob
from engine.launcher import Launcher
from engine.options import AUTO_RATE_LOAD, Options
from engine.report import format_report
from engine.results import Measured, results_document, results_path, write_results
from engine.summary import compare_main, compare_prefix, summarize_run
from engine.workload import (
    PREFIX_SHARE,
    describe,
    fresh_prompts,
    main_lengths,
    shared_prefix,
    shared_prefix_lengths,
    sharegpt_like,
)

# Warm-up prompts (tokens, at most): one long prefill and a short one, then a few decode steps.
WARMUP_LENGTHS = (256, 16)


def run(opts: Options, workdir: Path) -> int:
    launcher = Launcher(workdir, opts.cpus, opts.in_process)
    busy_before = _check_cpus_quiet(opts.cpus)
    folder, source = _load_text_source(opts.model)
    m = Measured(model_folder=str(folder), cpu_busy_before=busy_before)
    phases = _Phases(_count_phases(opts))
    longest = max(opts.prompt_tokens[1], opts.system_prompt_tokens if opts.shared_prefix else 0)
    lengths = tuple(min(n, longest) for n in WARMUP_LENGTHS)
    warmup = fresh_prompts(source, "warm-up", opts.seed, lengths)
    if opts.main:
        _run_main(opts, str(folder), source, warmup, launcher, phases, m)
    if opts.shared_prefix:
        _run_shared_prefix(opts, str(folder), source, warmup, launcher, phases, m)

    m.report = format_report(opts, m)
    print(m.report)
    write_results(results_path(opts), results_document(opts, m))
    return 0


def _run_main(
    opts: Options,
    folder: str,
    source: TextSource,
    warmup: list[list[int]],
    launcher: Launcher,
    phases: _Phases,
    m: Measured,
) -> None:
    prompt, output = main_lengths(opts.prompt_tokens, opts.output_tokens)
    requests = sharegpt_like(source, opts.requests, opts.seed, prompt, output)
    m.workloads["main"] = dict(
        describe(requests), prompt_lengths=asdict(prompt), output_lengths=asdict(output)
    )

    phases.start("fp32 GEMM rate on the model's shapes")
    m.gemm = launcher.run(GemmJob(folder, opts.threads, seconds_per_shape=opts.gemm_seconds))
    log(f"    {m.gemm['gflops']:.1f} GFLOP/s")

    phases.start(f"engine: {len(requests)} requests at once")
    engine_options = opts.engine_options(enable_prefix_caching=True)
    m.engine = launcher.run(
        EngineJob("engine", folder, opts.threads, engine_options, requests, warmup)
    )
    m.engine_summary = _summarize(m.engine)

    for size in () if opts.no_hf else opts.hf_batch_sizes:
        phases.start(f"transformers generate(): {len(requests)} requests, batches of {size}")
        job = HFJob(f"hf batch {size}", folder, opts.threads, size, requests, warmup)
        m.hf[size] = launcher.run(job)
        m.hf_summaries[size] = _summarize(m.hf[size])

    params = m.engine.get("model_parameters")
    m.main_comparison = compare_main(m.engine_summary, m.hf_summaries, m.gemm["gflops"], params)


def _run_shared_prefix(
    opts: Options,
    folder: str,
    source: TextSource,
    warmup: list[list[int]],
    launcher: Launcher,
    phases: _Phases,
    m: Measured,
) -> None:
    user, output = shared_prefix_lengths(opts.output_tokens)
    requests = shared_prefix(
        source, opts.prefix_requests, opts.seed, opts.system_prompt_tokens, user, output
    )
    m.workloads["shared_prefix"] = dict(
        describe(requests),
        system_prompt_tokens=opts.system_prompt_tokens,
        prefix_share=PREFIX_SHARE,
        user_lengths=asdict(user),
        output_lengths=asdict(output),
    )
    # --rate auto: the caching-off run first times two uncached prefills of an average prompt.
    typical = round(m.workloads["shared_prefix"]["prompt_tokens"]["mean"])
    calibration = fresh_prompts(source, "calibration", opts.seed, (typical, typical))
    for caching in ("off", "on"):
        rate = opts.rate if caching == "off" else m.prefix["off"]["rate_per_s"]
        auto = caching == "off" and rate is None
        phases.start(
            f"engine, prefix caching {caching}: {len(requests)} requests, "
            + ("rate: calibrating (auto)" if auto else f"{rate:.3f} req/s")
        )
        job = EngineJob(
            f"prefix caching {caching}",
            folder,
            opts.threads,
            opts.engine_options(enable_prefix_caching=caching == "on"),
            requests,
            warmup,
            rate_per_s=rate,
            auto_rate_load=AUTO_RATE_LOAD if auto else None,
            calibration_prompts=calibration if auto else [],
        )
        m.prefix[caching] = launcher.run(job)
        m.prefix_summaries[caching] = _summarize(m.prefix[caching])
    m.prefix_comparison = compare_prefix(m.prefix_summaries["on"], m.prefix_summaries["off"])


def _summarize(result: dict[str, Any]) -> dict[str, Any]:
    s = summarize_run(result)
    log(
        f"    {s['output_tokens_per_s']:,.1f} output tok/s, {s['total_tokens_per_s']:,.1f} total "
        f"tok/s over {s['wall_s']:.1f} s; TTFT p50 {s['ttft_p50_ms']:,.0f} ms"
        + (f"; {s['length_mismatches']} LENGTH MISMATCHES" if s["length_mismatches"] else "")
    )
    return s


def _load_text_source(model: str) -> tuple[Path, TextSource]:
    """The model's folder, and text made of its tokenizer's words."""
    from backend.model_files import resolve_model
    from backend.tokenizer import Tokenizer

    folder = resolve_model(model)
    tokenizer = Tokenizer.from_folder(folder)

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    return folder, text_source(tokenizer.hf.get_vocab(), encode)


def _count_phases(opts: Options) -> int:
    main = 2 + (0 if opts.no_hf else len(opts.hf_batch_sizes)) if opts.main else 0
    return main + (2 if opts.shared_prefix else 0)


def _check_cpus_quiet(cpus: str | None) -> dict[int, float]:
    """How busy each CPU is before the start, with a warning if the benchmark's are."""
    busy = cpu_busy()
    watched = parse_cpu_list(cpus) if cpus else set(busy)
    noisy = {cpu: frac for cpu, frac in busy.items() if cpu in watched and frac > 0.10}
    if noisy:
        log(
            "warning: other processes are using the benchmark CPUs before the start ("
            + ", ".join(f"CPU {cpu} {frac:.0%} busy" for cpu, frac in sorted(noisy.items()))
            + "); the numbers will be noisy"
        )
    return busy


class _Phases:
    """Numbers each phase as it starts: `[3/8] engine: ...`."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0

    def start(self, what: str) -> None:
        self.done += 1
        log(f"[{self.done}/{self.total}] {what}")
