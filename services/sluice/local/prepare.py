"""What the stack serves, made once and reused: the churn table, its feature views applied
and materialised into the stack's Redis, and two trained versions of the churn model.

Every step runs the same entry point a user would (``sluice data generate``,
``sluice features apply`` / ``materialize``, ``sluice.trainer.run.train``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from sluice.core.errors import SluiceError
from sluice.core.registry import ModelRegistry
from sluice.local.plan import Layout
from sluice.trainer.progress import Steps

MODEL = "churn"
ROWS = 20_000
SEED = 7
VERSIONS = {"v1": ("logreg", 0), "v2": ("hgb", 1)}
"""The two versions ``sluice up`` serves: (algorithm, seed) each."""
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "churn" / "features.yaml"
SOURCE = "../../.sluice/churn.parquet"


def run_step(sluice: Sequence[str], args: Sequence[str], log: Path, env: Mapping[str, str]) -> None:
    """Run ``sluice args`` with its output appended to ``log``; a failure raises with its tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"$ sluice {' '.join(args)}\n".encode())
        out.flush()
        done = subprocess.run(
            [*sluice, *args], stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise SluiceError(f"sluice {' '.join(args)} failed (exit {done.returncode}):\n{tail}")


def feature_views(layout: Layout) -> Path:
    """The churn demo's feature views, pointed at this stack's table (an absolute path)."""
    if not EXAMPLE.exists():
        raise SluiceError(f"{EXAMPLE} is missing: run sluice up from a Sluice checkout")
    text = EXAMPLE.read_text()
    if SOURCE not in text:
        raise SluiceError(f"{EXAMPLE}: its source path is no longer {SOURCE}")
    layout.features.parent.mkdir(parents=True, exist_ok=True)
    layout.features.write_text(text.replace(SOURCE, str(layout.data)))
    return layout.features


def prepare_data(layout: Layout, sluice: Sequence[str], steps: Steps, rows: int = ROWS) -> None:
    """The churn table of ``rows`` customers, generated the first time."""
    if layout.data.exists():
        return
    log = layout.logs / "prepare.log"
    with steps.step(f"generate {rows:,} customers"):
        args = ["data", "generate", "--rows", str(rows), "--seed", str(SEED)]
        run_step(sluice, [*args, "--out", str(layout.data)], log, {})


def materialise(
    layout: Layout, sluice: Sequence[str], env: Mapping[str, str], steps: Steps
) -> None:
    """Apply the feature views and materialise what is new into the stack's Redis."""
    log = layout.logs / "prepare.log"
    views = feature_views(layout)
    with steps.step("materialise the churn features into Redis"):
        run_step(sluice, ["features", "apply", "-f", str(views)], log, env)
        run_step(sluice, ["features", "materialize", "--incremental"], log, env)


def train_versions(layout: Layout, steps: Steps) -> list[str]:
    """Train and register each of :data:`VERSIONS` missing from the registry."""
    from sluice.trainer.run import train

    registry = ModelRegistry(layout.registry)
    have = set(registry.versions(MODEL)) if (layout.registry / MODEL).exists() else set()
    for version, (algorithm, seed) in VERSIONS.items():
        if version in have:
            continue
        steps.note(f"training {MODEL} {version} ({algorithm}) from the feature store")
        train(
            registry, model=MODEL, version=version, data=layout.data, label="churned",
            algorithm=algorithm, task=None, seed=seed, rows=ROWS, threads=1,
            features=layout.features, feature_refs=[], steps=steps,
        )  # fmt: skip
    return list(VERSIONS)
