"""The routing table a policy turns into: one Router per public model, built over the backends'
pools, keeping experiment state and shadow counters from the previous table when their settings
did not change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config.schema import ModelRoute, Policy
from gateway.routing.experiment import Split
from gateway.routing.pool import Pool
from gateway.routing.router import Router
from gateway.routing.shadow import ShadowRunner
from gateway.routing.target import Target


@dataclass(frozen=True, slots=True)
class Route:
    """A public model: its router, and its first target (what a request goes to by default)."""

    public_model: str
    upstream_model: str
    upstream: Pool
    router: Router

    @property
    def renames_model(self) -> bool:
        return self.public_model != self.upstream_model


class RoutingTable:
    def __init__(
        self, policy: Policy, pools: Mapping[str, Pool], previous: RoutingTable | None = None
    ) -> None:
        old_splits = previous.splits if previous is not None else {}
        old_shadows = previous.shadows if previous is not None else {}
        self.splits: dict[str, Split] = {}
        for name, experiment in policy.experiments.items():
            old = old_splits.get(name)
            self.splits[name] = (
                old if old is not None and old.config == experiment else Split(name, experiment)
            )
        by_model = {split.config.model: split for split in self.splits.values()}
        self.shadows: dict[str, ShadowRunner] = {}
        self.routes: dict[str, Route] = {}
        for name, config in policy.models.items():
            shadow = None
            if config.shadow is not None:
                pool = pools[config.shadow.backend]
                old_shadow = old_shadows.get(name)
                reuse = (
                    old_shadow is not None
                    and old_shadow.config == config.shadow
                    and old_shadow.pool is pool
                )
                shadow = old_shadow if reuse else ShadowRunner(config.shadow, pool, name)
                assert shadow is not None
                self.shadows[name] = shadow
            self.routes[name] = _route(name, config, pools, shadow, by_model.get(name))

    async def aclose(self) -> None:
        for shadow in self.shadows.values():
            await shadow.aclose()


def _route(
    name: str,
    config: ModelRoute,
    pools: Mapping[str, Pool],
    shadow: ShadowRunner | None,
    split: Split | None,
) -> Route:
    targets = [
        (Target(pools[t.backend], t.model or name, name), t.weight) for t in config.targets()
    ]
    fallback = [Target(pools[f.backend], f.model or name, name) for f in config.fallback]
    arm_targets = []
    if split is not None:
        arm_targets = [
            Target(pools[arm.backend], arm.model or name, name)
            for arm in split.config.arms.values()
        ]
    router = Router(name, targets, fallback, shadow, split, arm_targets)
    # The first target with weight (the default route, named in audit records of requests
    # refused before routing).
    first = next((t for t, w in targets if w > 0), targets[0][0])
    return Route(name, first.upstream_model, first.pool, router)
