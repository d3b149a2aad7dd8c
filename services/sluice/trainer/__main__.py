"""``python -m sluice.trainer``: one training run from ``SLUICE_TRAINER_*``, then exit.

What Dockerfile.train runs; the same as ``sluice train``. Exit code 0 when the version was
registered, 1 when it was refused (the reason is logged), 2 when the settings are invalid.
"""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError

from sluice.core import logging as ctx
from sluice.core.errors import SluiceError
from sluice.core.logging import configure_logging
from sluice.core.registry import ModelRegistry
from sluice.trainer.progress import ConsoleSteps
from sluice.trainer.schema import infer_schema
from sluice.trainer.settings import Settings
from sluice.trainer.tables import load_table, training_set
from sluice.trainer.versions import ensure_new_version

log = logging.getLogger("sluice.trainer")


def main(settings: Settings | None = None) -> int:
    """Train and register one version; the exit code says how it went."""
    if settings is None:
        try:
            settings = Settings()
        except ValidationError as exc:
            configure_logging(service="trainer")
            log.error("invalid trainer settings", extra={"errors": _problems(exc)})
            return 2
    configure_logging(settings.log_level, service="trainer")
    ctx.model.set(settings.model)
    ctx.version.set(settings.version)
    registry = ModelRegistry(settings.registry)
    steps = ConsoleSteps()
    try:
        ensure_new_version(registry, settings.model, settings.version)
        table, source = load_table(
            settings.data, rows=settings.rows, seed=settings.seed, steps=steps
        )
        refs: list[str] = []
        if settings.features is not None:  # as `sluice train --features`
            table, refs = training_set(
                table, settings.features, settings.feature_refs, label=settings.label, steps=steps
            )
            source = f"{source} + {settings.features}"
        infer_schema(table, settings.label, settings.task)  # refuse an unusable table early
        from sluice.trainer.service import train_and_register  # takes seconds to import

        train_and_register(
            table, model=settings.model, version=settings.version, registry=registry,
            label=settings.label, algorithm=settings.algorithm, seed=settings.seed,
            source=source, feature_refs=refs, steps=steps, threads=settings.threads,
            task=settings.task,
        )  # fmt: skip
    except SluiceError as exc:
        log.error("training refused: %s", exc.message, extra={"code": exc.code})
        return 1
    return 0


def _problems(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]


if __name__ == "__main__":
    sys.exit(main())
