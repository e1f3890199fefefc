"""The `validation` guard's policy entry: size caps, roles, parameters and character hygiene."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from gateway.config.base import StrictModel
from gateway.guards.validation.charset import HIDDEN_RANGES, CharAction

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ValidationConfig(StrictModel):
    """Every cap is off (None) unless set; characters are Unicode code points.

    Token counts are estimates (about 4 characters per token plus a few per message, as the rate
    limiter's prompt estimate), not the model's tokenizer.
    """

    type: Literal["validation"] = "validation"
    name: str = "validation"
    max_messages: PositiveInt | None = None
    max_message_chars: PositiveInt | None = None
    max_total_chars: PositiveInt | None = None
    max_message_tokens: PositiveInt | None = None
    max_total_tokens: PositiveInt | None = None
    # The largest `max_tokens` / `max_completion_tokens` a request may ask for.
    max_output_tokens: PositiveInt | None = None
    allowed_roles: frozenset[Role] | None = None
    forbidden_params: frozenset[str] = Field(default_factory=frozenset)
    nfkc: bool = False
    # Zero-width, bidi, tag, smuggled variation selector and other invisible format characters.
    invisible: CharAction = "strip"
    # C0/C1 control characters other than tab, line feed and carriage return.
    control: CharAction = "strip"

    def char_actions(self) -> dict[str, CharAction]:
        """The action for each label `charset.find_hidden` reports."""
        return {
            label: self.control if label == "control" else self.invisible for label in HIDDEN_RANGES
        }
