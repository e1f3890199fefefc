"""The `validation` input guard: refuses requests over the policy's limits, cleans their text.

In order: parameters and output tokens, message count and roles, hidden and control characters
per slot (strip, flag or block), NFKC, then the size caps on the text as it will go upstream.
Everything is pure and fast (no thread): it runs on every request.
"""

from __future__ import annotations

from typing import Any

from gateway.guards.base import Decision, GuardContext, TextSlot, Verdict
from gateway.guards.validation.charset import CharAction, Sanitized, sanitize
from gateway.guards.validation.config import ValidationConfig
from gateway.guards.validation.limits import (
    Breach,
    SizeCaps,
    check_messages,
    check_params,
    check_sizes,
)


class ValidationGuard:
    """Caps, roles, parameters and Unicode hygiene for one policy (see ValidationConfig)."""

    def __init__(self, config: ValidationConfig) -> None:
        self.config = config
        self.name = config.name
        self._actions: dict[str, CharAction] = config.char_actions()
        self._scans_chars = config.nfkc or any(a != "allow" for a in self._actions.values())
        self._caps = SizeCaps(
            config.max_message_chars,
            config.max_total_chars,
            config.max_message_tokens,
            config.max_total_tokens,
        )

    async def check(self, ctx: GuardContext) -> Decision:
        config = self.config
        request: Any = ctx.metadata.get("request")
        request = request if isinstance(request, dict) else {}
        messages = request.get("messages")
        messages = messages if isinstance(messages, list) else None

        breach = check_params(request, config.forbidden_params, config.max_output_tokens)
        if breach is None and messages is not None:
            breach = check_messages(messages, config.max_messages, config.allowed_roles)
        if breach is not None:
            return self._blocked(breach)

        cleaned: list[tuple[TextSlot, Sanitized]] = []
        found: dict[str, int] = {}
        flagged_at: str | None = None
        if self._scans_chars:
            for slot in ctx.slots:
                result = sanitize(slot.text, self._actions, config.nfkc)
                for label, count in result.found.items():
                    found[label] = found.get(label, 0) + count
                if result.blocked is not None:
                    action = "control" if result.blocked == "control" else "invisible"
                    return Decision.block(
                        self.name,
                        f"{slot.path} has {result.found[result.blocked]:,} "
                        f"{result.blocked.replace('_', ' ')} character(s) ({action}: block)",
                        categories=found,
                    )
                if result.flagged and flagged_at is None:
                    flagged_at = slot.path
                if result.normalized:
                    found["nfkc"] = found.get("nfkc", 0) + 1
                if result.text != slot.text:
                    cleaned.append((slot, result))

        if self._caps.any:
            rewritten = {id(slot): result.text for slot, result in cleaned}
            breach = check_sizes(
                ((slot.path, rewritten.get(id(slot), slot.text)) for slot in ctx.slots),
                len(messages) if messages is not None else None,
                self._caps,
            )
            if breach is not None:
                return self._blocked(breach)

        for slot, result in cleaned:
            ctx.replace(slot, result.text)
        if cleaned:
            return Decision(self.name, Verdict.MODIFY, "sanitize", categories=found)
        if flagged_at is not None:
            return Decision(
                self.name,
                Verdict.ALLOW,
                "flag",
                f"hidden or control characters in {flagged_at}",
                categories=found,
            )
        return Decision.allow(self.name)

    def _blocked(self, breach: Breach) -> Decision:
        return Decision.block(self.name, breach.reason, categories={breach.limit: 1})
