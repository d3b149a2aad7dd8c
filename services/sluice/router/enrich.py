"""Feature lookup for one request: what to look up, and how to fill the gaps. Pure.

The targeted versions (primary, fallback, shadow) may take different features; the router
looks up the union once, for every row's entity id, and fills only the cells the request
left empty: features given in the request win. A value that is not there or too old
(``NOT_FOUND``, ``OUTSIDE_MAX_AGE``, or ``NULL_VALUE`` for a feature that cannot be
missing), or a feature no view provides, follows the model's policy: ``reject`` (the
request fails with 422 naming the feature) or ``default`` (the training default from the
model card). Each such cell is counted by (feature, status, action). A lookup that fails
(the store down or slow) is our outage, a 503, under ``reject``; under ``default`` every
looked-up feature is ``UNAVAILABLE`` and gets its default like any other gap.

An entity id to look up must be one the feature store takes (``keys.entity_problem``: a
string of 1 to 1,024 characters or an integer): ``plan`` refuses any other with
:class:`~sluice.router.errors.InvalidEntity` (422) naming the request's field, before any
lookup, so a client's mistake never counts as a failed lookup.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sluice.core.routes import MissingPolicy
from sluice.feature_store.keys import entity_problem
from sluice.router.codec import MISSING, Frame
from sluice.router.errors import InvalidEntity

PRESENT, NULL_VALUE = "PRESENT", "NULL_VALUE"
NOT_IN_REQUEST = "NOT_IN_REQUEST"
"""Status of a missing feature that no feature view provides (only the request could)."""
UNAVAILABLE = "UNAVAILABLE"
"""Status of every looked-up feature when the lookup failed (the store is down or slow)."""


@dataclass(frozen=True, slots=True)
class VersionSchema:
    """What the router needs to know of one version to feed it."""

    features: tuple[str, ...]
    """Input names, in the model's order."""
    datatypes: Mapping[str, str] = field(default_factory=dict)
    """V2 datatype per input (for filled V2 tensors)."""
    entity_key: str | None = None
    refs: Mapping[str, str] = field(default_factory=dict)
    """Feature -> ``"view:feature"`` in the feature store."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Training defaults, for the ``default`` policy."""
    nullable: frozenset[str] = frozenset()
    """Features that may be sent as null."""
    classes: tuple[str, ...] | None = None
    task: str = "classification"
    """``classification`` or ``regression`` (answers one value per row)."""
    pending: frozenset[str] = frozenset()
    """Features whose feature-store refs could not be read yet (the store did not answer
    when the version was first used): their gaps count as a failed lookup, ``UNAVAILABLE``."""


@dataclass(frozen=True, slots=True)
class Plan:
    """One lookup: these refs for the entity ids of these rows."""

    entity_key: str
    refs: tuple[str, ...]
    rows: tuple[int, ...]
    ids: tuple[Any, ...]


Found = Mapping[str, tuple[Sequence[Any], Sequence[str]]]
"""ref -> (values, statuses), aligned with ``Plan.ids``."""


def unavailable(todo: Plan) -> Found:
    """What a failed lookup found: every ref ``UNAVAILABLE`` for every id.

    >>> unavailable(Plan("id", ("v:a",), (0, 2), ("c1", "c3")))
    {'v:a': ([None, None], ['UNAVAILABLE', 'UNAVAILABLE'])}
    """
    n = len(todo.ids)
    return {ref: ([None] * n, [UNAVAILABLE] * n) for ref in todo.refs}


class MissingFeatures(ValueError):
    """A feature is missing or stale and the policy is ``reject``; ``counts`` as in fill."""

    def __init__(self, message: str, counts: Counter[tuple[str, str, str]]) -> None:
        super().__init__(message)
        self.counts = counts


def pending_gaps(frame: Frame, schemas: Sequence[VersionSchema]) -> list[str]:
    """The request's gaps whose refs are not known yet (:attr:`VersionSchema.pending`)."""
    return [
        name
        for schema in schemas
        if schema.pending
        for name in frame.gaps(schema.features)
        if name in schema.pending
    ]


def entity_key(schemas: Sequence[VersionSchema]) -> str | None:
    for schema in schemas:
        if schema.entity_key:
            return schema.entity_key
    return None


def routing_key(frame: Frame, key: str | None) -> str | None:
    """Row 0's entity id, as text, when the request has one.

    >>> from sluice.router.codec import parse_v1
    >>> routing_key(parse_v1({"instances": [{"customer_id": 7}]}, 1), "customer_id")
    '7'
    """
    if key is None:
        return None
    col = frame.columns.get(key)
    if not col or col[0] is MISSING or col[0] is None:
        return None
    return str(col[0])


