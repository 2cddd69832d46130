"""The registry's view for the prediction workers, read by one process per service.

A worker that talked to MLflow itself carried MLflow's client package: about 32 MB of
resident memory per worker (issue 15), and one registry poll per worker per interval.
The ``bentoml serve`` process imports this service anyway (to read its configuration), so
at deployment it starts a :class:`Publisher` (:func:`serve`): every
``reload_interval_seconds`` it resolves the champion and challenger aliases, downloads a
new version's serving form once, and replaces ``models.json`` in a private directory
whose path the workers inherit (``SHIPWAY_MODEL_FEED``). A worker reads that small file
(:func:`read`) and loads the serving form from local disk; it imports MLflow only to load
a pipeline (a version without a serving form, or the first ``/explain``).

A registry problem is written to the feed with the last good versions, so every worker
keeps serving them and reports the problem itself, word for word (its type and message,
which never carry credentials: ``shipway.core.registry.RegistryUnavailable``). An engine
run without a feed (in-process, in tests) publishes its own: one path either way.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shipway.core.registryref import CHALLENGER, CHAMPION, SERVING_ARTIFACT, SERVING_TAG, address
from shipway.core.settings import Settings
from shipway.core.spec import UseCaseSpec

log = logging.getLogger("shipway.service")

FEED_ENV = "SHIPWAY_MODEL_FEED"
"""Where a worker finds its service's feed: set by :func:`serve` in the ``bentoml serve``
process before it starts the workers, which inherit its environment."""
FEED_FILE = "models.json"


@dataclass(frozen=True)
class Entry:
    """One registered version as a worker needs it."""

    version: str
    trained_at: float
    """Unix time the version was registered (the end of its training run)."""
    serving: str | None = None
    """Local directory of its downloaded serving form; None: load the pipeline."""


class RegistryProblem(RuntimeError):
    """What the publisher met reading the registry, raised again in each worker so that it
    logs and reports it like its own: ``kind`` is the original exception's type name."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Problem:
    """Why the last registry read failed: the exception's type name and message."""

    kind: str
    message: str

    @classmethod
    def of(cls, exc: Exception) -> Problem:
        return cls(type(exc).__name__, str(exc))

    def error(self) -> RegistryProblem:
        return RegistryProblem(self.kind, self.message)


@dataclass(frozen=True)
class Feed:
    """The content of ``models.json``."""

    champion: Entry | None = None
    challenger: Entry | None = None
    problem: Problem | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Feed:
        raw = json.loads(text)
        return cls(
            champion=Entry(**raw["champion"]) if raw.get("champion") else None,
            challenger=Entry(**raw["challenger"]) if raw.get("challenger") else None,
            problem=Problem(**raw["problem"]) if raw.get("problem") else None,
        )


class FeedNotWritten(RuntimeError):
    """The feed directory has no ``models.json`` yet."""


def identity(root: Path) -> tuple[int, int]:
    """The feed file's (inode, mtime): it is only ever replaced whole, so an unchanged
    identity means unchanged content (a worker checks it every second for a stat)."""
    path = root / FEED_FILE
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FeedNotWritten(f"no model feed at {path} yet") from None
    return st.st_ino, st.st_mtime_ns


def read(root: Path) -> tuple[tuple[int, int], Feed]:
    """The feed under ``root``, with the identity of the file it was read from."""
    path = root / FEED_FILE
    try:
        with path.open(encoding="utf-8") as fh:
            st = os.fstat(fh.fileno())
            return (st.st_ino, st.st_mtime_ns), Feed.from_json(fh.read())
    except FileNotFoundError:
        raise FeedNotWritten(f"no model feed at {path} yet") from None


