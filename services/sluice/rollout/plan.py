"""What a rollout does next, given its spec, its status, the last check and the clock.
Pure: the reconcile loop (``service.py``) gathers the facts, calls these functions and
carries out what they return (a route to write, a status to store, events to emit).

Stages and the route each one wants (``stable``/``candidate`` as the spec names them):

=================  ==============================================================
``canary``         mode canary, the candidate answers ``weight`` % (sticky), and
                   ``mirror`` % of stable's traffic is copied to it
``shadow``         mode shadow: stable answers, ``mirror`` % is copied and compared
``preview``        blue/green before the switch: stable active, candidate reachable
                   only with the ``x-sluice-version`` header
``postPromotion``  blue/green after the switch: the candidate is active, the old
                   colour stays routable (and instantly restorable)
Promoted           the candidate is stable, no mode
Aborted            stable alone, no mode: candidate weight 0 and mirror 0 in one change
=================  ==============================================================

A step is left only on evidence: with an analysis configured, a timed pause ends when its
time is up *and* the latest check passed; the last step promotes only after a passing
check. Checks that cannot decide (too few samples, no data) never move a rollout forward
and never abort it: the rollout is ``Inconclusive`` (it holds its step and keeps checking)
until a check decides, and ``inconclusiveLimit`` of them in a row pause it for a person.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from sluice.core.routes import Route
from sluice.rollout.resource import (
    Analysis,
    Condition,
    Phase,
    Spec,
    Status,
    Transition,
    Verdict,
)

HISTORY = 20
ActionName = Literal[
    "promote", "promote-full", "abort", "pause", "resume", "retry", "set-weight",
    "skip-analysis",
]  # fmt: skip
ACTIONS: tuple[str, ...] = ActionName.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Action:
    name: ActionName
    id: str = ""
    weight: int | None = None


@dataclass
class Outcome:
    """What to carry out: the new status, events (type, reason, message)."""

    status: Status
    events: list[tuple[str, str, str]] = field(default_factory=list)

    def move(self, now: float, phase: Phase, reason: str, message: str) -> None:
        """Enter ``phase`` (recorded in history and as an event when it changes)."""
        st = self.status
        changed = st.phase != phase
        st.phase, st.message = phase, message
        if phase != "Paused":
            st.paused_reason = ""
        if changed:
            entry = Transition(at=now, phase=phase, step=st.step, reason=reason, message=message)
            st.history = [*st.history, entry][-HISTORY:]
            kind = (
                "Warning"
                if phase in ("Aborted", "Degraded") or reason == "TooLittleEvidence"
                else "Normal"
            )
            self.events.append((kind, reason, message))
            st.conditions = conditions(st.conditions, phase, reason, message, now)

    def note(self, reason: str, message: str) -> None:
        self.status.message = message
        self.events.append(("Normal", reason, message))


def conditions(
    current: list[Condition], phase: Phase, reason: str, message: str, now: float
) -> list[Condition]:
    """The status conditions after entering ``phase``, as Kubernetes tools read them:
    ``Progressing`` (True while traffic moves or checks run), ``Paused`` (True while a
    person is needed) and ``Healthy`` (False once aborted or degraded). A condition's
    ``lastTransitionTime`` changes only when its status does.

    >>> [(c.type, c.status) for c in conditions([], "Paused", "PausedByStep", "", 0.0)]
    [('Progressing', 'False'), ('Paused', 'True'), ('Healthy', 'True')]
    """
    wanted = {
        "Progressing": phase in ("Progressing", "Inconclusive"),
        "Paused": phase == "Paused",
        "Healthy": phase not in ("Aborted", "Degraded"),
    }
    old = {c.type: c for c in current}
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds")
    out = []
    for kind, holds in wanted.items():
        status: Literal["True", "False"] = "True" if holds else "False"
        before = old.get(kind)
        since = before.last_transition_time if before and before.status == status else stamp
        out.append(Condition(type=kind, status=status, reason=reason, message=message,
                             last_transition_time=since))  # fmt: skip
    return out


def active_analysis(spec: Spec, status: Status) -> tuple[Analysis | None, int]:
    """The analysis checks run under now, and how many passes in a row a step needs
    (0: the step does not wait for passes)."""
    strategy = status.stage
    if strategy == "preview" and spec.strategy.blue_green:
        ref = spec.strategy.blue_green.pre_promotion_analysis
        return spec.analysis_for(ref), ref.checks if ref else 0
    if strategy == "postPromotion" and spec.strategy.blue_green:
        ref = spec.strategy.blue_green.post_promotion_analysis
        return spec.analysis_for(ref), ref.checks if ref else 0
    if strategy == "canary" and spec.strategy.canary:
        steps = spec.strategy.canary.steps
        step = steps[status.step] if status.step < len(steps) else None
        if step is not None and step.analysis is not None:
            return spec.analysis_for(step.analysis) or spec.analysis, step.analysis.checks
    return spec.analysis, 0


def check_due(spec: Spec, status: Status, now: float) -> bool:
    """Whether a check should run now: the candidate takes traffic under a route the
    controller set (progressing, holding on an inconclusive check, or paused: a candidate
    that fails while it waits for a person is rolled back all the same), an analysis
    applies and its interval has passed since the last check."""
    if status.phase not in ("Progressing", "Inconclusive", "Paused"):
        return False
    if status.paused_reason == "RouteChangedByHand":
        return False
    analysis, _ = active_analysis(spec, status)
    return analysis is not None and now >= status.last_check_at + analysis.interval


def start(spec: Spec, status: Status, generation: int, now: float) -> Outcome:
    """A new rollout (or a spec naming another candidate, or a retry): begin at step 0."""
    st = Status(
        observed_generation=generation, candidate=spec.candidate, stable=spec.stable,
        started_at=now, step_started_at=now, last_check_at=now, window_end=now,
        history=status.history, last_action_id=status.last_action_id,
        stage="shadow" if spec.strategy.shadow else
        "preview" if spec.strategy.blue_green else "canary",
    )  # fmt: skip
    if st.stage == "shadow" and spec.strategy.shadow:
        st.mirror = spec.strategy.shadow.mirror_percent
    out = Outcome(st)
    out.move(now, "Progressing", "RolloutStarted",
             f"rolling out {spec.candidate} over {spec.stable} ({st.stage})")  # fmt: skip
    return out


def desired_route(spec: Spec, status: Status, current: Route) -> Route:
    """The route ``status`` wants, built on ``current`` (its upstreams are kept)."""
    base = {"weight": 0, "mirror_percent": None}
    if status.phase == "Promoted":
        update = {"stable": spec.candidate, "candidate": None, "mode": None, **base}
    elif status.phase == "Aborted" or not status.stage:
        update = {"stable": spec.stable, "candidate": None, "mode": None, **base}
    elif status.stage == "canary":
        update = {"stable": spec.stable, "candidate": spec.candidate, "mode": "canary",
                  "weight": status.weight, "mirror_percent": status.mirror or None}  # fmt: skip
    elif status.stage == "shadow":
        update = {"stable": spec.stable, "candidate": spec.candidate, "mode": "shadow",
                  "weight": 0, "mirror_percent": status.mirror}  # fmt: skip
    elif status.stage == "preview":
        update = {"stable": spec.stable, "candidate": spec.candidate, "mode": "bluegreen", **base}
    else:  # postPromotion: the new colour is active, the old one kept routable
        update = {"stable": spec.candidate, "candidate": spec.stable, "mode": "bluegreen", **base}
    return current.model_copy(update=update)


def after_check(spec: Spec, status: Status, verdict: Verdict, now: float) -> Outcome:
    """Count a finished check; abort or pause when a limit is reached."""
    out = Outcome(status)
    analysis, _ = active_analysis(spec, status)
    assert analysis is not None
    status.checks += 1
    status.last_check_at = now
    if verdict != "inconclusive" and status.phase == "Inconclusive":
        out.move(now, "Progressing", "CheckDecided", f"a check {verdict}ed again")
    if verdict == "pass":
        status.passes += 1
        status.inconclusives = 0
    elif verdict == "fail":
        status.failures += 1
        status.passes = 0
        failed = ", ".join(
            f"{m.name}={_fmt(m.value)} ({m.condition}, {m.samples} samples)"
            for m in status.metrics
            if m.verdict == "fail"
        )
        if status.failures >= analysis.failure_limit:
            if status.stage == "postPromotion":
                reason, what = "SwitchedBack", "switched back to"
            else:
                reason, what = "AnalysisFailed", "traffic back to"
            out.move(now, "Aborted", reason,
                     f"{what} {spec.stable}: {status.failures} failed check(s) "
                     f"(limit {analysis.failure_limit}): {failed}")  # fmt: skip
        else:
            out.note("CheckFailed", f"check failed ({status.failures} of "
                     f"{analysis.failure_limit} allowed): {failed}")  # fmt: skip
    else:
        status.inconclusives += 1
        status.passes = 0
        why = "; ".join(f"{m.name}: {m.message}" for m in status.metrics
                        if m.verdict == "inconclusive")  # fmt: skip
        if status.phase == "Paused":
            pass  # already waiting for a person: the pause stands
        elif status.inconclusives >= analysis.inconclusive_limit:
            _pause(out, status, now, "TooLittleEvidence",
                   f"{status.inconclusives} inconclusive checks in a row, waiting for a "
                   f"person (resume, promote or abort): {why}")  # fmt: skip
        else:
            out.move(now, "Inconclusive", "CheckInconclusive",
                     f"holding step {status.step}: check {status.inconclusives} of "
                     f"{analysis.inconclusive_limit} inconclusive: {why}")  # fmt: skip
    return out


def advance(spec: Spec, status: Status, now: float) -> Outcome:
    """Move through the steps as far as the evidence and the clock allow."""
    out = Outcome(status)
    for _ in range(64):  # setWeight/setMirror steps chain; bounded all the same
        if status.phase != "Progressing" or not _step_once(spec, status, now, out):
            break
    return out


def _step_once(spec: Spec, st: Status, now: float, out: Outcome) -> bool:
    """One move; False when the rollout must wait."""
    analysis, needs = active_analysis(spec, st)
    passed = analysis is None or st.passes >= max(needs, 1)
    if st.stage == "shadow" and spec.strategy.shadow:
        shadow = spec.strategy.shadow
        rows = st.totals.get("candidate", {}).get("sh", 0)
        done = (shadow.duration is not None and now >= st.started_at + shadow.duration) or (
            shadow.requests is not None and rows >= shadow.requests
        )
        if not (done and passed):
            return False
        if shadow.then == "canary":
            _enter(st, "canary", 0, now)
            st.mirror = 0
            out.note("ShadowPassed", f"shadow run passed after {rows:.0f} rows; canary next")
            return True
        return _promote(spec, st, now, out, f"shadow run passed after {rows:.0f} rows")
    if st.stage == "preview" and spec.strategy.blue_green:
        if not passed:
            return False
        if not spec.strategy.blue_green.auto_promote:
            _pause(out, st, now, "WaitingForPromotion",
                   f"{spec.candidate} is ready in preview; promote to switch")  # fmt: skip
            return False
        return _switch(spec, st, now, out)
    if st.stage == "postPromotion" and spec.strategy.blue_green:
        if not passed or now < st.step_started_at + spec.strategy.blue_green.scale_down_delay:
            return False
        return _promote(spec, st, now, out, "post-promotion analysis passed")
    steps = spec.strategy.canary.steps if spec.strategy.canary else []
    if st.step >= len(steps):
        if not passed:
            return False
        return _promote(spec, st, now, out, "every step passed")
    step = steps[st.step]
    if step.set_weight is not None:
        st.weight = step.set_weight
    elif step.set_mirror is not None:
        st.mirror = step.set_mirror
    elif step.pause is not None:
        if step.pause.duration is None:
            _pause(out, st, now, "PausedByStep", f"step {st.step} waits for a person (promote)")
            return False
        if now < st.step_started_at + step.pause.duration or not passed:
            return False
    elif not passed:  # an analysis step
        return False
    _enter(st, "canary", st.step + 1, now)
    out.note("StepDone", f"step {st.step - 1} done; weight {st.weight}%, mirror {st.mirror}%")
    return True


def _enter(st: Status, stage: Literal["canary"], step: int, now: float) -> None:
    st.stage, st.step, st.step_started_at, st.passes = stage, step, now, 0


def _switch(spec: Spec, st: Status, now: float, out: Outcome) -> bool:
    st.stage, st.step_started_at, st.passes, st.failures = "postPromotion", now, 0, 0
    st.phase = "Progressing"
    out.note("Switched", f"{spec.candidate} is active; {spec.stable} kept for switch-back")
    return True


def _promote(spec: Spec, st: Status, now: float, out: Outcome, why: str) -> bool:
    st.weight, st.mirror = 100, 0
    out.move(now, "Promoted", "Promoted", f"{spec.candidate} promoted: {why}")
    return False


def _pause(out: Outcome, st: Status, now: float, reason: str, message: str) -> None:
    out.move(now, "Paused", reason, message)
    st.paused_reason = reason


def act(spec: Spec, status: Status, action: Action, now: float) -> Outcome:
    """A person's request. Unknown or impossible ones are refused with a message (the
    status says so); nothing else changes."""
    out = Outcome(status)
    st, name = status, action.name
    st.last_action_id = action.id or st.last_action_id
    if name == "abort":
        if st.phase in ("Promoted", "Aborted"):
            out.note("ActionRefused", f"abort: the rollout is already {st.phase}")
        else:
            out.move(now, "Aborted", "AbortedByUser", f"aborted by a person; {spec.stable} serves")
    elif name == "retry":
        if st.phase in ("Aborted", "Degraded") or (
            st.phase == "Paused" and st.paused_reason in ("RouteChangedByHand", "TooLittleEvidence")
        ):
            return start(spec, st, st.observed_generation, now)
        out.note("ActionRefused", f"retry: only an aborted or stuck rollout ({st.phase})")
    elif name == "pause":
        if st.phase in ("Progressing", "Inconclusive"):
            _pause(out, st, now, "PausedByUser", "paused by a person")
    elif name == "resume":
        if st.phase in ("Paused", "Inconclusive", "Degraded"):
            waiting = st.paused_reason in ("PausedByStep", "WaitingForPromotion")
            st.inconclusives = 0
            st.last_check_at = now
            out.move(now, "Progressing", "Resumed", "resumed by a person")
            if waiting:
                _skip(spec, st, now, out)
    elif name == "promote-full":
        if st.phase not in ("Promoted", "Aborted"):
            _promote(spec, st, now, out, "promoted by a person, skipping the rest")
    elif name in ("promote", "skip-analysis"):
        if st.phase in ("Promoted", "Aborted"):
            out.note("ActionRefused", f"{name}: the rollout is already {st.phase}")
        else:
            st.inconclusives = 0
            out.move(now, "Progressing", "PromotedStep", f"{name} by a person")
            _skip(spec, st, now, out)
    elif name == "set-weight":
        if st.stage != "canary" or action.weight is None or st.phase in ("Promoted", "Aborted"):
            out.note("ActionRefused", "set-weight: only a running canary, with a weight 0-100")
        else:
            st.weight = action.weight
            _pause(out, st, now, "WeightSetByHand",
                   f"weight set to {action.weight}% by a person; resume to go on")  # fmt: skip
    return out


def _skip(spec: Spec, st: Status, now: float, out: Outcome) -> None:
    """Leave the current step (or stage) without waiting for its pause or analysis."""
    if st.stage == "preview":
        _switch(spec, st, now, out)
    elif st.stage == "postPromotion":
        _promote(spec, st, now, out, "promoted by a person")
    elif st.stage == "shadow":
        if spec.strategy.shadow and spec.strategy.shadow.then == "canary":
            _enter(st, "canary", 0, now)
            st.mirror = 0
        else:
            _promote(spec, st, now, out, "promoted by a person")
    else:
        steps = spec.strategy.canary.steps if spec.strategy.canary else []
        if st.step >= len(steps):
            _promote(spec, st, now, out, "promoted by a person")
        else:
            step = steps[st.step]
            if step.set_weight is not None:
                st.weight = step.set_weight
            _enter(st, "canary", st.step + 1, now)


def same_policy(a: Route, b: Route) -> bool:
    """Whether two routes split traffic the same way (upstreams aside)."""
    keys = ("stable", "candidate", "mode", "weight", "mirror")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def route_moved(status: Status, route: Route | None, wanted: Route | None) -> str | None:
    """Why the route is not the one the controller last wrote, or None.

    A person who changed the route by hand during a rollout is not overwritten. A route at
    a newer revision that already splits traffic as the controller wants is its own write
    whose revision it did not get to store (it stopped in between): not a hand change.
    """
    if not status.route_revision:
        return None
    if route is None:
        return "the model's route was deleted"
    if route.revision != status.route_revision and not (
        wanted is not None and same_policy(route, wanted)
    ):
        return (
            f"the route moved from revision {status.route_revision} to {route.revision} "
            "outside the controller"
        )
    return None


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"
