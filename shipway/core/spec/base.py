"""What every part of the spec shares: the strict base model, the name pattern, the error.

Every spec model derives from ``Strict``: unknown keys are errors and loaded specs are
immutable, so a typo in a YAML file fails at load time instead of being ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

NAME_RE = r"^[a-z][a-z0-9_]*$"


class SpecError(ValueError):
    """A use-case spec failed to load; the message names the file and the field."""


class Strict(BaseModel):
    """Base model: unknown keys are errors, so typos in a spec never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)
