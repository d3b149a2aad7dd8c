"""Sluice's Grafana dashboards, generated from code with grafana-foundation-sdk.

``make dashboards`` writes one JSON file per dashboard beside this file; the chart ships each
as a ConfigMap labelled for Grafana's dashboard sidecar. tests/chart/test_dashboards.py fails
when the JSON is stale, and runs every panel's query against a real Prometheus scraping the
real services: a panel whose query names a metric nobody exports fails the build.

Every query is written once, in DASHBOARDS; ``queries()`` lists them for that test.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as models
from grafana_foundation_sdk.models.dashboard import DataSourceRef

HERE = Path(__file__).resolve().parent
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "[$__rate_interval]"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    queries: tuple[Query, ...]
    description: str = ""
    kind: str = "timeseries"  # or "stat"


def q(expr: str, legend: str) -> Query:
    return Query(expr, legend)


def p99(metric: str, by: str) -> str:
    return f"histogram_quantile(0.99, sum by ({by}, le) (rate({metric}_bucket{RATE})))"


def p50(metric: str, by: str) -> str:
    return f"histogram_quantile(0.5, sum by ({by}, le) (rate({metric}_bucket{RATE})))"


MV = "model, version"
ROLE = "model, version, role"
PAIR = "model, stable, candidate"

DASHBOARDS: dict[str, tuple[str, list[Panel]]] = {
    "sluice-traffic": (
        "Sluice / Traffic",
        [
            Panel("Requests per version and role", "reqps", (
                q(f"sum by ({ROLE}) (rate(sluice_router_requests_total{RATE}))",
                  "{{model}} {{version}} {{role}}"),
            ), "What the router sent to each version: stable, candidate, shadow."),
            Panel("Upstream errors per version", "percentunit", (
                q(f"sum by ({MV}) (rate(sluice_router_upstream_errors_total{RATE}))"
                  f" / sum by ({MV}) (rate(sluice_router_requests_total{RATE}))",
                  "{{model}} {{version}}"),
            ), "Share of the router's calls to a version that failed."),
            Panel("Upstream errors by reason", "reqps", (
                q(f"sum by ({MV}, reason) (rate(sluice_router_upstream_errors_total{RATE}))",
                  "{{model}} {{version}} {{reason}}"),
            )),
            Panel("Latency per version and role (p50, p99)", "s", (
                q(p50("sluice_router_upstream_duration_seconds", ROLE),
                  "p50 {{model}} {{version}} {{role}}"),
                q(p99("sluice_router_upstream_duration_seconds", ROLE),
                  "p99 {{model}} {{version}} {{role}}"),
            )),
            Panel("Gateway latency by status (p99)", "s", (
                q(p99("http_request_duration_seconds", "status"), "{{status}}"),
            ), "The histogram Flagger's and Argo's providers read."),
            Panel("Traffic weight per version", "percentunit", (
                q("max by (model, version) (sluice_router_traffic_weight_ratio)",
                  "{{model}} {{version}}"),
            )),
            Panel("Fallbacks to stable", "reqps", (
                q(f"sum by ({MV}) (rate(sluice_router_fallbacks_total{RATE}))",
                  "{{model}} {{version}}"),
            )),
        ],
    ),
    "sluice-rollouts": (
        "Sluice / Rollouts",
        [
            Panel("Phase", "none", (
                q("max by (model, phase) (sluice_rollout_phase) == 1", "{{model}} {{phase}}"),
            ), "The rollout's phase over time (1 while in it)."),
            Panel("Candidate weight", "percentunit", (
                q("max by (model) (sluice_rollout_weight_ratio)", "{{model}}"),
            )),
            Panel("Step", "none", (
                q("max by (model) (sluice_rollout_step)", "{{model}}"),
            )),
            Panel("Analysis values", "none", (
                q("max by (model, metric) (sluice_rollout_metric_value)",
                  "{{model}} {{metric}}"),
            ), "Every analysis value the controller measured."),
            Panel("Analysis verdicts", "none", (
                q("max by (model, metric, verdict) (sluice_rollout_metric_verdict) == 1",
                  "{{model}} {{metric}}: {{verdict}}"),
            ), "Each value against its condition: pass, fail or inconclusive."),
            Panel("Transitions and aborts", "none", (
                q("sum by (model, phase) (increase(sluice_rollout_transitions_total[1h]))",
                  "{{model}} -> {{phase}}"),
                q("sum by (model) (increase(sluice_rollout_aborts_total[1h]))",
                  "{{model}} aborts"),
            )),
        ],
    ),
    "sluice-shadow": (
        "Sluice / Shadow",
        [
            Panel("Shadow agreement", "percentunit", (
                q(f"max by ({PAIR}) (sluice_router_shadow_agreement_ratio)",
                  "{{model}} {{candidate}} vs {{stable}}"),
            ), "Share of compared rows whose labels agree."),
            Panel("Rows compared", "reqps", (
                q(f"sum by ({PAIR}, outcome) (rate(sluice_router_shadow_rows_total{RATE}))",
                  "{{model}} {{candidate}} {{outcome}}"),
            )),
            Panel("Output difference |candidate - stable| (p50, p99)", "none", (
                q(p50("sluice_router_shadow_score_abs_diff", PAIR), "p50 {{model}} {{candidate}}"),
                q(p99("sluice_router_shadow_score_abs_diff", PAIR), "p99 {{model}} {{candidate}}"),
            )),
            Panel("Latency delta candidate - stable (p99)", "s", (
                q(p99("sluice_router_shadow_latency_delta_seconds", PAIR),
                  "{{model}} {{candidate}}"),
            )),
        ],
    ),
    "sluice-drift": (
        "Sluice / Drift",
        [
            Panel("Drift statistic per feature", "none", (
                q("max by (model, version, feature, method) "
                  "(sluice_drift_monitor_feature_statistic)",
                  "{{model}} {{version}} {{feature}} {{method}}"),
            )),
            Panel("Corrected p-value per feature", "none", (
                q("min by (model, version, feature, method) (sluice_drift_monitor_feature_p_value)",
                  "{{model}} {{version}} {{feature}} {{method}}"),
            )),
            Panel("Drifted features", "none", (
                q("sum by (model, version) (sluice_drift_monitor_feature_drifted)",
                  "{{model}} {{version}}"),
            )),
            Panel("Drift streak (windows)", "none", (
                q("max by (model, version) (sluice_drift_monitor_drift_streak_windows)",
                  "{{model}} {{version}}"),
            )),
            Panel("Prediction drift", "none", (
                q("max by (model, version, output, method) "
                  "(sluice_drift_monitor_prediction_statistic)",
                  "{{model}} {{version}} {{output}} {{method}}"),
            )),
            Panel("Rows per window", "none", (
                q("max by (model, version) (sluice_drift_monitor_window_rows)",
                  "{{model}} {{version}}"),
            )),
        ],
    ),
    "sluice-feature-store": (
        "Sluice / Feature store",
        [
            Panel("Online lookup latency (p50, p99)", "s", (
                q(p50("sluice_feature_store_lookup_duration_seconds", "job"), "p50"),
                q(p99("sluice_feature_store_lookup_duration_seconds", "job"), "p99"),
            )),
            Panel("Lookup results by status", "ops", (
                q(f"sum by (view, status) (rate(sluice_feature_store_lookup_results_total{RATE}))",
                  "{{view}} {{status}}"),
            ), "OUTSIDE_MAX_AGE: the value is older than the view's ttl."),
            Panel("Staleness against ttl", "s", (
                q("max by (view) (sluice_feature_store_staleness_seconds)", "{{view}} staleness"),
                q("max by (view) (sluice_feature_store_ttl_seconds)", "{{view}} ttl"),
            )),
            Panel("Redis reachable", "none", (
                q("min(sluice_feature_store_redis_up)", "redis up"),
            ), kind="stat"),
            Panel("Router's feature lookups (p99)", "s", (
                q(p99("sluice_router_feature_lookup_duration_seconds", "job"), "p99"),
            )),
        ],
    ),
    "sluice-model-servers": (
        "Sluice / Model servers",
        [
            Panel("Inference latency per version (p50, p99)", "s", (
                q(p50("sluice_model_server_inference_duration_seconds", MV),
                  "p50 {{model}} {{version}}"),
                q(p99("sluice_model_server_inference_duration_seconds", MV),
                  "p99 {{model}} {{version}}"),
            ), "onnxruntime's time per batch."),
            Panel("Batch size (rows, p50, p99)", "none", (
                q(p50("sluice_model_server_batch_size_rows", MV), "p50 {{model}} {{version}}"),
                q(p99("sluice_model_server_batch_size_rows", MV), "p99 {{model}} {{version}}"),
            )),
            Panel("Batches per second", "ops", (
                q(f"sum by ({MV}) (rate(sluice_model_server_batch_size_rows_count{RATE}))",
                  "{{model}} {{version}}"),
            )),
            Panel("Prediction score (p50)", "percentunit", (
                q(p50("sluice_model_server_prediction_score_ratio", MV), "{{model}} {{version}}"),
            )),
        ],
    ),
}  # fmt: skip


def build(uid: str) -> str:
    """One dashboard as Grafana JSON."""
    title, panels = DASHBOARDS[uid]
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .tags(["sluice"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
    )
    for spec in panels:
        panel: timeseries.Panel | stat.Panel
        if spec.kind == "timeseries":
            panel = (
                timeseries.Panel()
                .legend(
                    common.VizLegendOptions()
                    .display_mode(models.LegendDisplayMode.LIST)
                    .placement(models.LegendPlacement.BOTTOM)
                    .show_legend(True)
                )
                .tooltip(
                    common.VizTooltipOptions()
                    .mode(models.TooltipDisplayMode.MULTI)
                    .sort(models.SortOrder.DESCENDING)
                )
            )
        else:
            panel = stat.Panel().reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
        panel = panel.title(spec.title).unit(spec.unit).datasource(DATASOURCE).span(12).height(8)
        if spec.description:
            panel = panel.description(spec.description)
        for ref, query in zip("ABCDEFGH", spec.queries, strict=False):
            panel = panel.with_target(
                prometheus.Dataquery()
                .expr(query.expr)
                .legend_format(query.legend)
                .ref_id(ref)
                .datasource(DATASOURCE)
            )
        board = board.with_panel(panel)
    return json.dumps(json.loads(JSONEncoder().encode(board.build())), indent=2, sort_keys=True)


def queries() -> dict[str, list[str]]:
    """dashboard uid -> every panel query in it."""
    return {
        uid: [query.expr for panel in panels for query in panel.queries]
        for uid, (_, panels) in DASHBOARDS.items()
    }


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.json"):
        stale.unlink()
    for uid in DASHBOARDS:
        (out / f"{uid}.json").write_text(build(uid) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
