"""The model registry: immutable versions on a filesystem, ``ROOT/<model>/<version>/``.

Each version holds ``model.onnx``, ``card.json`` (a ModelCard) and ``profile.json`` (a
Profile, the training data's reference for drift). The trainer writes versions; the model
server, router and drift monitor read them. A version is written to a temporary folder
beside its final place and renamed into it, so readers never see half a version, and an
existing version is never replaced.

Folders and files get the modes a plain ``mkdir`` and ``open`` give under the writer's umask
(0755 / 0644 under the usual 022), never ``mkdtemp``'s 0700: a model server running as
another uid than the trainer (a Job, a person, OpenShift's random uids) must read them.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sluice.core.errors import Conflict, InvalidInput, NotFound, Unavailable

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
ONNX_FILE, CARD_FILE, PROFILE_FILE = "model.onnx", "card.json", "profile.json"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureSpec(_Frozen):
    """One model input: a column of the training table."""

    name: str
    kind: Literal["numeric", "categorical"]
    dtype: Literal["float64", "int64", "bool", "string"]
    """The column's type in the training table."""
    categories: list[str] | None = None
    """Categories seen in training (categorical only); others are tolerated, not rejected."""
    allow_missing: bool = False
    """Whether a missing value (NaN / null) may be sent for this feature."""
    default: float | str | None = None
    """The training default (median or most frequent) used to fill a missing feature."""


class DataInfo(_Frozen):
    fingerprint: str
    """sha256 of the training table's canonical bytes."""
    rows: int
    train_rows: int
    test_rows: int
    source: str | None = None


class ModelCard(_Frozen):
    """What a registered version is, how it was made and how well it did."""

    model: str
    version: str
    created_at: str
    algorithm: str
    hyperparameters: dict[str, Any]
    label: str
    task: Literal["classification", "regression"] = "classification"
    """A classifier answers ``label`` and ``probabilities``; a regressor ``value``."""
    classes: list[str]
    """Class labels in the order of the probability output (as strings); none for a
    regressor."""
    features: list[FeatureSpec]
    entity_key: str | None = None
    """The entity id column recognised in the training table, used for feature lookup."""
    feature_refs: list[str] = Field(default_factory=list)
    """Feature-store references ("view:feature") the training set came from, if any."""
    metrics: dict[str, float]
    data: DataInfo
    packages: dict[str, str]
    git_commit: str | None = None
    parity_max_abs_diff: float
    """Largest |p_sklearn - p_onnx| (a regressor: |y_sklearn - y_onnx|) on the checked rows."""
    feature_importance: dict[str, float] = Field(default_factory=dict)
    """Global importance: mean |SHAP value| per feature over held-out rows, computed
    against the ONNX model (what ``:explain`` gives per row)."""


class Bins(_Frozen):
    """A histogram: ``len(edges) == len(counts) + 1``."""

    edges: list[float]
    counts: list[int]


class NumericProfile(_Frozen):
    name: str
    kind: Literal["numeric"] = "numeric"
    bins: Bins
    """Quantile bin edges of the training data and the counts that fall in each."""
    sample: list[float]
    """A bounded uniform random sample of the training values (for KS, Wasserstein)."""
    mean: float
    std: float
    missing: int


class CategoricalProfile(_Frozen):
    name: str
    kind: Literal["categorical"] = "categorical"
    frequencies: dict[str, int]
    missing: int


class PredictionProfile(_Frozen):
    score_name: str
    """What the score is: the positive-class probability for a binary model, the top
    probability for a multi-class one, the predicted value for a regressor."""
    bins: Bins
    sample: list[float]
    label_frequencies: dict[str, int]


class Profile(_Frozen):
    """The training data's reference for drift detection."""

    rows: int
    features: list[Annotated[NumericProfile | CategoricalProfile, Field(discriminator="kind")]]
    prediction: PredictionProfile


def check_name(kind: str, value: str) -> str:
    """Model and version names become paths and label values: keep them short and plain."""
    if not NAME_PATTERN.fullmatch(value):
        raise InvalidInput(
            f"{kind} name {value!r} is not allowed: use 1-63 lowercase letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    return value


class ModelRegistry:
    """Read and write immutable model versions under ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, model: str, version: str) -> Path:
        return self.root / check_name("model", model) / check_name("version", version)

    def check_writable(self, model: str) -> None:
        """Refuse (Unavailable), in one sentence, a registry this process cannot write.

        A trainer checks before it spends minutes training: a read-only volume or a folder
        owned by another uid would otherwise fail only at the end, with a traceback.
        """
        folder = self.root / check_name("model", model)
        existing = folder  # nothing is created here: the first folder that exists decides
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise Unavailable(self._unwritable(existing, "not a folder"))
        if not os.access(existing, os.W_OK | os.X_OK):
            raise Unavailable(self._unwritable(existing, "permission denied"))

    def _unwritable(self, folder: Path, why: str | None) -> str:
        return (
            f"the registry {self.root} is not writable here ({folder}: {why}; running as uid "
            f"{os.getuid()}): mount it read-write, or give this uid or group write access"
        )

    def register(self, card: ModelCard, profile: Profile, onnx_model: bytes) -> Path:
        """Store a new version atomically; refuse (Conflict) if it exists, changing nothing."""
        final = self.path(card.model, card.version)
        if final.exists():
            raise Conflict(
                f"model {card.model!r} version {card.version!r} is already registered "
                f"at {final}; versions are immutable, pick a new version name"
            )
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = final.parent / f".{card.version}.{secrets.token_hex(8)}"
        staging.mkdir(mode=0o777)  # the umask decides, as for any folder
        try:
            (staging / ONNX_FILE).write_bytes(onnx_model)
            (staging / CARD_FILE).write_text(card.model_dump_json(indent=2))
            (staging / PROFILE_FILE).write_text(profile.model_dump_json())
            for file in staging.iterdir():
                with file.open("rb") as fh:
                    os.fsync(fh.fileno())
            try:
                # rename() onto an existing non-empty directory fails: the race is safe.
                staging.rename(final)
            except OSError as exc:
                raise Conflict(
                    f"model {card.model!r} version {card.version!r} was registered meanwhile"
                ) from exc
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return final

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _visible(p))

    def versions(self, model: str) -> list[str]:
        folder = self.root / check_name("model", model)
        if not folder.is_dir():
            return []
        return sorted(
            (p.name for p in folder.iterdir() if p.is_dir() and _visible(p)),
            key=lambda v: (_created(folder / v), v),
        )

    def _existing(self, model: str, version: str) -> Path:
        path = self.path(model, version)
        if not (path / CARD_FILE).is_file():
            known = ", ".join(self.versions(model)) or "none"
            raise NotFound(
                f"model {model!r} version {version!r} is not in the registry at {self.root} "
                f"(versions: {known})"
            )
        return path

    def card(self, model: str, version: str) -> ModelCard:
        return ModelCard.model_validate_json(
            (self._existing(model, version) / CARD_FILE).read_text()
        )

    def profile(self, model: str, version: str) -> Profile:
        raw = (self._existing(model, version) / PROFILE_FILE).read_text()
        return Profile.model_validate_json(raw)

    def onnx_path(self, model: str, version: str) -> Path:
        return self._existing(model, version) / ONNX_FILE


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _created(path: Path) -> float:
    try:
        return (path / CARD_FILE).stat().st_mtime
    except OSError:
        return 0.0
