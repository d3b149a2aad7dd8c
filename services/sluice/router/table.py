"""The routing table: per model, each version's upstream URLs and the current policy.

Pure: plain values in, a validated :class:`Route` (or a :class:`TableError` naming what is
wrong) out. The table is stored in Redis by ``backends.RedisRoutingStore``; a router holds
one immutable :class:`RoutingTable` snapshot and swaps it whole, so a change takes effect
between requests, never in the middle of one.

Modes, with ``stable`` the version that answers by default:

- no mode: every request goes to ``stable``.
- ``canary``: ``candidate`` answers the sticky buckets below ``weight`` percent; optionally
  ``mirror_percent`` of the traffic stable answers is also copied to the candidate.
- ``shadow``: ``stable`` answers; ``candidate`` gets a copy of ``mirror_percent`` (default
  all) of the requests and its answers are only compared.
- ``bluegreen``: ``stable`` is the active colour and takes all traffic; ``candidate`` is
  the preview, reachable only with the ``x-sluice-version`` header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Mode = Literal["canary", "shadow", "bluegreen"]
MissingPolicy = Literal["reject", "default"]

# The registry's rule for model and version names (sluice.core.registry.NAME_PATTERN).
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class TableError(ValueError):
    """A route the table refuses; the message says why. Nothing was changed."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Upstream(_Frozen):
    """Where one version is served."""

    urls: tuple[str, ...]
    """Base URLs of the version's model servers (replicas, or one Kubernetes Service)."""
    timeout_seconds: float | None = Field(default=None, gt=0, le=300)
    """Per-call timeout for this version; the router's default when unset."""


class Route(_Frozen):
    """One model's versions and the policy that splits its traffic between them."""

    model: str
    upstreams: dict[str, Upstream]
    stable: str
    candidate: str | None = None
    mode: Mode | None = None
    weight: int = Field(default=0, ge=0, le=100)
    """Canary: percent of traffic (sticky buckets) the candidate answers."""
    mirror_percent: int | None = Field(default=None, ge=0, le=100)
    """Percent of traffic copied to the candidate (shadow: default 100; canary: default 0)."""
    on_missing: MissingPolicy = "reject"
    """A feature missing or stale after lookup: refuse the request (422) or fill the
    training default. Counted either way."""
    revision: int = 0
    """Set by the store: increases by one with every accepted change."""
    updated_at: float = 0.0
    """Unix seconds of the last accepted change (set by the store)."""

    @property
    def mirror(self) -> int:
        """The effective mirror percent.

        >>> Route(model="m", upstreams={}, stable="a", mode="shadow").mirror
        100
        """
        if self.mirror_percent is not None:
            return self.mirror_percent
        return 100 if self.mode == "shadow" else 0

    def weights(self) -> dict[str, float]:
        """Share of answered traffic per version (0..1): what the weight gauges show.

        >>> r = Route(model="m", upstreams={}, stable="a", candidate="b", mode="canary", weight=30)
        >>> r.weights()
        {'a': 0.7, 'b': 0.3}
        """
        shares = dict.fromkeys(self.upstreams, 0.0)
        share = self.weight / 100 if self.mode == "canary" and self.candidate else 0.0
        shares[self.stable] = round(1.0 - share, 6)
        if self.candidate:
            shares[self.candidate] = share
        return shares


def parse_route(model: str, data: Mapping[str, Any]) -> Route:
    """A validated route from JSON-like ``data`` (the admin API's body, a settings entry).

    >>> parse_route("churn", {"upstreams": {"v1": {"urls": ["http://a:8000"]}}, "stable": "v1"})
    Route(model='churn', upstreams={'v1': Upstream(urls=('http://a:8000',), ...
    """
    body = {k: v for k, v in data.items() if k not in ("revision", "updated_at")}
    body["model"] = model
    ups = body.get("upstreams")
    if isinstance(ups, Mapping):
        body["upstreams"] = {v: _upstream(u) for v, u in ups.items()}
    try:
        route = Route.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'route'}: {err['msg']}"
            for err in exc.errors()
        )
        raise TableError(f"route for {model!r} is not valid: {problems}") from None
    return check_route(route)


def _upstream(value: Any) -> Any:
    """Accept a bare URL or a list of URLs as shorthand for ``{"urls": [...]}``."""
    if isinstance(value, str):
        return {"urls": [value]}
    if isinstance(value, list):
        return {"urls": value}
    return value


def check_route(route: Route) -> Route:
    """Refuse a route that could not be served as written; return it normalised."""
    name = route.model
    if not NAME.fullmatch(name):
        raise TableError(f"model name {name!r} is not allowed (1-63 of a-z 0-9 . _ -)")
    if not route.upstreams:
        raise TableError(f"route for {name!r} has no upstreams")
    clean: dict[str, Upstream] = {}
    for version, up in route.upstreams.items():
        if not NAME.fullmatch(version):
            raise TableError(f"version name {version!r} is not allowed (1-63 of a-z 0-9 . _ -)")
        if not up.urls:
            raise TableError(f"version {version!r} of {name!r} has no upstream URL")
        for url in up.urls:
            if not url.startswith(("http://", "https://")) or len(url) < 10:
                raise TableError(f"upstream of {version!r} is not an http(s) URL: {url!r}")
        clean[version] = up.model_copy(update={"urls": tuple(u.rstrip("/") for u in up.urls)})
    known = ", ".join(sorted(clean))
    if route.stable not in clean:
        raise TableError(f"stable version {route.stable!r} has no upstream (known: {known})")
    if route.candidate is not None:
        if route.candidate not in clean:
            raise TableError(
                f"candidate version {route.candidate!r} has no upstream (known: {known})"
            )
        if route.candidate == route.stable:
            raise TableError(f"candidate and stable are both {route.stable!r}")
        if route.mode is None:
            raise TableError("a candidate needs a mode: canary, shadow or bluegreen")
    elif route.mode is not None:
        raise TableError(f"mode {route.mode!r} needs a candidate version")
    if route.weight and route.mode != "canary":
        raise TableError(f"weight {route.weight} applies to canary mode only")
    if route.mirror_percent and route.mode not in ("canary", "shadow"):
        raise TableError("mirror_percent applies to canary and shadow modes only")
    return route.model_copy(update={"upstreams": clean})


def merge_upstreams(current: Route, seeded: Route) -> Route:
    """Add the versions ``seeded`` knows and ``current`` lacks; the policy is kept.

    What a router does at start-up with the routes from its settings (the chart's values):
    an operator's later changes win, new versions become reachable.
    """
    extra = {v: u for v, u in seeded.upstreams.items() if v not in current.upstreams}
    if not extra:
        return current
    return current.model_copy(update={"upstreams": {**current.upstreams, **extra}})


class RoutingTable:
    """An immutable snapshot of every model's route."""

    __slots__ = ("routes",)

    def __init__(self, routes: Mapping[str, Route] | None = None) -> None:
        self.routes: Mapping[str, Route] = dict(routes or {})

    def get(self, model: str) -> Route | None:
        return self.routes.get(model)

    def replace(self, route: Route) -> RoutingTable:
        return RoutingTable({**self.routes, route.model: route})

    def without(self, model: str) -> RoutingTable:
        return RoutingTable({m: r for m, r in self.routes.items() if m != model})
