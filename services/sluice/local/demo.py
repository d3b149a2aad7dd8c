"""``sluice demo``: the local stack's story in a few minutes, against a running stack (or
one it starts as ``sluice up --detach`` does).

1. steady traffic through the router (:mod:`sluice.local.traffic`), the true label of every
   answered request posted to the drift monitor as feedback: each version's live accuracy;
2. a canary of v2 applied through the rollout controller, short steps, judged on success
   rate and p99, promoted;
3. a drift injected (one feature moved by one standard deviation in every request) until
   the drift monitor names that feature.

Every figure is sampled over time into ``<home>/stack/demo.json`` (the *record*, see
:class:`Recorder`); at the end the terminal gets a summary and ``demo.html`` the report
(:func:`sluice.local.report.render_report`, from the record alone).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from sluice.core.errors import SluiceError, Unavailable
from sluice.local import plan as plans
from sluice.local.cli import Home, canary_example, set_route, up
from sluice.local.plan import Layout
from sluice.local.prepare import MODEL
from sluice.local.report import render_report
from sluice.local.state import Record, home_folder, live_record, read_secrets
from sluice.local.traffic import Customer, Traffic, load_customers
from sluice.rollout.cli import call

SHIFTED = "monthly_charges"
"""The feature the demo moves: numeric, used by both versions."""
TICK = 2.0
"""Seconds between two samples of the record."""


def demo_rollout() -> dict[str, Any]:
    """``sluice up``'s canary of v2 with steps short enough for a demo."""
    doc = canary_example("v2")
    doc["spec"]["strategy"]["canary"]["steps"] = [
        {"setWeight": 20}, {"pause": {"duration": "5s"}}, {"setWeight": 50}, {"analysis": {}},
        {"setWeight": 100},
    ]  # fmt: skip
    return doc


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
    """The demo's record, sampled every :data:`TICK` seconds and saved as JSON each time.

    Keys: ``model``, ``started`` (epoch seconds), ``traffic`` (``[{t, version, status,
    count}]`` per second), ``rollouts`` (``[{t, name, phase, stage, step, weight, mirror,
    metrics: [{name, value, condition, verdict, samples}]}]``), ``drift`` (one entry per
    closed window: ``{t, version, index, status, rows, drifted_features, effects}``),
    ``accuracy`` (``[{t, version, accuracy, labelled}]``), ``events`` (``[{t, what}]``),
    ``outcome`` (filled at the end; see :func:`outcome`)."""

    def __init__(
        self, path: Path, traffic: Traffic, *, router: str, drift: str, controller: str,
        feedback_token: str,
    ) -> None:  # fmt: skip
        self.path = path
        self.traffic = traffic
        self.drift_url, self.controller = drift, controller
        self.feedback_headers = {"authorization": f"Bearer {feedback_token}"}
        self.client = httpx.Client(timeout=10)
        self.seen: set[tuple[str, int]] = set()
        self.last_print = 0.0
        self.record: dict[str, Any] = {
            "model": MODEL, "started": time.time(), "router": router, "traffic": [],
            "rollouts": [], "drift": [], "accuracy": [], "events": [], "outcome": {},
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
        rollout = self._get_rollout()
        if rollout is not None:
            st = rollout.get("status") or {}
            metrics = [
                {k: m.get(k) for k in ("name", "value", "condition", "verdict", "samples")}
                for m in st.get("metrics") or []
            ]
            self.record["rollouts"].append({
                "t": t, "name": rollout["metadata"]["name"], "phase": st.get("phase", "Pending"),
                "stage": st.get("stage", ""), "step": st.get("step", 0),
                "weight": st.get("weight", 0), "mirror": st.get("mirror", 0), "metrics": metrics,
            })  # fmt: skip
        report = self._get(f"{self.drift_url}/v1/drift/{MODEL}") or {}
        for version, doc in (report.get("versions") or {}).items():
            latest = doc.get("latest") or {}
            key = (version, int(latest.get("index", -1)))
            if latest.get("kind") == "reference" and key not in self.seen and latest.get("rows"):
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
            line += f" | rollout {r['phase']} step {r['step']} weight {r['weight']}%"
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

    def _get_rollout(self) -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] = call("GET", self.controller, f"/admin/v1/rollouts/{MODEL}")
        except SluiceError:
            return None
        return doc

    def _get(self, url: str) -> dict[str, Any] | None:
        try:
            answer = self.client.get(url)
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
    return {"requests": requests, "failed_requests": failed, "rollouts": rollouts,
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


def _stack(layout: Layout, rows: int) -> Record:
    record = live_record(layout.home)
    if record is None:
        typer.secho("no stack runs: starting one (as `sluice up --detach`)", bold=True)
        up(port=None, detach=True, rows=rows, home=layout.home)
        record = live_record(layout.home)
    if record is None or not {plans.ROUTER, plans.ROLLOUT, plans.DRIFT_MONITOR} <= set(
        record.by_name()
    ):
        raise Unavailable(f"the stack in {layout.home} has no router, controller or drift monitor")
    return record


def run_demo(layout: Layout, record: Record, *, warmup: float, timeout: float) -> dict[str, Any]:
    """The story against ``record``'s stack; returns the record (also saved)."""
    secrets = read_secrets(layout)
    router, controller = record.url(plans.ROUTER), record.url(plans.ROLLOUT)
    os.environ["SLUICE_ADMIN_TOKEN"] = secrets["SLUICE_ADMIN_TOKEN"]  # for rollout.cli.call
    call_quiet("DELETE", controller, f"/admin/v1/rollouts/{MODEL}")
    ups = {v: record.url(plans.model_server(v)) for v in ("v1", "v2")}
    set_route(router, ups, secrets["SLUICE_ADMIN_TOKEN"])  # every run starts from v1
    customers: list[Customer] = load_customers(layout.data, (SHIFTED,))
    values = [c.values[SHIFTED] for c in customers]
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    with Traffic(router, MODEL, customers, start=time.monotonic()) as traffic:
        rec = Recorder(
            layout.stack / "demo.json", traffic, router=router,
            drift=record.url(plans.DRIFT_MONITOR), controller=controller,
            feedback_token=secrets["SLUICE_FEEDBACK_TOKEN"],
        )  # fmt: skip
        rec.event(f"steady traffic: {len(customers):,} customers, v1 serves all")
        rec.wait(lambda: rec.t() >= warmup, warmup + 30, "warm-up")
        call("PUT", controller, f"/admin/v1/rollouts/{MODEL}", demo_rollout())
        rec.event("canary of v2 applied: 20%, pause 5s, 50%, analysis, 100%")

        def finished() -> bool:
            last = rec.record["rollouts"][-1:] or [{}]
            return last[0].get("phase") in ("Promoted", "Aborted", "Degraded")

        rec.wait(finished, timeout, "the canary to finish")
        rec.event(f"canary {rec.record['rollouts'][-1]['phase']}")
        rec.record["shift"] = {"t": rec.t(), "feature": SHIFTED, "by": round(std, 2)}
        traffic.shift(SHIFTED, std)
        rec.event(f"drift injected: {SHIFTED} + {std:.2f} (one standard deviation)")

        def named() -> bool:
            t0 = rec.record["shift"]["t"]
            return any(
                w["t"] > t0 and SHIFTED in w["drifted_features"] for w in rec.record["drift"]
            )

        rec.wait(named, timeout, f"the drift monitor to name {SHIFTED}")
        rec.event(f"the drift monitor names {SHIFTED}")
        rec.wait(lambda: True, 0, "a last sample")
    rec.record["outcome"] = outcome(rec.record)
    rec.save()
    return rec.record


def call_quiet(method: str, url: str, path: str) -> None:
    with contextlib.suppress(SluiceError):  # nothing to delete
        call(method, url, path)


def demo(
    home: Home = None,
    rows: Annotated[int, typer.Option(min=1000, help="Customers, when it starts a stack")] = 20_000,
    warmup: Annotated[float, typer.Option(help="Seconds of v1-only traffic first")] = 10.0,
    timeout: Annotated[float, typer.Option(help="Seconds each step may take")] = 300.0,
) -> None:
    """Show the system at work in a few minutes: traffic, a canary of v2 promoted on its
    analysis, live accuracy from feedback, a drift the monitor names; a summary and an HTML
    report (stack/demo.html) at the end. Starts a stack when none runs (left running)."""
    layout = Layout(home_folder(home))
    record = _stack(layout, rows)
    result = run_demo(layout, record, warmup=warmup, timeout=timeout)
    text = summary(result)
    report = layout.stack / "demo.html"
    report.write_text(render_report(result, text))
    typer.echo("\n" + text)
    typer.echo(f"\nrecord: {layout.stack / 'demo.json'}\nreport: {report}")
