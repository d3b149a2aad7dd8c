"""In-process fakes of the controller's own interfaces (backends.py)."""

from __future__ import annotations

from typing import Any

from sluice.rollout.resource import Rollout, Status


class FakeSource:
    def __init__(self, *rollouts: Rollout) -> None:
        self.rollouts = {r.name: r for r in rollouts}
        self.events: list[tuple[str, str, str, str]] = []
        self.saves = 0

    async def list(self) -> list[Rollout]:
        return list(self.rollouts.values())

    async def save_status(self, rollout: Rollout, status: Status) -> None:
        self.saves += 1
        self.rollouts[rollout.name] = self.rollouts[rollout.name].model_copy(
            update={"status": status.model_copy(deep=True)}
        )

    async def event(self, rollout: Rollout, kind: str, reason: str, message: str) -> None:
        self.events.append((rollout.name, kind, reason, message))

    def status(self, name: str) -> Status:
        return self.rollouts[name].status


class FakeLeader:
    def __init__(self, held: bool = True) -> None:
        self.held = held

    async def acquire(self) -> bool:
        return self.held

    async def release(self) -> None:
        self.held = False


class FakeEvidence:
    """Constant traffic per second and version: ``per_second[version] = counts``."""

    def __init__(self) -> None:
        self.per_second: dict[str, dict[str, float]] = {}
        self.drift_answer: dict[str, Any] = {}
        self.values: dict[str, float | None] = {}
        self.asked: list[tuple[Any, ...]] = []

    def serve(self, version: str, n: int, err: int = 0, ms: float = 5.0, **more: float) -> None:
        ok = n - err
        bucket = {1: 2, 5: 4, 50: 10, 300: 15}.get(int(ms), 4)
        self.per_second[version] = {
            "n": n, "ok": ok, "err": err, "ms": ms * ok, "ms2": ms * ms * ok,
            f"b{bucket}": ok, "rows": ok, "s": 0.5 * ok, **more,
        }  # fmt: skip

    async def tallies(self, model: str, start: float, end: float) -> dict[str, dict[str, float]]:
        self.asked.append(("tallies", model))
        seconds = max(0, int(end) - int(start))
        return {v: {k: x * seconds for k, x in c.items()} for v, c in self.per_second.items()}

    async def drift(self, model: str, candidate: str, stable: str) -> dict[str, Any]:
        self.asked.append(("drift", model, candidate, stable))
        return self.drift_answer

    async def prometheus(self, address: str, query: str) -> float | None:
        self.asked.append(("prometheus", address))
        return self.values.get(query)

    async def web(
        self, url: str, path: str, headers: dict[str, str], timeout: float
    ) -> float | None:
        self.asked.append(("web", path, headers, timeout))
        return self.values.get(url)
