"""In-process fakes of the drift monitor's own interfaces (no Redis, no network)."""

# ruff: noqa: ARG002  (a fake keeps the signature of the interface it stands in for)

from __future__ import annotations

from typing import Any

from sluice.drift_monitor.batch import Batch, RawEntry
from sluice.drift_monitor.windows import parse_id


class FakeLog:
    """A consumer group over in-memory streams: delivered, pending and acknowledged entries."""

    def __init__(self) -> None:
        self.streams: dict[str, list[RawEntry]] = {}
        self.delivered: dict[str, int] = {}
        self.pending: dict[str, dict[str, RawEntry]] = {}

    def add(self, model: str, entry_id: str, fields: dict[bytes, bytes]) -> None:
        self.streams.setdefault(model, []).append((entry_id, fields))

    async def models(self) -> list[str]:
        return sorted(self.streams)

    async def ensure_group(self, model: str) -> None:
        self.streams.setdefault(model, [])
        self.delivered.setdefault(model, 0)
        self.pending.setdefault(model, {})

    async def claim(self, model: str, start: str, count: int) -> tuple[str, list[RawEntry]]:
        ids = sorted(self.pending[model], key=parse_id)
        ids = [i for i in ids if parse_id(i) >= parse_id(start)]
        page = ids[:count]
        rest = ids[count:]
        return (rest[0] if rest else "0-0"), [self.pending[model][i] for i in page]

    async def read(self, models: list[str], count: int, block_ms: int) -> dict[str, list[RawEntry]]:
        out: dict[str, list[RawEntry]] = {}
        for model in models:
            start = self.delivered[model]
            entries = self.streams[model][start : start + count]
            self.delivered[model] = start + len(entries)
            for entry in entries:
                self.pending[model][entry[0]] = entry
            if entries:
                out[model] = entries
        return out

    async def ack(self, model: str, ids: list[str]) -> None:
        for i in ids:
            self.pending[model].pop(i, None)

    async def lag_seconds(self, model: str) -> float:
        entries, read = self.streams.get(model, []), self.delivered.get(model, 0)
        if not entries or not read:
            return 0.0
        return (parse_id(entries[-1][0])[0] - parse_id(entries[read - 1][0])[0]) / 1000


class FakeState:
    def __init__(self) -> None:
        self.leases: dict[str, str] = {}
        self.cursor: dict[str, dict[str, str]] = {}
        self.index: dict[str, dict[str, int]] = {}
        self.latest_: dict[str, dict[str, Any]] = {}
        self.history_: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.rows_: dict[str, dict[str, int]] = {}
        self.streaks_: dict[str, dict[str, Any]] = {}

    async def heartbeat(self, replica: str, ttl: float) -> int:
        return 1

    async def acquire(self, model: str, token: str, ttl: float) -> bool:
        if model in self.leases:
            return False
        self.leases[model] = token
        return True

    async def renew(self, model: str, token: str, ttl: float) -> bool:
        return self.leases.get(model) == token

    async def release(self, model: str, token: str) -> None:
        if self.leases.get(model) == token:
            del self.leases[model]

    async def cursors(self, model: str) -> tuple[dict[str, str], dict[str, int], dict[str, Any]]:
        return (
            dict(self.cursor.get(model, {})),
            dict(self.index.get(model, {})),
            dict(self.streaks_.get(model, {})),
        )

    async def commit(
        self, model: str, token: str, key: str, report: dict[str, Any], rows: int,
        streak: tuple[str, dict[str, Any]] | None, history: int,
    ) -> bool:  # fmt: skip
        if self.leases.get(model) != token:
            return False
        if self.index.get(model, {}).get(key, 0) >= report["index"] + 1:
            return True  # already stored: the real script does not apply a window twice
        self.cursor.setdefault(model, {})[key] = report["last_id"]
        self.index.setdefault(model, {})[key] = report["index"] + 1
        self.latest_.setdefault(model, {})[key] = report
        self.history_.setdefault((model, key), []).insert(0, report)
        del self.history_[(model, key)][history:]
        rows_of = self.rows_.setdefault(model, {})
        rows_of[key] = rows_of.get(key, 0) + rows
        if streak:
            self.streaks_.setdefault(model, {})[streak[0]] = streak[1]
        return True

    async def set_streak(self, model: str, version: str, streak: dict[str, Any]) -> None:
        self.streaks_.setdefault(model, {})[version] = streak

    async def latest(self, model: str) -> dict[str, dict[str, Any]]:
        return dict(self.latest_.get(model, {}))

    async def history(self, model: str, key: str, count: int) -> list[dict[str, Any]]:
        return self.history_.get((model, key), [])[:count]

    async def streaks(self, model: str) -> dict[str, Any]:
        return dict(self.streaks_.get(model, {}))

    async def rows(self, model: str) -> dict[str, int]:
        return dict(self.rows_.get(model, {}))

    async def watched(self) -> list[str]:
        return sorted(self.latest_)


class FakeFeedback:
    def __init__(self) -> None:
        self.remembered = 0
        self.triples: dict[str, list[tuple[str, str, float]]] = {}
        self.counts: dict[str, int] = {}

    async def remember(self, model: str, batch: Batch) -> None:
        self.remembered += len(batch.entry_ids)

    async def join(self, model: str, ids: list[str], labels: list[Any]) -> dict[str, Any]:
        known = [i for i in ids if i.startswith("r")]
        for i, label in zip(ids, labels, strict=True):
            if i.startswith("r"):
                self.triples.setdefault("v1", []).append((str(label), "1", 0.9))
        counts = {"received": len(ids), "joined": len(known), "duplicate": 0,
                  "unknown": len(ids) - len(known)}  # fmt: skip
        for k, v in counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        return {**counts, "unknown_ids": [i for i in ids if not i.startswith("r")]}

    async def labelled(self, model: str, version: str) -> list[tuple[str, str, float]]:
        return self.triples.get(version, [])

    async def counters(self, model: str) -> dict[str, int]:
        return dict(self.counts)


class FakeAlerts:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, payload: dict[str, Any]) -> bool:
        self.sent.append(payload)
        return True


class FlakyState(FakeState):
    """A state store whose commits fail on the given calls (1-based), as a timeout would.

    A call in ``landed`` fails after the write was applied: the reply was lost, not the write.
    """

    def __init__(self, fail: set[int], landed: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.fail, self.landed, self.calls = fail, landed, 0

    async def commit(
        self, model: str, token: str, key: str, report: dict[str, Any], rows: int,
        streak: tuple[str, dict[str, Any]] | None, history: int,
    ) -> bool:  # fmt: skip
        self.calls += 1
        if self.calls in self.landed:
            await super().commit(model, token, key, report, rows, streak, history)
        if self.calls in self.fail | self.landed:
            raise TimeoutError("Timeout reading from redis")
        return await super().commit(model, token, key, report, rows, streak, history)


class FlakyFeedback(FakeFeedback):
    """A feedback store whose ``remember`` fails on the given calls (1-based)."""

    def __init__(self, fail: set[int]) -> None:
        super().__init__()
        self.fail, self.calls = fail, 0

    async def remember(self, model: str, batch: Batch) -> None:
        self.calls += 1
        if self.calls in self.fail:
            raise ConnectionError("Connection refused")
        await super().remember(model, batch)
