"""The watch loop with a fake ``fetch`` (our own interface) and rich writing to a string:
a block per change in a log, the view in place on a terminal, the end, the retries."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console

from sluice.core.errors import NotFound, Unavailable
from sluice.rollout.watch import Snapshot, watch


def doc(phase: str, step: int = 0, weight: int = 0, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "churn", "generation": 1},
        "spec": {"model": "churn", "stable": "v1", "candidate": "v2",
                 "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}},
                                                   {"analysis": {}}]}}},
        "status": {"phase": phase, "stage": "canary", "step": step, "weight": weight,
                   "observedGeneration": 1, "message": f"now {phase}", **status},
    }  # fmt: skip


SUCCESS = {"name": "success", "value": 0.9931, "condition": ">= 0.95", "verdict": "pass",
           "samples": 412, "message": ""}  # fmt: skip
VS_STABLE = {"name": "errors-vs-stable", "value": 0.004, "stableValue": 0.003,
             "condition": "no worse than stable + 0.01", "verdict": "inconclusive",
             "samples": 80, "message": "80 samples, need 100"}  # fmt: skip


def script(*looks: dict[str, Any] | Exception) -> Callable[[], Snapshot]:
    """A fetch answering each look in turn (an exception is raised)."""
    pending = list(looks)

    def fetch() -> Snapshot:
        look = pending.pop(0)
        if isinstance(look, Exception):
            raise look
        return Snapshot(look, [{"at": 0.0, "type": "Normal", "reason": "StepDone",
                                "message": "step 0 done"}])  # fmt: skip

    return fetch


def log_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120, force_terminal=False), out


def test_a_log_gets_one_block_per_change_not_per_check_and_the_watch_ends_at_promoted() -> None:
    console, out = log_console()
    # while it waits for a person, checks go on: only their figures move
    waiting = [doc("Paused", 1, 20, checks=i, metrics=[{**SUCCESS, "samples": 400 + i}])
               for i in range(6)]  # fmt: skip
    looks = [doc("Progressing", 0, 20), *waiting, doc("Promoted", 3, 100)]
    sleeps: list[float] = []
    line = watch(script(*looks), console, 2.0, sleep=sleeps.append, clock=lambda: 0.0)
    text = out.getvalue()
    assert text.count("Name:") == 3  # eight looks, three different states
    assert len(sleeps) == 7 and set(sleeps) == {2.0}
    assert "Step:      2/3 pause until promoted" in text
    assert "Weight:    20%  mirror 0%" in text
    assert line == "✔ churn Promoted: now Promoted"
    assert "refreshed" not in text  # the footer is for terminals only: it changes every look


def test_each_analysis_value_is_shown_against_its_condition() -> None:
    console, out = log_console()
    watch(script(doc("Aborted", 2, 0, metrics=[SUCCESS, VS_STABLE])), console, 1.0,
          sleep=lambda _: None)  # fmt: skip
    lines = out.getvalue().splitlines()
    success = next(x for x in lines if x.startswith("success "))
    assert "0.9931" in success and ">= 0.95" in success and "✔ pass" in success
    assert "412" in success
    compared = next(x for x in lines if x.startswith("errors-vs-stable "))
    assert "0.004 (stable 0.003)" in compared and "no worse than stable + 0.01" in compared
    assert "? inconclusive" in compared and "80 samples, need 100" in compared


def test_an_unreachable_controller_is_shown_since_when_and_retried() -> None:
    console, out = log_console()
    down = Unavailable("cannot reach the rollout controller at http://x: refused")
    clock = iter([100.0, 100.0, 103.0, 103.0, 106.0, 106.0, 109.0, 109.0])
    looks = [doc("Paused", 1, 20), down, down, doc("Aborted", 1, 0)]
    watch(script(*looks), console, 3.0, sleep=lambda _: None, clock=lambda: next(clock))
    text = out.getvalue()
    assert text.count("controller unreachable since") == 1  # one block while it stays down
    assert "retrying every 3s: cannot reach the rollout controller at http://x" in text
    assert text.count("Name:") == 3  # before, while down, back


def test_a_stale_final_phase_of_an_older_spec_does_not_end_the_watch() -> None:
    console, _ = log_console()
    stale = doc("Promoted", 3, 100)
    stale["metadata"]["generation"] = 2  # applied again, not yet seen by the controller
    line = watch(script(stale, doc("Aborted")), console, 1.0, sleep=lambda _: None)
    assert "Aborted" in line


def test_an_unknown_rollout_ends_the_watch_with_the_error() -> None:
    console, _ = log_console()
    with pytest.raises(NotFound, match="nope"):
        watch(script(NotFound("404: no rollout named 'nope'")), console, 1.0,
              sleep=lambda _: None)  # fmt: skip


def test_a_terminal_shows_the_view_in_place_with_its_footer() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True)
    looks = [doc("Progressing", 0, 20), doc("Progressing", 0, 20), doc("Promoted", 3, 100)]
    line = watch(script(*looks), console, 0.5, sleep=lambda _: None, clock=lambda: 0.0)
    text = out.getvalue()
    assert "refreshed" in text and "every 0.5s; Ctrl-C to stop" in text
    assert "\x1b[" in text  # drawn in place with cursor moves and colour
    assert "Promoted" in text and line.startswith("✔ churn Promoted")


def test_without_events_as_in_a_cluster_the_transitions_are_shown_newest_first() -> None:
    console, out = log_console()
    history = [{"at": 0.0, "phase": "Progressing", "step": 0, "reason": "RolloutStarted",
                "message": "rolling out v2"},
               {"at": 0.0, "phase": "Aborted", "step": 1, "reason": "AbortedByUser",
                "message": "aborted by a person"}]  # fmt: skip
    watch(lambda: Snapshot(doc("Aborted", history=history), None), console, 1.0,
          sleep=lambda _: None)  # fmt: skip
    text = out.getvalue()
    assert text.index("AbortedByUser") < text.index("RolloutStarted")


def test_messages_are_shown_as_they_are_not_as_markup() -> None:
    console, out = log_console()
    odd = {**SUCCESS, "name": "rate[5m]", "message": "query sum(x[/bold]) :x:"}
    watch(script(doc("Aborted", metrics=[odd], message="p99 [red]high[/red] :x:")), console,
          1.0, sleep=lambda _: None)  # fmt: skip
    text = out.getvalue()
    assert "p99 [red]high[/red] :x:" in text
    assert "rate[5m]" in text and "query sum(x[/bold]) :x:" in text


def test_colour_forced_in_a_log_gives_colour_but_no_redrawing() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True)  # FORCE_COLOR in a CI log
    looks = [doc("Paused", 1, 20), doc("Paused", 1, 20), doc("Promoted", 3, 100)]
    watch(script(*looks), console, 1.0, sleep=lambda _: None, live=False)
    text = out.getvalue()
    assert text.count("Name:") == 2 and "\x1b[32m" in text  # a green Promoted
    assert "\x1b[?25l" not in text and "refreshed" not in text  # no cursor games, no footer
