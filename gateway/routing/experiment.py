"""One experiment at run time: which arm a caller is in, the arms' current weights (a canary's
ramp, weights set by hand) and the canary's watch. Outlives reloads that leave it unchanged.

State lives in this gateway process: with several processes, set weights by hand on each
(or change the policy, which every process reloads).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from gateway.config.routing import Experiment
from gateway.errors import InvalidRequest
from gateway.routing.assignment import Assigner, canary_weights
from gateway.routing.canary import CanaryState

log = logging.getLogger("sluicegate.experiments")


class Split:
    def __init__(self, name: str, config: Experiment, now: float | None = None) -> None:
        self.name = name
        self.config = config
        self.arms = tuple(config.arms)
        self.assigner = Assigner(name, self.arms)
        self.sticky_by = config.sticky_by
        self.sticky_header = (
            config.sticky_by.partition(":")[2].encode()
            if config.sticky_by.startswith("header:")
            else None
        )
        self._configured = {arm: spec.weight for arm, spec in config.arms.items()}
        self._manual: dict[str, float] = {}
        started = time.monotonic() if now is None else now
        self.canary = CanaryState(config.canary, started) if config.canary is not None else None
        self.canary_index = self.arms.index(config.canary.arm) if config.canary else -1
        # The weights in arm order and until when they hold (a canary's next step).
        self._weights: list[float] = []
        self._valid_until = -1.0

    # -- assignment (per request) ------------------------------------------------------------
    def key(
        self,
        user: str | None,
        key_id: str | None,
        headers: list[tuple[bytes, bytes]] | None,
        request_id: str,
    ) -> bytes:
        """What keeps a caller in one arm; without it, the request id (no stickiness)."""
        if self.sticky_by == "user":
            if user:
                return user.encode()
        elif self.sticky_by == "api_key":
            if key_id:
                return key_id.encode()
        elif headers is not None:
            for name, value in headers:
                if name == self.sticky_header and value:
                    return value
        return request_id.encode()

    def assign(self, key: bytes, now: float) -> int:
        return self.assigner.choose(key, self.weights(now))

    def weights(self, now: float) -> list[float]:
        if now < self._valid_until:
            return self._weights
        base = {**self._configured, **self._manual}
        canary = self.canary
        if canary is None:
            self._weights = [base[arm] for arm in self.arms]
            self._valid_until = float("inf")
            return self._weights
        percent = canary.weight(now)
        shared = canary_weights(base, self.arms[self.canary_index], percent)
        self._weights = [shared[arm] for arm in self.arms]
        self._valid_until = self._next_step(now)
        return self._weights

    def _next_step(self, now: float) -> float:
        canary = self.canary
        assert canary is not None
        if canary.rolled_back is not None or canary.manual_weight is not None:
            return float("inf")
        elapsed = now - canary.started_at
        for step in canary.config.schedule:
            if step.after_s > elapsed:
                return canary.started_at + step.after_s
        return float("inf")

    def observe(self, now: float, ok: bool, latency_ms: float) -> None:
        """One request of the canary arm ended (ok: its backend answered in full)."""
        canary = self.canary
        assert canary is not None
        reason = canary.observe(now, ok, latency_ms)
        if reason is not None:
            self._valid_until = -1.0
            log.error(
                "experiment %s: canary arm %s rolled back: %s",
                self.name,
                self.arms[self.canary_index],
                reason,
            )

    # -- by hand (admin endpoint) ------------------------------------------------------------
    def set_weight(self, arm: str, weight: float) -> None:
        if arm not in self.arms:
            raise InvalidRequest(
                f"Experiment '{self.name}' has no arm '{arm}' (arms: {', '.join(self.arms)}).",
                param="arm",
            )
        canary = self.canary
        if canary is not None:
            if arm != self.arms[self.canary_index]:
                raise InvalidRequest(
                    f"Experiment '{self.name}' is a canary: set the weight of its canary arm "
                    f"'{self.arms[self.canary_index]}' (percent of traffic, 0-100).",
                    param="arm",
                )
            if not 0 <= weight <= 100:
                raise InvalidRequest("A canary weight is a percentage: 0 to 100.", param="weight")
            canary.set_weight(weight)
        else:
            if weight < 0:
                raise InvalidRequest("A weight cannot be negative.", param="weight")
            manual = {**self._manual, arm: weight}
            if sum({**self._configured, **manual}.values()) <= 0:
                raise InvalidRequest("At least one arm needs a weight above 0.", param="weight")
            self._manual = manual
        self._valid_until = -1.0
        log.warning("experiment %s: weight of arm %s set to %g by hand", self.name, arm, weight)

    def resume(self) -> None:
        """Drop weights set by hand; a canary goes back to its schedule, rollback cleared."""
        self._manual = {}
        if self.canary is not None:
            self.canary.resume()
        self._valid_until = -1.0
        log.warning("experiment %s: weights back to the policy's", self.name)

    def roll_back(self) -> None:
        if self.canary is None:
            raise InvalidRequest(f"Experiment '{self.name}' has no canary to roll back.")
        self.canary.roll_back("rolled back by hand")
        self._valid_until = -1.0
        log.warning("experiment %s: canary rolled back by hand", self.name)

    def status(self, now: float) -> dict[str, Any]:
        weights = self.weights(now)
        total = sum(weights) or 1.0
        out: dict[str, Any] = {
            "experiment": self.name,
            "model": self.config.model,
            "sticky_by": self.sticky_by,
            "arms": {
                arm: {"weight": round(w, 6), "share": round(w / total, 6)}
                for arm, w in zip(self.arms, weights, strict=True)
            },
            "set_by_hand": dict(self._manual),
        }
        canary = self.canary
        if canary is not None:
            stats = canary.stats(now)
            out["canary"] = {
                "arm": self.arms[self.canary_index],
                "weight": canary.weight(now),
                "scheduled_weight": canary.scheduled_weight(now),
                "weight_set_by_hand": canary.manual_weight,
                "elapsed_s": round(now - canary.started_at, 3),
                "rolled_back": canary.rolled_back,
                "rollbacks": canary.rollbacks,
                "window": {
                    "requests": stats.requests,
                    "errors": stats.errors,
                    "error_rate": round(stats.error_rate, 6),
                    "p99_ms": stats.p99_ms,
                },
            }
        return out
