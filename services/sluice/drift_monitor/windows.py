"""Windows over one model's prediction log: per version, and per pair of versions.

A window closes when it holds ``size`` rows (a pair window: ``size`` rows on each side)
or when it spans ``seconds`` of record time, whichever comes first; an idle window also
closes once ``seconds`` have passed on the wall clock. Windows never split an entry.

Restart safety rests on two facts kept here. Each key (a version, or a pair) has a
cursor per stream of the model: the last stream id of its last committed window on that
stream; an entry at or below it is skipped for that key, so an entry read again after a
crash is never counted twice. And an entry may be acknowledged only once it is older than
the first entry, on its stream, of every open window (``ack_horizon``): anything not
acknowledged is read again after a crash, so nothing is lost.

A model whose log is spread over several streams (shards) has windows that hold entries
of all of them: each stream is read in order, so both facts hold per stream. Stream
``s`` > 0 keeps its cursor under ``key@s``; the first stream under ``key`` alone, so a
model with one stream stores what it always did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from sluice.drift_monitor.batch import Batch, ObjectArray
from sluice.drift_monitor.stats import FloatArray, IntArray

StreamId = tuple[int, int]
Shard = int


def cursor_field(key: str, shard: Shard) -> str:
    """Where a key's cursor on one stream is kept: ``"v1"``, ``"v1@2"``.

    >>> cursor_field("v1", 0), cursor_field("v1|v2", 2)
    ('v1', 'v1|v2@2')
    """
    return key if shard == 0 else f"{key}@{shard}"


def log_id(entry_id: str, shard: Shard) -> str:
    """An entry's id with its stream, as reports show it: ``"17-0"``, ``"17-0@2"``."""
    return entry_id if shard == 0 else f"{entry_id}@{shard}"


def parse_id(entry_id: str) -> StreamId:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``: stream ids compare as pairs."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class WindowSpec:
    size: int
    """Rows (per side) that close a window."""
    seconds: float
    """Record-time span (and wall-clock idle time) that closes a window."""
    side_cap: int
    """Most rows kept per side for the statistics; later rows are counted, not kept."""


def take(
    spec: WindowSpec,
    held: tuple[int, ...],
    start_ts: float | None,
    side: IntArray,
    rows: IntArray,
    ts: FloatArray,
) -> tuple[int, bool]:
    """How many of the next entries join the open window, and whether it closes after them.

    ``held`` is the rows the window already holds per side. With size 3, one side, nothing
    held and entries of 2, 2 and 2 rows, the first two entries fill the window (4 >= 3):

    >>> spec = WindowSpec(size=3, seconds=60, side_cap=100)
    >>> take(spec, (0,), None, np.zeros(3, int), np.array([2, 2, 2]), np.array([0.0, 1, 2]))
    (2, True)
    >>> take(spec, (0,), 0.0, np.zeros(2, int), np.array([1, 1]), np.array([30.0, 60.0]))
    (1, True)
    >>> take(spec, (1, 0), None, np.array([0, 0]), np.array([5, 5]), np.array([0.0, 1]))
    (2, False)
    """
    n = len(rows)
    start = ts[0] if start_ts is None else start_ts
    late = np.flatnonzero(ts >= start + spec.seconds)
    by_time = int(late[0]) if late.size else n
    if by_time == 0 and start_ts is not None:
        return 0, True
    counts = np.stack([held[s] + np.cumsum(np.where(side == s, rows, 0)) for s in range(len(held))])
    full = np.flatnonzero(counts.min(axis=0) >= spec.size)
    by_count = int(full[0]) + 1 if full.size else n
    if by_count <= by_time:
        return by_count, bool(full.size)
    return by_time, True


def row_index(starts: IntArray, rows: IntArray) -> IntArray:
    """Row positions of the entries with these first rows and row counts.

    >>> row_index(np.array([0, 5]), np.array([2, 3])).tolist()
    [0, 1, 5, 6, 7]
    """
    total = int(rows.sum())
    before = np.cumsum(rows) - rows
    return (np.arange(total) - np.repeat(before, rows) + np.repeat(starts, rows)).astype(np.int64)


@dataclass
class Side:
    rows: int = 0
    kept: int = 0
    columns: dict[str, list[FloatArray | ObjectArray]] = field(default_factory=dict)
    scores: list[FloatArray] = field(default_factory=list)
    labels: list[ObjectArray] = field(default_factory=list)


