"""The demo's record (``stack/demo.json``): the figures ``sluice demo`` samples over time,
saved after every sample, and the outcome and summary drawn from it at the end.

Keys: ``model``, ``started`` (epoch seconds), ``traffic`` (``[{t, version, status, count}]``,
answers per second), ``rollouts`` (``[{t, name, phase, stage, step, weight, mirror,
metrics: [{name, value, condition, verdict, samples}]}]``), ``routes`` (``[{t, stable,
weights: {version: percent}}]``: the router's table), ``shadow`` (``[{t, agreement, condition}]``:
a rollout metric named ``agreement``), ``drift`` (one entry per closed window seen: ``{t,
version, index, status, rows, start, drifted_features, effects}``, effects being each
feature's largest test effect), ``accuracy`` (``[{t, version, accuracy, labelled}]``),
``events`` (``[{t, what}]``), ``shift`` (``{t, feature, by}``: the injected drift) and
``outcome`` (:func:`outcome`).
Every ``t`` is seconds since the traffic started.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import typer

from sluice.core.errors import SluiceError, Unavailable
from sluice.local.prepare import MODEL
from sluice.local.traffic import Traffic
from sluice.rollout.cli import call

TICK = 2.0
"""Seconds between two samples of the record."""


def window_effects(window: dict[str, Any]) -> dict[str, float]:
    """Each feature's largest test effect in a drift window (KS D, Cramér's V, ...).

    >>> window_effects({"features": {"age": {"methods": {
    ...     "ks": {"effect": 0.3, "role": "test"}, "psi": {"effect": 2.0, "role": "evidence"}}}}})
    {'age': 0.3}
    """
    effects: dict[str, float] = {}
    for name, feature in (window.get("features") or {}).items():
        tests = [
            float(m["effect"]) for m in (feature.get("methods") or {}).values()
            if m.get("role") == "test" and m.get("effect") is not None
        ]  # fmt: skip
        effects[name] = max(tests, default=0.0)
    return effects


class Recorder:
    """The demo's record, sampled every :data:`TICK` seconds and saved as JSON each time."""

    def __init__(
        self, path: Path, traffic: Traffic, *, router: str, drift: str, controller: str,
        feedback_token: str, admin_token: str,
    ) -> None:  # fmt: skip
        self.path = path
        self.traffic = traffic
        self.drift_url, self.controller = drift, controller
        self.router = router
        self.feedback_headers = {"authorization": f"Bearer {feedback_token}"}
        self.admin_headers = {"authorization": f"Bearer {admin_token}"}
        self.client = httpx.Client(timeout=10)
        self.seen: set[tuple[str, int]] = set()
        self.last_print = 0.0
        self.record: dict[str, Any] = {
            "model": MODEL, "started": time.time(), "router": router, "traffic": [],
            "rollouts": [], "routes": [], "shadow": [], "drift": [], "accuracy": [],
            "events": [], "outcome": {},
        }  # fmt: skip

    def t(self) -> float:
        return round(time.monotonic() - self.traffic.start, 2)

    def event(self, what: str) -> None:
        self.record["events"].append({"t": self.t(), "what": what})
        typer.secho(f"[{self.t():6.1f}s] {what}", bold=True)

    def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Sample until ``done()`` (checked after each sample); raise after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            self.sample()
            if done():
                return
            if time.monotonic() > deadline:
                self.save()
                raise Unavailable(f"{what}: not within {timeout:.0f}s (record: {self.path})")
            time.sleep(TICK)

    def sample(self) -> None:
        """Post the feedback gathered, read the rollout and the drift report, save."""
        t = self.t()
        labels = self.traffic.take_feedback()
        if labels:
            body = {"model": MODEL, "ids": [r for r, _ in labels], "labels": [y for _, y in labels]}
            self._post(f"{self.drift_url}/v1/feedback", body)
        for rollout in self._rollouts():
            st = rollout.get("status") or {}
            metrics = [
                {k: m.get(k) for k in ("name", "value", "condition", "verdict", "samples")}
                for m in st.get("metrics") or []
            ]
            agreement = [m for m in metrics if m["name"] == "agreement" and m["value"] is not None]
            if agreement:
                self.record["shadow"].append({
                    "t": t, "agreement": agreement[0]["value"],
                    "condition": agreement[0]["condition"],
                })  # fmt: skip
            self.record["rollouts"].append({
                "t": t, "name": rollout["metadata"]["name"], "phase": st.get("phase", "Pending"),
                "stage": st.get("stage", ""), "step": st.get("step", 0),
                "weight": st.get("weight", 0), "mirror": st.get("mirror", 0), "metrics": metrics,
            })  # fmt: skip
        route = self._get(f"{self.router}/admin/v1/routes/{MODEL}", self.admin_headers)
        if route is not None:
            weights = {v: round(100 * w, 2) for v, w in (route.get("weights") or {}).items()}
            self.record["routes"].append(
                {"t": t, "stable": route.get("stable"), "weights": weights}
            )
        report = self._get(f"{self.drift_url}/v1/drift/{MODEL}") or {}
        for version, doc in (report.get("versions") or {}).items():
            latest = doc.get("latest") or {}
            key = (version, int(latest.get("index", -1)))
            fresh = (latest.get("start") or 0) >= self.record["started"]  # not a former run's
            if latest.get("kind") == "reference" and key not in self.seen and fresh:
                self.seen.add(key)
                self.record["drift"].append({
                    "t": t, "version": version, "index": key[1], "status": latest.get("status"),
                    "rows": latest.get("rows"), "start": latest.get("start"),
                    "drifted_features": latest.get("drifted_features") or [],
                    "effects": window_effects(latest),
                })  # fmt: skip
            perf = doc.get("performance") or {}
            if perf.get("accuracy") is not None:
                self.record["accuracy"].append({
                    "t": t, "version": version, "accuracy": perf["accuracy"],
                    "labelled": perf.get("labelled", 0),
                })  # fmt: skip
        self.save()
        if time.monotonic() - self.last_print >= 5:
            self.last_print = time.monotonic()
            typer.echo(f"[{t:6.1f}s] {self.progress()}")

    def progress(self) -> str:
        tally = self.traffic.tally
        per_version: dict[str, int] = {}
        for (version, _), n in tally.total.items():
            per_version[version] = per_version.get(version, 0) + n
        parts = ", ".join(f"{v} {n}" for v, n in sorted(per_version.items()))
        line = f"{tally.requests()} requests ({parts}), {tally.failed()} failed"
        if self.record["rollouts"]:
            r = self.record["rollouts"][-1]
            line += f" | {r['name']} {r['phase']} step {r['step']} weight {r['weight']}%"
        return line

    def save(self) -> None:
        per_second = sorted(self.traffic.tally.per_second.items())
        self.record["traffic"] = [
            {"t": second, "version": v, "status": s, "count": n}
            for second, counts in per_second for (v, s), n in sorted(counts.items())
        ]  # fmt: skip
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record, indent=1))
        tmp.replace(self.path)

    def _rollouts(self) -> list[dict[str, Any]]:
        try:
            docs = call("GET", self.controller, "/admin/v1/rollouts")["rollouts"]
        except SluiceError:
            return []
        return [d for d in docs if d["spec"]["model"] == MODEL]

    def _get(self, url: str, headers: dict[str, str] | None = None) -> dict[str, Any] | None:
        try:
            answer = self.client.get(url, headers=headers)
        except httpx.HTTPError:
            return None
        doc: dict[str, Any] | None = answer.json() if answer.status_code == 200 else None
        return doc

    def _post(self, url: str, body: Any) -> None:
        # a lost batch is counted nowhere: the next goes on; accuracy shows the gap
        with contextlib.suppress(httpx.HTTPError):
            self.client.post(url, json=body, headers=self.feedback_headers)


