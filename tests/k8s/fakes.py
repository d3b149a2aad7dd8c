"""In-process fakes of our own interfaces for the k8s tier."""

# ruff: noqa: ARG002  (a fake keeps the signature of the interface it stands in for)

from __future__ import annotations

from typing import Any

from sluice.core.tally import Counts


class ChosenTallies:
    """``Evidence`` (backends.py) whose routers counted, every second, the counts the test
    chose per model and version; the drift monitor and providers are not asked here."""

    def __init__(self, per_second: dict[str, dict[str, Counts]]) -> None:
        self.per_second = per_second

    async def tallies(self, model: str, start: float, end: float) -> dict[str, Counts]:
        seconds = max(0.0, end - start)
        chosen = self.per_second.get(model, {})
        return {v: {k: c * seconds for k, c in counts.items()} for v, counts in chosen.items()}

    async def drift(self, model: str, candidate: str, stable: str) -> dict[str, Any]:
        raise AssertionError("no drift metric in these rollouts")

    async def prometheus(self, address: str, query: str) -> float | None:
        raise AssertionError("no prometheus metric in these rollouts")

    async def web(
        self, url: str, path: str, headers: dict[str, str], timeout: float
    ) -> float | None:
        raise AssertionError("no web metric in these rollouts")
