"""The ``ModelRollout`` resource (group ``serving.sluice.dev``, version ``v1alpha1``): its
spec as a user writes it and its status as the controller writes it.

Pure: pydantic models and parsing. The same YAML works in a cluster (``kubectl apply``)
and on one machine (``sluice rollout apply``); field names are camelCase as in Argo
Rollouts and Flagger (``setWeight``, ``pause``, ``failureLimit``, ``inconclusiveLimit``,
``autoPromote``, ``scaleDownDelay``). The CRD's OpenAPI schema
(``charts/sluice/crds/modelrollouts.yaml``) refuses what these models refuse.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from sluice.core.routes import NAME

GROUP, VERSION, KIND, PLURAL = "serving.sluice.dev", "v1alpha1", "ModelRollout", "modelrollouts"
API_VERSION = f"{GROUP}/{VERSION}"
ACTION_ANNOTATION = f"{GROUP}/action"

Phase = Literal[
    "Pending", "Progressing", "Paused", "Inconclusive", "Promoted", "Aborted", "Degraded"
]
Verdict = Literal["pass", "fail", "inconclusive"]
Builtin = Literal[
    "successRate", "errorRate", "latencyP50", "latencyP99", "latencyMean",
    "shadowAgreement", "shadowScoreDiff", "shadowErrorRate", "scoreShift",
    "featureDrift", "predictionDrift", "accuracy",
]  # fmt: skip
COMPARABLE: dict[str, Literal["higher", "lower"]] = {
    "errorRate": "higher", "latencyMean": "higher", "successRate": "lower", "accuracy": "lower",
}  # fmt: skip
"""Builtins that can be compared with stable, and which direction is worse."""

CONDITION = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class RolloutError(ValueError):
    """A resource that cannot be accepted; the message names the field."""


def seconds(value: Any) -> float:
    """A duration as seconds: a number, or ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``.

    >>> seconds("30s"), seconds("5m"), seconds(2), seconds("250ms")
    (30.0, 300.0, 2.0, 0.25)
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.fullmatch(str(value).strip())
    if match is None:
        raise ValueError(f"{value!r} is not a duration (like 30s, 5m, 1h, 500ms)")
    return float(match.group(1)) * _UNIT[match.group(2)]


class Camel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel),
        populate_by_name=True,
    )


def _duration(value: Any) -> float | None:
    return None if value is None else seconds(value)


class PrometheusProvider(Camel):
    address: str
    """Prometheus base URL, e.g. ``http://prometheus:9090``."""
    query: str
    """PromQL; its first sample's value is the metric's value (no sample: inconclusive)."""


class WebProvider(Camel):
    url: str
    """Any HTTP endpoint answering JSON."""
    json_path: str = "$"
    """Where the value is in the answer, e.g. ``$.data.ratio`` or ``$.items[0].value``."""
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)


class Provider(Camel):
    prometheus: PrometheusProvider | None = None
    web: WebProvider | None = None

    @model_validator(mode="after")
    def _one(self) -> Provider:
        if (self.prometheus is None) == (self.web is None):
            raise ValueError("a provider is exactly one of prometheus or web")
        return self


class Metric(Camel):
    name: str = Field(min_length=1, max_length=63)
    builtin: Builtin | None = None
    provider: Provider | None = None
    condition: str | None = None
    """``">= 0.99"``, ``"< 100"``: the value passes when the comparison holds."""
    compare: Literal["stable"] | None = None
    """Judge the candidate against stable on the same traffic (a sequential test)."""
    max_increase: float | None = Field(default=None, gt=0)
    """With ``compare``, for metrics where higher is worse: the increase over stable that
    is still acceptable (the test's margin)."""
    max_decrease: float | None = Field(default=None, gt=0)
    """With ``compare``, for metrics where lower is worse (successRate, accuracy)."""
    min_samples: int | None = Field(default=None, ge=1)
    """Overrides the analysis' ``minSamples`` for this metric."""

    @model_validator(mode="after")
    def _consistent(self) -> Metric:
        if (self.builtin is None) == (self.provider is None):
            raise ValueError(f"metric {self.name!r}: give exactly one of builtin or provider")
        if self.compare is None:
            if self.condition is None:
                raise ValueError(f"metric {self.name!r}: give a condition (or compare: stable)")
            if not CONDITION.fullmatch(self.condition):
                raise ValueError(
                    f"metric {self.name!r}: condition {self.condition!r} is not "
                    "'<op> <number>' with op one of >= <= > < == !="
                )
            if self.max_increase is not None or self.max_decrease is not None:
                raise ValueError(f"metric {self.name!r}: maxIncrease/maxDecrease need compare")
            return self
        if self.condition is not None:
            raise ValueError(f"metric {self.name!r}: give condition or compare, not both")
        worse = COMPARABLE.get(self.builtin or "")
        if worse is None:
            raise ValueError(
                f"metric {self.name!r}: compare works with the builtins "
                f"{', '.join(sorted(COMPARABLE))}"
            )
        need, other = ("max_increase", "max_decrease")[:: 1 if worse == "higher" else -1]
        if getattr(self, need) is None or getattr(self, other) is not None:
            raise ValueError(
                f"metric {self.name!r}: {self.builtin} compared with stable needs "
                f"{to_camel(need)} (and not {to_camel(other)})"
            )
        return self

    @property
    def margin(self) -> float:
        return self.max_increase or self.max_decrease or 0.0


