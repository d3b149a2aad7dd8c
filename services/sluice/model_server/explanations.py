"""``:explain``: per-feature attributions of this version's answers (``core.explain``).

Rows are checked exactly as ``:predict`` checks them, then explained against the same
ONNX runtime that answers predictions, on one thread of their own: one explanation runs
at a time, so a burst of them queues instead of taking every core from predictions.
Bounded per request in rows (``explain_max_rows``, else 413) and in time
(``explain_timeout_seconds``: stops between rows and answers 503).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from sluice.core.errors import InvalidInput, NotFound, PayloadTooLarge, Unavailable
from sluice.core.explain import Explainer, ExplainTimeout, RowExplanation
from sluice.core.registry import Profile
from sluice.model_server.backends import PROBABILITIES, VALUE
from sluice.model_server.service import ModelService
from sluice.model_server.settings import Settings
from sluice.model_server.validation import (
    BatchTooLarge,
    ValidationError,
    build_feed,
    columns_from_instances,
)

log = logging.getLogger(__name__)
METHOD = "kernel_shap"


class Explanations:
    """Explains rows for one ModelService."""

    def __init__(self, service: ModelService, profile: Profile | None, settings: Settings) -> None:
        self.service = service
        self.profile = profile
        self.max_rows = settings.explain_max_rows
        self.timeout = settings.explain_timeout_seconds
        self.background_rows = settings.explain_background_rows
        self.samples = settings.explain_samples or None
        self._explainer: Explainer | None = None
        self._pool = ThreadPoolExecutor(1, "explain")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def explain(self, instances: Any) -> dict[str, Any]:
        """The ``:explain`` response body for KServe-V1 ``instances``."""
        service = self.service
        runtime = service.runtime()
        rows = self._rows(instances)
        explainer = self._explainer_for(runtime)
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            found: list[RowExplanation] = await loop.run_in_executor(
                self._pool, explainer.explain, rows, started + self.timeout
            )
        except ExplainTimeout as exc:
            raise Unavailable(
                f"explaining took longer than {self.timeout:g}s (explain_timeout_seconds) "
                f"after {exc.done} of {len(rows)} rows; send fewer rows"
            ) from None
        seconds = time.monotonic() - started
        service.metrics.explain_seconds.observe(seconds)
        log.info("explained rows", extra={"rows": len(rows), "seconds": round(seconds, 3)})
        return {
            "model_name": service.card.model,
            "model_version": service.card.version,
            "method": METHOD,
            "background_rows": self.background_rows,
            "explanations": [e.as_json() for e in found],
            "feature_importance": service.card.feature_importance,
        }

    def _rows(self, instances: Any) -> list[dict[str, Any]]:
        """Instances checked as ``:predict`` checks them, as the model will see them."""
        inputs = self.service.inputs
        try:
            columns = columns_from_instances(inputs, instances, self.max_rows)
            feed, rows = build_feed(inputs, columns, self.max_rows)
        except BatchTooLarge as exc:
            raise PayloadTooLarge(f"{exc} (explain_max_rows)") from None
        except ValidationError as exc:
            raise InvalidInput(str(exc)) from None
        return [{name: _plain(feed[name][i, 0]) for name in feed} for i in range(rows)]

    def _explainer_for(self, runtime: Any) -> Explainer:
        if self._explainer is not None:
            return self._explainer
        if self.profile is None:
            raise NotFound(
                f"model {self.service.card.model!r} version {self.service.card.version!r} has "
                "no profile.json in the registry: no background to explain against"
            )
        output = VALUE if self.service.regression else PROBABILITIES

        def predict(feed: dict[str, np.ndarray]) -> np.ndarray:
            return np.asarray(runtime.run(feed)[output])

        dtypes = {spec.name: spec.dtype for spec in self.service.inputs}
        self._explainer = Explainer(
            self.service.card, self.profile, predict, dtypes, self.background_rows, self.samples
        )
        return self._explainer


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