@dataclass(frozen=True)
class SideData:
    version: str
    rows: int
    columns: dict[str, FloatArray | ObjectArray]
    scores: FloatArray
    labels: ObjectArray


@dataclass(frozen=True)
class ClosedWindow:
    key: str
    versions: tuple[str, ...]
    index: int
    first_id: str
    """The first entry fed (``log_id``: with its stream when not the first)."""
    last_id: str
    start_ts: float
    end_ts: float
    sides: tuple[SideData, ...]
    firsts: dict[Shard, str] = field(default_factory=dict)
    """Per stream, the window's first entry id on it."""
    lasts: dict[Shard, str] = field(default_factory=dict)
    """Per stream, the window's last entry id on it: its cursors once committed."""

    def cursors(self) -> dict[str, str]:
        """The cursor fields this window moves when committed."""
        return {cursor_field(self.key, shard): i for shard, i in self.lasts.items()}


@dataclass
class OpenWindow:
    key: str
    versions: tuple[str, ...]
    index: int
    sides: list[Side]
    first_id: str | None = None
    last_id: str | None = None
    start_ts: float | None = None
    end_ts: float | None = None
    firsts: dict[Shard, str] = field(default_factory=dict)
    lasts: dict[Shard, str] = field(default_factory=dict)

    def add(self, batch: Batch, entries: IntArray, side: IntArray, cap: int) -> None:
        if entries.size == 0:
            return
        first, last = batch.entry_ids[entries[0]], batch.entry_ids[entries[-1]]
        if self.first_id is None:
            self.first_id, self.start_ts = log_id(first, batch.shard), float(batch.ts[entries[0]])
        self.firsts.setdefault(batch.shard, first)
        self.lasts[batch.shard] = last
        self.last_id = log_id(last, batch.shard)
        self.end_ts = max(self.end_ts or 0.0, float(batch.ts[entries].max()))
        starts = batch.starts
        for s, store in enumerate(self.sides):
            mine = entries[side == s]
            if mine.size == 0:
                continue
            idx = row_index(starts[mine], batch.rows[mine])
            store.rows += idx.size
            idx = idx[: max(cap - store.kept, 0)]
            if idx.size == 0:
                continue
            store.kept += idx.size
            for name, column in batch.columns.items():
                store.columns.setdefault(name, []).append(column[idx])
            store.scores.append(batch.scores[idx])
            store.labels.append(batch.labels[idx])

    def close(self) -> ClosedWindow:
        assert self.first_id is not None and self.last_id is not None
        return ClosedWindow(
            key=self.key,
            versions=self.versions,
            index=self.index,
            first_id=self.first_id,
            last_id=self.last_id,
            start_ts=self.start_ts or 0.0,
            end_ts=self.end_ts or 0.0,
            sides=tuple(
                SideData(
                    version=v,
                    rows=s.rows,
                    columns={
                        n: np.concatenate(parts)  # type: ignore[misc]
                        for n, parts in s.columns.items()
                        if sum(len(p) for p in parts) == s.kept
                    },
                    scores=np.concatenate(s.scores) if s.scores else np.empty(0),
                    labels=np.concatenate(s.labels) if s.labels else np.empty(0, dtype=object),
                )
                for v, s in zip(self.versions, self.sides, strict=True)
            ),
            firsts=dict(self.firsts),
            lasts=dict(self.lasts),
        )


def pair_key(a: str, b: str) -> str:
    """The key of a pair window: the two versions in sorted order, ``"v1|v2"``."""
    return "|".join(sorted((a, b)))