class Analysis(Camel):
    interval: float = 10.0
    """Seconds between checks (``10s``, ``1m``)."""
    window: float | None = None
    """The stretch of traffic a check judges, ending now (default: the interval)."""
    min_samples: int = Field(default=100, ge=1)
    """Fewer samples than this: the metric is inconclusive, never pass, never fail."""
    failure_limit: int = Field(default=1, ge=1)
    """This many failed checks abort the rollout."""
    inconclusive_limit: int = Field(default=5, ge=1)
    """This many inconclusive checks in a row pause the rollout for a person."""
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    """False-verdict rate of the sequential test of ``compare`` metrics."""
    metrics: list[Metric] = Field(min_length=1)

    _durations = field_validator("interval", "window", mode="before")(_duration)

    @model_validator(mode="after")
    def _checks(self) -> Analysis:
        if self.interval <= 0 or (self.window is not None and self.window <= 0):
            raise ValueError("interval and window must be positive")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"metric names must be unique: {names}")
        return self

    @property
    def span(self) -> float:
        return self.window or self.interval


class AnalysisRef(Camel):
    """A step's analysis: the rollout's own (``{}``) or a named template; hold until
    ``checks`` checks in a row pass."""

    template: str | None = None
    checks: int = Field(default=1, ge=1)


class Pause(Camel):
    duration: float | None = None
    """Seconds to wait; without it, wait for a person (``promote`` or ``resume``)."""

    _durations = field_validator("duration", mode="before")(_duration)


class Step(Camel):
    set_weight: int | None = Field(default=None, ge=0, le=100)
    set_mirror: int | None = Field(default=None, ge=0, le=100)
    pause: Pause | None = None
    analysis: AnalysisRef | None = None

    @model_validator(mode="after")
    def _one(self) -> Step:
        kinds = ("set_weight", "set_mirror", "pause", "analysis")
        given = [k for k in kinds if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a step is exactly one of setWeight, setMirror, pause, analysis"
                + (f" (got {', '.join(to_camel(g) for g in given)})" if given else "")
            )
        return self


class Canary(Camel):
    steps: list[Step] = Field(min_length=1)


class BlueGreen(Camel):
    auto_promote: bool = False
    """Switch as soon as the pre-promotion analysis passes; else wait for ``promote``."""
    pre_promotion_analysis: AnalysisRef | None = None
    post_promotion_analysis: AnalysisRef | None = None
    scale_down_delay: float = 30.0
    """Seconds the old colour stays routable after the switch (switch-back is instant)."""

    _durations = field_validator("scale_down_delay", mode="before")(_duration)


class Shadow(Camel):
    mirror_percent: int = Field(default=100, ge=1, le=100)
    duration: float | None = None
    """Mirror at least this long..."""
    requests: int | None = Field(default=None, ge=1)
    """...or until this many rows were compared; then ``then``."""
    then: Literal["promote", "canary"] = "promote"
    """After a passing shadow run: promote the candidate, or go on with the canary steps."""

    _durations = field_validator("duration", mode="before")(_duration)

    @model_validator(mode="after")
    def _ends(self) -> Shadow:
        if self.duration is None and self.requests is None:
            raise ValueError("shadow needs a duration or a number of requests")
        return self


class Strategy(Camel):
    canary: Canary | None = None
    blue_green: BlueGreen | None = None
    shadow: Shadow | None = None

    @model_validator(mode="after")
    def _one(self) -> Strategy:
        given = [k for k in ("canary", "blue_green", "shadow") if getattr(self, k) is not None]
        if given == ["canary", "shadow"] and self.shadow and self.shadow.then == "canary":
            return self
        if len(given) != 1:
            raise ValueError(
                "strategy is exactly one of canary, blueGreen, shadow "
                "(shadow with then: canary may come with canary steps)"
            )
        if self.shadow is not None and self.shadow.then == "canary":
            raise ValueError("shadow then: canary needs canary steps")
        return self


