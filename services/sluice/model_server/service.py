"""One request through the interfaces: check the inputs, run the model, record metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from sluice.core.errors import InvalidInput, PayloadTooLarge
from sluice.core.registry import ModelCard
from sluice.model_server.backends import (
    LABEL,
    OUTPUTS,
    PROBABILITIES,
    REGRESSION_OUTPUTS,
    VALUE,
    Runtime,
)
from sluice.model_server.batcher import Batcher
from sluice.model_server.codec import Tensor, datatype_of
from sluice.model_server.errors import ModelNotFound, ModelNotReady
from sluice.model_server.metrics import Metrics, scores
from sluice.model_server.settings import Settings
from sluice.model_server.validation import (
    BatchTooLarge,
    InputSpec,
    ValidationError,
    build_feed,
    columns_from_instances,
)

log = logging.getLogger(__name__)

PLATFORM = "onnxruntime"


class ModelService:
    """Serves one model version: loads it, says whether it is ready, answers inferences."""

    def __init__(
        self,
        card: ModelCard,
        settings: Settings,
        metrics: Metrics,
        load_runtime: Callable[[], Runtime],
    ) -> None:
        self.card = card
        self.regression = card.task == "regression"
        self.outputs = REGRESSION_OUTPUTS if self.regression else OUTPUTS
        """What this model answers: ``label`` and ``probabilities``, or ``value``."""
        self.metrics = metrics
        self._load_runtime = load_runtime
        self._max_batch = settings.max_batch_size
        mode = settings.inference_mode
        self._pool_from_rows = {"direct": 2**62, "thread": 0}.get(mode, settings.thread_min_rows)
        self._pool: ThreadPoolExecutor | None = None
        if self._pool_from_rows < 2**62:
            self._pool = ThreadPoolExecutor(settings.inference_threads, "inference")
        self._runtime: Runtime | None = None
        self._batcher: Batcher | None = None
        self._batch_max_rows = settings.batch_max_rows
        self._batch_max_wait = settings.batch_max_wait_ms / 1000
        self.inputs: list[InputSpec] = []
        self._not_ready = "the model is loading"

    async def start(self) -> None:
        """Load the model off the event loop, run one warm-up inference, then be ready."""
        started = time.perf_counter()
        try:
            runtime = await asyncio.to_thread(self._load_runtime)
            self.inputs = input_specs(self.card, runtime)
            check_outputs(self.card, runtime, self.outputs)
            await asyncio.to_thread(runtime.run, warmup_feed(self.inputs))
        except Exception as exc:
            log.exception("the model failed to load")
            self._not_ready = f"the model failed to load: {exc}"
            return
        self._runtime = runtime
        if self._batch_max_rows:
            self._batcher = Batcher(
                runtime.run,
                max_rows=self._batch_max_rows,
                max_wait=self._batch_max_wait,
                observe=self._observe,
            )
        self._not_ready = ""
        log.info("model ready", extra={"load_seconds": round(time.perf_counter() - started, 3)})

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    async def ready_reason(self) -> str | None:
        """None when ready, else why not (for /readyz)."""
        return self._not_ready or None

    @property
    def ready(self) -> bool:
        return not self._not_ready

    def check_target(self, model: str, version: str | None = None) -> None:
        """404 unless the request names this server's model (and version, when given)."""
        if model != self.card.model:
            raise ModelNotFound(f"model {model!r} is not served here (this is {self.card.model!r})")
        if version is not None and version != self.card.version:
            raise ModelNotFound(
                f"version {version!r} of model {model!r} is not served here "
                f"(this is {self.card.version!r})"
            )

    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise ModelNotReady(f"model {self.card.model!r} is not ready: {self._not_ready}")
        return self._runtime

    def metadata(self) -> dict[str, Any]:
        """The V2 model metadata document."""
        runtime = self.runtime()
        n_classes = len(self.card.classes)
        out = runtime.output_types
        shapes = {LABEL: [-1], PROBABILITIES: [-1, n_classes], VALUE: [-1, 1]}
        return {
            "name": self.card.model,
            "versions": [self.card.version],
            "platform": PLATFORM,
            "inputs": [
                {"name": s.name, "datatype": datatype_of(s.dtype), "shape": [-1, 1]}
                for s in self.inputs
            ],
            "outputs": [
                {"name": name, "datatype": datatype_of(out[name]), "shape": shapes[name]}
                for name in self.outputs
            ],
            # what a router needs to feed this version without the registry
            "parameters": {
                "task": self.card.task,
                "classes": self.card.classes,
                "label": self.card.label,
                "entity_key": self.card.entity_key,
                "feature_refs": self.card.feature_refs,
                "defaults": {
                    f.name: f.default for f in self.card.features if f.default is not None
                },
                "allow_missing": [f.name for f in self.card.features if f.allow_missing],
            },
        }

    async def infer(self, tensors: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
        """The model's outputs by name (``label`` and ``probabilities``, or ``value``) for
        V2 input tensors keyed by feature name."""
        runtime = self.runtime()
        try:
            feed, rows = build_feed(self.inputs, tensors, self._max_batch)
        except BatchTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None
        except ValidationError as exc:
            raise InvalidInput(str(exc)) from None
        if self._batcher is not None and rows < self._batch_max_rows:
            return await self._batcher.infer(feed, rows)  # it records the batch's metrics
        started = time.perf_counter()
        if rows < self._pool_from_rows:
            outputs = runtime.run(feed)
        else:
            loop = asyncio.get_running_loop()
            outputs = await loop.run_in_executor(self._pool, runtime.run, feed)
        self._observe(time.perf_counter() - started, rows, outputs)
        return outputs

    def _observe(self, seconds: float, rows: int, outputs: dict[str, np.ndarray]) -> None:
        """Metrics of one onnxruntime call (a request, or a gathered batch)."""
        # the score histogram holds probabilities; a regressor's values have no fixed range
        per_row = _NO_SCORES if self.regression else scores(outputs[PROBABILITIES])
        self.metrics.observe(seconds, rows, per_row)

    async def predict(self, instances: Any) -> dict[str, np.ndarray]:
        """The model's outputs by name for KServe-V1 ``instances``."""
        self.runtime()
        try:
            columns = columns_from_instances(self.inputs, instances, self._max_batch)
        except BatchTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None
        except ValidationError as exc:
            raise InvalidInput(str(exc)) from None
        return await self.infer(columns)


_NO_SCORES = np.empty(0, dtype=np.float64)


def check_outputs(card: ModelCard, runtime: Runtime, wanted: tuple[str, ...]) -> None:
    """Refuse a graph whose outputs are not the ones its card's task answers."""
    have = tuple(runtime.output_types)
    if have != wanted:
        raise ValueError(
            f"the ONNX graph answers {list(have)} but card.json says it is a {card.task} "
            f"model, which answers {list(wanted)}"
        )


def input_specs(card: ModelCard, runtime: Runtime) -> list[InputSpec]:
    """Pair each card feature with the runtime's element type; refuse a graph that differs."""
    types = runtime.input_types
    features = {f.name for f in card.features}
    missing = [f.name for f in card.features if f.name not in types]
    extra = [name for name in types if name not in features]
    if missing or extra:
        raise ValueError(
            f"the ONNX graph does not match card.json: inputs missing {missing}, unexpected {extra}"
        )
    return [InputSpec.of(f, types[f.name]) for f in card.features]


def warmup_feed(inputs: list[InputSpec]) -> dict[str, np.ndarray]:
    """One plausible row: each feature's training default (else 0, the first category)."""
    feed = {}
    for spec in inputs:
        value = spec.feature.default
        if spec.dtype.kind == "O":
            categories = spec.feature.categories or [""]
            value = value if isinstance(value, str) else categories[0]
        elif not isinstance(value, int | float):
            value = 0
        feed[spec.name] = np.array([[value]], dtype=spec.dtype)
    return feed
