"""The typed use-case spec: everything Shipway knows about a use case comes from here.

One YAML file per use case (``usecases/<name>/usecase.yaml``). It is validated by the
pydantic models of this package when it is loaded, so a bad spec fails at load time with
the field path in the message, before any data is touched. Nothing about a use case is
hard-coded elsewhere in the platform.

One module per concern; a new spec field goes into the module of its concern, and a new
section model is also added to ``UseCaseSpec`` (``usecase.py``) and re-exported here:

==============  ===========================================================================
``base``        ``Strict`` base model (unknown keys are errors), ``NAME_RE``, ``SpecError``
``business``    owner, risk level, business objective and its approval, portfolio scores
``task``        task and target column; the metrics each task is evaluated on
``source``      source data, column renames, event timestamp, columns derived at ingest
``columns``     request fields and their dtypes/rules, entities, stored entity aggregates
``readiness``   data-readiness rules (validate stage, data-readiness gate)
``split``       train/validation/test windows and their lengths on a retraining
``model``       learner choice and the request fields the model must not take as inputs
``acceptance``  gate criteria (metric, fairness, latency, ONNX, bounds, cost budget)
``monitoring``  drift/performance thresholds, monitoring window, retraining trigger rules
``governance``  approvals, post-deployment review, retention periods
``usecase``     ``UseCaseSpec``, the root: cross-field rules and derived artifact names
``load``        ``load_spec``: YAML file -> validated spec, errors naming file and field
==============  ===========================================================================

Callers import from the package (``from shipway.core.spec import UseCaseSpec``), never
from the modules, so moving a model between modules changes no call site.
"""

from shipway.core.spec.acceptance import Acceptance, CostBudget, MetricBound
from shipway.core.spec.base import NAME_RE, SpecError, Strict
from shipway.core.spec.business import Approval, Objective, Owner, Portfolio, RiskLevel
from shipway.core.spec.columns import Aggregate, Column, DType, Entity, EntityFeatures
from shipway.core.spec.governance import Governance, Retention
from shipway.core.spec.load import load_spec
from shipway.core.spec.model import ModelConfig
from shipway.core.spec.monitoring import Monitoring, NewLabelsRule
from shipway.core.spec.readiness import Readiness, TimeWindowRule
from shipway.core.spec.source import (
    Binning,
    Derivations,
    EventTimestamp,
    FileSource,
    Grouping,
    RdatasetsSource,
    Source,
)
from shipway.core.spec.split import Retraining, Split
from shipway.core.spec.task import CLASSIFICATION_METRICS, REGRESSION_METRICS, Target, Task
from shipway.core.spec.usecase import UseCaseSpec

__all__ = [
    "CLASSIFICATION_METRICS",
    "NAME_RE",
    "REGRESSION_METRICS",
    "Acceptance",
    "Aggregate",
    "Approval",
    "Binning",
    "Column",
    "CostBudget",
    "DType",
    "Derivations",
    "Entity",
    "EntityFeatures",
    "EventTimestamp",
    "FileSource",
    "Governance",
    "Grouping",
    "MetricBound",
    "ModelConfig",
    "Monitoring",
    "NewLabelsRule",
    "Objective",
    "Owner",
    "Portfolio",
    "RdatasetsSource",
    "Readiness",
    "Retention",
    "Retraining",
    "RiskLevel",
    "Source",
    "SpecError",
    "Split",
    "Strict",
    "Target",
    "Task",
    "TimeWindowRule",
    "UseCaseSpec",
    "load_spec",
]
