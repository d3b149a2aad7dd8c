"""``sluice rollout get NAME --watch``: one rollout, live, until it is promoted or aborted.

The view (:func:`view`) is built from what the controller's admin API returns: the
resource with its status, and its newest events. :func:`watch` asks for it every
``interval`` seconds through a ``fetch`` callable (the CLI passes one that calls the admin
API) and shows it:

- on a terminal, in place (rich's ``Live``), with a footer saying when it was refreshed;
- anywhere else (a pipe, a CI log), as a new block only when the phase, the step, the
  weight, the message, a verdict or the newest event changed (:func:`signature`), so a
  log holds one block per change, not one per look or per check.

It returns a one-line verdict when the rollout reaches a final phase (``Promoted`` or
``Aborted``; ``Degraded`` is not final: the controller leaves it by itself once the
route is usable again). A controller that cannot be reached (or answers 5xx) is shown as
``controller unreachable since HH:MM:SS`` (``API server`` for ``kubectl sluice get --watch``)
and asked again at every interval; any other
error (unknown name, wrong token) ends the watch.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sluice.core.errors import Unavailable

FINAL = ("Promoted", "Aborted")
"""Phases a rollout leaves only when a person asks (retry, or a new candidate)."""
EVENTS_SHOWN = 5
PHASE_MARK = {
    "Pending": ("…", "dim"), "Progressing": ("◌", "cyan"), "Paused": ("॥", "yellow"),
    "Inconclusive": ("?", "yellow"), "Promoted": ("✔", "green"), "Aborted": ("✖", "red"),
    "Degraded": ("⚠", "red"),
}  # fmt: skip
VERDICT_MARK = {"pass": ("✔", "green"), "fail": ("✖", "red"), "inconclusive": ("?", "yellow")}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One look at the rollout: its resource, and its events newest first (None when the
    controller keeps none, as in a cluster: the status' history is shown instead)."""

    doc: dict[str, Any]
    events: list[dict[str, Any]] | None


def final(doc: dict[str, Any]) -> bool:
    """Whether the rollout has finished: a final phase the controller reached for the
    spec as it is now (a stale ``Promoted`` from the previous candidate does not count).

    >>> final({"metadata": {"generation": 2}, "status": {"phase": "Promoted",
    ...        "observedGeneration": 1}})
    False
    """
    st = doc.get("status") or {}
    generation = (doc.get("metadata") or {}).get("generation", 1)
    return st.get("phase") in FINAL and st.get("observedGeneration", 0) >= generation


def verdict(doc: dict[str, Any]) -> str:
    """The one line printed when the watch ends."""
    st = doc.get("status") or {}
    mark, _ = PHASE_MARK.get(st.get("phase", ""), ("", ""))
    return f"{mark} {doc['metadata']['name']} {st.get('phase')}: {st.get('message', '')}"


def step_text(spec: dict[str, Any], st: dict[str, Any]) -> str:
    """What the current step is, as the spec wrote it.

    >>> spec = {"strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}}}
    >>> step_text(spec, {"stage": "canary", "step": 1})
    '2/2 pause until promoted'
    """
    steps = ((spec.get("strategy") or {}).get("canary") or {}).get("steps") or []
    index = st.get("step", 0)
    if st.get("stage") != "canary" or not steps:
        return st.get("stage") or "-"
    if index >= len(steps):
        return f"{len(steps)}/{len(steps)} done"
    step = steps[index]
    if "setWeight" in step:
        what = f"setWeight {step['setWeight']}"
    elif "setMirror" in step:
        what = f"setMirror {step['setMirror']}"
    elif "pause" in step:
        duration = (step["pause"] or {}).get("duration")
        what = f"pause {duration:g}s" if duration is not None else "pause until promoted"
    else:
        checks = (step.get("analysis") or {}).get("checks", 1)
        what = "analysis (until a check passes)" if checks == 1 else (
            f"analysis (until {checks} checks in a row pass)")  # fmt: skip
    return f"{index + 1}/{len(steps)} {what}"


def _clock(at: float) -> str:
    return dt.datetime.fromtimestamp(at).strftime("%H:%M:%S")


