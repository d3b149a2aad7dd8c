"""``sluice demo``: the local stack's story in a few minutes, against a running stack (or
one it starts as ``sluice up --detach`` does).

1. steady traffic through the router (:mod:`sluice.local.traffic`), the true label of every
   answered request posted to the drift monitor as feedback: each version's live accuracy;
2. a canary of v2 applied through the rollout controller, short steps, judged on success
   rate and p99, promoted;
3. a bad v3 (trained on flipped labels: it answers, wrongly): first in a shadow run, its
   answers compared with v2's and never sent, aborted on its agreement; then as a canary
   of v2 judged on its score shift against stable too: rolled back by the controller, no
   request failing;
4. a drift injected (one feature moved by one standard deviation in every request) until
   the drift monitor names that feature.

Every figure is sampled over time into ``<home>/stack/demo.json`` (the record,
:mod:`sluice.local.record`); at the end the terminal gets a summary and ``demo.html`` the
report (:func:`sluice.local.report.render_report`, from the record alone).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Annotated, Any

import typer

from sluice.core.errors import SluiceError, Unavailable
from sluice.core.registry import ModelRegistry
from sluice.local import plan as plans
from sluice.local.cli import Home, canary_example, set_route, sluice_command, up
from sluice.local.plan import Layout
from sluice.local.prepare import MODEL, ROWS
from sluice.local.record import Recorder, outcome, summary
from sluice.local.stack import free_port, launch, redis_server_binary, wait_ready
from sluice.local.state import Record, home_folder, live_record, read_secrets, save_record
from sluice.local.traffic import Traffic, load_customers
from sluice.rollout.cli import call
from sluice.trainer.progress import ConsoleSteps

SHIFTED = "monthly_charges"
"""The feature the demo moves: numeric, used by every version."""
BAD = "v3"
"""The version trained on flipped labels."""
ROLLOUTS = ("churn", "churn-v2", "churn-v3-shadow", "churn-v3")
"""Rollouts a former run (or ``sluice up``'s example) may have left: deleted first."""
FINISHED = ("Promoted", "Aborted", "Degraded")


def canary(name: str, stable: str, candidate: str, *, score_shift: bool) -> dict[str, Any]:
    """``sluice up``'s canary with steps short enough for a demo; with ``score_shift`` also
    judged on the candidate's mean score against stable's (at most 0.1 apart)."""
    doc = canary_example(candidate)
    doc["metadata"]["name"] = name
    doc["spec"]["stable"] = stable
    doc["spec"]["strategy"]["canary"]["steps"] = [
        {"setWeight": 20}, {"pause": {"duration": "5s"}}, {"setWeight": 50}, {"analysis": {}},
        {"setWeight": 100},
    ]  # fmt: skip
    if score_shift:
        doc["spec"]["analysis"]["metrics"].append(
            {"name": "score-shift", "builtin": "scoreShift", "condition": "<= 0.1"}
        )
    return doc


def shadow(name: str, stable: str, candidate: str) -> dict[str, Any]:
    """A shadow run: every request copied to the candidate and compared with stable's
    answer; promoted after 2,000 compared rows unless the labels agree on fewer than 90%."""
    doc = canary(name, stable, candidate, score_shift=False)
    doc["spec"]["strategy"] = {"shadow": {"mirrorPercent": 100, "requests": 2000}}
    doc["spec"]["analysis"]["metrics"] = [
        {"name": "agreement", "builtin": "shadowAgreement", "condition": ">= 0.9"},
        {"name": "shadow-errors", "builtin": "shadowErrorRate", "condition": "<= 0.01"},
    ]
    return doc


def bad_version(layout: Layout, record: Record, steps: ConsoleSteps) -> str:
    """v3, trained once on the churn table with every label flipped, and its model server
    (started as ``sluice up`` starts v1's, added to the stack: ``sluice down`` stops it).
    Returns its URL."""
    registry = ModelRegistry(layout.registry)
    if BAD not in registry.versions(MODEL):
        import pandas as pd

        from sluice.trainer.run import train

        frame = pd.read_parquet(layout.data)
        frame["churned"] = 1 - frame["churned"]
        flipped = layout.home / "churn-flipped.parquet"
        frame.to_parquet(flipped)
        steps.note(f"training {MODEL} {BAD} (logreg) on flipped labels: a bad version")
        train(
            registry, model=MODEL, version=BAD, data=flipped, label="churned",
            algorithm="logreg", task=None, seed=3, rows=ROWS, threads=1,
            features=layout.features, feature_refs=[], steps=steps,
        )  # fmt: skip
    name = plans.model_server(BAD)
    running = record.by_name().get(name)
    secrets = read_secrets(layout)
    if running is None or not running.alive():
        ports = {s.name: s.port for s in record.services}
        ports[name] = free_port()
        services = plans.plan(
            layout, sluice=sluice_command(), redis_server=redis_server_binary(), prometheus=None,
            model=MODEL, versions=[BAD], ports=ports, secrets=secrets,
        )  # fmt: skip
        with steps.step(f"start {name}"):
            _, running = launch(next(s for s in services if s.name == name), layout)
            record.services = [s for s in record.services if s.name != name] + [running]
            save_record(layout, record)
            wait_ready(running, password=secrets.get("SLUICE_REDIS_PASSWORD"))
    return running.url


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


def run_demo(
    layout: Layout, record: Record, *, warmup: float, timeout: float, rate: float
) -> dict[str, Any]:
    """The story against ``record``'s stack; returns the record (also saved)."""
    secrets = read_secrets(layout)
    router, controller = record.url(plans.ROUTER), record.url(plans.ROLLOUT)
    os.environ["SLUICE_ADMIN_TOKEN"] = secrets["SLUICE_ADMIN_TOKEN"]  # for rollout.cli.call
    bad_url = bad_version(layout, record, ConsoleSteps())
    for name in ROLLOUTS:
        with contextlib.suppress(SluiceError):  # none to delete
            call("DELETE", controller, f"/admin/v1/rollouts/{name}")
    ups = {v: record.url(plans.model_server(v)) for v in ("v1", "v2")}
    set_route(router, ups, secrets["SLUICE_ADMIN_TOKEN"])  # every run starts from v1
    customers = load_customers(layout.data, (SHIFTED,))
    values = [c.values[SHIFTED] for c in customers]
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    with Traffic(router, MODEL, customers, start=time.monotonic(), rate=rate) as traffic:
        rec = Recorder(
            layout.stack / "demo.json", traffic, router=router,
            drift=record.url(plans.DRIFT_MONITOR), controller=controller,
            feedback_token=secrets["SLUICE_FEEDBACK_TOKEN"],
            admin_token=secrets["SLUICE_ADMIN_TOKEN"],
        )  # fmt: skip
        rec.event(f"steady traffic: {rate:g} requests/s, {len(customers):,} customers, v1 only")
        rec.wait(lambda: rec.t() >= warmup, warmup + 30, "warm-up")

        def finished(name: str) -> bool:
            last = [r for r in rec.record["rollouts"] if r["name"] == name][-1:]
            return bool(last) and last[0]["phase"] in FINISHED

        call("PUT", controller, "/admin/v1/rollouts/churn-v2",
             canary("churn-v2", "v1", "v2", score_shift=False))  # fmt: skip
        rec.event("canary of v2 applied: 20%, pause 5s, 50%, analysis, 100%")
        rec.wait(lambda: finished("churn-v2"), timeout, "the canary of v2 to finish")
        rec.event(f"canary of v2: {rec.record['rollouts'][-1]['phase']}")
        call("DELETE", controller, "/admin/v1/rollouts/churn-v2")

        doc = shadow("churn-v3-shadow", "v2", BAD)
        doc["spec"]["upstreams"] = {BAD: bad_url}
        call("PUT", controller, "/admin/v1/rollouts/churn-v3-shadow", doc)
        rec.event(f"shadow run of {BAD} (trained on flipped labels): every request copied")
        rec.wait(lambda: finished("churn-v3-shadow"), timeout, f"the shadow run of {BAD}")
        rec.event(f"shadow run of {BAD}: {rec.record['rollouts'][-1]['phase']}")
        call("DELETE", controller, "/admin/v1/rollouts/churn-v3-shadow")

        doc = canary("churn-v3", "v2", BAD, score_shift=True)
        call("PUT", controller, "/admin/v1/rollouts/churn-v3", doc)
        rec.event(f"canary of {BAD} (trained on flipped labels) applied, judged on score shift too")
        rec.wait(lambda: finished("churn-v3"), timeout, f"the canary of {BAD} to finish")
        rec.event(f"canary of {BAD}: {rec.record['rollouts'][-1]['phase']}")

        rec.record["shift"] = {"t": rec.t(), "feature": SHIFTED, "by": round(std, 2)}
        traffic.shift(SHIFTED, std)
        rec.event(f"drift injected: {SHIFTED} + {std:.2f} (one standard deviation)")

        def named() -> bool:
            t0, windows = rec.record["shift"]["t"], rec.record["drift"]
            return any(w["t"] > t0 and SHIFTED in w["drifted_features"] for w in windows)

        rec.wait(named, timeout, f"the drift monitor to name {SHIFTED}")
        rec.event(f"the drift monitor names {SHIFTED}")
        end = rec.t() + 6
        rec.wait(lambda: rec.t() >= end, 30, "the last samples")
    rec.record["outcome"] = outcome(rec.record)
    rec.save()
    return rec.record


def demo(
    home: Home = None,
    rows: Annotated[int, typer.Option(min=1000, help="Customers, when it starts a stack")] = ROWS,
    rate: Annotated[float, typer.Option(min=10, help="Requests per second")] = 100.0,
    warmup: Annotated[float, typer.Option(min=0, help="Seconds of v1-only traffic first")] = 10.0,
    timeout: Annotated[float, typer.Option(min=10, help="Seconds each step may take")] = 300.0,
) -> None:
    """Show the system at work in a few minutes: traffic, a canary of v2 promoted on its
    analysis, a bad v3 rolled back, live accuracy from feedback, a drift the monitor names;
    a summary and an HTML report (stack/demo.html) at the end. Starts a stack when none
    runs (and leaves it running)."""
    try:  # plotly: only this command needs it (the demo extra)
        from sluice.local.report import render_report
    except ModuleNotFoundError as exc:
        typer.secho(
            f"error: the demo's report needs {exc.name}: install the demo extra "
            "(uv sync --extra demo, or pip install 'sluice[demo]')",
            err=True,
        )
        raise typer.Exit(2) from None

    layout = Layout(home_folder(home))
    record = _stack(layout, rows)
    path, report = layout.stack / "demo.json", layout.stack / "demo.html"
    try:
        result = run_demo(layout, record, warmup=warmup, timeout=timeout, rate=rate)
    except SluiceError:  # a step that never came: report what was recorded up to then
        if path.exists():
            result = json.loads(path.read_text())
            result["outcome"] = outcome(result)
            report.write_text(render_report(result, summary(result)))
            typer.echo(f"the record so far: {path}, its report: {report}", err=True)
        raise
    text = summary(result)
    report.write_text(render_report(result, text))
    typer.echo("\n" + text)
    typer.echo(f"\nrecord: {path}\nreport: {report}")
