"""OpenAI request bodies to engine requests: prompt token ids, SamplingParams and stream options.

Every client mistake becomes an `EngineInputError` naming the field the way the client wrote it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from backend.outputs import EngineInputError
from backend.sampling_params import InvalidSamplingParams, SamplingParams

if TYPE_CHECKING:
    from backend.tokenizer import Tokenizer

Kind = Literal["chat", "completions"]
KINDS: tuple[Kind, ...] = ("chat", "completions")
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# Message keys chat templates read besides role and content (tool calling).
_MESSAGE_KEYS = ("name", "tool_calls", "tool_call_id")
# OpenAI's default for the legacy completions API; chat defaults to "as long as the context".
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
# OpenAI / vLLM fields copied into SamplingParams under the same name (null means "default").
_PASSTHROUGH = (
    "n",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "top_k",
    "min_p",
    "repetition_penalty",
    "min_tokens",
    "ignore_eos",
    "stop_token_ids",
    "skip_special_tokens",
    "include_stop_str_in_output",
)


@dataclass(frozen=True, slots=True)
class EngineRequest:
    """One OpenAI request, ready for `AsyncEngine.stream`."""

    kind: Kind
    model: str | None
    prompt_token_ids: list[int]
    params: SamplingParams
    stream: bool = False
    include_usage: bool = False
    # completions only: the prompt's text goes before the completion in the answer.
    echo: bool = False
    prompt_text: str = ""
    priority: int = 0


async def parse_request(
    kind: str, body: Any, tokenizer: Tokenizer, *, max_model_len: int, vocab_size: int
) -> EngineRequest:
    """Validate `body` (a decoded JSON object) and tokenize its prompt off the event loop."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(body, dict):
        raise EngineInputError("The request body must be a JSON object.")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise EngineInputError("model must be a string.", "model")
    _refuse_unsupported(kind, body)
    params = sampling_params(kind, body)
    stream = _flag(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise EngineInputError("stream_options must be an object.", "stream_options")
    include_usage = options is not None and _flag(options, "include_usage", "stream_options.")
    include_usage = include_usage and stream
    priority = body.get("priority", 0)
    if priority is None:
        priority = 0
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise EngineInputError(f"priority must be an integer, got {priority!r}.", "priority")
    echo = kind == "completions" and _flag(body, "echo")
    if kind == "chat":
        messages = chat_messages(body.get("messages"))
        tools = body.get("tools")
        if tools is not None and not isinstance(tools, list):
            raise EngineInputError("tools must be a list of tool definitions.", "tools")
        prompt_ids = await asyncio.to_thread(_render_chat, tokenizer, messages, tools)
        prompt_text, param = "", "messages"
    else:
        prompt = _single_prompt(body.get("prompt"))
        if isinstance(prompt, str):
            prompt_ids = await asyncio.to_thread(tokenizer.encode, prompt)
            prompt_text = prompt
        else:
            prompt_ids = _token_ids(prompt, vocab_size)
            prompt_text = tokenizer.decode(prompt_ids, skip_special_tokens=False) if echo else ""
        param = "prompt"
    check_prompt_length(len(prompt_ids), max_model_len, param)
    if echo and params.logprobs is not None:
        raise EngineInputError(
            "echo with logprobs needs the prompt's logprobs, which the built-in engine does "
            "not compute; drop one of the two.",
            "echo",
        )
    return EngineRequest(
        kind, model, prompt_ids, params, stream, include_usage, echo, prompt_text, priority
    )


def sampling_params(kind: str, body: dict[str, Any]) -> SamplingParams:
    """The SamplingParams a request asks for; InvalidSamplingParams becomes EngineInputError."""
    values: dict[str, Any] = {
        name: body[name] for name in _PASSTHROUGH if body.get(name) is not None
    }
    renamed: dict[str, str] = {}
    if body.get("max_completion_tokens") is not None:
        values["max_tokens"] = body["max_completion_tokens"]
        renamed["max_tokens"] = "max_completion_tokens"
    elif body.get("max_tokens") is not None:
        values["max_tokens"] = body["max_tokens"]
    else:
        values["max_tokens"] = COMPLETIONS_DEFAULT_MAX_TOKENS if kind == "completions" else None
    if kind == "chat":
        top = body.get("top_logprobs")
        if _flag(body, "logprobs"):
            values["logprobs"] = 0 if top is None else top
            renamed["logprobs"] = "top_logprobs"
        elif top is not None:
            raise EngineInputError("top_logprobs needs logprobs: true.", "top_logprobs")
    elif body.get("logprobs") is not None:
        values["logprobs"] = body["logprobs"]
    try:
        return SamplingParams(**values)
    except InvalidSamplingParams as exc:
        field = renamed.get(exc.field or "", exc.field)
        raise EngineInputError(f"Invalid value for '{field}': {exc}", field) from None


def chat_messages(value: Any) -> list[dict[str, Any]]:
    """OpenAI messages as chat templates expect them: text content, `developer` as `system`."""
    if not isinstance(value, list) or not value:
        raise EngineInputError("messages must be a non-empty list of message objects.", "messages")
    out = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise EngineInputError(f"{where} must be an object with role and content.", where)
        role = message.get("role")
        if role not in ROLES:
            raise EngineInputError(
                f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}.", f"{where}.role"
            )
        clean = {key: message[key] for key in _MESSAGE_KEYS if message.get(key) is not None}
        clean["role"] = "system" if role == "developer" else role
        clean["content"] = _text_content(message.get("content"), f"{where}.content")
        out.append(clean)
    return out


