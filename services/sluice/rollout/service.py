"""The reconcile loop: one leader looks at every rollout each tick, gathers evidence when
a check is due, asks the pure planners what to do, and carries it out in a safe order.

Order of writes in one reconcile (so that a controller killed at any point loses nothing
and repeats or skips no step): the new status is stored first, then the route is changed
(with ``if_revision``: a concurrent hand change wins and is noticed), then the route's new
revision is stored. A new leader that finds a route newer than the status says, but
splitting traffic exactly as the status wants, takes it as its predecessor's write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis.exceptions import RedisError

from sluice.core.routes import Route, RouteWriter, RoutingStore, merge_upstreams, parse_route
from sluice.rollout import evidence, judge, plan
from sluice.rollout.backends import Evidence, Leader, ProviderError, RolloutSource
from sluice.rollout.metrics import Metrics
from sluice.rollout.resource import (
    ACTION_ANNOTATION,
    COMPARABLE,
    Analysis,
    Metric,
    MetricStatus,
    Rollout,
    Status,
    Verdict,
)

log = logging.getLogger(__name__)
ACTIVE = ("Progressing", "Inconclusive")


class RolloutController:
    def __init__(
        self,
        *,
        source: RolloutSource,
        leader: Leader,
        routes: RoutingStore,
        evidence: Evidence,
        metrics: Metrics,
        tick: float,
        settle: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.leader = leader
        self.routes = routes
        self.writer = RouteWriter(routes)
        self.evidence = evidence
        self.metrics = metrics
        self.tick = tick
        self.settle = settle
        self.clock = clock
        self.leading = False
        self.healthy = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rollout-controller")

    async def stop(self) -> None:
        if self._task is not None:
            while not self._task.done():  # a cancel can be lost in a racing wait (3.11)
                self._task.cancel()
                await asyncio.wait([self._task], timeout=1.0)
        with contextlib.suppress(Exception):
            await self.leader.release()
        self.leading = False

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                was = self.leading
                self.leading = await self.leader.acquire()
                self.metrics.leader.set(1 if self.leading else 0)
                if self.leading != was:
                    log.info("leading" if self.leading else "no longer leading")
                if self.leading:
                    await self.reconcile_all()
                self.healthy = True
                if failing:
                    log.info("rollout store and routes reachable again")
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or the API server away: hold, never judge
                self.healthy = False
                if not failing:
                    log.warning("cannot reconcile, holding every rollout: %s", exc)
                failing = True
            await asyncio.sleep(self.tick)

    async def reconcile_all(self) -> None:
        routes = await self.routes.load()
        for rollout in await self.source.list():
            try:
                await self.reconcile(rollout, routes.get(rollout.spec.model))
            except (RedisError, OSError):
                raise
            except Exception:
                log.exception("reconciling %s failed", rollout.name)

    async def reconcile(self, rollout: Rollout, route: Route | None) -> Status:
        """One look at one rollout; returns the status it stored."""
        now = self.clock()
        spec, before = rollout.spec, rollout.status
        st = before.model_copy(deep=True)
        events: list[tuple[str, str, str]] = []

        def take(outcome: plan.Outcome) -> None:
            nonlocal st
            st = outcome.status
            events.extend(outcome.events)

        if st.phase == "Pending" or (st.candidate, st.stable) != (spec.candidate, spec.stable):
            take(plan.start(spec, st, rollout.generation, now))
        st.observed_generation = rollout.generation
        route = self._with_upstreams(rollout, route)
        problem = self._route_problem(rollout, route)
        terminal = st.phase in ("Promoted", "Aborted")
        if problem and not terminal:
            if st.phase != "Degraded":
                out = plan.Outcome(st)
                out.move(now, "Degraded", "RouteNotUsable", problem)
                take(out)
        else:
            if st.phase == "Degraded":
                out = plan.Outcome(st)
                out.move(now, "Progressing", "RouteUsable", "the route is usable again")
                take(out)
            action = pending_action(rollout, st)
            if action is not None:
                take(plan.act(spec, st, action, now))
                if st.phase == "Progressing" and route is not None:
                    st.route_revision = route.revision  # a person took the wheel back
            if spec.paused and st.phase in ACTIVE:
                out = plan.Outcome(st)
                out.move(now, "Paused", "PausedBySpec", "spec.paused is true")
                st.paused_reason = "PausedBySpec"
                take(out)
            elif not spec.paused and st.paused_reason == "PausedBySpec":
                out = plan.Outcome(st)
                out.move(now, "Progressing", "Resumed", "spec.paused is false again")
                take(out)
            if st.phase in (*ACTIVE, "Paused") and route is not None:
                moved = plan.route_moved(st, route, plan.desired_route(spec, st, route))
                if moved and st.paused_reason != "RouteChangedByHand":
                    out = plan.Outcome(st)
                    why = f"{moved}; the controller leaves it alone (resume or retry)"
                    out.move(now, "Paused", "RouteChangedByHand", why)
                    st.paused_reason = "RouteChangedByHand"
                    take(out)
            if plan.check_due(spec, st, now):
                verdict = await self._check(rollout, st, now)
                self.metrics.checks.labels(spec.model, verdict).inc()
                take(plan.after_check(spec, st, verdict, now))
            if st.phase == "Progressing":
                take(plan.advance(spec, st, now))
        changed = st != before
        if changed:
            await self.source.save_status(rollout, st)
        if route is not None and not problem and st.paused_reason != "RouteChangedByHand":
            wanted = plan.desired_route(spec, st, route)
            ours = not st.route_revision or route.revision == st.route_revision
            if ours and route != wanted:
                written = await self.writer.put(spec.model, wanted, if_revision=route.revision)
                st.route_revision = written.revision
                self.metrics.route_writes.labels(spec.model).inc()
                await self.source.save_status(rollout, st)
            elif route.revision != st.route_revision and plan.same_policy(route, wanted):
                st.route_revision = route.revision  # our own write, its revision not stored
                await self.source.save_status(rollout, st)
        for kind, reason, message in events:
            log.log(logging.WARNING if kind == "Warning" else logging.INFO, message,
                    extra={"model": spec.model, "reason": reason, "phase": st.phase})  # fmt: skip
            await self.source.event(rollout, kind, reason, message)
        for entered in [t.phase for t in st.history[len(before.history) :]]:
            self.metrics.transitions.labels(spec.model, entered).inc()
            if entered == "Aborted":
                self.metrics.aborts.labels(spec.model).inc()
        self.metrics.show(rollout.model_copy(update={"status": st}))
        return st

    def _with_upstreams(self, rollout: Rollout, route: Route | None) -> Route | None:
        """The route with the versions the spec supplies added (the policy is kept)."""
        ups = rollout.spec.upstreams
        if not ups:
            return route
        stable = rollout.spec.stable
        seeded = parse_route(
            rollout.spec.model,
            {"upstreams": ups, "stable": stable if stable in ups else next(iter(ups))},
        )
        if route is None:
            return None if stable not in ups else seeded
        return merge_upstreams(route, seeded)

    @staticmethod
    def _route_problem(rollout: Rollout, route: Route | None) -> str | None:
        spec = rollout.spec
        if route is None:
            return (
                f"model {spec.model!r} has no route: set one (sluice route set) or give upstreams"
            )
        missing = [v for v in (spec.stable, spec.candidate) if v not in route.upstreams]
        if missing:
            return f"versions {', '.join(missing)} have no upstream in the route of {spec.model!r}"
        return None

    async def _check(self, rollout: Rollout, st: Status, now: float) -> Verdict:
        """Measure every metric of the active analysis; store the figures in ``st``."""
        spec = rollout.spec
        analysis, _ = plan.active_analysis(spec, st)
        assert analysis is not None
        end = now - self.settle
        # tallies are per whole second: the judged window takes the second ``end`` falls in
        # too (complete up to ``end``), else a check could judge traffic up to a second late;
        # the sequential test's contiguous totals take whole seconds only (below)
        window = await self.evidence.tallies(spec.model, end - analysis.span, int(end) + 1)
        if end > st.window_end:
            more = await self.evidence.tallies(spec.model, st.window_end, end)
            for role, version in (("candidate", spec.candidate), ("stable", spec.stable)):
                st.totals[role] = evidence.add(st.totals.get(role, {}), more.get(version, {}))
            st.window_end = float(int(end))
        drift: dict[str, Any] | None = None
        if any(m.builtin in evidence.DRIFT_BUILTINS for m in analysis.metrics):
            try:
                drift = await self.evidence.drift(spec.model, spec.candidate, spec.stable)
            except ProviderError as exc:
                drift = {"error": str(exc)}
        results = []
        for metric in analysis.metrics:
            try:
                results.append(await self._measure(rollout, st, analysis, metric, window, drift))
            except ProviderError as exc:
                results.append(MetricStatus(name=metric.name, condition=metric.condition or "",
                                            message=f"no value: {exc}"))  # fmt: skip
        st.metrics = results
        return judge.overall([m.verdict for m in results])

    async def _measure(
        self,
        rollout: Rollout,
        st: Status,
        analysis: Analysis,
        metric: Metric,
        window: dict[str, dict[str, float]],
        drift: dict[str, Any] | None,
    ) -> MetricStatus:
        spec = rollout.spec
        minimum = metric.min_samples or analysis.min_samples
        if metric.compare is not None:
            return self._compare(st, analysis, metric, minimum, drift)
        builtin = metric.builtin
        condition = metric.condition or ""
        if builtin in evidence.TALLY_BUILTINS:
            fig = evidence.tally_figure(
                builtin, window.get(spec.candidate, {}), window.get(spec.stable, {})
            )
        elif builtin in evidence.DRIFT_BUILTINS:
            if drift is None or "error" in drift:
                raise ProviderError((drift or {}).get("error", "no drift monitor answer"))
            fig = evidence.drift_figure(builtin, drift)
        else:
            provider = metric.provider
            assert provider is not None
            if provider.prometheus is not None:
                value = await self.evidence.prometheus(
                    provider.prometheus.address, provider.prometheus.query
                )
            else:
                assert provider.web is not None
                web = provider.web
                value = await self.evidence.web(
                    web.url, web.json_path, web.headers, web.timeout_seconds
                )
            # a provider says nothing of sample sizes: its value is its verdict
            fig = evidence.Figure(value, minimum, "" if value is not None else "no data")
        verdict = judge.threshold(condition, fig.value, fig.samples, minimum)
        message = fig.note
        if verdict == "inconclusive" and not message:
            short = fig.samples < minimum
            message = f"{fig.samples} samples, need {minimum}" if short else "no value"
        return MetricStatus(name=metric.name, value=fig.value, condition=condition,
                            verdict=verdict, samples=fig.samples, message=message)  # fmt: skip

    def _compare(
        self,
        st: Status,
        analysis: Analysis,
        metric: Metric,
        minimum: int,
        drift: dict[str, Any] | None,
    ) -> MetricStatus:
        builtin = metric.builtin or ""
        if builtin == "accuracy":
            if drift is None or "error" in drift:
                raise ProviderError((drift or {}).get("error", "no drift monitor answer"))
            cand = evidence.accuracy_arm(drift, "candidate")
            stab = evidence.accuracy_arm(drift, "stable")
        else:
            cand = evidence.arm(builtin, st.totals.get("candidate", {}))
            stab = evidence.arm(builtin, st.totals.get("stable", {}))
        higher = COMPARABLE[builtin] == "higher"
        seen = st.sequential.get(metric.name, {})
        result = judge.compare(
            cand, stab, margin=metric.margin, higher_is_worse=higher, alpha=analysis.alpha,
            minimum=minimum, before=(seen.get("p_worse", 1.0), seen.get("p_within", 1.0)),
        )  # fmt: skip
        st.sequential[metric.name] = {"p_worse": result.p_worse, "p_within": result.p_within}
        sign = "+" if higher else "-"
        condition = f"no worse than stable {sign} {metric.margin:g}"
        p_value = result.p_worse if result.verdict == "fail" else result.p_within
        message = {
            "pass": f"within the margin (p={result.p_within:.3g})",
            "fail": f"worse than stable by more than the margin (p={result.p_worse:.3g})",
            "inconclusive": (
                f"{int(cand.n)} vs {int(stab.n)} samples, need {minimum} each"
                if min(cand.n, stab.n) < minimum
                else "not enough evidence yet either way"
            ),
        }[result.verdict]
        return MetricStatus(name=metric.name, value=cand.mean, stable_value=stab.mean,
                            condition=condition, verdict=result.verdict, samples=int(cand.n),
                            message=message, p_value=p_value)  # fmt: skip

    async def ready_reason(self) -> str | None:
        return None if self.healthy else "the rollout store or the routes are unreachable"


def pending_action(rollout: Rollout, status: Status) -> plan.Action | None:
    """A person's request, from the resource's action annotation, unless already done."""
    raw = rollout.annotations.get(ACTION_ANNOTATION)
    if not raw:
        return None
    try:
        doc = orjson.loads(raw)
        name, action_id = doc["action"], str(doc["id"])
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring an unreadable %s annotation on %s", ACTION_ANNOTATION, rollout.name)
        return None
    if action_id == status.last_action_id or name not in plan.ACTIONS:
        return None
    weight = doc.get("weight")
    return plan.Action(name, action_id, int(weight) if isinstance(weight, int) else None)
