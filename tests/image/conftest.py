"""The `image` tier: both images built with podman over a local debootstrap base, every
service started from the built image as its non-root user, on a read-only root filesystem.

Slow (a cold build takes minutes), so it runs where ``SLUICE_TEST_IMAGES=1`` (CI sets it);
elsewhere its tests are deselected and the summary says so. ``scripts/images`` builds (the
base and the layers are cached in ``${SLUICE_CACHE:-~/.cache/sluice}/images``) and prints the
podman settings this machine needs (shared/IMAGES.md).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TAG = "image-test"
SERVE, TRAIN = f"localhost/sluice-serve:{TAG}", f"localhost/sluice-train:{TAG}"
ENABLED = os.environ.get("SLUICE_TEST_IMAGES", "") == "1"
WHY = "the image tier runs with SLUICE_TEST_IMAGES=1 (CI sets it; it builds both images)"
_deselected: list[pytest.Item] = []


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tier = [item for item in items if item.path.is_relative_to(HERE)]
    if ENABLED or not tier:
        return
    items[:] = [item for item in items if not item.path.is_relative_to(HERE)]
    config.hook.pytest_deselected(items=tier)
    _deselected.extend(tier)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _deselected:
        terminalreporter.write_line(f"image: {len(_deselected)} tests deselected: {WHY}")


def podman_env() -> dict[str, str]:
    """The environment podman needs here: scripts/images env's exports."""
    out = subprocess.run(
        [str(ROOT / "scripts" / "images"), "env"], capture_output=True, text=True, check=True
    ).stdout
    env = dict(os.environ)
    for word in shlex.split(out.removeprefix("export ")):
        key, _, value = word.partition("=")
        env[key] = value
    return env


class Podman:
    """podman with this machine's settings; containers it starts are removed by id."""

    def __init__(self) -> None:
        self.env = podman_env()
        self.started: list[str] = []

    def __call__(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def run(
        self, image: str, *args: str, user: str = "", entrypoint: str = "", **env: str
    ) -> subprocess.CompletedProcess[str]:
        """A container run to its end (host network, read-only root filesystem)."""
        return self("run", "--rm", *self._options(user, entrypoint, env), image, *args)

    def start(self, image: str, *args: str, user: str = "", **env: str) -> str:
        """A container left running; its id."""
        done = self("run", "-d", *self._options(user, "", env), image, *args)
        assert done.returncode == 0, done.stderr
        self.started.append(done.stdout.strip())
        return self.started[-1]

    def logs(self, container: str) -> str:
        done = self("logs", container)
        return done.stdout + done.stderr

    def stop_all(self) -> None:
        for container in self.started:
            self("rm", "-f", "-t", "2", container)
        self.started.clear()

    def _options(self, user: str, entrypoint: str, env: dict[str, str]) -> list[str]:
        options = ["--network=host", "--read-only"]
        if user:
            options += ["--user", user]
        if entrypoint:
            options += ["--entrypoint", entrypoint]
        for key, value in env.items():
            if key.startswith("v_"):  # v_models="/host:/models:ro"
                options += ["-v", value]
            else:
                options += ["-e", f"{key}={value}"]
        return options


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    if shutil.which("podman") is None:
        subprocess.run([str(ROOT / "scripts" / "tools"), "podman"], check=True, timeout=900)
    tool = Podman()
    yield tool
    tool.stop_all()


@pytest.fixture(scope="session")
def built(podman: Podman) -> dict[str, float]:
    """Both images built (the layer cache makes a rebuild quick); seconds it took."""
    started = time.monotonic()
    done = subprocess.run(
        [str(ROOT / "scripts" / "images"), "build"], env={**podman.env, "SLUICE_IMAGE_TAG": TAG},
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-6000:]
    return {"build_seconds": time.monotonic() - started}


def wait_ready(url: str, podman: Podman, container: str, timeout: float = 60) -> float:
    """Seconds until GET url/readyz answers 200; fails with the container's log."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url}/readyz not 200 after {timeout}s:\n{podman.logs(container)[-4000:]}")
