"""Direct reads of Feast's online rows: the values ``get_online_features`` gives, cheaper.

``FeatureStore.get_online_features`` resolves the feature references against the
registry, builds entity protos, groups views, fills a response proto and converts it
back on every call: about 0.4 ms for two entities, where the store itself answers in
tens of microseconds (issue 15). An :class:`OnlineReader` does that resolution once per
set of feature views, then per call only what the store's own ``online_read`` does:
the entity key serialized by Feast (``serialize_entity_key``; for Redis the key and the
field hashes of Feast's ``_redis_key`` and ``_mmh3``), one query per view, and the
stored ``ValueProto`` decoded by Feast's ``feast_value_type_to_python_type``. Nothing
about the storage format is re-implemented here, so a Feast upgrade that changes it
changes both paths; the integration test compares them on every stored entity.

Only the SQLite and Redis online stores have a direct reader (:func:`reader_for`
returns None for any other store, and the caller keeps Feast's generic path). Reads
apply no TTL, as Feast's online read does not either.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Protocol

from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, _redis_key, compute_table_id
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from feast.value_type import ValueType

Keys = Sequence[Mapping[str, Any]]
"""One mapping per row holding (at least) the join keys of the views read."""


@dataclass(frozen=True)
class View:
    """What a read of one feature view needs, resolved once from the registry."""

    name: str
    """The feature view's online name (its version suffix included when versioning is on)."""
    table: str
    """Feast's online table id (``<project>_<view>``, SQLite)."""
    join_keys: list[str]
    key_types: list[ValueType]
    features: list[str]
    types: list[ValueType]


class Backend(Protocol):
    """Raw reads: the store's key of an entity, and per key, feature name -> stored bytes."""

    def key(self, entity: EntityKeyProto, version: int) -> bytes: ...

    def fetch(self, view: View, keys: list[bytes]) -> list[dict[str, bytes]]: ...


class SqliteRows:
    """Feast's SQLite online table, read with sqlite3 (one read-only connection per thread:
    sqlite3 connections are not shared across threads without a lock)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._local.conn = conn
        return conn

    def key(self, entity: EntityKeyProto, version: int) -> bytes:
        return serialize_entity_key(entity, entity_key_serialization_version=version)

    def fetch(self, view: View, keys: list[bytes]) -> list[dict[str, bytes]]:
        table = '"' + view.table.replace('"', '""') + '"'
        rows = self._conn().execute(
            f"SELECT entity_key, feature_name, value FROM {table} "
            f"WHERE entity_key IN ({','.join('?' * len(keys))}) ORDER BY entity_key",
            keys,
        )
        found = {k: {f: v for _, f, v in group} for k, group in groupby(rows, key=lambda r: r[0])}
        return [found.get(k, {}) for k in keys]


class RedisRows:
    """Feast's Redis hashes, read with one pipelined HMGET per entity key; the client is
    the one Feast's Redis store builds from the same connection string (host, password,
    TLS, sentinel or cluster)."""

    def __init__(self, client: Any, project: str) -> None:
        self.client = client
        self.project = project
        self._fields: dict[str, list[bytes]] = {}

    def key(self, entity: EntityKeyProto, version: int) -> bytes:
        return _redis_key(self.project, entity, entity_key_serialization_version=version)

    def fetch(self, view: View, keys: list[bytes]) -> list[dict[str, bytes]]:
        fields = self._fields.get(view.name)
        if fields is None:
            fields = self._fields[view.name] = [_mmh3(f"{view.name}:{f}") for f in view.features]
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, fields)
            replies = pipe.execute()
        return [
            {f: v for f, v in zip(view.features, values, strict=True) if v} for values in replies
        ]


def _decode(raw: bytes | None, value_type: ValueType) -> Any:
    if not raw:
        return None
    proto = ValueProto()
    proto.ParseFromString(raw)
    return feast_value_type_to_python_type(proto, value_type)


class OnlineReader:
    """Stored features of a fixed set of views, as ``get_online_features(...).to_dict()``
    gives them for the feature names (None where the store has no value)."""

    def __init__(self, backend: Backend, views: list[View], key_version: int) -> None:
        self.backend = backend
        self.views = views
        self.key_version = key_version
        self.feature_names = [f for v in views for f in v.features]
        self._keys: dict[tuple[Any, ...], bytes] = {}

    KEY_CACHE_SIZE = 65_536
    """Serialized entity keys kept per reader: a key is a pure function of the view and
    the join-key values, and building it through Feast's protobufs is a good part of a
    one-row read; the cache is emptied when full (bounded memory, no eviction order)."""

    def _entity_key(self, view: View, row: Mapping[str, Any]) -> bytes:
        ident = (view.name, *((type(row[k]), row[k]) for k in view.join_keys))
        key = self._keys.get(ident)
        if key is None:
            if len(self._keys) >= self.KEY_CACHE_SIZE:
                self._keys.clear()
            key = self._keys[ident] = self._serialize(view, row)
        return key

    def _serialize(self, view: View, row: Mapping[str, Any]) -> bytes:
        values = [
            python_values_to_proto_values([row[k]], t)[0]
            for k, t in zip(view.join_keys, view.key_types, strict=True)
        ]
        proto = EntityKeyProto(join_keys=view.join_keys, entity_values=values)
        return self.backend.key(proto, self.key_version)

    def read(self, rows: Keys) -> dict[str, list[Any]]:
        """One list per feature name, in the order of ``rows``; each distinct entity is
        read once however many rows share it."""
        out: dict[str, list[Any]] = {}
        for view in self.views:
            keys = [self._entity_key(view, r) for r in rows]
            unique = list(dict.fromkeys(keys))
            stored = dict(zip(unique, self.backend.fetch(view, unique), strict=True))
            for name, value_type in zip(view.features, view.types, strict=True):
                out[name] = [_decode(stored[k].get(name), value_type) for k in keys]
        return out


def _redis_client(config: Any) -> Any:
    from feast.infra.online_stores.redis import RedisOnlineStore

    return RedisOnlineStore()._get_client(config.online_store)


def reader_for(store: Any, refs: Sequence[str]) -> OnlineReader | None:
    """A direct reader of ``refs`` (``view:feature``) in ``store``'s online store, or None
    when the store is neither SQLite nor Redis (keep ``get_online_features`` then)."""
    config = store.config
    kind = str(getattr(config.online_store, "type", ""))
    if kind not in ("sqlite", "redis"):
        return None
    versioning = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
    wanted: dict[str, list[str]] = {}
    for ref in refs:
        view_name, _, feature = ref.partition(":")
        wanted.setdefault(view_name, []).append(feature)
    views: list[View] = []
    for view_name, features in wanted.items():
        fv = store.get_feature_view(view_name)
        dtypes = {f.name: f.dtype.to_value_type() for f in fv.features}
        table = compute_table_id(config.project, fv, versioning)
        views.append(
            View(
                name=table.removeprefix(f"{config.project}_"),
                table=table,
                join_keys=[c.name for c in fv.entity_columns],
                key_types=[c.dtype.to_value_type() for c in fv.entity_columns],
                features=features,
                types=[dtypes[f] for f in features],
            )
        )
    backend: Backend
    if kind == "sqlite":
        from feast.infra.online_stores.sqlite import SqliteOnlineStore

        backend = SqliteRows(SqliteOnlineStore._get_db_path(config))
    else:
        backend = RedisRows(_redis_client(config), config.project)
    return OnlineReader(backend, views, config.entity_key_serialization_version)
