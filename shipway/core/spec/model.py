"""The learner: which algorithm and which request fields it must not take as inputs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shipway.core.spec.base import Strict


class ModelConfig(Strict):
    algorithm: Literal["lightgbm", "random_forest", "linear"] = Field(
        default="lightgbm", description="Learner; its hyperparameters live in params.yaml."
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Request fields the model must not take as inputs (e.g. protected "
        "attributes a regulator forbids in the decision, kept only to slice the fairness "
        "metrics): still validated in requests and sliced on in evaluation, never part of "
        "the model frame (nor, so, of the prediction log's features).",
    )
