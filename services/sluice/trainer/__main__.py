"""``python -m sluice.trainer``: one training run from ``SLUICE_TRAINER_*``, then exit.

What Dockerfile.train runs: the same flow as ``sluice train`` (``sluice.trainer.run``). Exit
code 0 when the version was registered, 1 when it was refused (the reason is logged), 2 when
the settings are invalid.
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
from sluice.trainer.run import train
from sluice.trainer.settings import Settings

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
    try:
        train(
            ModelRegistry(settings.registry), model=settings.model, version=settings.version,
            data=settings.data, label=settings.label, algorithm=settings.algorithm,
            task=settings.task, seed=settings.seed, rows=settings.rows, threads=settings.threads,
            features=settings.features, feature_refs=settings.feature_refs, steps=ConsoleSteps(),
        )  # fmt: skip
    except SluiceError as exc:
        log.error("training refused: %s", exc.message, extra={"code": exc.code})
        return 1
    return 0


def _problems(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]


if __name__ == "__main__":
    sys.exit(main())
