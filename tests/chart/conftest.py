"""The `chart` tier: the Helm chart rendered and checked by the tools that consume it.

helm 3.18 comes from the cache the k8s tier uses (``${SLUICE_CACHE:-~/.cache/sluice}/bin``);
``scripts/tools helm`` installs it there when it is missing. Every test here is marked
``chart`` (by tests/conftest.py, from the folder).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "sluice"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))

Render = Callable[..., list[dict[str, Any]]]


def cache_bin() -> Path:
    cache = os.environ.get("SLUICE_CACHE") or str(Path.home() / ".cache" / "sluice")
    return Path(cache) / "bin"


def run(argv: list[str], *, timeout: float = 120) -> str:
    """Run a tool; a non-zero exit fails the test with its output."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm binary, installed into the cache by scripts/tools when missing."""
    binary = cache_bin() / "helm"
    if not binary.is_file():
        run([str(ROOT / "scripts" / "tools"), "helm"], timeout=600)
    return binary


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """``render("ci/canary-values.yaml", "--set", "x=y")``: the chart's objects, as dicts."""

    def _render(*values: str, args: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        argv = [str(helm), "template", "sluice", str(CHART), "--namespace", "serving", *args]
        for file in values:
            argv += ["-f", str(CHART / file)]
        return [doc for doc in yaml.safe_load_all(run(argv)) if doc]

    return _render


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool (Debian's prometheus package), installed by scripts/tools when missing."""
    found = shutil.which("promtool")
    if found is None:
        run([str(ROOT / "scripts" / "tools"), "promtool"], timeout=900)
        found = shutil.which("promtool")
    assert found, "scripts/tools promtool did not install promtool"
    return found


@pytest.fixture(scope="session")
def checkov() -> Path:
    """checkov, in its own venv in the cache (scripts/tools checkov)."""
    binary = cache_bin() / "checkov"
    if not binary.exists():
        run([str(ROOT / "scripts" / "tools"), "checkov"], timeout=900)
    return binary
