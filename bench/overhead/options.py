"""The settings of one benchmark, as the command line gave them, with defaults filled in.

Also what they imply: the request kinds, the (stream, concurrency) cells and the targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from overhead.ratelimit_variants import gateway_target


@dataclass(frozen=True)
class Options:
    quick: bool
    rounds: int
    duration_s: float
    warmup_s: float
    concurrency: list[int]
    stream: str  # "both", "off" or "on"
    chunks: int  # SSE data events per streamed mock response
    out: Path | None
    direct_only: bool
    litellm: Path | None  # the `litellm` executable, when LiteLLM is measured too
    ratelimit: list[str]  # variants, always in the order none, memory, redis
    redis_url: str
    allow_errors: bool
    gateway_cpus: str
    aux_cpus: str
    no_pin: bool
    startup_timeout_s: float
    rebuild: bool

    @property
    def streams(self) -> list[bool]:
        """The request kinds to run: False for plain JSON, True for streamed."""
        return {"both": [False, True], "off": [False], "on": [True]}[self.stream]

    @property
    def cells(self) -> list[tuple[bool, int]]:
        return [(s, c) for s in self.streams for c in self.concurrency]

    @property
    def targets(self) -> list[str]:
        """Measured in this order in every cell of every round."""
        if self.direct_only:
            return ["direct"]
        targets = ["direct", *(gateway_target(v) for v in self.ratelimit)]
        if self.litellm is not None:
            targets.append("litellm")
        return targets
