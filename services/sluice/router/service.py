"""One request through the interfaces: route, look features up, call, fall back, log.

The routing table is one immutable snapshot, read once at the start of a request, so a
change lands between requests. The user's answer never waits on the shadow copy or the
prediction log: both are queued after the primary answered, bounded, dropped and counted
when full.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from sluice.core.errors import InvalidInput, MalformedJson, PayloadTooLarge, Unavailable
from sluice.core.health import Check, Readiness
from sluice.core.predlog import PredictionRecord
from sluice.core.routes import MissingPolicy, Route, RoutingStore, RoutingTable, parse_route
from sluice.core.tally import Tally
from sluice.router.backends import (
    HEADER_LENGTH,
    FeatureLookup,
    LookupRefused,
    PredictionLog,
    Reply,
    SchemaSource,
    UpstreamFailure,
)
from sluice.router.calls import Upstreams, UpstreamStatus
from sluice.router.codec import CodecError, Frame, Protocol, parse_v1, parse_v2, read_answer
from sluice.router.compare import Answer
from sluice.router.enrich import (
    MissingFeatures,
    VersionSchema,
    fill,
    pending_gaps,
    plan,
    refusal_message,
    routing_key,
    unavailable,
)
from sluice.router.errors import (
    BadGateway,
    GatewayTimeout,
    InvalidEntity,
    LookupUnavailable,
    MissingFeature,
    ModelNotRouted,
    TableNotLoaded,
    VersionNotRouted,
)
from sluice.router.metrics import Metrics
from sluice.router.mirror import Mirror, ShadowJob
from sluice.router.ratelimit import Limiter
from sluice.router.schemas import SchemaCache
from sluice.router.settings import Settings
from sluice.router.split import Decision, bucket, decide
from sluice.router.watch import TableWatcher

log = logging.getLogger(__name__)

FIRST_LOAD_SECONDS = 5.0
"""How long start waits for the routing table before serving without it (Redis away)."""


@dataclass(frozen=True, slots=True)
class Inference:
    """One inference request as the API hands it over."""

    model: str
    protocol: Protocol
    body: bytes
    request_id: str
    pin: str | None = None
    """A version asked for by ``x-sluice-version`` or the V2 versioned path."""
    key: str | None = None
    """The ``x-sluice-key`` header."""
    binary_header: str | None = None
    """V2 binary tensor data: the JSON part's length (forwarded as is, no lookup)."""


