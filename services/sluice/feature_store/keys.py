"""The online store's key layout (owned here and nowhere else), the entity-id rule, and
entity sharding.

One Redis string per (view, entity): ``sluice:fs:<view>:<schema_id>:{<entity value>}``.

- The entity value is the hash tag, so one entity's values for every view live on one
  Redis Cluster slot, and a batch read is grouped per shard.
- ``schema_id`` (see ``FeatureView.schema_id``) changes with the feature list, so a new
  layout never decodes old bytes; ``SCAN MATCH sluice:fs:<view>:*`` lists one view's keys.
- The value is ``codec.encode``'s packed bytes (layout version + event timestamp + values).

Registry keys share the ``{fs}`` hash tag so one pipeline reads them all, even on a cluster.

An entity id is a string of 1 to ``MAX_ENTITY_CHARS`` characters (``string`` entities) or an
integer, not a bool (``int64`` entities): ``entity_problem`` is the one rule, which the
feature store applies to reads and pushes and the router applies before it looks features
up (so a client's bad id is the client's 4xx, never a failed lookup).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

DATA_PREFIX = "sluice:fs:"
REGISTRY_PREFIX = "sluice:fs-registry:{fs}:"
VIEWS_KEY = REGISTRY_PREFIX + "views"
"""Hash: view name -> the view's definition as JSON."""
WATERMARKS_KEY = REGISTRY_PREFIX + "watermarks"
"""Hash: ``view`` or ``view|i/N`` (one shard) -> materialised up to (Unix seconds)."""
FRESHNESS_KEY = REGISTRY_PREFIX + "freshness"
"""Hash: view -> newest event timestamp written (Unix microseconds)."""
MATERIALIZED_KEY = REGISTRY_PREFIX + "materialized_rows"
"""Hash: view -> rows materialisation sent to Redis, all runs (the job's own metric)."""
REGISTRY_KEYS = (VIEWS_KEY, WATERMARKS_KEY, FRESHNESS_KEY, MATERIALIZED_KEY)


def key_prefix(view: str, schema_id: str) -> str:
    """Everything of a data key before the entity value.

    >>> key_prefix("customer_profile", "1a2b3c4d")
    'sluice:fs:customer_profile:1a2b3c4d:{'
    """
    return f"{DATA_PREFIX}{view}:{schema_id}:{{"


def data_key(prefix: str, entity: str | int) -> str:
    """The key of one entity's packed values under ``prefix`` (from ``key_prefix``).

    >>> data_key("sluice:fs:customer_profile:1a2b3c4d:{", "C000001")
    'sluice:fs:customer_profile:1a2b3c4d:{C000001}'
    """
    return f"{prefix}{entity}}}"


MAX_ENTITY_CHARS = 1024
"""Longest string entity id (it is part of every key of the entity)."""


def entity_problem(value: Any, dtype: str | None = None) -> str | None:
    """What makes ``value`` unusable as an entity id of ``dtype`` (``"string"`` or
    ``"int64"``; None: of either), or None when it is a good one.

    >>> entity_problem("C000001", "string") is None, entity_problem(42, "int64") is None
    (True, True)
    >>> entity_problem("", "string")
    'must be 1 to 1024 characters, got 0'
    >>> entity_problem(7, "string")
    'expected a string, got int 7'
    >>> entity_problem(True, "int64")
    'expected an integer, got bool True'
    >>> entity_problem(["C1"])
    "expected a string or an integer, got list ['C1']"
    >>> entity_problem(7) is None, entity_problem("C1") is None
    (True, True)
    """
    if isinstance(value, str):
        if dtype == "int64":
            return f"expected an integer, got {_shown(value)}"
        if not value or len(value) > MAX_ENTITY_CHARS:
            return f"must be 1 to {MAX_ENTITY_CHARS} characters, got {len(value)}"
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return f"expected a string, got {_shown(value)}" if dtype == "string" else None
    wanted = {"string": "a string", "int64": "an integer"}.get(dtype or "", "")
    return f"expected {wanted or 'a string or an integer'}, got {_shown(value)}"


def entity_ids_ok(values: Sequence[Any], dtype: str) -> bool:
    """Whether every value is a good entity id of ``dtype`` (the fast check of
    ``entity_problem``, for whole requests; ask that one for what is wrong).

    >>> entity_ids_ok(["C1", "C2"], "string"), entity_ids_ok(["C1", ""], "string")
    (True, False)
    >>> entity_ids_ok([1, 2], "int64"), entity_ids_ok([1, True], "int64")
    (True, False)
    """
    if dtype == "string":
        return all(type(v) is str and 0 < len(v) <= MAX_ENTITY_CHARS for v in values)
    return all(type(v) is int for v in values)


def _shown(value: Any) -> str:
    """``type value``, the value cut to 40 characters (a client may send a megabyte)."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


KEY_TTL_FACTOR = 2


def key_ttl_ms(ttl_seconds: int) -> int:
    """How long Redis keeps a key after its last write: twice the view's ttl.

    A value goes stale (OUTSIDE_MAX_AGE) ttl after its event; keeping the key one more ttl
    lets reads report a lagging materialisation as OUTSIDE_MAX_AGE rather than NOT_FOUND,
    after which Redis frees the memory. Every write (even a skipped older row) resets it.

    >>> key_ttl_ms(3600)
    7200000
    """
    return ttl_seconds * KEY_TTL_FACTOR * 1000


def shard_of(entity: str | int, shards: int) -> int:
    """The materialisation shard (0..shards-1) of an entity: CRC-32 of its text, mod N.

    Stable across processes and versions (unlike ``hash()``), so N independent jobs
    together cover every entity exactly once.

    >>> shard_of("C000001", 4), shard_of("C000002", 4), shard_of(42, 1)
    (1, 3, 0)
    """
    return zlib.crc32(str(entity).encode()) % shards


def parse_shard(spec: str) -> tuple[int, int]:
    """``"i/N"`` -> (i, N) with 0 <= i < N.

    >>> parse_shard("2/8")
    (2, 8)
    """
    index, sep, total = spec.partition("/")
    if not sep or not index.strip().isdigit() or not total.strip().isdigit():
        raise ValueError(f"shard {spec!r} is not i/N (e.g. 0/4)")
    i, n = int(index), int(total)
    if n < 1 or i >= n:
        raise ValueError(f"shard {spec!r}: need 0 <= i < N and N >= 1")
    return i, n


def watermark_field(view: str, shard: tuple[int, int] | None) -> str:
    """The watermarks-hash field of a whole view or of one shard of it.

    >>> watermark_field("v", None), watermark_field("v", (1, 4))
    ('v', 'v|1/4')
    """
    return view if shard is None or shard[1] == 1 else f"{view}|{shard[0]}/{shard[1]}"


def effective_watermark(view: str, fields: dict[str, float]) -> float | None:
    """How far a view is materialised, for display: the whole-view watermark, or for a
    complete set of N shards the oldest of them; the later of these, else None.

    >>> effective_watermark("v", {"v|0/2": 50.0, "v|1/2": 40.0, "v": 30.0})
    40.0
    >>> effective_watermark("v", {"v|0/2": 50.0}) is None
    True
    """
    candidates = [fields[view]] if view in fields else []
    by_total: dict[int, dict[int, float]] = {}
    for name, value in fields.items():
        head, sep, spec = name.partition("|")
        if head == view and sep:
            i, n = parse_shard(spec)
            by_total.setdefault(n, {})[i] = value
    candidates += [min(got.values()) for n, got in by_total.items() if len(got) == n]
    return max(candidates) if candidates else None
