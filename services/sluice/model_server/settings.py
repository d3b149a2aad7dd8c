"""The model server's settings: env ``SLUICE_MODEL_SERVER_*``, CLI options win over env."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from sluice.core.errors import InvalidInput
from sluice.core.registry import NAME_PATTERN
from sluice.core.settings import ServiceSettings

ENV_PREFIX = "SLUICE_MODEL_SERVER_"

InferenceMode = Literal["direct", "thread", "auto"]


def env_var(field: str) -> str:
    """The variable behind a field: ``port`` -> SLUICE_MODEL_SERVER_PORT."""
    return f"{ENV_PREFIX}{field.upper()}"


class Settings(ServiceSettings):
    """How one model server process serves one registered model version."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    registry: Path
    """The model registry folder (``<registry>/<model>/<version>/model.onnx`` ...)."""

    model: str
    """The registered model to serve."""

    version: str
    """The registered version of ``model`` to serve."""

    port: int = Field(default=8080, ge=0, le=65535)
    """TCP port to listen on; 0 picks a free one."""

    event_loop: Literal["uvloop", "asyncio"] = "asyncio"
    """asyncio's own loop: inference runs on the loop, and under uvloop a few requests
    waited 30x the median at concurrency 64 (p99 1.7 s against p50 56 ms), on asyncio's
    3.3x (256 ms against 77 ms) for 1.1x the CPU per request (sluice.bench.peers,
    docs/benchmarks.md)."""

    max_batch_size: int = 1024
    """Most rows one request may carry; more is refused with 413."""

    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body accepted; more is refused with 413 before it is read in full."""

    inference_mode: InferenceMode = "direct"
    """Where onnxruntime runs: ``direct`` on the event loop, ``thread`` in a thread pool,
    ``auto`` on the loop below ``thread_min_rows`` rows and in the pool from there on.
    ``direct`` measured fastest for 1 to 256 rows on 2 cores (bench/results/model_server.md):
    a pool hand-off costs more than the GIL-free inference it overlaps. ``auto`` trades some
    throughput for the tail latency of small requests queued behind large batches."""

    thread_min_rows: int = 256
    """With ``inference_mode=auto``, batches of at least this many rows go to the pool."""

    inference_threads: int = 2
    """Threads in the inference pool (``thread`` and ``auto`` modes)."""

    batch_max_rows: int = Field(default=0, ge=0)
    """Adaptive batching (model_server/batcher.py): concurrent requests smaller than this
    are gathered into one onnxruntime call of at most this many rows; 0 turns it off (the
    default until bench/results/model_server.md shows it helps on your hardware)."""

    batch_max_wait_ms: float = Field(default=0.0, ge=0, le=1000)
    """With batching on, how long a batch that is not full may wait for more requests after
    the server was idle; 0 gathers only what arrives while the previous batch runs."""

    intra_op_threads: int = 1
    """onnxruntime threads inside one inference; 1 suits many small concurrent requests."""

    explain_max_rows: int = 16
    """Most rows one ``:explain`` request may carry; more is refused with 413."""

    explain_timeout_seconds: float = Field(default=30.0, gt=0)
    """An ``:explain`` still running after this long stops between rows and answers 503
    (one explanation runs at a time, on its own thread, so predictions keep flowing)."""

    explain_background_rows: int = 50
    """Background rows drawn from the version's profile for SHAP (cost grows with it)."""

    explain_samples: int = 0
    """Coalitions evaluated per explained row; 0: shap's default (``2*M + 2048``, exact
    Shapley values up to 11 features)."""

    @field_validator("registry")
    @classmethod
    def _registry_is_a_folder(cls, value: Path, info: ValidationInfo) -> Path:
        if not value.is_dir():
            raise ValueError(f"{env_var(str(info.field_name))}: {value} is not a folder")
        return value

    @field_validator("model", "version")
    @classmethod
    def _plain_name(cls, value: str, info: ValidationInfo) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError(
                f"{env_var(str(info.field_name))}: {value!r} is not a registry name "
                "(1-63 lowercase letters, digits, '.', '_' or '-')"
            )
        return value

    @field_validator(
        "max_batch_size", "max_body_bytes", "thread_min_rows", "inference_threads",
        "intra_op_threads", "explain_max_rows", "explain_background_rows",
    )  # fmt: skip
    @classmethod
    def _at_least_one(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise ValueError(f"{env_var(str(info.field_name))} must be at least 1, got {value}")
        return value


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, ``overrides`` (CLI options) winning; InvalidInput
    naming the variable of every field that is wrong."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            message = error["msg"].removeprefix("Value error, ")
            if field and ENV_PREFIX not in message:
                message = f"{env_var(field)}: {message}"
            problems.append(message)
        raise InvalidInput("; ".join(problems)) from None
