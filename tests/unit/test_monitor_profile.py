"""The reference's drift profile: built once per model version and reference file, reused
by later windows, rebuilt when the version, the reference or the spec changes, and the
same drift whether it was built in memory or read back from disk."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import WindowDrift
from monitoring.profile import ReferenceProfile, file_digest
from monitoring.reference import Reference, reference_profile
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec
from shipway.core.usecases import load_usecase

FEATURES = ["lead_time", "historical_adr", "meal", "near_christmas"]


@pytest.fixture()
def spec() -> UseCaseSpec:
    return load_usecase("hotel_rates", Settings())


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "lead_time": rng.gamma(2.0, 50 + shift, n).astype(np.float32),
            "historical_adr": rng.normal(100 + shift, 20, n).astype(np.float32),
            "meal": rng.choice(["bed_and_breakfast", "no_meal_package", "half"], n),
            "near_christmas": (rng.random(n) < 0.1).astype(np.float32),
            "prediction": rng.normal(100 + shift, 25, n),
        }
    )


def reference(tmp_path: Path, version: str, data: pd.DataFrame) -> Reference:
    path = tmp_path / f"ref{version}.parquet"
    data.to_parquet(path)
    return Reference(
        "hotel_rates", version, "run", "runs:/run/ref", data, {"mae": 1.0}, None,
        digest=file_digest(path),
    )  # fmt: skip


def test_profile_is_cached_per_version_and_reference(spec: UseCaseSpec, tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    ref = reference(tmp_path, "3", frame(3000, 0))
    first = reference_profile(settings, spec, ref, FEATURES)
    stored = settings.state / "monitoring" / "hotel_rates" / "references" / "v3"
    assert (stored / "profile.json").is_file() and (stored / "profile.npz").is_file()
    # reused: a later window reads it back (a different object with the same key)
    again = reference_profile(settings, spec, ref, FEATURES)
    assert again is not first and again.key == first.key
    assert (
        again.kinds
        == first.kinds
        == {
            "lead_time": "numerical",
            "historical_adr": "numerical",
            "meal": "categorical",
            "near_christmas": "categorical",
            "prediction": "numerical",
        }
    )
    written = (stored / "profile.json").stat().st_mtime_ns
    reference_profile(settings, spec, ref, FEATURES)
    assert (stored / "profile.json").stat().st_mtime_ns == written  # not rebuilt

    # the same drift from the stored profile as from one built in memory
    window = frame(2000, 1, shift=15.0)
    results = []
    for profile in (again, None):
        drift = WindowDrift(spec, ref.frame, features=FEATURES, profile=profile)
        drift.add(window)
        results.append(drift.result(report=False)[0].to_dict())
    assert results[0] == results[1] and results[0]["drifted"]

    # a new version gets its own profile; a changed reference file is not served stale
    v4 = reference_profile(settings, spec, reference(tmp_path, "4", frame(3000, 5)), FEATURES)
    assert v4.key != first.key and (stored.parent / "v4" / "profile.json").is_file()
    changed = reference(tmp_path, "3", frame(3000, 9, shift=40.0))
    rebuilt = reference_profile(settings, spec, changed, FEATURES)
    assert rebuilt.key != first.key
    assert ReferenceProfile.load(stored, first.key) is None  # overwritten, not mixed
    ref_std = np.std(changed.frame["historical_adr"].to_numpy(np.float64))
    assert rebuilt.sketches["historical_adr"].reference_std == pytest.approx(ref_std)  # type: ignore[union-attr]
    # other columns compared: another key too
    assert reference_profile(settings, spec, changed, FEATURES[:2]).key != rebuilt.key


def test_a_reference_without_digest_is_profiled_in_memory(
    spec: UseCaseSpec, tmp_path: Path
) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    ref = replace(reference(tmp_path, "1", frame(500, 0)), digest="")
    profile = reference_profile(settings, spec, ref, FEATURES)
    assert set(profile.kinds) == {*FEATURES, "prediction"}
    assert not (settings.state / "monitoring").exists()