class RouterService:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        store: RoutingStore,
        upstreams: Upstreams,
        schemas: SchemaSource,
        lookup: FeatureLookup | None,
        predlog: PredictionLog,
        mirror: Mirror,
        tally: Tally,
        checks: Sequence[Check] = (),
        limiter: Limiter | None = None,
    ) -> None:
        self.settings = settings
        self.tally = tally
        self.metrics = metrics
        self.upstreams = upstreams
        self.lookup = lookup
        self.predlog = predlog
        self.mirror = mirror
        self.limiter = limiter
        """The shared per-client rate limit of inference calls (None: no limit)."""
        self.table = RoutingTable()
        seeds = {m: parse_route(m, spec) for m, spec in settings.routes.items()}
        self.watcher = TableWatcher(
            store, seeds, settings.refresh_seconds, self.apply, on_lost=self._table_lost
        )
        self.readiness = Readiness([Check("routing_table", self._table_reason), *checks])
        self._schemas = SchemaCache(schemas, settings.schema_retry_seconds)

    async def start(self) -> None:
        self.predlog.start()
        self.mirror.start()
        self.watcher.start()
        # serve no request before the table is read: a restarted router answers nothing
        # rather than 404 for models it simply has not read yet (the wait is bounded: with
        # Redis away it starts, not ready, and answers 503 until the table comes)
        await self.watcher.wait_loaded(FIRST_LOAD_SECONDS)

    async def stop(self) -> None:
        await self.watcher.stop()
        await self.mirror.stop()
        await self.predlog.close()

    async def ready_reason(self) -> str | None:
        """None when ready (the table loaded, Redis answering), else why not."""
        return await self.readiness.reason()

    async def _table_reason(self) -> str | None:
        return None if self.watcher.loaded else "not loaded from Redis yet"

    def table_detail(self) -> dict[str, Any]:
        """What /readyz shows about the routing table, a loss of it included."""
        doc: dict[str, Any] = {"routes": len(self.table.routes), "loaded": self.watcher.loaded}
        loss = self.watcher.loss
        if loss is not None:
            doc["lost"] = {
                "at": loss.at,
                "reseeded": loss.reseeded,
                "reseeded_routes": loss.routes,
                "reseeded_revision": loss.floor,
            }
        return {"routing_table": doc}

    def _table_lost(self, reseeded: bool) -> None:
        if not reseeded:
            self.metrics.table_lost.inc()
        self.metrics.table_from_memory.set(0 if reseeded else 1)

    def apply(self, routes: Mapping[str, Route]) -> None:
        """Swap in a new table, whole; show the changed routes' weights, drop the series
        of routes and versions that went."""
        old, self.table = self.table, RoutingTable(routes)
        for model, was in old.routes.items():
            now = routes.get(model)
            gone = was.upstreams.keys() - (now.upstreams.keys() if now else set())
            for version in gone:
                self.upstreams.reset(model, version)
            self.metrics.forget(model, gone, route=now is None)
            if now is None:
                log.info("route removed", extra={"model": model})
        for model, route in routes.items():
            before = old.get(model)
            for version, upstream in route.upstreams.items():
                if before is not None and before.upstreams.get(version) != upstream:
                    self.upstreams.reset(model, version)  # new replicas, a fresh breaker
            if before is None or before.revision != route.revision:
                mirror = {route.candidate: route.mirror / 100} if route.candidate else {}
                self.metrics.route(model, route.revision, route.weights(), mirror)
                log.info("route applied", extra={"model": model, "revision": route.revision})

    async def predict(self, req: Inference) -> tuple[Reply, str]:
        """The answer and the version that gave it."""
        route = self._route(req.model, req.pin)
        if req.binary_header is not None:
            return await self._passthrough(route, req)
        frame = self._parse(req)
        stable = await self.schema(route, route.stable)
        key = routing_key(frame, stable.entity_key) or req.key or req.request_id
        decision = self._gate(route, decide(route, bucket(key), req.pin))
        try:
            schemas = {decision.primary: await self.schema(route, decision.primary)}
        except Unavailable:
            if decision.fallback is None:
                raise
            self._fell_back(route.model, decision.primary, "metadata")
            decision = Decision(decision.fallback)
            schemas = {decision.primary: stable}
        if decision.fallback is not None:
            schemas[decision.fallback] = stable
        shadow = await self._shadow_schema(route, decision)
        await self._enrich(route, frame, list(schemas.values()), shadow)
        fallback = decision.fallback
        # the primary answers; if it fails and there is a fallback (stable behind a
        # candidate), the fallback answers instead; the loop ends in a break or a return
        for version in (decision.primary,) if fallback is None else (decision.primary, fallback):
            try:
                reply, seconds = await self.upstreams.infer(
                    route, version, frame, schemas[version], "primary"
                )
                break
            except (UpstreamFailure, UpstreamStatus) as exc:
                self.tally.failed(route.model, version)
                if fallback is None or version == fallback:
                    return _gateway_reply(route.model, version, exc), version
                self.metrics.child(self.metrics.fallbacks, route.model, version).inc()
        if reply.status != 200:
            self.tally.client_error(route.model, version)
        else:
            # after the answer is written (the rest of this step writes it): reading the
            # model's answer, the log record, the tally and the shadow copy cost the caller
            # no latency
            asyncio.get_running_loop().call_soon(
                self._answered, req, route, frame, version, schemas[version], reply, seconds, shadow
            )
        return reply, version

    def _answered(
        self,
        req: Inference,
        route: Route,
        frame: Frame,
        version: str,
        schema: VersionSchema,
        reply: Reply,
        seconds: float,
        shadow: tuple[str, VersionSchema] | None,
    ) -> None:
        """Log (a stable-only route's by its sample rate), count and mirror a request
        ``version`` answered (200); an answer that cannot be read is counted, not logged."""
        try:
            try:
                labels, scores = read_answer(frame.protocol, reply.body, schema.classes)
            except CodecError:
                self.metrics.child(self.metrics.predlog_dropped, req.model, "unreadable").inc()
                self.tally.answered(route.model, version, seconds, ())
                return
            self.tally.answered(route.model, version, seconds, scores)
            rate = self.settings.predlog_sample
            if route.predlog_sample is not None:
                rate = route.predlog_sample
            if route.candidate is None and rate < 1.0 and random.random() >= rate:
                self.metrics.child(self.metrics.predlog_sampled_out, req.model).inc()
            else:
                seen = frame.seen(schema.features)
                record = PredictionRecord(req.request_id, time.time(), version, "primary", seen,
                                          labels, scores, seconds * 1000)  # fmt: skip
                self.predlog.write(req.model, record)
            if shadow is not None:
                candidate, theirs = shadow
                answer = Answer(labels, scores, seconds)
                job = ShadowJob(
                    route, version, candidate, frame, answer, req.request_id, theirs, schema
                )
                self.mirror.submit(job)
        except Exception:  # the caller has its answer: nothing to turn into a 500
            log.exception("recording an answer of %s version %s failed", route.model, version)

    async def explain(self, req: Inference) -> tuple[Reply, str]:
        """``:explain`` by the version that would answer this request as a ``:predict`` (the
        same split, pin and feature lookup): the answer and that version. Not logged, not
        mirrored, not counted in the latency metrics (an explanation takes seconds)."""
        from sluice.router.codec import v1_body  # here: keeps this method self-contained

        route = self._route(req.model, req.pin)
        frame = self._parse(req)
        stable = await self.schema(route, route.stable)
        key = routing_key(frame, stable.entity_key) or req.key or req.request_id
        version = self._gate(route, decide(route, bucket(key), req.pin)).primary
        schema = await self.schema(route, version)
        await self._enrich(route, frame, [schema], None)
        body = v1_body(frame, schema.features)
        path = f"/v1/models/{route.model}:explain"
        failure = None
        for url in route.upstreams[version].urls:
            try:
                timeout = self.settings.explain_timeout_seconds
                reply = await self.upstreams.client.request(
                    "POST", url + path, body, timeout, {"content-type": "application/json"}
                )
                return reply, version
            except UpstreamFailure as exc:
                failure = exc
        log.warning("version %s of %s did not explain: %s", version, route.model, failure)
        raise BadGateway(
            f"version {version!r} of {route.model!r} did not explain (the router's log has the "
            "detail)"
        )

    async def proxy_get(self, model: str, version: str | None, path: str) -> tuple[Reply, str]:
        """A metadata or readiness GET, answered by the version's (default: stable's) server."""
        route = self._route(model, version)
        version = version or route.stable
        return await self.upstreams.get(route, version, path), version

    def _route(self, model: str, pin: str | None) -> Route:
        route = self.table.get(model)
        if route is None and not self.watcher.loaded:
            raise TableNotLoaded("the routing table is not loaded from Redis yet; retry")
        if route is None:
            raise ModelNotRouted(f"model {model!r} has no route (see `sluice route set`)")
        if pin is not None and pin not in route.upstreams:
            known = ", ".join(sorted(route.upstreams))
            raise VersionNotRouted(f"version {pin!r} of {model!r} is not routed ({known})")
        return route

    def _parse(self, req: Inference) -> Frame:
        try:
            doc = orjson.loads(req.body)
            limit = self.settings.max_batch_size
            parse = parse_v1 if req.protocol == "v1" else parse_v2
            return parse(doc, limit, req.body)
        except orjson.JSONDecodeError as exc:
            raise MalformedJson(f"the body is not valid JSON: {exc}") from None
        except CodecError as exc:
            if "over the limit" in str(exc):
                raise PayloadTooLarge(str(exc)) from None
            raise InvalidInput(str(exc)) from None

    def _gate(self, route: Route, decision: Decision) -> Decision:
        """Skip a candidate whose breaker is open: stable answers (counted)."""
        if decision.fallback is None or self.upstreams.allow(route.model, decision.primary):
            return decision
        self._fell_back(route.model, decision.primary, "circuit_open")
        return Decision(decision.fallback)

    def _fell_back(self, model: str, version: str, reason: str) -> None:
        """Count a candidate that stable had to stand in for; ``reason`` as in the metric."""
        if reason == "metadata":
            self.upstreams.record(model, version, ok=False)
        self.tally.failed(model, version)
        self.metrics.failed(model, version, "primary", reason)
        self.metrics.child(self.metrics.fallbacks, model, version).inc()

    async def _shadow_schema(
        self, route: Route, decision: Decision
    ) -> tuple[str, VersionSchema] | None:
        version = decision.shadow
        if version is None:
            return None
        if not self.mirror.has_room():
            self.mirror.dropped(route.model, "queue_full")
            return None
        if not self.upstreams.allow(route.model, version):
            self.mirror.dropped(route.model, "circuit_open")
            return None
        try:
            return version, await self.schema(route, version)
        except Unavailable:
            self.mirror.dropped(route.model, "metadata")
            return None

    async def schema(self, route: Route, version: str) -> VersionSchema:
        """What ``version`` takes; read from its model server once (versions are immutable)."""
        return await self._schemas.get(route, version)

    async def _enrich(
        self,
        route: Route,
        frame: Frame,
        schemas: list[VersionSchema],
        shadow: tuple[str, VersionSchema] | None,
    ) -> None:
        """One lookup for every targeted version; the shadow's gaps never fail the request."""
        everyone = [*schemas, shadow[1]] if shadow else schemas
        todo = plan(frame, everyone) if self.lookup is not None else None
        lookup, failure = None, None
        if any(s.pending for s in schemas) and (unknown := pending_gaps(frame, schemas)):
            reason = OSError(f"the refs of {', '.join(sorted(set(unknown)))} are not known yet")
            failure = self._lookup_failed(reason, 0, route.on_missing)
            if route.on_missing == "reject":
                raise failure
        if todo is not None and self.lookup is not None:
            started = time.perf_counter()
            timeout = self.settings.lookup_timeout_seconds
            try:
                # asyncio.timeout, not wait_for: no extra task per lookup (Python 3.11)
                async with asyncio.timeout(timeout):
                    found = await self.lookup.lookup(todo.refs, todo.entity_key, todo.ids)
            except LookupRefused as exc:  # the client's ids: its 4xx, not our failure
                message = refusal_message(exc.message, todo, frame)
                if exc.status == 413:
                    raise PayloadTooLarge(message) from None
                raise InvalidEntity(message) from None
            except Exception as exc:
                # one failed lookup per request, counted once (pending refs may have been)
                failure = failure or self._lookup_failed(exc, timeout, route.on_missing)
                if route.on_missing == "reject":
                    raise failure from None
                found = unavailable(todo)  # the policy fills them: answered all the same
            finally:
                self.metrics.lookup_duration.observe(time.perf_counter() - started)
            lookup = (todo, found)
        try:
            self._count_gaps(route.model, fill(frame, schemas, route.on_missing, lookup))
        except MissingFeatures as exc:
            self._count_gaps(route.model, exc.counts)
            if failure is not None:  # a feature without a default: our outage all the same
                raise failure from None
            raise MissingFeature(str(exc)) from None

    def _lookup_failed(
        self, exc: Exception, timeout: float, policy: MissingPolicy
    ) -> LookupUnavailable:
        """Count and log a lookup that failed; the client's error says what happened, the
        log says where (addresses, the feature store's own words)."""
        self.metrics.lookup_errors.inc()
        then = "filling training defaults" if policy == "default" else "refusing the request"
        log.warning("feature lookup failed, %s: %s: %s", then, type(exc).__name__, exc)
        if isinstance(exc, TimeoutError):
            return LookupUnavailable(
                f"feature lookup failed: the feature store did not answer within {timeout}s"
            )
        return LookupUnavailable(
            "feature lookup failed: the feature store is unavailable "
            "(the router's log has the detail under this request's x-request-id)"
        )

    def _count_gaps(self, model: str, counts: Mapping[tuple[str, str, str], int]) -> None:
        for (feature, status, action), n in counts.items():
            self.metrics.child(self.metrics.feature_gaps, model, feature, status, action).inc(n)

    async def _passthrough(self, route: Route, req: Inference) -> tuple[Reply, str]:
        """V2 binary tensor data: routed by key, forwarded as is, not enriched or logged."""
        decision = self._gate(route, decide(route, bucket(req.key or req.request_id), req.pin))
        headers = {
            "content-type": "application/octet-stream",
            HEADER_LENGTH: req.binary_header or "0",
        }
        for version in (decision.primary, decision.fallback):
            if version is None:
                break
            path = f"/v2/models/{route.model}/versions/{version}/infer"
            try:
                reply, seconds = await self.upstreams.send(
                    route, version, path, req.body, "primary", headers
                )
                if reply.status == 200:
                    self.tally.answered(route.model, version, seconds, ())
                else:
                    self.tally.client_error(route.model, version)
                return reply, version
            except (UpstreamFailure, UpstreamStatus) as exc:
                self.tally.failed(route.model, version)
                if decision.fallback is None or version == decision.fallback:
                    return _gateway_reply(route.model, version, exc), version
                self.metrics.child(self.metrics.fallbacks, route.model, version).inc()
        raise AssertionError("unreachable")


def _gateway_reply(model: str, version: str, exc: Exception) -> Reply:
    """What the user gets when the only version to ask failed: its own 5xx, or 502/504."""
    if isinstance(exc, UpstreamStatus):
        return exc.reply
    if isinstance(exc, UpstreamFailure) and exc.reason == "timeout":
        raise GatewayTimeout(f"version {version!r} of {model!r} did not answer in time")
    if isinstance(exc, UpstreamFailure) and exc.reason == "too_large":
        raise BadGateway(
            f"version {version!r} of {model!r} answered more than the router takes: "
            f"{exc.detail} (SLUICE_ROUTER_MAX_RESPONSE_BYTES)"
        )
    log.warning("version %s of %s cannot be reached: %s", version, model, exc)
    raise BadGateway(
        f"version {version!r} of {model!r} cannot be reached (the router's log has the detail)"
    )
