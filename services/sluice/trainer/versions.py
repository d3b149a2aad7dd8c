"""The check every training entry point makes first, before it spends time on anything."""

from __future__ import annotations

from sluice.core.errors import Conflict
from sluice.core.registry import ModelRegistry


def ensure_new_version(registry: ModelRegistry, model: str, version: str) -> None:
    """Refuse (Conflict) a version that is already registered, and names that are not allowed;
    refuse (Unavailable) a registry this process cannot write.

    ``ModelRegistry.register`` checks again when it writes, so a version registered
    meanwhile by someone else is refused too.
    """
    path = registry.path(model, version)
    if path.exists():
        raise Conflict(
            f"model {model!r} version {version!r} is already registered at {path}; "
            "versions are immutable, pick a new version name"
        )
    registry.check_writable(model)
