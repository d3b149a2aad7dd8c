"""``sluice up`` / ``status`` / ``down`` as a user runs them: real processes (Redis, every
service, Prometheus when installed) in a temporary home, checked from the outside."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sluice.local.state import pid_alive

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROWS = "2000"  # the smallest table the trainer takes well: a quick first run


def sluice_argv() -> list[str]:
    exe = Path(sys.executable).with_name("sluice")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sluice.cli"]


def run(home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    return subprocess.run(
        [*sluice_argv(), *args, "--home", str(home)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def record(home: Path) -> dict[str, dict[str, object]]:
    doc = json.loads((home / "stack" / "stack.json").read_text())
    return {s["name"]: s for s in doc["services"]}


def group_members(pgids: set[int]) -> list[int]:
    """Live (not zombie) processes in any of these process groups."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) in pgids:
            found.append(int(entry.name))
    return found


def assert_all_gone(pids: set[int]) -> None:
    deadline = time.monotonic() + 30
    while any(pid_alive(p) for p in pids) or group_members(pids):
        assert time.monotonic() < deadline, (
            f"left behind: {[p for p in pids if pid_alive(p)]} {group_members(pids)}"
        )
        time.sleep(0.2)


def predict(router: str) -> httpx.Response:
    """What the printed curl line does."""
    body = {"instances": [{"customer_id": "C000042"}]}
    return httpx.post(f"{router}/v1/models/churn:predict", json=body, timeout=30)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("stack")
    yield folder
    run(folder, "down", timeout=120)  # whatever a failed test left running


def test_up_detached_status_predict_refuse_a_second_down(home: Path) -> None:
    up = run(home, "up", "--detach", "--rows", ROWS)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "training churn v1" in up.stdout + up.stderr  # the first run trains
    services = record(home)
    expected = {"redis", "feature-store", "model-server-v1", "model-server-v2", "router",
                "drift-monitor", "rollout-controller"}  # fmt: skip
    assert expected <= set(services)
    pids = {int(str(s["pid"])) for s in services.values()}
    router = str(services["router"]["url"])
    assert f"curl -s -X POST {router}/v1/models/churn:predict" in up.stdout
    assert "sluice rollout apply -f " in up.stdout
    for name, service in services.items():
        assert re.search(rf"^{name}\s+{service['url']}\s+{service['pid']}$", up.stdout, re.M)

    status = run(home, "status")
    assert status.returncode == 0, status.stdout
    rows = [line.split() for line in status.stdout.splitlines()[1:]]
    assert {r[0] for r in rows} == set(services)
    assert all(r[-1] == "ready" for r in rows), status.stdout

    answer = predict(router)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "v1"  # v1 is stable, v2 only available
    secrets = dict(
        line.split("=", 1) for line in (home / "stack" / "secrets.env").read_text().splitlines()
    )
    admin = {"authorization": f"Bearer {secrets['SLUICE_ADMIN_TOKEN']}"}
    route = httpx.get(f"{router}/admin/v1/routes/churn", headers=admin, timeout=10)
    assert route.status_code == 200, route.text
    assert route.json()["stable"] == "v1"
    assert "v2" in str(route.json()["upstreams"])

    if "prometheus" in services:  # every service scraped, the chart's rules loaded
        prom = str(services["prometheus"]["url"])
        rules = httpx.get(f"{prom}/api/v1/rules", timeout=10).json()["data"]["groups"]
        assert {g["name"] for g in rules} >= {"sluice-rollouts", "sluice-serving"}
        targets = httpx.get(f"{prom}/api/v1/targets", timeout=10).json()["data"]
        jobs = {t["labels"]["job"] for t in targets["activeTargets"]}
        assert jobs == set(services) - {"redis", "prometheus"}

    before = (home / "stack" / "stack.json").read_bytes()
    again = run(home, "up", "--detach", "--rows", ROWS)
    assert again.returncode != 0
    assert "already runs" in again.stderr + again.stdout
    assert (home / "stack" / "stack.json").read_bytes() == before
    assert all(pid_alive(p) for p in pids)

    # the printed rollout command works as printed, from a shell with no SLUICE_* set
    line = up.stdout.split("and look at it:", 1)[1].strip().splitlines()[0]
    assert "rollout apply -f " in line
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    shell = subprocess.run(
        ["bash", "-c", line], capture_output=True, text=True, timeout=120, env=env
    )  # fmt: skip
    assert shell.returncode == 0, shell.stdout + shell.stderr
    assert "modelrollout/churn applied" in shell.stdout
    assert re.search(r"^Model:\s+churn\s+stable v1 -> candidate v2", shell.stdout, re.M)

    # a service that dies is reported with the end of its log
    victim = services["model-server-v2"]
    os.killpg(int(str(victim["pid"])), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while pid_alive(int(str(victim["pid"]))) and time.monotonic() < deadline:
        time.sleep(0.1)
    status = run(home, "status")
    assert status.returncode == 1
    assert re.search(r"^model-server-v2\s.*DEAD$", status.stdout, re.M), status.stdout
    assert "model-server-v2 is not running; the end of" in status.stdout
    assert "Uvicorn running" in status.stdout or "started" in status.stdout.lower()

    down = run(home, "down")
    assert down.returncode == 0, down.stderr
    assert_all_gone(pids)
    assert not (home / "stack" / "stack.json").exists()
    after = run(home, "status")
    assert after.returncode == 1
    assert "no stack runs" in after.stdout


def _foreground(home: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    with out.open("wb") as log:
        return subprocess.Popen(
            [*sluice_argv(), "up", "--rows", ROWS, "--home", str(home)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip


def _wait_up(home: Path, proc: subprocess.Popen[bytes], out: Path) -> dict[str, dict[str, object]]:
    deadline = time.monotonic() + 600
    while "Ctrl-C" not in out.read_text(errors="replace"):
        assert proc.poll() is None, out.read_text()
        assert time.monotonic() < deadline, out.read_text()
        time.sleep(0.2)
    return record(home)


def test_ctrl_c_stops_everything_and_a_death_is_reported(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "up.out"
    proc = _foreground(home, out)
    try:
        services = _wait_up(home, proc, out)
        pids = {int(str(s["pid"])) for s in services.values()}
        assert "training churn" not in out.read_text()  # the versions are reused

        victim = int(str(services["drift-monitor"]["pid"]))
        os.killpg(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while "drift-monitor exited" not in out.read_text(errors="replace"):
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        assert "the end of" in out.read_text()

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0 or proc.returncode in (1, 130)
        assert "stopped." in out.read_text()
        assert_all_gone(pids | {proc.pid})
        assert not (home / "stack" / "stack.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_down_from_another_shell_stops_a_foreground_stack(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "up.out"
    proc = _foreground(home, out)
    try:
        services = _wait_up(home, proc, out)
        pids = {int(str(s["pid"])) for s in services.values()}
        down = run(home, "down")
        assert down.returncode == 0, down.stderr
        proc.wait(timeout=120)
        assert_all_gone(pids | {proc.pid})
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_down_while_up_trains_stops_what_had_started(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = tmp_path / "up.out"
    proc = _foreground(home, out)
    try:
        deadline = time.monotonic() + 600
        while "training churn" not in out.read_text(errors="replace"):
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        started = record(home)
        assert set(started) == {"redis"}
        pids = {int(str(s["pid"])) for s in started.values()}
        down = run(home, "down")
        assert down.returncode == 0, down.stderr
        assert proc.wait(timeout=120) == 130, out.read_text()
        assert "interrupted: stopped what had started" in out.read_text()
        assert_all_gone(pids | {proc.pid})
        assert not (home / "stack" / "stack.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