@dataclass
class ModelWindows:
    """Every open window of one model, the cursors, and the entries not yet acknowledged."""

    spec: WindowSpec
    cursors: dict[str, str] = field(default_factory=dict)
    """``cursor_field(key, stream)`` -> last id on that stream of the key's last committed
    window (from the store at take-over)."""
    indexes: dict[str, int] = field(default_factory=dict)
    """Key -> index of its next window."""
    max_paired_versions: int = 4
    open: dict[str, OpenWindow] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)

    def feed(self, batch: Batch) -> list[ClosedWindow]:
        """Add a batch (entries of one stream, in order); return the windows it closed."""
        if not batch.entry_ids:
            return []
        parsed = [parse_id(i) for i in batch.entry_ids]
        ms = np.array([p[0] for p in parsed], dtype=np.int64)
        seq = np.array([p[1] for p in parsed], dtype=np.int64)
        names, codes = np.unique(np.array(batch.versions), return_inverse=True)
        for i, name in enumerate(names.tolist()):
            self.last_seen[name] = max(
                self.last_seen.get(name, 0.0), float(batch.ts[codes == i].max())
            )
        closed: list[ClosedWindow] = []
        for i, name in enumerate(names.tolist()):
            closed += self._feed_key(
                name, (name,), batch, codes == i, np.zeros(len(codes), int), ms, seq
            )
        for a, b in self._pairs():
            ia, ib = _code(names, a), _code(names, b)
            mask = (codes == ia) | (codes == ib)
            if mask.any():
                side = (codes == ib).astype(np.int64)
                closed += self._feed_key(pair_key(a, b), (a, b), batch, mask, side, ms, seq)
        return closed

    def expire(self, now: float) -> list[ClosedWindow]:
        """Close the windows whose time is up on the wall clock ``now``."""
        due = [
            k for k, w in self.open.items()
            if w.start_ts is not None and w.start_ts + self.spec.seconds <= now
        ]  # fmt: skip
        return [self._close(k) for k in due]

    def ack_horizon(self, held: Iterable[dict[Shard, str]] = ()) -> dict[Shard, StreamId]:
        """Per stream, entries older than this may be acknowledged: none an open window
        holds, nor ``held`` (more first ids per stream, of what is not fed or stored yet).
        A stream not named: every entry fed from it may be."""
        return earliest([*held, *(w.firsts for w in self.open.values())])

    def committed(self, window: ClosedWindow) -> None:
        """Record that ``window`` is safely stored: its entries are skipped from now on."""
        self.cursors.update(window.cursors())

    def _pairs(self) -> list[tuple[str, str]]:
        if len(self.last_seen) < 2:
            return []
        latest = max(self.last_seen.values())
        active = sorted(
            (v for v, t in self.last_seen.items() if t >= latest - self.spec.seconds),
            key=lambda v: -self.last_seen[v],
        )[: self.max_paired_versions]
        return [tuple(sorted(p)) for p in combinations(active, 2)]  # type: ignore[misc]

    def _feed_key(
        self,
        key: str,
        versions: tuple[str, ...],
        batch: Batch,
        mask: np.ndarray,
        side: IntArray,
        ms: IntArray,
        seq: IntArray,
    ) -> list[ClosedWindow]:
        cursor = self.cursors.get(cursor_field(key, batch.shard))
        if cursor is not None:
            cms, cseq = parse_id(cursor)
            mask = mask & ((ms > cms) | ((ms == cms) & (seq > cseq)))
        entries = np.flatnonzero(mask)
        closed: list[ClosedWindow] = []
        while entries.size:
            window = self.open.get(key)
            if window is None:
                window = OpenWindow(
                    key, versions, self.indexes.get(key, 0), [Side() for _ in versions]
                )
                self.open[key] = window
            held = tuple(s.rows for s in window.sides)
            k, closes = take(
                self.spec,
                held,
                window.start_ts,
                side[entries],
                batch.rows[entries],
                batch.ts[entries],
            )
            window.add(batch, entries[:k], side[entries[:k]], self.spec.side_cap)
            entries = entries[k:]
            if closes:
                closed.append(self._close(key))
        return closed

    def _close(self, key: str) -> ClosedWindow:
        window = self.open.pop(key)
        self.indexes[key] = window.index + 1
        return window.close()


def earliest(firsts: Iterable[dict[Shard, str]]) -> dict[Shard, StreamId]:
    """Per stream, the smallest of these first ids.

    >>> earliest([{0: "5-0", 1: "9-0"}, {0: "3-1"}])
    {0: (3, 1), 1: (9, 0)}
    """
    out: dict[Shard, StreamId] = {}
    for one in firsts:
        for shard, entry_id in one.items():
            parsed = parse_id(entry_id)
            if shard not in out or parsed < out[shard]:
                out[shard] = parsed
    return out


def _code(names: np.ndarray, name: str) -> int:
    found = np.flatnonzero(names == name)
    return int(found[0]) if found.size else -1