def _value(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"


def _row(table: Table, *cells: str | Text) -> None:
    """A row whose strings are shown as they are: a message with ``[...]`` or ``:x:`` in
    it is not rich markup or an emoji code."""
    table.add_row(*(Text(c) if isinstance(c, str) else c for c in cells))


def view(snap: Snapshot | None, unreachable: str | None = None) -> RenderableType:
    """The rollout as a terminal shows it; ``unreachable`` adds that line at the bottom."""
    parts: list[RenderableType] = []
    if snap is not None:
        doc = snap.doc
        spec, st = doc["spec"], doc.get("status") or {}
        phase = st.get("phase", "Pending")
        mark, colour = PHASE_MARK.get(phase, ("", ""))
        head = Table.grid(padding=(0, 2))
        head.add_column(style="bold")
        head.add_column()
        _row(head, "Name:", f"{doc['metadata']['name']}  (model {spec['model']})")
        _row(head, "Versions:", f"stable {spec['stable']} -> candidate {spec['candidate']}")
        stage = f"  ({st['stage']})" if st.get("stage") else ""
        _row(head, "Phase:", Text(f"{mark} {phase}{stage}", style=colour))
        _row(head, "Step:", step_text(spec, st))
        _row(head, "Weight:", f"{st.get('weight', 0)}%  mirror {st.get('mirror', 0)}%")
        _row(head, "Message:", st.get("message") or "")
        _row(
            head,
            "Checks:",
            f"{st.get('checks', 0)} (failed {st.get('failures', 0)}, inconclusive in a row "
            f"{st.get('inconclusives', 0)}, passed in a row {st.get('passes', 0)})",
        )
        parts.append(head)
        if st.get("metrics"):
            parts.append(_metrics(st["metrics"]))
        parts.append(_events(snap, st))
    if unreachable:
        parts.append(Text(unreachable, style="bold red"))
    return Group(*parts)


def _metrics(metrics: list[dict[str, Any]]) -> Table:
    table = Table(box=None, padding=(0, 2, 0, 0), title="Analysis", title_justify="left")
    for column in ("METRIC", "VALUE", "CONDITION", "VERDICT", "SAMPLES", "MESSAGE"):
        table.add_column(column, justify="right" if column in ("VALUE", "SAMPLES") else "left")
    for m in metrics:
        value = _value(m.get("value"))
        if m.get("stableValue") is not None:
            value += f" (stable {_value(m['stableValue'])})"
        mark, colour = VERDICT_MARK.get(m.get("verdict", ""), ("", ""))
        _row(
            table, m["name"], value, m.get("condition", ""),
            Text(f"{mark} {m.get('verdict', '')}", style=colour), str(m.get("samples", 0)),
            m.get("message", ""),
        )  # fmt: skip
    return table


def _events(snap: Snapshot, st: dict[str, Any]) -> Table:
    table = Table(box=None, padding=(0, 2, 0, 0), title="Events", title_justify="left")
    for column in ("AT", "TYPE", "REASON", "MESSAGE"):
        table.add_column(column)
    if snap.events is not None:
        rows = [(e.get("at", 0.0), e.get("type", ""), e.get("reason", ""), e.get("message", ""))
                for e in snap.events[:EVENTS_SHOWN]]  # fmt: skip
    else:  # no events kept here: the transitions, newest first
        rows = [(t.get("at", 0.0), t.get("phase", ""), t.get("reason", ""), t.get("message", ""))
                for t in reversed((st.get("history") or [])[-EVENTS_SHOWN:])]  # fmt: skip
    for at, kind, reason, message in rows:
        _row(table, _clock(at), Text(kind, style="red" if kind == "Warning" else ""), reason,
             message)  # fmt: skip
    return table


def signature(snap: Snapshot | None, unreachable: str | None) -> tuple[Any, ...]:
    """What has to change for a log to get a new block: phase, stage, step, weight,
    mirror, message, each metric's verdict, the newest event, reachability. Figures that
    move at every check (values, samples, counters) are shown in each block but do not make
    one: a rollout that waits for a person would print a block per check.

    >>> a = Snapshot({"status": {"phase": "Paused", "checks": 3}}, [])
    >>> b = Snapshot({"status": {"phase": "Paused", "checks": 4}}, [])
    >>> signature(a, None) == signature(b, None), signature(a, None) == signature(a, "down")
    (True, False)
    """
    if snap is None:
        return (unreachable,)
    st = snap.doc.get("status") or {}
    newest = snap.events[0] if snap.events else (st.get("history") or [{}])[-1]
    return (
        *(st.get(k) for k in ("phase", "stage", "step", "weight", "mirror", "message")),
        tuple((m.get("name"), m.get("verdict")) for m in st.get("metrics") or []),
        (newest.get("at"), newest.get("reason")),
        unreachable,
    )


def watch(
    fetch: Callable[[], Snapshot],
    console: Console,
    interval: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    live: bool | None = None,
    source: str = "controller",
) -> str:
    """Show the rollout until it finishes; returns the verdict line (not printed).
    ``live``: redraw in place (default: when ``console`` is a terminal); ``source``: what
    ``fetch`` asks, named when it cannot be reached."""
    if console.is_terminal if live is None else live:
        with Live(console=console, auto_refresh=False, redirect_stdout=False) as screen:

            def redraw(snap: Snapshot | None, problem: str | None, foot: str) -> None:
                screen.update(Group(view(snap, problem), Text(foot, style="dim")), refresh=True)

            return _loop(fetch, interval, sleep, clock, redraw, source)
    last: list[tuple[Any, ...]] = []

    def show(snap: Snapshot | None, problem: str | None, _: str) -> None:
        key = signature(snap, problem)
        if [key] != last:  # a new block only when something a reader follows changed
            with console.capture() as capture:
                console.print(view(snap, problem))
            block = "\n".join(line.rstrip() for line in capture.get().splitlines())
            console.out(block + "\n", highlight=False)
            last[:] = [key]

    return _loop(fetch, interval, sleep, clock, show, source)


def _loop(
    fetch: Callable[[], Snapshot],
    interval: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    show: Callable[[Snapshot | None, str | None, str], None],
    source: str,
) -> str:
    snap: Snapshot | None = None
    down_since: float | None = None
    while True:
        problem = None
        try:
            snap = fetch()
            down_since = None
        except Unavailable as exc:
            down_since = down_since if down_since is not None else clock()
            problem = (
                f"{source} unreachable since {_clock(down_since)}, retrying every "
                f"{interval:g}s: {exc.message}"
            )
        show(snap, problem, f"refreshed {_clock(clock())}, every {interval:g}s; Ctrl-C to stop")
        if snap is not None and problem is None and final(snap.doc):
            return verdict(snap.doc)
        sleep(interval)
