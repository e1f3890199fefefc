"""The base of every policy model: unknown keys are errors, and a loaded policy never changes."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
