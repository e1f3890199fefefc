"""`LLM`: the synchronous, offline way to run the engine over a list of prompts or chats.

Drives `LLMEngine.step()` until every request is done, with a progress bar.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from tqdm import tqdm

from backend.engine import LLMEngine
from backend.engine_config import DEFAULT_MODEL, EngineConfig
from backend.outputs import CompletionOutput, GenerationResult
from backend.sampling_params import SamplingParams

Prompt = str | Sequence[int]


class LLM:
    """`LLM(model=...)`, then `generate(prompts, params)` or `chat(conversations, params)`."""

    def __init__(self, model: str = DEFAULT_MODEL, **engine_options: object):
        self.engine = LLMEngine(EngineConfig(model=model, **engine_options))  # type: ignore[arg-type]
        self.tokenizer = self.engine.tokenizer
        self._ids = itertools.count()

    def generate(
        self,
        prompts: Prompt | Sequence[Prompt],
        params: SamplingParams | Sequence[SamplingParams] | None = None,
        *,
        use_tqdm: bool = True,
    ) -> list[GenerationResult]:
        """Outputs in the order of prompts; a str prompt is tokenized with special tokens."""
        batch: Sequence[Prompt]
        if isinstance(prompts, str) or (prompts and isinstance(prompts[0], int)):
            batch = [prompts]  # type: ignore[list-item]
        else:
            batch = prompts  # type: ignore[assignment]
        token_lists = [self.tokenizer.encode(p) if isinstance(p, str) else list(p) for p in batch]
        return self._run(token_lists, params, use_tqdm)

    def chat(
        self,
        conversations: Sequence[Sequence[dict]],
        params: SamplingParams | Sequence[SamplingParams] | None = None,
        *,
        use_tqdm: bool = True,
    ) -> list[GenerationResult]:
        """Each conversation is a list of {"role", "content"} messages (chat template applied)."""
        if conversations and isinstance(conversations[0], dict):
            conversations = [conversations]  # type: ignore[list-item]
        token_lists = [self.tokenizer.apply_chat_template(list(c)) for c in conversations]
        return self._run(token_lists, params, use_tqdm)

    def _run(
        self,
        token_lists: list[list[int]],
        params: SamplingParams | Sequence[SamplingParams] | None,
        use_tqdm: bool,
    ) -> list[GenerationResult]:
        if params is None or isinstance(params, SamplingParams):
            params = [params or SamplingParams()] * len(token_lists)
        if len(params) != len(token_lists):
            raise ValueError(f"{len(params)} SamplingParams for {len(token_lists)} prompts")
        engine = self.engine
        results: dict[str, GenerationResult] = {}
        order = []
        for tokens, p in zip(token_lists, params, strict=True):
            request_id = f"llm-{next(self._ids)}"
            engine.add_request(request_id, tokens, p)
            outputs = [CompletionOutput(index=i) for i in range(p.n)]
            results[request_id] = GenerationResult(request_id, tokens, outputs)
            order.append(request_id)
        bar = tqdm(total=len(order), desc="generating", unit="req", disable=not use_tqdm)
        try:
            while engine.has_unfinished():
                for output in engine.step():
                    results[output.request_id].add(output)
                    if output.finished:
                        bar.update(1)
        finally:
            bar.close()
        return [results[r] for r in order]
