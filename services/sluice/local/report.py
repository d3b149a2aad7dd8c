"""The demo's HTML report, rendered from its record alone (``stack/demo.json``, written by
:class:`sluice.local.demo.Recorder`): one self-contained file, plotly's JavaScript inline.

Charts: traffic and errors per version over time; the canary's weight and phases; each
analysis value against its condition; shadow agreement (when the record has some); drift
per feature; live accuracy per version. Every chart is a ``div.chart`` holding one plot.
"""

from __future__ import annotations

import html
import json
import re
from collections import defaultdict
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
pre { background: #f5f5f5; padding: 1rem; overflow-x: auto; }
.chart { margin: 1.5rem 0; }
"""


def threshold(condition: str | None) -> float | None:
    """The number an analysis condition compares with.

    >>> threshold(">= 0.99"), threshold("<= 0.5"), threshold(None), threshold("== pass")
    (0.99, 0.5, None, None)
    """
    found = re.search(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", condition or "")
    return float(found.group()) if found else None


def _layout(fig: go.Figure, title: str, y: str) -> go.Figure:
    fig.update_layout(
        title=title, xaxis_title="seconds since the demo started", yaxis_title=y,
        height=360, margin={"l": 60, "r": 20, "t": 50, "b": 50}, template="plotly_white",
    )  # fmt: skip
    return fig


def _shift_line(fig: go.Figure, record: dict[str, Any]) -> None:
    shift = record.get("shift")
    if shift:
        fig.add_vline(x=shift["t"], line_dash="dot", annotation_text=f"{shift['feature']} shifted")


def traffic_chart(record: dict[str, Any]) -> go.Figure:
    ok: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    bad: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for row in record.get("traffic", []):
        side = ok if str(row["status"]).startswith("2") else bad
        side[row["version"]][row["t"]] += row["count"]
    fig = go.Figure()
    for name, series, dash in (("", ok, "solid"), (" errors", bad, "dash")):
        for version, counts in sorted(series.items()):
            ts = sorted(counts)
            fig.add_trace(go.Scatter(
                x=ts, y=[counts[t] for t in ts], name=f"{version}{name}", mode="lines",
                line={"dash": dash},
            ))  # fmt: skip
    _shift_line(fig, record)
    return _layout(fig, "Traffic and errors per version", "requests per second")


def rollout_chart(record: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sample in record.get("rollouts", []):
        by_name[sample["name"]].append(sample)
    for name, samples in by_name.items():
        ts = [s["t"] for s in samples]
        fig.add_trace(go.Scatter(x=ts, y=[s["weight"] for s in samples], name=f"{name} weight",
                                 mode="lines+markers", line={"shape": "hv"}))  # fmt: skip
        if any(s.get("mirror") for s in samples):
            fig.add_trace(go.Scatter(x=ts, y=[s["mirror"] for s in samples],
                                     name=f"{name} mirror", line={"shape": "hv"}))  # fmt: skip
        changes = [
            s for i, s in enumerate(samples) if i == 0 or s["phase"] != samples[i - 1]["phase"]
        ]
        fig.add_trace(go.Scatter(
            x=[s["t"] for s in changes], y=[s["weight"] for s in changes], mode="text+markers",
            text=[s["phase"] for s in changes], textposition="top center",
            name=f"{name} phase", marker={"symbol": "diamond", "size": 9},
        ))  # fmt: skip
    shares: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for sample in record.get("routes", []):
        for version, weight in sample["weights"].items():
            shares[version].append((sample["t"], weight))
    for version, points in sorted(shares.items()):
        fig.add_trace(go.Scatter(
            x=[p[0] for p in points], y=[p[1] for p in points], name=f"route: {version}",
            mode="lines", line={"shape": "hv", "dash": "dot"},
        ))  # fmt: skip
    return _layout(fig, "Rollouts: weights and phases", "percent of the traffic")


def analysis_chart(record: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    series: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    conditions: dict[tuple[str, str], str] = {}
    for sample in record.get("rollouts", []):
        for m in sample.get("metrics") or []:
            if m.get("value") is not None:
                key = (sample["name"], m["name"])
                series[key].append((sample["t"], m["value"]))
                conditions[key] = m.get("condition") or ""
    for (rollout, metric), points in sorted(series.items()):
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points],
                                 name=f"{rollout} {metric}", mode="lines+markers"))  # fmt: skip
        limit = threshold(conditions[(rollout, metric)])
        if limit is not None:
            fig.add_trace(go.Scatter(
                x=[points[0][0], points[-1][0]], y=[limit, limit], mode="lines",
                name=f"{metric} {conditions[(rollout, metric)]}", line={"dash": "dash"},
            ))  # fmt: skip
    return _layout(fig, "Analysis values against their conditions", "value")


def shadow_chart(record: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    samples = record.get("shadow") or []
    ts = [s["t"] for s in samples]
    fig.add_trace(go.Scatter(x=ts, y=[s["agreement"] for s in samples],
                             name="agreement", mode="lines+markers"))  # fmt: skip
    condition = samples[-1].get("condition") if samples else None
    limit = threshold(condition)
    if limit is not None:
        fig.add_trace(go.Scatter(x=[ts[0], ts[-1]], y=[limit, limit], mode="lines",
                                 name=f"agreement {condition}", line={"dash": "dash"}))  # fmt: skip
    fig.update_yaxes(range=[0, 1.05])
    return _layout(fig, "Shadow agreement", "share of rows whose labels agree")


def drift_chart(record: dict[str, Any]) -> go.Figure:
    """Per version, each feature that drifted in some window, and the largest effect among
    the others; inconclusive windows (too few rows) are left out."""
    windows = [w for w in record.get("drift", []) if w.get("status") != "inconclusive"]
    named = sorted({f for w in windows for f in w["drifted_features"]})
    fig = go.Figure()
    for version in sorted({w["version"] for w in windows}):
        mine = [w for w in windows if w["version"] == version]
        ts = [w["t"] for w in mine]
        for feature in named:
            fig.add_trace(go.Scatter(
                x=ts, y=[w["effects"].get(feature) for w in mine], name=f"{feature} ({version})",
                mode="lines+markers",
                marker={"symbol": ["x" if feature in w["drifted_features"] else "circle"
                                   for w in mine], "size": 10},
            ))  # fmt: skip
        others = [
            max((e for f, e in w["effects"].items() if f not in named), default=0.0) for w in mine
        ]
        fig.add_trace(go.Scatter(x=ts, y=others, name=f"largest other ({version})",
                                 mode="lines+markers", line={"dash": "dot"}))  # fmt: skip
    _shift_line(fig, record)
    return _layout(fig, "Drift per feature (test effect; X = drifted)", "effect size")


def accuracy_chart(record: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for sample in record.get("accuracy", []):
        series[sample["version"]].append((sample["t"], sample["accuracy"]))
    for version, points in sorted(series.items()):
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points],
                                 name=version, mode="lines"))  # fmt: skip
    _shift_line(fig, record)
    return _layout(fig, "Live accuracy from ground-truth feedback", "accuracy")


def charts(record: dict[str, Any]) -> list[go.Figure]:
    """The report's charts, in order (shadow agreement only when the record has some)."""
    figures = [traffic_chart(record), rollout_chart(record), analysis_chart(record)]
    if record.get("shadow"):
        figures.append(shadow_chart(record))
    return [*figures, drift_chart(record), accuracy_chart(record)]


def render_report(record: dict[str, Any], summary: str = "") -> str:
    """The whole report as one HTML document (no network needed to view it)."""
    parts = []
    for i, fig in enumerate(charts(record)):
        spec = pio.to_json(fig, validate=False).replace("</", "<\\/")
        parts.append(
            f'<div class="chart" id="chart-{i}"></div>\n<script>(function () {{ const f = {spec};'
            f' Plotly.newPlot("chart-{i}", f.data, f.layout, {{"responsive": true}}); }})();'
            "</script>"
        )
    events = "".join(
        f"<li>{e['t']:.1f} s: {html.escape(e['what'])}</li>" for e in record.get("events", [])
    )
    text = summary or json.dumps(record.get("outcome", {}), indent=1)
    model = html.escape(record.get("model", ""))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sluice demo: {model}</title>
<style>{STYLE}</style><script>{get_plotlyjs()}</script></head>
<body><h1>Sluice demo</h1>
<pre>{html.escape(text)}</pre>
<h2>What happened</h2><ul>{events}</ul>
{"".join(parts)}
</body></html>
"""