def check_prompt_length(num_tokens: int, max_model_len: int, param: str) -> None:
    if num_tokens == 0:
        raise EngineInputError("The prompt is empty: send at least one token.", param)
    if num_tokens >= max_model_len:
        raise EngineInputError(
            f"The prompt has {num_tokens} tokens but this model's context is {max_model_len} "
            "tokens (prompt and output together); shorten the prompt.",
            param,
        )


def _text_content(content: Any, where: str) -> str:
    if content is None:
        return ""  # an assistant message that only calls tools
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise EngineInputError(f"{where} must be a string or a list of content parts.", where)
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        text = part.get(kind) if isinstance(part, dict) and kind in ("text", "refusal") else None
        if isinstance(text, str):
            texts.append(text)
        elif kind in ("image_url", "input_audio", "file"):
            raise EngineInputError(
                f"{where}[{j}] is a {kind} part: the built-in engine serves a text-only model, "
                "so send text parts only.",
                f"{where}[{j}].type",
            )
        else:
            raise EngineInputError(
                f'{where}[{j}] must be a content part like {{"type": "text", "text": "..."}}.',
                f"{where}[{j}]",
            )
    return "\n".join(texts)


def _render_chat(
    tokenizer: Tokenizer, messages: list[dict[str, Any]], tools: list[Any] | None
) -> list[int]:
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(messages, tools=tools)
    except (TemplateError, TypeError, ValueError) as exc:
        # The template's own checks (roles must alternate...) or no template at all.
        message = f"The chat template refused these messages: {exc}"
        raise EngineInputError(message, "messages") from None


def _single_prompt(prompt: Any) -> str | list[int]:
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and all(_is_int(t) for t in prompt):
        return prompt
    if (
        isinstance(prompt, list)
        and len(prompt) > 1
        and all(isinstance(p, str | list) for p in prompt)
    ):
        raise EngineInputError(
            "Several prompts in one request are not supported yet: send one request per prompt.",
            "prompt",
        )
    raise EngineInputError("prompt must be a string or a non-empty list of token ids.", "prompt")


def _token_ids(prompt: list[int], vocab_size: int) -> list[int]:
    for token in prompt:
        if not 0 <= token < vocab_size:
            raise EngineInputError(
                f"prompt token ids must be in [0, {vocab_size}), got {token}.", "prompt"
            )
    return list(prompt)


def _flag(body: dict[str, Any], name: str, where: str = "") -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise EngineInputError(f"{where}{name} must be true or false, got {value!r}.", where + name)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse_unsupported(kind: str, body: dict[str, Any]) -> None:
    """OpenAI features the engine cannot honour: a clear 400 rather than a silent ignore."""
    if body.get("logit_bias"):
        raise EngineInputError("logit_bias is not supported by the built-in engine.", "logit_bias")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise EngineInputError(
            'response_format other than {"type": "text"} is not supported by the built-in '
            "engine (no guided decoding).",
            "response_format",
        )
    choice = body.get("tool_choice")
    if choice not in (None, "none", "auto"):
        raise EngineInputError(
            "The built-in engine cannot force a tool call: tool_choice may be 'none' or 'auto'.",
            "tool_choice",
        )
    if kind == "completions":
        best_of = body.get("best_of")
        if best_of is not None and best_of != 1 and best_of != body.get("n", 1):
            raise EngineInputError(
                "best_of is not supported by the built-in engine (use n).", "best_of"
            )
        if body.get("suffix"):
            raise EngineInputError("suffix (insertion) is not supported.", "suffix")
