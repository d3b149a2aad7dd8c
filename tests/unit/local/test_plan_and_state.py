"""The local stack's pure plan, its state folder, and the CLI's refusals of bad input."""

from __future__ import annotations

import doctest
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sluice.cli import app
from sluice.core.errors import Conflict, SluiceError
from sluice.local import plan
from sluice.local.plan import SECRETS, Layout
from sluice.local.stack import choose_ports, free_port
from sluice.local.state import (
    Record,
    Running,
    live_record,
    load_record,
    load_secrets,
    read_secrets,
    save_record,
)


def test_docstring_examples() -> None:
    result = doctest.testmod(plan, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0


def test_the_plan_starts_redis_first_and_prometheus_last(tmp_path: Path) -> None:
    names = plan.service_names(["v1", "v2"], prometheus=True)
    ports = {name: 10000 + i for i, name in enumerate(names)}
    secrets = {name: f"{name}-value" for name in SECRETS}
    services = plan.plan(
        Layout(tmp_path), sluice=["sluice"], redis_server="/bin/redis-server",
        prometheus="/bin/prometheus", model="churn", versions=["v1", "v2"], ports=ports,
        secrets=secrets,
    )  # fmt: skip
    assert [s.name for s in services] == names
    redis = services[0]
    assert redis.argv[redis.argv.index("--appendonly") :][:2] == ("--appendonly", "yes")
    assert "SLUICE_REDIS_PASSWORD-value" in redis.argv
    router = services[names.index("router")]
    assert router.env["SLUICE_REDIS_URL"].startswith("redis://:SLUICE_REDIS_PASSWORD-value@")
    assert router.env["SLUICE_ADMIN_TOKEN"] == "SLUICE_ADMIN_TOKEN-value"
    config = plan.prometheus_config(services, Path("/rules.yaml"))
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert jobs == [n for n in names if n not in ("redis", "prometheus")]
    assert config["rule_files"] == ["/rules.yaml"]


@pytest.mark.parametrize("bad", ["router", "router=", "router=http", "router=70000", "=0"])
def test_a_malformed_port_names_itself(bad: str) -> None:
    with pytest.raises(ValueError, match="expected NAME=PORT"):
        plan.parse_ports([bad])


def test_ports_given_are_used_and_checked() -> None:
    port = free_port()
    assert choose_ports(["router", "redis"], {"router": port})["router"] == port
    with pytest.raises(SluiceError, match="--port names nope: the services are router"):
        choose_ports(["router"], {"nope": port})
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with pytest.raises(Conflict, match=f"port {taken} for router is in use"):
            choose_ports(["router"], {"router": taken})


def test_secrets_are_generated_once_private_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLUICE_REDIS_PASSWORD", raising=False)
    layout = Layout(tmp_path)
    assert read_secrets(layout) == {}
    first = load_secrets(layout)
    assert set(first) == set(SECRETS)
    path = layout.stack / "secrets.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secrets(layout) == first
    monkeypatch.setenv("SLUICE_REDIS_PASSWORD", "given")
    second = load_secrets(layout)
    assert second["SLUICE_REDIS_PASSWORD"] == "given"
    assert second["SLUICE_ADMIN_TOKEN"] == first["SLUICE_ADMIN_TOKEN"]
    assert read_secrets(layout) == second


def test_a_record_of_dead_processes_is_stale(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    dead = Running("router", 2**22 + 12345, 1, "http://x", "log", ["x"], {}, "/readyz")
    save_record(layout, Record(0, [dead]))
    assert load_record(layout) == Record(0, [dead])
    assert live_record(tmp_path) is None


def test_the_cli_refuses_bad_input_with_a_message(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["up", "--home", str(tmp_path), "--port", "router"])
    assert isinstance(bad.exception, SluiceError)  # main() prints it, exit 1
    assert "--port 'router': expected NAME=PORT" in bad.exception.message
    down = runner.invoke(app, ["down", "--home", str(tmp_path)])
    assert down.exit_code == 0
    assert "no stack runs" in down.output
    status = runner.invoke(app, ["status", "--home", str(tmp_path)])
    assert status.exit_code == 1
    assert "no stack runs" in status.output


def test_a_pid_reused_by_another_process_is_neither_alive_nor_stopped() -> None:
    import subprocess

    from sluice.local.stack import stop_services
    from sluice.local.state import start_time

    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        started = start_time(other.pid)
        assert started is not None
        ours = Running("router", other.pid, 1, "http://x", "log", ["x"], {}, "/readyz", started)
        assert ours.alive()
        then = Running("router", other.pid, 1, "http://x", "log", ["x"], {}, None, started - 1)
        assert not then.alive()  # the record is of an older process with this pid
        assert stop_services([then], timeout=1) == []
        assert other.poll() is None  # not signalled
        assert Record(other.pid, [], started - 1).alive() is False
        assert Record(other.pid, [], started).alive() is True
    finally:
        other.kill()
        other.wait()