class Spec(Camel):
    model: str
    stable: str
    candidate: str
    strategy: Strategy
    analysis: Analysis | None = None
    """Run at every interval while the candidate takes traffic."""
    templates: dict[str, Analysis] = Field(default_factory=dict)
    """Named analyses that steps (``analysis: {template: name}``) refer to."""
    upstreams: dict[str, str | list[str]] = Field(default_factory=dict)
    """Versions' model-server URLs to add to the route (when the route lacks them)."""
    paused: bool = False
    """True holds the rollout where it is (``kubectl sluice pause`` sets it)."""

    @model_validator(mode="after")
    def _names(self) -> Spec:
        for field in ("model", "stable", "candidate"):
            if not NAME.fullmatch(getattr(self, field)):
                raise ValueError(f"{field} {getattr(self, field)!r} is not a valid name")
        if self.stable == self.candidate:
            raise ValueError(f"stable and candidate are both {self.stable!r}")
        refs = [s.analysis for s in (self.strategy.canary.steps if self.strategy.canary else [])]
        if self.strategy.blue_green:
            refs += [
                self.strategy.blue_green.pre_promotion_analysis,
                self.strategy.blue_green.post_promotion_analysis,
            ]
        for ref in refs:
            if ref is None:
                continue
            if ref.template is not None and ref.template not in self.templates:
                raise ValueError(f"analysis template {ref.template!r} is not in templates")
            if ref.template is None and self.analysis is None:
                raise ValueError("an analysis step without a template needs spec.analysis")
        return self

    def analysis_for(self, ref: AnalysisRef | None) -> Analysis | None:
        if ref is None:
            return None
        return self.templates[ref.template] if ref.template else self.analysis


class MetricStatus(Camel):
    name: str
    value: float | None = None
    condition: str = ""
    verdict: Verdict = "inconclusive"
    samples: int = 0
    message: str = ""
    stable_value: float | None = None
    p_value: float | None = None


class Transition(Camel):
    at: float
    phase: Phase
    step: int
    reason: str
    message: str = ""


class Condition(Camel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str = ""


class Status(Camel):
    phase: Phase = "Pending"
    message: str = ""
    stage: Literal["", "canary", "shadow", "preview", "postPromotion"] = ""
    step: int = 0
    weight: int = 0
    mirror: int = 0
    observed_generation: int = 0
    candidate: str = ""
    stable: str = ""
    started_at: float = 0.0
    step_started_at: float = 0.0
    route_revision: int = 0
    checks: int = 0
    failures: int = 0
    inconclusives: int = 0
    passes: int = 0
    last_check_at: float = 0.0
    window_end: float = 0.0
    """End of the traffic already added to ``totals`` (windows are contiguous)."""
    totals: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Counts per role (candidate, stable) since the analysis began: the sequential test's data."""
    sequential: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Per compared metric: the running minimum of each always-valid p-value."""
    metrics: list[MetricStatus] = Field(default_factory=list)
    history: list[Transition] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    last_action_id: str = ""
    paused_reason: str = ""


class Rollout(Camel):
    """One ModelRollout: what the user declared and what the controller last wrote."""

    name: str
    namespace: str = ""
    generation: int = 1
    spec: Spec
    status: Status = Field(default_factory=Status)
    annotations: dict[str, str] = Field(default_factory=dict)


def parse(doc: Any) -> Rollout:
    """A ModelRollout from a YAML/JSON document (apiVersion, kind, metadata, spec).

    >>> r = parse({"apiVersion": "serving.sluice.dev/v1alpha1", "kind": "ModelRollout",
    ...   "metadata": {"name": "churn"}, "spec": {"model": "churn", "stable": "v1",
    ...   "candidate": "v2", "strategy": {"canary": {"steps": [{"setWeight": 10}]}}}})
    >>> r.spec.strategy.canary.steps[0].set_weight
    10
    """
    if not isinstance(doc, dict):
        raise RolloutError("a ModelRollout is a mapping with apiVersion, kind, metadata, spec")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
        raise RolloutError(
            f"expected apiVersion {API_VERSION} and kind {KIND}, got "
            f"{doc.get('apiVersion')!r} and {doc.get('kind')!r}"
        )
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise RolloutError(f"metadata.name {name!r} is not a valid name")
    try:
        spec = Spec.model_validate(doc.get("spec"))
        status = Status.model_validate(doc["status"]) if doc.get("status") else Status()
    except ValidationError as exc:
        raise RolloutError(f"ModelRollout {name!r} is not valid: {problems(exc)}") from None
    return Rollout(
        name=name,
        namespace=str(meta.get("namespace") or ""),
        generation=int(meta.get("generation") or 1),
        spec=spec,
        status=status,
        annotations=dict(meta.get("annotations") or {}),
    )


def problems(exc: ValidationError) -> str:
    """Pydantic's errors as ``spec.path: message; ...`` with the user's camelCase names."""
    out = []
    for err in exc.errors():
        path = ".".join(to_camel(str(p)) if isinstance(p, str) else f"[{p}]" for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        out.append(f"{path or 'spec'}: {message}" if path else message)
    return "; ".join(out)


def document(rollout: Rollout) -> dict[str, Any]:
    """The resource as YAML/JSON (what ``sluice rollout get -o yaml`` prints)."""
    meta: dict[str, Any] = {"name": rollout.name, "generation": rollout.generation}
    if rollout.namespace:
        meta["namespace"] = rollout.namespace
    if rollout.annotations:
        meta["annotations"] = rollout.annotations
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": meta,
        "spec": rollout.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True),
        "status": rollout.status.model_dump(mode="json", by_alias=True),
    }
