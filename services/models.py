"""The served models: champion and optional challenger from MLflow aliases, hot-swapped.

The aliases reach a worker through its service's model feed (``services/modelfeed.py``),
so a worker that serves versions with a serving form never imports MLflow.

A :class:`ModelSet` is immutable; the watcher builds a new one off the request path and
replaces the reference in one assignment, so a request (or a coalesced batch) reads one
consistent pair and a new champion is picked up with no downtime and no lock on the hot
path. Routing is a pure function of the entity keys, so a split is deterministic: the
same entity always meets the same variant while the percentage stays put.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from services.modelfeed import Entry, Feed, identity, read
from shipway.core.registryref import CHALLENGER, CHAMPION
from shipway.core.spec import UseCaseSpec
from shipway.scoring.models import load_serving_form, load_version
from shipway.scoring.rowscorer import Predict

log = logging.getLogger("shipway.service")

Mode = Literal["off", "split", "shadow"]


class Pipeline:
    """A version's registered scikit-learn pipeline, loaded the first time it is needed.

    A version with a serving form is scored without its pipeline
    (``shipway.scoring.servingform``), so a worker that only answers /predict never
    imports scikit-learn, skops or the ``lightgbm`` package (about 170 MB per worker,
    issue 15); /explain needs the pipeline and loads it on its first call.
    """

    def __init__(self, load: Callable[[], Any], model: Any = None) -> None:
        self._load = load
        self._model = model
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model


@dataclass(frozen=True)
class ServedModel:
    """One loaded model version and where it came from."""

    name: str
    version: str
    variant: str
    pipeline: Pipeline
    trained_at: float
    """Unix time the version was registered (the end of its training run)."""
    scorer: Predict | None = None
    """The model on model columns (``shipway.scoring.rowscorer.predictor``, or the serving
    form: exactly the pipeline's numbers, without its per-call overhead); None: score
    through ``model``."""

    @property
    def model(self) -> Any:
        """The registered pipeline (loaded now if the version was served from its form)."""
        return self.pipeline.get()


@dataclass(frozen=True)
class ModelSet:
    """What answers right now: the champion and, when configured, a distinct challenger."""

    champion: ServedModel
    challenger: ServedModel | None = None

    def get(self, variant: str) -> ServedModel:
        if variant == CHALLENGER and self.challenger is not None:
            return self.challenger
        return self.champion

    def versions(self) -> tuple[str, str | None]:
        return self.champion.version, self.challenger.version if self.challenger else None


def bucket(keys: Sequence[str]) -> float:
    """A stable position in [0, 100) for an entity-key tuple (sha256, not Python's hash)."""
    digest = hashlib.sha256("\x1f".join(keys).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100.0


def route(mode: Mode, percent: float, models: ModelSet, keys: Sequence[str]) -> str:
    """The variant that answers a row: the challenger only in split mode, for its share."""
    if mode == "split" and models.challenger is not None and bucket(keys) < percent:
        return CHALLENGER
    return CHAMPION


class ModelLoader:
    """Builds the ModelSet the feed under ``root`` names, caching by version (aliases move
    back too)."""

    def __init__(self, root: Path, spec: UseCaseSpec) -> None:
        self.root = root
        self.spec = spec
        self.name = spec.registered_model_name
        self._cache: dict[str, tuple[Pipeline, Predict]] = {}
        self._seen: tuple[tuple[int, int], Feed] | None = None

    def feed(self) -> Feed:
        """The feed now (parsed again only when the file was replaced)."""
        ident = identity(self.root)
        if self._seen is None or self._seen[0] != ident:
            self._seen = read(self.root)
        return self._seen[1]

    def load(self, entry: Entry, variant: str) -> ServedModel:
        """Load an exact version (not the alias: it may move between lookup and load)."""
        if entry.version not in self._cache:
            self._cache[entry.version] = self._load(entry)
        pipeline, scorer = self._cache[entry.version]
        return ServedModel(
            name=self.name,
            version=entry.version,
            variant=variant,
            pipeline=pipeline,
            trained_at=entry.trained_at,
            scorer=scorer,
        )

    def _load(self, entry: Entry) -> tuple[Pipeline, Predict]:
        """The version's serving form when it has one (its pipeline loads on first need),
        else its pipeline and the fastest exact scorer of it."""
        spec, name, version = self.spec, self.name, entry.version
        if entry.serving:
            scorer = load_serving_form(spec, name, version, Path(entry.serving))
            if scorer is not None:
                return Pipeline(lambda: load_version(spec, name, version)[0]), scorer
        model, scorer = load_version(spec, name, version)
        return Pipeline(lambda: model, model), scorer

    def build(
        self, current: ModelSet | None, with_challenger: bool
    ) -> tuple[ModelSet | None, Exception | None]:
        """The ModelSet the feed names now (``current`` itself when nothing moved), and the
        registry problem the feed reports, if any (the caller serves the set, then says so).

        A challenger that is the champion's own version is no challenger (nothing to
        compare), so split and shadow then serve the champion only.
        """
        feed = self.feed()
        problem = feed.problem.error() if feed.problem else None
        if feed.champion is None:
            return current, problem or LookupError(f"the feed names no {CHAMPION}")
        champ = feed.champion
        chall = feed.challenger if with_challenger else None
        if chall is not None and chall.version == champ.version:
            chall = None
        wanted = (champ.version, chall.version if chall else None)
        if current is not None and current.versions() == wanted:
            return current, problem
        champion = self.load(champ, CHAMPION)
        challenger = self.load(chall, CHALLENGER) if chall else None
        self._cache = {v: m for v, m in self._cache.items() if v in wanted}
        return ModelSet(champion, challenger), problem
