"""What a run measured for one request: its token counts and when its tokens came out.

Filled in by the drivers in the worker process; crosses to the parent as plain JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(slots=True)
class RequestRecord:
    """Times are seconds since the run's start (the first request's arrival)."""

    request_id: str
    prompt_tokens: int
    target_tokens: int  # max_tokens: what the request must produce (EOS is ignored)
    arrival_s: float = 0.0
    output_tokens: int = 0
    first_token_s: float | None = None
    last_token_s: float | None = None
    cached_tokens: int = 0  # prompt tokens the prefix cache served (engine only)
    finish_reason: str | None = None

    @property
    def ttft_s(self) -> float | None:
        """Arrival to the first output token (queueing included)."""
        if self.first_token_s is None:
            return None
        return self.first_token_s - self.arrival_s

    @property
    def tpot_s(self) -> float | None:
        """Mean time per output token after the first."""
        if self.first_token_s is None or self.last_token_s is None or self.output_tokens < 2:
            return None
        return (self.last_token_s - self.first_token_s) / (self.output_tokens - 1)

    def token_out(self, n: int, now_s: float) -> None:
        """n more output tokens came out at now_s."""
        if n <= 0:
            return
        if self.first_token_s is None:
            self.first_token_s = now_s
        self.last_token_s = now_s
        self.output_tokens += n

    def to_json(self) -> dict[str, Any]:
        return dict(asdict(self), ttft_s=self.ttft_s, tpot_s=self.tpot_s)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RequestRecord:
        fields = {k: v for k, v in data.items() if k not in ("ttft_s", "tpot_s")}
        return cls(**fields)