class Publisher:
    """Resolves the aliases and writes the feed; see the module docstring."""

    def __init__(self, settings: Settings, spec: UseCaseSpec, root: Path) -> None:
        self.settings = settings
        self.spec = spec
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._last = Feed()
        self._written: str | None = None
        self._client: Any = None

    def publish(self) -> Feed:
        """One pass: read the registry, download what is new, replace the feed if it
        changed. Never raises: a problem is written down for the workers to report."""
        try:
            feed = self._resolve()
        except Exception as exc:
            self._client = None  # a fresh client next pass
            feed = Feed(self._last.champion, self._last.challenger, Problem.of(exc))
        else:
            self._last = feed
        self._write(feed)
        return feed

    def run(self, stop: threading.Event, feed: Feed) -> None:
        """Publish again until ``stop``: every ``reload_interval_seconds`` once a champion
        is known (``feed`` is the last pass), every ``startup_retry_seconds`` before."""
        s = self.settings
        while not stop.wait(
            s.reload_interval_seconds if feed.champion else s.startup_retry_seconds
        ):
            try:
                feed = self.publish()
            except OSError as exc:  # the feed directory itself failed: say so, keep trying
                log.error("shipway: model feed %s not written (%s)", self.root, exc)

    def _resolve(self) -> Feed:
        from shipway.core import registry  # MLflow: only in the process that publishes

        if self._client is None:
            self._client = registry.connect(self.settings.tracking_uri)
        client, name = self._client, self.spec.registered_model_name
        champ = registry.alias_version(client, name, CHAMPION)
        if champ is None:
            raise LookupError(
                f"no version of {name!r} has the alias {CHAMPION!r} yet in the registry "
                f"at {address(self.settings.tracking_uri)}"
            )
        with_challenger = self.settings.challenger_mode != "off"
        chall = registry.alias_version(client, name, CHALLENGER) if with_challenger else None
        return Feed(self._entry(client, champ), self._entry(client, chall) if chall else None)

    def exact(self, version: str) -> Entry:
        """An exact version's entry (its serving form downloaded), alias or not."""
        from shipway.core import registry

        if self._client is None:
            self._client = registry.connect(self.settings.tracking_uri)
        mv = self._client.get_model_version(self.spec.registered_model_name, version)
        return self._entry(self._client, mv)

    def _entry(self, client: Any, mv: Any) -> Entry:
        version = str(mv.version)
        trained_at = float(mv.creation_timestamp or 0) / 1000.0
        serving = None
        if (mv.tags or {}).get(SERVING_TAG):
            serving = self._download(client, mv, version)
        return Entry(version, trained_at, serving)

    def _download(self, client: Any, mv: Any, version: str) -> str | None:
        """The version's serving form in ``<root>/v<version>``, downloaded once (into a
        temporary sibling, then renamed: a worker never sees half a download)."""
        dest = self.root / f"v{version}"
        if not dest.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)  # a temp cleaner may have removed it
            tmp = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=self.root))
            try:
                client.download_artifacts(mv.run_id, SERVING_ARTIFACT, str(tmp))
                os.replace(tmp, dest)
            except Exception as exc:  # the worker then loads the pipeline
                shutil.rmtree(tmp, ignore_errors=True)
                log.warning(
                    "shipway: %s v%s: serving form not downloaded (%s: %s); workers load the "
                    "pipeline",
                    mv.name,
                    version,
                    type(exc).__name__,
                    exc,
                )
                return None
        return str(dest / SERVING_ARTIFACT)

    def _write(self, feed: Feed) -> None:
        """Replace ``models.json`` when its content changed (atomically: write, rename),
        then drop the downloads no version in it or the previous one uses."""
        text = feed.to_json()
        if text == self._written and (self.root / FEED_FILE).is_file():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".models-", dir=self.root)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, self.root / FEED_FILE)
        previous = Feed.from_json(self._written) if self._written else Feed()
        self._written = text
        keep = {
            f"v{e.version}"
            for e in (feed.champion, feed.challenger, previous.champion, previous.challenger)
            if e is not None
        }
        for old in self.root.glob("v*"):
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)


def private_root() -> Path:
    """A new feed directory readable by this user only, removed when the process exits."""
    root = Path(tempfile.mkdtemp(prefix="shipway-models-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def serve(settings: Settings, spec: UseCaseSpec) -> Path:
    """Publish once, keep publishing in a daemon thread, and point the workers started
    after this call at the feed (:data:`FEED_ENV`). Called by ``bentoml serve``'s own
    process before it starts the workers (``@bentoml.on_deployment``)."""
    publisher = Publisher(settings, spec, private_root())
    first = publisher.publish()
    threading.Thread(
        target=publisher.run,
        args=(threading.Event(), first),
        name="shipway-model-feed",
        daemon=True,
    ).start()
    os.environ[FEED_ENV] = str(publisher.root)
    return publisher.root
