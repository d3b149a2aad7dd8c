"""In-process fakes of the drift monitor's own interfaces (no Redis, no network)."""

# ruff: noqa: ARG002  (a fake keeps the signature of the interface it stands in for)

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sluice.drift_monitor.batch import Batch, RawEntry
from sluice.drift_monitor.windows import parse_id

Stream = tuple[str, int]


class FakeLog:
    """A consumer group over in-memory streams: delivered, pending and acknowledged entries.
    A model's log may be on several streams (``shard``)."""

    def __init__(self) -> None:
        self.streams_: dict[Stream, list[RawEntry]] = {}
        self.delivered: dict[Stream, int] = {}
        self.pending: dict[Stream, dict[str, RawEntry]] = {}

    def add(self, model: str, entry_id: str, fields: dict[bytes, bytes], shard: int = 0) -> None:
        self.streams_.setdefault((model, shard), []).append((entry_id, fields))

    async def streams(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for model, shard in sorted(self.streams_):
            found.setdefault(model, []).append(shard)
        return found

    async def ensure_group(self, model: str, shard: int, start: str) -> bool:
        if (model, shard) in self.delivered:
            return False
        entries = self.streams_.setdefault((model, shard), [])
        self.delivered[(model, shard)] = len(entries) if start == "$" else 0
        self.pending[(model, shard)] = {}
        return True

    async def claim(
        self, model: str, shard: int, start: str, count: int
    ) -> tuple[str, list[RawEntry]]:
        pending = self.pending[(model, shard)]
        ids = sorted(pending, key=parse_id)
        ids = [i for i in ids if parse_id(i) >= parse_id(start)]
        page = ids[:count]
        rest = ids[count:]
        return (rest[0] if rest else "0-0"), [pending[i] for i in page]

    async def read(
        self, streams: list[Stream], count: int, block_ms: int
    ) -> dict[Stream, list[RawEntry]]:
        out: dict[Stream, list[RawEntry]] = {}
        for stream in streams:
            start = self.delivered[stream]
            entries = self.streams_[stream][start : start + count]
            self.delivered[stream] = start + len(entries)
            for entry in entries:
                self.pending[stream][entry[0]] = entry
            if entries:
                out[stream] = entries
        return out

    async def ack(self, model: str, shard: int, ids: list[str]) -> None:
        for i in ids:
            self.pending[(model, shard)].pop(i, None)

    async def lag_seconds(self, model: str, shards: Iterable[int] = (0,)) -> float:
        lags = [0.0]
        for shard in shards:
            entries = self.streams_.get((model, shard), [])
            read = self.delivered.get((model, shard), 0)
            if entries and read:
                lags.append(
                    (parse_id(entries[-1][0])[0] - parse_id(entries[read - 1][0])[0]) / 1000
                )
        return max(lags)


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
        self, model: str, token: str, key: str, cursors: dict[str, str],
        report: dict[str, Any], rows: int, streak: tuple[str, dict[str, Any]] | None,
        history: int,
    ) -> bool:  # fmt: skip
        if self.leases.get(model) != token:
            return False
        if self.index.get(model, {}).get(key, 0) >= report["index"] + 1:
            return True  # already stored: the real script does not apply a window twice
        self.cursor.setdefault(model, {}).update(cursors)
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
        self, model: str, token: str, key: str, cursors: dict[str, str],
        report: dict[str, Any], rows: int, streak: tuple[str, dict[str, Any]] | None,
        history: int,
    ) -> bool:  # fmt: skip
        self.calls += 1
        args = (model, token, key, cursors, report, rows, streak, history)
        if self.calls in self.landed:
            await super().commit(*args)
        if self.calls in self.fail | self.landed:
            raise TimeoutError("Timeout reading from redis")
        return await super().commit(*args)


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
