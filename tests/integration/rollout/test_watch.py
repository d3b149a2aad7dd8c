"""``sluice rollout get NAME --watch`` against a real controller process and a real Redis,
the watcher itself a real ``sluice`` process: what its user sees, and how it ends."""

from __future__ import annotations

import fcntl
import itertools
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.procs import Process, free_port, running, sluice_command

TOKEN = "watch-token"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
NOWHERE = "http://127.0.0.1:9"  # the controller writes routes; nothing is sent there
EVENTS = (
    'sluice_rollout_http_requests_total{code="200",endpoint="/admin/v1/rollouts/{name}/events"}'
)


def rollout(steps: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": "churn", "stable": "v1", "candidate": "v2",
        "strategy": {"canary": {"steps": steps}},
        "upstreams": {"v1": NOWHERE, "v2": NOWHERE},
    }  # fmt: skip
    spec.update(more)
    return {"apiVersion": "serving.sluice.dev/v1alpha1", "kind": "ModelRollout",
            "metadata": {"name": "churn"}, "spec": spec}  # fmt: skip


@dataclass
class Controller:
    proc: Process
    env: dict[str, str]
    work: Path

    @property
    def url(self) -> str:
        return self.proc.url or ""

    def sluice(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*sluice_command(), *args], capture_output=True, text=True,
                              timeout=60, env=self.env)  # fmt: skip

    def apply(self, doc: dict[str, Any]) -> None:
        path = self.work / "rollout.yaml"
        path.write_text(yaml.safe_dump(doc))
        done = self.sluice("rollout", "apply", "-f", str(path))
        assert done.returncode == 0, done.stderr

    def status(self) -> dict[str, Any]:
        resp = httpx.get(f"{self.url}/admin/v1/rollouts/churn", headers=ADMIN)
        assert resp.status_code == 200, resp.text
        st: dict[str, Any] = resp.json()["status"]
        return st

    def looks(self) -> int:
        """How many times the watcher has asked (each look reads the events once)."""
        for line in httpx.get(f"{self.url}/metrics").text.splitlines():
            if line.startswith(EVENTS):
                return int(float(line.split()[-1]))
        return 0

    @contextmanager
    def watcher(self, *args: str) -> Iterator[Process]:
        argv = [*sluice_command(), "rollout", "get", "churn", "--watch", *args]
        with running(argv, log=self.work / f"watch-{time.monotonic_ns()}.log",
                     env=self.env) as proc:  # fmt: skip
            yield proc


@pytest.fixture
def controller(redis_url: str, tmp_path: Path) -> Iterator[Controller]:
    port = free_port()
    env = {
        **os.environ, "SLUICE_REDIS_URL": redis_url, "SLUICE_ADMIN_TOKEN": TOKEN,
        "SLUICE_ROLLOUT_TICK_SECONDS": "0.1", "SLUICE_ROLLOUT_SETTLE_SECONDS": "0",
        "SLUICE_ROLLOUT_URL": f"http://127.0.0.1:{port}",
    }  # fmt: skip
    argv = [*sluice_command(), "serve", "rollout-controller", "--port", str(port)]
    with running(argv, log=tmp_path / "controller.log", env=env,
                 ready_url=f"http://127.0.0.1:{port}/readyz") as proc:  # fmt: skip
        yield Controller(proc, env, tmp_path)


