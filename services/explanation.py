"""The API types of ``POST /explain`` and the answer it builds from an explanation.

``/explain`` takes the body of ``/predict`` plus ``top`` and answers the prediction with
why: the base value and the ``top`` largest feature contributions, named as the spec
names its fields. A categorical field one-hot encoded into several model columns is one
contribution (its columns summed back, ``shipway.core.explain``), and what the features
outside the top add is ``remainder``, so ``base_value + sum(contributions) + remainder
== output`` always holds in the answer, whatever ``top`` is. The full explanation (every
feature) is what the prediction log stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model

from services.schema import _numbers_only, class_name
from shipway.core.explain import Explanation
from shipway.core.spec import Task, UseCaseSpec

DEFAULT_TOP = 5


class Contribution(BaseModel):
    """One feature's share of the answer."""

    feature: str = Field(description="The spec's name of the feature (request or stored).")
    contribution: float = Field(
        description="How far this feature moved the output from the base value (on ``scale``)."
    )


class Why(BaseModel):
    """The explanation of one answer: base value plus contributions make the output."""

    method: Literal["lightgbm_tree_shap", "tree_shap", "linear_exact"] = Field(
        description="lightgbm_tree_shap (LightGBM's own TreeSHAP), tree_shap (the shap "
        "library's TreeExplainer) or linear_exact (coefficient times standardised input)."
    )
    scale: Literal["value", "log_odds", "probability"] = Field(
        description="What base value and contributions add up to: the predicted value "
        "(regression), the log-odds of the positive class, or its probability."
    )
    base_value: float = Field(description="The model's output before any feature is known.")
    output: float = Field(description="base_value + every contribution, on ``scale``.")
    contributions: list[Contribution] = Field(
        description="The ``top`` features with the largest effect, largest first."
    )
    remainder: float = Field(description="The sum of the contributions not listed.")
    features: int = Field(ge=1, description="How many features the model takes.")


@dataclass(frozen=True)
class ExplainTypes:
    """The generated request and response models of ``/explain``."""

    request: type[BaseModel]
    response: type[BaseModel]


def explain_types(
    spec: UseCaseSpec, row: type[BaseModel], prediction: type[BaseModel]
) -> ExplainTypes:
    """``/predict``'s row plus ``top``; ``/predict``'s answer plus ``explanation``."""
    n = len(spec.model_feature_names)
    integer: Any = Annotated[int, _numbers_only("int")]  # as the row's: no true or "3"
    request = create_model(
        class_name(spec, "ExplainRequest"),
        __base__=row,
        __doc__=f"One {spec.title} request to predict and explain.",
        top=(
            integer,
            Field(
                default=min(DEFAULT_TOP, n),
                ge=1,
                le=n,
                description=f"How many contributions to list, largest first (1-{n}).",
                examples=[min(DEFAULT_TOP, n)],
            ),
        ),
    )
    clf = spec.target.task is Task.binary_classification
    response = create_model(
        class_name(spec, "Explanation"),
        __base__=prediction,
        __doc__=f"The answer for one {spec.title} request, and why"
        + (" (contributions on the log-odds or probability scale)." if clf else "."),
        explanation=(Why, Field(description="Why the model gave this answer.")),
    )
    return ExplainTypes(request=request, response=response)


def why(explanation: Explanation, top: int) -> dict[str, Any]:
    """The ``explanation`` field of the answer: the ``top`` contributions and the rest."""
    listed = explanation.top(top)
    names = {f for f, _ in listed}
    rest = sum(v for f, v in explanation.contributions.items() if f not in names)
    return {
        "method": explanation.method,
        "scale": explanation.scale,
        "base_value": explanation.base_value,
        "output": explanation.output,
        "contributions": [{"feature": f, "contribution": v} for f, v in listed],
        "remainder": rest,
        "features": len(explanation.contributions),
    }
