"""core/errors.py is pure: a module that raises our errors does not load a web framework."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "sluice.core.errors",
        "sluice.feature_store.retrieval",
        "sluice.model_server.validation",
        "sluice.drift_monitor.stats",
    ],
)
def test_importing_a_pure_module_loads_no_web_framework(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", f"{module} loads {out.stdout.strip()}"