def plan(frame: Frame, schemas: Sequence[VersionSchema]) -> Plan | None:
    """The lookup this request needs, or None (everything given, or nothing to look up by).

    >>> from sluice.router.codec import parse_v1
    >>> s = VersionSchema(("a", "b"), entity_key="id", refs={"a": "v:a", "b": "v:b"})
    >>> f = parse_v1({"instances": [{"id": "c1", "a": 1.0}, {"id": "c2"}]}, 8)
    >>> plan(f, [s])
    Plan(entity_key='id', refs=('v:a', 'v:b'), rows=(0, 1), ids=('c1', 'c2'))
    >>> plan(parse_v1({"instances": [{"id": "c1"}, {"id": ""}]}, 8), [s])
    Traceback (most recent call last):
    sluice.router.errors.InvalidEntity: instances[1].id: must be 1 to 1024 characters, got 0
    """
    key = entity_key(schemas)
    if key is None or key not in frame.columns:
        return None
    refs: dict[str, None] = {}
    rows: set[int] = set()
    for schema in schemas:
        for name, holes in frame.gaps(schema.features).items():
            ref = schema.refs.get(name)
            if ref is not None:
                refs[ref] = None
                rows.update(holes)
    ids = frame.columns[key]
    usable = tuple(i for i in sorted(rows) if ids[i] is not MISSING and ids[i] is not None)
    if not refs or not usable:
        return None
    for row in usable:
        problem = entity_problem(ids[row])
        if problem is not None:
            raise InvalidEntity(f"{field_name(frame, key, row)}: {problem}")
    return Plan(key, tuple(refs), usable, tuple(ids[i] for i in usable))


def field_name(frame: Frame, name: str, row: int) -> str:
    """Where row ``row`` of ``name`` is in the client's request.

    >>> from sluice.router.codec import parse_v1
    >>> field_name(parse_v1({"instances": [{"id": 1}]}, 1), "id", 0)
    'instances[0].id'
    """
    if frame.protocol == "v1":
        return f"instances[{row}].{name}"
    return f"input {name!r} row {row}"


_STORE_FIELD = re.compile(r"^entities\.[^\[:]+\[(\d+)\]")


def refusal_message(message: str, todo: Plan, frame: Frame) -> str:
    """The feature store's refusal of a lookup, told in the client's terms: its field
    ``entities.<key>[i]`` (i-th id looked up) becomes the request's field.

    >>> from sluice.router.codec import parse_v1
    >>> f = parse_v1({"instances": [{"id": "a"}, {"id": 7}]}, 8)
    >>> p = Plan("id", ("v:a",), (0, 1), ("a", 7))
    >>> refusal_message("entities.id[1]: expected a string, got int 7", p, f)
    'instances[1].id: expected a string, got int 7'
    """
    found = _STORE_FIELD.match(message)
    if found is None or int(found[1]) >= len(todo.rows):
        return f"the feature store refused the entity ids: {message}"
    return field_name(frame, todo.entity_key, todo.rows[int(found[1])]) + message[found.end() :]


def fill(
    frame: Frame,
    schemas: Sequence[VersionSchema],
    policy: MissingPolicy,
    lookup: tuple[Plan, Found] | None = None,
) -> Counter[tuple[str, str, str]]:
    """Fill every gap the targeted versions have; return counts by (feature, status, action).

    Raises MissingFeatures (naming the feature and the row) under the ``reject`` policy.

    >>> from sluice.router.codec import parse_v1
    >>> s = VersionSchema(("a", "b"), entity_key="id", refs={"a": "v:a", "b": "v:b"},
    ...                   defaults={"a": 0.5, "b": 2.0})
    >>> f = parse_v1({"instances": [{"id": "c1", "a": 1.0}]}, 8)
    >>> p = Plan("id", ("v:b",), (0,), ("c1",))
    >>> dict(fill(f, [s], "default", (p, {"v:b": ([None], ["NOT_FOUND"])})))
    {('b', 'NOT_FOUND', 'default'): 1}
    >>> f.columns["a"], f.columns["b"]
    ([1.0], [2.0])
    """
    counts: Counter[tuple[str, str, str]] = Counter()
    statuses: dict[tuple[str, int], str] = {}
    if lookup is not None:
        found_plan, found = lookup
        where = {row: j for j, row in enumerate(found_plan.rows)}
        for schema in schemas:
            for name, holes in frame.gaps(schema.features).items():
                ref = schema.refs.get(name)
                if ref is None or ref not in found:
                    continue
                values, status = found[ref]
                for row in holes:
                    j = where.get(row)
                    if j is None:
                        continue
                    if status[j] == PRESENT or (
                        status[j] == NULL_VALUE and name in schema.nullable
                    ):
                        frame.fill(name, row, values[j])
                    else:
                        statuses[(name, row)] = status[j]
    for schema in schemas:
        for name, holes in frame.gaps(schema.features).items():
            for row in holes:
                status = statuses.get(
                    (name, row), UNAVAILABLE if name in schema.pending else NOT_IN_REQUEST
                )
                default = schema.defaults.get(name)
                if policy == "reject" or default is None:
                    counts[(name, status, "reject")] += 1
                    raise MissingFeatures(
                        f"feature {name!r} of row {row}{_entity(frame, schemas, row)} is "
                        f"{status.lower().replace('_', ' ')}"
                        + ("" if policy == "reject" else " and has no training default"),
                        counts,
                    )
                frame.fill(name, row, default)
                counts[(name, status, "default")] += 1
    return counts


def _entity(frame: Frame, schemas: Sequence[VersionSchema], row: int) -> str:
    """`` (customer_id='C1')`` for a row that names its entity, else nothing."""
    key = entity_key(schemas)
    value = frame.columns[key][row] if key is not None and key in frame.columns else None
    return "" if value is None or value is MISSING else f" ({key}={value!r})"
