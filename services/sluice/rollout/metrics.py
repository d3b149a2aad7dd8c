"""The rollout controller's metrics, on a registry that is passed in: every figure the
controller judged, so dashboards and alerts see exactly what it saw."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from sluice.rollout.resource import Phase, Rollout

PHASES: tuple[Phase, ...] = (
    "Pending", "Progressing", "Paused", "Inconclusive", "Promoted", "Aborted", "Degraded",
)  # fmt: skip
VERDICTS = ("pass", "fail", "inconclusive")


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.phase = Gauge(
            "sluice_rollout_phase", "1 for the rollout's current phase.", ["model", "phase"],
            registry=registry,
        )  # fmt: skip
        self.weight = Gauge(
            "sluice_rollout_weight_ratio", "Share of traffic the candidate answers (0..1).",
            ["model"], registry=registry,
        )  # fmt: skip
        self.mirror = Gauge(
            "sluice_rollout_mirror_ratio", "Share of traffic copied to the candidate (0..1).",
            ["model"], registry=registry,
        )  # fmt: skip
        self.step = Gauge(
            "sluice_rollout_step", "Index of the current canary step.", ["model"],
            registry=registry,
        )  # fmt: skip
        self.value = Gauge(
            "sluice_rollout_metric_value", "A metric's value at the last check.",
            ["model", "metric"], registry=registry,
        )  # fmt: skip
        self.samples = Gauge(
            "sluice_rollout_metric_samples", "Samples a metric's last value rested on.",
            ["model", "metric"], registry=registry,
        )  # fmt: skip
        self.verdict = Gauge(
            "sluice_rollout_metric_verdict", "1 for a metric's verdict at the last check.",
            ["model", "metric", "verdict"], registry=registry,
        )  # fmt: skip
        self.checks = Counter(
            "sluice_rollout_checks_total", "Analysis checks, by overall verdict.",
            ["model", "verdict"], registry=registry,
        )  # fmt: skip
        self.transitions = Counter(
            "sluice_rollout_transitions_total", "Phase changes, by the phase entered.",
            ["model", "phase"], registry=registry,
        )  # fmt: skip
        self.aborts = Counter(
            "sluice_rollout_aborts_total", "Rollouts aborted (automatically or by hand).",
            ["model"], registry=registry,
        )  # fmt: skip
        self.route_writes = Counter(
            "sluice_rollout_route_writes_total", "Route changes the controller made.",
            ["model"], registry=registry,
        )  # fmt: skip
        self.leader = Gauge(
            "sluice_rollout_leader", "1 while this replica holds the lease.", [],
            registry=registry,
        )  # fmt: skip

    def show(self, rollout: Rollout) -> None:
        st, model = rollout.status, rollout.spec.model
        for phase in PHASES:
            self.phase.labels(model, phase).set(1 if st.phase == phase else 0)
        self.weight.labels(model).set(st.weight / 100)
        self.mirror.labels(model).set(st.mirror / 100)
        self.step.labels(model).set(st.step)
        for m in st.metrics:
            if m.value is not None:
                self.value.labels(model, m.name).set(m.value)
            self.samples.labels(model, m.name).set(m.samples)
            for verdict in VERDICTS:
                self.verdict.labels(model, m.name, verdict).set(1 if m.verdict == verdict else 0)
