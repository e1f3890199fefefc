"""The moderation judge: asks an LLM backend whether a text is safe, the way Llama Guard does.

The backend is one of the policy's upstreams, called through the same `Upstream.open()` the
pipeline uses. The answer's first line is "safe" or "unsafe"; an unsafe answer lists hazard
codes ("S1,S10") on the next line, mapped to moderation categories by `JudgeConfig.categories`.
Anything else (an error, a timeout, an answer we cannot read) is a `JudgeFailed`; the guard
decides what that means (`on_error`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import orjson

from gateway.errors import GatewayError, UpstreamUnavailable
from gateway.guards.base import Stage
from gateway.guards.moderation.config import JudgeConfig
from gateway.routing.pool import Pool
from gateway.upstream.interface import Reply, Retryable, Upstream

HAZARDS = (
    ("S1", "Violent Crimes"),
    ("S2", "Non-Violent Crimes"),
    ("S3", "Sex-Related Crimes"),
    ("S4", "Child Sexual Exploitation"),
    ("S5", "Defamation"),
    ("S6", "Specialized Advice"),
    ("S7", "Privacy"),
    ("S8", "Intellectual Property"),
    ("S9", "Indiscriminate Weapons"),
    ("S10", "Hate"),
    ("S11", "Suicide & Self-Harm"),
    ("S12", "Sexual Content"),
    ("S13", "Elections"),
    ("S14", "Code Interpreter Abuse"),
)

_PROMPT = """Task: Check if there is unsafe content in '{role}' messages in conversations \
according to our safety policy with the below categories.

<BEGIN UNSAFE CONTENT CATEGORIES>
{hazards}
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>

{role}: {text}

<END CONVERSATION>

Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:
 - First line must read 'safe' or 'unsafe'.
 - If unsafe, a second line must include a comma-separated list of violated categories."""

_HAZARD_LIST = "\n".join(f"{code}: {name}." for code, name in HAZARDS)
_CODE = re.compile(r"\bS\d{1,2}\b", re.IGNORECASE)


class JudgeFailed(Exception):
    """The judge gave no usable answer; the message says why (never the text judged)."""


@dataclass(frozen=True, slots=True)
class JudgeVerdict:
    unsafe: bool
    codes: tuple[str, ...] = ()


def parse_verdict(answer: str) -> JudgeVerdict:
    """Read "safe" or "unsafe\\nS1,S2" (case, spacing and a trailing period forgiven)."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    if not lines:
        raise JudgeFailed("the judge answered nothing")
    first = lines[0].lower().rstrip(".")
    if first == "safe":
        return JudgeVerdict(False)
    if first.startswith("unsafe"):
        rest = " ".join([lines[0][len("unsafe") :], *lines[1:]])
        codes = tuple(dict.fromkeys(code.upper() for code in _CODE.findall(rest)))
        return JudgeVerdict(True, codes)
    raise JudgeFailed(f"the judge's answer does not start with safe or unsafe ({first[:40]!r})")


def judge_messages(config: JudgeConfig, text: str, stage: Stage) -> list[dict[str, str]]:
    """The chat messages that ask the judge about `text` (the end of it, if it is long)."""
    text = text[-config.max_chars :]
    if config.prompt == "conversation":
        if stage == "input":
            return [{"role": "user", "content": text}]
        return [{"role": "user", "content": ""}, {"role": "assistant", "content": text}]
    role = "User" if stage == "input" else "Agent"
    prompt = _PROMPT.format(role=role, hazards=_HAZARD_LIST, text=text)
    return [{"role": "user", "content": prompt}]


class Judge:
    def __init__(self, config: JudgeConfig, upstream: Upstream) -> None:
        self.config = config
        self.upstream = upstream

    async def assess(self, text: str, stage: Stage, request_id: str) -> JudgeVerdict:
        body = orjson.dumps(
            {
                "model": self.config.model,
                "messages": judge_messages(self.config, text, stage),
                "max_tokens": 20,
                "temperature": 0,
                "stream": False,
            }
        )
        try:
            async with asyncio.timeout(self.config.timeout_s):
                reply = await self.upstream.open("/chat/completions", body, request_id)
                try:
                    content = await reply.read()
                finally:
                    await reply.aclose()
        except TimeoutError:
            raise JudgeFailed(
                f"the judge (backend '{self.upstream.name}') did not answer within "
                f"{self.config.timeout_s:g} s"
            ) from None
        except Retryable as failure:
            raise JudgeFailed(f"the judge's backend failed: {failure.error.message}") from None
        except GatewayError as error:
            raise JudgeFailed(f"the judge's backend failed: {error.message}") from None
        except (httpx.HTTPError, OSError) as error:
            raise JudgeFailed(f"the judge's backend broke off: {type(error).__name__}") from None
        return parse_verdict(_answer_text(content))

    def categories(self, verdict: JudgeVerdict) -> tuple[set[str], list[str]]:
        """The moderation categories an unsafe verdict names, and the codes that map to none."""
        mapped: set[str] = set()
        unmapped: list[str] = []
        for code in verdict.codes:
            category = self.config.categories.get(code)
            if category is None:
                unmapped.append(code)
            else:
                mapped.add(category)
        return mapped, unmapped


def _answer_text(content: bytes) -> str:
    try:
        data = orjson.loads(content)
        answer = data["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        raise JudgeFailed("the judge's backend did not answer with a chat completion") from None
    if not isinstance(answer, str):
        raise JudgeFailed("the judge's answer has no text")
    return answer


class PoolUpstream:
    """A backend of the runtime (a pool of replicas) as one `Upstream`: each call goes to the
    replica the pool would pick. One attempt, no fallback: the judge's own `on_error` decides."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.name = pool.name

    async def open(
        self,
        path: str,
        body: bytes,
        request_id: str,
        traceparent: str | None = None,
        deadline: float | None = None,
    ) -> Reply:
        now = time.monotonic()
        replica = self.pool.pick(now, set())
        if replica is None:
            reason = self.pool.unavailable_reason(now)
            raise UpstreamUnavailable(f"Backend '{self.name}' has no replica to use: {reason}.")
        return await replica.upstream.open(path, body, request_id, traceparent, deadline)

    async def probe(self, timeout_s: float = 2.0) -> str | None:
        return None

    async def aclose(self) -> None:
        """The pool belongs to the runtime, which closes it."""


def judge_upstreams(pools: Mapping[str, Pool]) -> dict[str, Upstream]:
    """The runtime's backends (`Runtime.upstreams`) as the `upstreams` a judge is given."""
    return {name: PoolUpstream(pool) for name, pool in pools.items()}
