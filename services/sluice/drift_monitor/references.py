"""The registry as the monitor sees it: which models to watch, each version's reference.

Profiles are parsed and turned into arrays once per version; a version whose profile is
missing or unreadable has no reference (its windows are reported ``no_reference``) and
is looked at again after ``forget()``.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from sluice.core.errors import SluiceError
from sluice.core.registry import ModelRegistry
from sluice.drift_monitor.batch import Kind
from sluice.drift_monitor.evaluate import Reference, prepare

log = logging.getLogger(__name__)


class RegistryReferences:
    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self._refs: dict[tuple[str, str], Reference | None] = {}
        self._classes: dict[tuple[str, str], tuple[str, list[str]] | None] = {}

    def models(self) -> list[str]:
        """Every model with at least one version."""
        return [m for m in self.registry.models() if self._versions(m)]

    def _versions(self, model: str) -> list[str]:
        try:
            return self.registry.versions(model)
        except SluiceError:
            return []

    def reference(self, model: str, version: str) -> Reference | None:
        key = (model, version)
        if key not in self._refs:
            try:
                self._refs[key] = prepare(self.registry.profile(model, version))
            except (SluiceError, OSError, ValidationError, ValueError) as exc:
                log.warning("no reference profile for %s/%s: %s", model, version, exc)
                self._refs[key] = None
        return self._refs[key]

    def classes(self, model: str, version: str) -> list[str] | None:
        outputs = self._outputs(model, version)
        return None if outputs is None else outputs[1]

    def task(self, model: str, version: str) -> str | None:
        """``classification`` or ``regression`` from the version's card; None without one."""
        outputs = self._outputs(model, version)
        return None if outputs is None else outputs[0]

    def _outputs(self, model: str, version: str) -> tuple[str, list[str]] | None:
        key = (model, version)
        if key not in self._classes:
            try:
                card = self.registry.card(model, version)
                self._classes[key] = (card.task, card.classes)
            except (SluiceError, OSError, ValidationError, ValueError):
                self._classes[key] = None
        return self._classes[key]

    def kinds(self, model: str) -> dict[str, Kind]:
        """Feature kinds of every registered version of ``model`` (the first kind wins)."""
        out: dict[str, Kind] = {}
        for version in self._versions(model):
            ref = self.reference(model, version)
            if ref is not None:
                for name, kind in ref.kinds.items():
                    out.setdefault(name, kind)
        return out

    def forget(self) -> None:
        """Look again at versions that had no reference (registered since, or fixed)."""
        self._refs = {k: v for k, v in self._refs.items() if v is not None}
        self._classes = {k: v for k, v in self._classes.items() if v is not None}
