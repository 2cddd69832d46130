"""Build the Feast objects of a use case from its spec (no module-level Feast objects here).

Every object is namespaced by the use-case name, so several use cases share one Feast
project side by side. Training and serving both read through the feature service
``<usecase>_v<features_version>``.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource
from feast.labeling.label_view import LabelView
from feast.on_demand_feature_view import OnDemandFeatureView, on_demand_feature_view
from feast.types import Bool, Float64, Int64, PrimitiveFeastType, String
from feast.value_type import ValueType

from feature_repo.aggregates import CREATED_TS
from shipway.core.spec import DType, UseCaseSpec
from shipway.data.readiness import EVENT_TS

FEAST_TYPES: dict[DType, PrimitiveFeastType] = {
    DType.int: Int64,
    DType.float: Float64,
    DType.str: String,
    DType.bool: Bool,
}


def features_dir(data_dir: Path, spec: UseCaseSpec) -> Path:
    return data_dir / spec.name / "features"


def request_view_name(spec: UseCaseSpec) -> str:
    return f"{spec.name}__request"


def _request_passthrough(inputs: pd.DataFrame) -> pd.DataFrame:
    """Booking-time fields enter the feature service unchanged (typed by the schema)."""
    return inputs.copy()


def _fresh_udf() -> Any:
    """A new function object per call: Feast's decorator renames the function's module to
    ``__main__`` (so dill pickles it by value), which would break a second build in the
    same process (dill then reads the source of ``__main__``)."""
    f = _request_passthrough
    return types.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__)


def build_objects(spec: UseCaseSpec, data_dir: Path) -> list[Any]:
    """Entities, file sources, feature views, the request view and the feature service."""
    objs: list[Any] = []
    views: list[FeatureView | OnDemandFeatureView | LabelView | str] = []
    fdir = features_dir(data_dir, spec)
    tags = {"usecase": spec.name, "owner": spec.owner.email}
    for ent in spec.entities:
        objs.append(
            Entity(
                name=f"{spec.name}__{ent.name}",
                join_keys=[ent.name],
                value_type=ValueType.STRING,
                description=ent.description,
                tags=tags,
            )
        )
    for ef in spec.entity_features:
        source = FileSource(
            name=f"{spec.name}__{ef.entity}_source",
            path=str(fdir / f"{ef.entity}.parquet"),
            timestamp_field=EVENT_TS,
            created_timestamp_column=CREATED_TS,
        )
        fv = FeatureView(
            name=spec.feature_view_name(ef.entity),
            entities=[e for e in objs if e.name == f"{spec.name}__{ef.entity}"],
            ttl=pd.Timedelta(days=ef.ttl_days).to_pytimedelta(),
            schema=[Field(name=a.name, dtype=Float64) for a in ef.aggregates],
            source=source,
            online=True,
            tags=tags,
            description=f"Trailing aggregates per {ef.entity}, from events strictly before t.",
        )
        objs += [source, fv]
        views.append(fv)
    schema = [Field(name=c.name, dtype=FEAST_TYPES[c.dtype]) for c in spec.request_fields]
    request = RequestSource(name=f"{spec.name}__booking", schema=schema)
    odfv = on_demand_feature_view(
        name=request_view_name(spec),
        sources=[request],
        schema=[Field(name=f"{c.name}", dtype=FEAST_TYPES[c.dtype]) for c in spec.request_fields],
        mode="pandas",
        tags=tags,
        description="Booking-time (request) fields, validated and typed by Feast.",
    )(_fresh_udf())
    objs += [request, odfv]
    views.append(odfv)
    objs.append(
        FeatureService(
            name=spec.feature_service_name,
            features=views,
            tags={**tags, "spec_hash": spec.content_hash()},
            description=f"Features of {spec.name} models, feature set v{spec.features_version}.",
        )
    )
    return objs