def wait_for(what: str, proc: Process, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while what not in proc.output():
        assert proc.popen.poll() is None or what in proc.output(), proc.output()
        assert time.monotonic() < deadline, f"{what!r} not shown:\n{proc.output()}"
        time.sleep(0.05)
    return proc.output()


def blocks(output: str) -> list[str]:
    return ["Name:" + b for b in output.split("Name:")[1:]]


def test_the_watch_shows_phase_step_weight_and_each_analysis_value_then_ends_promoted(
    controller: Controller,
) -> None:
    analysis = {"interval": "0.3s", "minSamples": 10, "inconclusiveLimit": 2, "metrics": [
        {"name": "success", "builtin": "successRate", "condition": ">= 0.95"},
        {"name": "p99", "builtin": "latencyP99", "condition": "<= 0.25"},
    ]}  # fmt: skip
    controller.apply(rollout([{"setWeight": 20}, {"analysis": {}}, {"setWeight": 100}],
                             analysis=analysis))  # fmt: skip
    with controller.watcher("--interval", "0.2") as watch:
        # no traffic: every check is inconclusive, and two in a row pause it for a person
        out = wait_for("TooLittleEvidence", watch)
        paused = blocks(out)[-1]
        assert re.search(r"Phase:\s+॥ Paused\s+\(canary\)", paused), paused
        assert re.search(r"Step:\s+2/3 analysis \(until a check passes\)", paused), paused
        assert re.search(r"Weight:\s+20%  mirror 0%", paused), paused
        for name, condition in (("success", ">= 0.95"), ("p99", "<= 0.25")):
            line = next(x for x in paused.splitlines() if x.startswith(f"{name} "))
            assert condition in line and "? inconclusive" in line and "0 samples" in line, line
        assert controller.sluice("rollout", "promote", "churn", "--full").returncode == 0
        assert watch.popen.wait(60) == 0, watch.output()
    out = watch.output()
    assert re.search(r"Phase:\s+✔ Promoted", blocks(out)[-1]), out
    assert out.rstrip().splitlines()[-1].startswith("✔ churn Promoted: v2 promoted"), out
    assert "Traceback" not in out


def test_a_log_gets_a_block_per_change_not_per_look(controller: Controller) -> None:
    controller.apply(rollout([{"setWeight": 30}, {"pause": {}}, {"setWeight": 100}]))
    with controller.watcher("--interval", "0.1") as watch:
        wait_for("PausedByStep", watch)
        shown, looked = len(blocks(watch.output())), controller.looks()
        while controller.looks() < looked + 15:  # fifteen more looks at a rollout that waits
            assert watch.popen.poll() is None, watch.output()
            time.sleep(0.05)
        assert len(blocks(watch.output())) == shown, watch.output()
        assert controller.sluice("rollout", "promote", "churn").returncode == 0
        assert watch.popen.wait(60) == 0, watch.output()
    printed = blocks(watch.output())
    assert all(a != b for a, b in itertools.pairwise(printed)), printed
    assert "\x1b[" not in watch.output()  # no colour codes in a log
    assert re.search(r"Phase:\s+✔ Promoted", printed[-1]), printed[-1]


def test_an_aborted_rollout_ends_the_watch_with_its_verdict(controller: Controller) -> None:
    controller.apply(rollout([{"setWeight": 30}, {"pause": {}}]))
    with controller.watcher("--interval", "0.2") as watch:
        wait_for("PausedByStep", watch)
        assert controller.sluice("rollout", "abort", "churn").returncode == 0
        assert watch.popen.wait(60) == 0, watch.output()
    assert watch.output().rstrip().splitlines()[-1].startswith("✖ churn Aborted: aborted by")


def test_an_unknown_name_or_a_wrong_token_ends_the_watch_at_once(controller: Controller) -> None:
    done = controller.sluice("rollout", "get", "nope", "--watch")
    assert done.returncode != 0
    assert "nope" in done.stderr and "Traceback" not in done.stderr, done.stderr
    controller.apply(rollout([{"pause": {}}]))
    argv = [*sluice_command(), "rollout", "get", "churn", "--watch"]
    env = {**controller.env, "SLUICE_ADMIN_TOKEN": "wrong"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode != 0 and "401" in done.stderr, done.stderr


def test_ctrl_c_exits_130_quietly(controller: Controller) -> None:
    controller.apply(rollout([{"pause": {}}]))
    with controller.watcher("--interval", "0.2") as watch:
        wait_for("PausedByStep", watch)
        watch.popen.send_signal(signal.SIGINT)
        assert watch.popen.wait(30) == 130
    assert "Traceback" not in watch.output() and "Aborted!" not in watch.output()


def test_an_unreachable_controller_is_shown_and_the_watch_goes_on(
    controller: Controller, tmp_path: Path
) -> None:
    controller.apply(rollout([{"pause": {}}]))
    with controller.watcher("--interval", "0.2") as watch:
        wait_for("PausedByStep", watch)
        controller.proc.stop()
        wait_for("controller unreachable since", watch)
        assert watch.popen.poll() is None  # still watching
        port = controller.url.rsplit(":", 1)[1]
        argv = [*sluice_command(), "serve", "rollout-controller", "--port", port]
        with running(argv, log=tmp_path / "controller-again.log", env=controller.env,
                     ready_url=f"{controller.url}/readyz"):  # fmt: skip
            assert controller.sluice("rollout", "promote", "churn").returncode == 0
            assert watch.popen.wait(60) == 0, watch.output()
    printed = blocks(watch.output())
    assert "unreachable" not in printed[-1] and "Promoted" in printed[-1], printed[-1]


@contextmanager
def on_a_terminal(controller: Controller) -> Iterator[tuple[subprocess.Popen[bytes], bytearray]]:
    """The watcher on a pseudo-terminal of 140 columns; yields it and what it drew so far."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    argv = [*sluice_command(), "rollout", "get", "churn", "--watch", "--interval", "0.2"]
    env = {**controller.env, "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    watcher = subprocess.Popen(argv, stdin=child, stdout=child, stderr=child, env=env,
                               start_new_session=True)  # fmt: skip
    os.close(child)
    seen = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the watcher closed its terminal
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while b"PausedByStep" not in seen:
            assert watcher.poll() is None and time.monotonic() < deadline, bytes(seen)
            time.sleep(0.05)
        yield watcher, seen
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(10)
        reader.join(10)
        os.close(main)


def test_on_a_terminal_the_view_is_drawn_in_place_and_ends_with_the_verdict(
    controller: Controller,
) -> None:
    controller.apply(rollout([{"setWeight": 30}, {"pause": {}}]))
    with on_a_terminal(controller) as (watcher, seen):
        assert controller.sluice("rollout", "promote", "churn").returncode == 0
        assert watcher.wait(60) == 0
    text = seen.decode(errors="replace")
    assert "\x1b[" in text and "refreshed" in text and "Ctrl-C to stop" in text
    assert "Weight:" in text and "30%" in text
    assert "churn Promoted: v2 promoted" in text.splitlines()[-1], text[-2000:]


def test_on_a_terminal_ctrl_c_exits_130_and_gives_the_cursor_back(
    controller: Controller,
) -> None:
    controller.apply(rollout([{"pause": {}}]))
    with on_a_terminal(controller) as (watcher, seen):
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(30) == 130
    text = seen.decode(errors="replace")
    assert text.rfind("\x1b[?25h") > text.rfind("\x1b[?25l") >= 0  # hidden, then shown
    assert "Traceback" not in text and "Aborted!" not in text