def outcome(record: dict[str, Any]) -> dict[str, Any]:
    """The story's results from the record: requests per version and status, failed
    requests, each rollout's last phase, the drift verdict, the latest accuracy per version.

    >>> outcome({"traffic": [{"t": 0, "version": "v1", "status": "200", "count": 3},
    ...   {"t": 1, "version": "none", "status": "failed", "count": 1}], "rollouts": [],
    ...   "drift": [], "accuracy": [{"t": 1, "version": "v1", "accuracy": 0.8, "labelled": 3}],
    ...   "shift": None})["failed_requests"]
    1
    """
    requests: dict[str, dict[str, int]] = {}
    for row in record["traffic"]:
        by_status = requests.setdefault(row["version"], {})
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["count"]
    failed = sum(
        n for statuses in requests.values() for s, n in statuses.items()
        if s == "failed" or s.startswith("5")
    )  # fmt: skip
    rollouts = {r["name"]: r["phase"] for r in record["rollouts"]}
    accuracy = {
        a["version"]: {"accuracy": a["accuracy"], "labelled": a["labelled"]}
        for a in record["accuracy"]
    }
    shift = record.get("shift")
    drift: dict[str, Any] | None = None
    if shift:
        after = [w for w in record["drift"] if w["t"] >= shift["t"]]
        named = [w for w in after if shift["feature"] in w["drifted_features"]]
        drift = {
            "feature": shift["feature"], "by": shift["by"], "named": bool(named),
            "after_seconds": round(named[0]["t"] - shift["t"], 1) if named else None,
            "drifted_features": named[0]["drifted_features"] if named else [],
            "version": named[0]["version"] if named else None,
        }  # fmt: skip
    shadow = record.get("shadow") or []
    return {"requests": requests, "failed_requests": failed, "rollouts": rollouts,
            "shadow_agreement": shadow[-1]["agreement"] if shadow else None,
            "drift": drift, "accuracy": accuracy}  # fmt: skip


def summary(record: dict[str, Any]) -> str:
    """The terminal's closing text."""
    out = record["outcome"]
    total = sum(n for s in out["requests"].values() for n in s.values())
    lines = [f"requests: {total:,} ({out['failed_requests']} failed)"]
    for version, statuses in sorted(out["requests"].items()):
        lines.append(
            f"  {version:<5} " + ", ".join(f"{s}: {n:,}" for s, n in sorted(statuses.items()))
        )
    for name, phase in out["rollouts"].items():
        lines.append(f"rollout {name}: {phase}")
    if out.get("shadow_agreement") is not None:
        lines.append(f"shadow agreement (labels): {out['shadow_agreement']:.3f}")
    drift = out["drift"]
    if drift:
        verdict = (
            f"named by the drift monitor after {drift['after_seconds']} s in {drift['version']}'s "
            f"window (drifted: {', '.join(drift['drifted_features'])})"
            if drift["named"] else "NOT named by the drift monitor"
        )  # fmt: skip
        lines.append(f"drift: {drift['feature']} moved by {drift['by']:+.2f}: {verdict}")
    for version, acc in sorted(out["accuracy"].items()):
        lines.append(
            f"live accuracy {version}: {acc['accuracy']:.3f} ({acc['labelled']:,} labelled)"
        )
    return "\n".join(lines)
