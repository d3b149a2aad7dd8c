"""The read loop: own some models, read their logs, close windows, commit, acknowledge.

Replicas share the work by model: a model's streams (one, or several when the router
spreads its log) are read by the one replica holding its lease (a Redis key with a TTL,
renewed; each replica takes about models/replicas). Window state lives in that
replica's memory and is made durable by the commit of each closed window (report +
cursors, in one Lua script that first checks the lease) and by acknowledging an entry
only when no open window holds it. After a crash the lease expires, another replica (or
the restarted one) claims the pending entries with XAUTOCLAIM and rebuilds the open
windows from them; the cursors skip anything already in a committed window. Nothing is
lost, nothing is counted twice. A stream of an owned model that appears later (the
router's log spread further) is replayed the same way before it is read.

A write that fails while the process lives (a Redis timeout, a short outage) loses
nothing either. A batch whose predictions could not be kept for the ground-truth join is
held, and a closed window whose commit failed is kept, both in order; the model is not
read further until they are written, retried with back-off by the loop, and no entry at
or after the first one they hold is acknowledged. The commit script is idempotent (a
window whose index is already stored is not applied again), so a retry after a write
that did land but whose reply was lost counts nothing twice. While writes fail, /readyz
says so and ``sluice_drift_monitor_write_failures_total`` counts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sluice.drift_monitor.backends import AlertSink, PredictionLog, StateStore
from sluice.drift_monitor.batch import Batch, Kind, RawEntry, decode_batch, infer_kinds
from sluice.drift_monitor.evaluate import evaluate_pair, evaluate_version
from sluice.drift_monitor.feedback import FeedbackStore
from sluice.drift_monitor.metrics import Metrics
from sluice.drift_monitor.references import RegistryReferences
from sluice.drift_monitor.settings import Settings
from sluice.drift_monitor.verdict import next_streak
from sluice.drift_monitor.windows import (
    ClosedWindow,
    ModelWindows,
    Shard,
    StreamId,
    WindowSpec,
    parse_id,
)

log = logging.getLogger(__name__)

SUMMARY_FIELDS = ("index", "start", "end", "rows", "status", "drifted_features")
RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 5.0


@dataclass
class Unsaved:
    """A closed window waiting for its commit; evaluated once, at its first try."""

    window: ClosedWindow
    report: dict[str, Any] | None = None
    streak: tuple[str, dict[str, Any]] | None = None


@dataclass
class Owned:
    windows: ModelWindows
    streaks: dict[str, Any]
    kinds: dict[str, Kind]
    shards: set[Shard] = field(default_factory=set)
    """The model's streams being read (each one replayed first)."""
    pending: dict[Shard, deque[str]] = field(default_factory=dict)
    """Per stream, the ids fed and not acknowledged yet, in order."""
    held: deque[Batch] = field(default_factory=deque)
    """Batches read but not yet fed: their predictions are not kept yet."""
    unsaved: deque[Unsaved] = field(default_factory=deque)
    """Closed windows not committed yet, oldest first."""

    @property
    def backlog(self) -> bool:
        return bool(self.held or self.unsaved)

    def ack_horizon(self) -> dict[Shard, StreamId]:
        """Per stream, entries older than this may be acknowledged: none a held batch or a
        window holds. A stream not named: every entry fed from it may be."""
        firsts = [{b.shard: b.ids[0]} for b in self.held if b.ids]
        firsts += [u.window.firsts for u in self.unsaved]
        return self.windows.ack_horizon(firsts)


class Monitor:
    def __init__(
        self,
        settings: Settings,
        *,
        log_: PredictionLog,
        state: StateStore,
        feedback: FeedbackStore,
        references: RegistryReferences,
        metrics: Metrics,
        alerts: AlertSink | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings, self.log, self.state, self.feedback = settings, log_, state, feedback
        self.references, self.metrics, self.alerts, self.clock = references, metrics, alerts, clock
        self.policy = settings.policy()
        self.spec = WindowSpec(
            settings.window_size,
            settings.window_seconds,
            settings.window_size * settings.side_cap_factor,
        )
        self.token = f"{settings.consumer}:{uuid.uuid4().hex[:8]}"
        self.owned: dict[str, Owned] = {}
        self.failures = 0
        """Writes failed in a row (0: the last write went through)."""
        self.failing: str | None = None
        """Why writes fail, while they do: what /readyz reports."""

    async def run(self, stop: asyncio.Event) -> None:
        """Read until ``stop`` is set; errors are logged and retried, never fatal."""
        next_house = next_renew = 0.0
        while not stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_house:
                    await self.housekeeping()
                    next_house = now + self.settings.discovery_seconds
                if now >= next_renew:
                    await self.renew()
                    next_renew = now + self.settings.lease_seconds / 3
                await self.step()
                if self.failing is not None:
                    await _wait(stop, retry_delay(self.failures))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("drift monitor loop failed; retrying")
                await _wait(stop, 1.0)
        for model in list(self.owned):
            await self.state.release(model, self.token)

    async def step(self) -> None:
        """Retry what is not written yet, read every stream with nothing held, expire windows.

        A model whose writes are behind is not read: what is held stays bounded by one read.
        """
        for model in [m for m, o in self.owned.items() if o.backlog]:
            await self._drain(model)
        ready = [(m, s) for m, o in self.owned.items() if not o.backlog for s in sorted(o.shards)]
        read = await self.log.read(ready, self.settings.batch_entries, self.settings.block_ms)
        for (model, shard), entries in read.items():
            if model in self.owned:
                await self.process(model, entries, shard)
        now = self.clock()
        for model in list(self.owned):
            owned = self.owned.get(model)
            if owned is not None and not owned.backlog:
                self._evaluate(model, owned.windows.expire(now))
                await self._drain(model)

    async def housekeeping(self) -> None:
        replicas = await self.state.heartbeat(
            self.settings.consumer, self.settings.lease_seconds * 2
        )
        self.references.forget()
        streams = await self.log.streams()
        models = self.settings.models or sorted(set(self.references.models()) | set(streams))
        fair = math.ceil(len(models) / max(replicas, 1)) if models else 0
        for model in list(self.owned)[fair:]:
            log.info("handing model %s over to another replica", model)
            self.owned.pop(model)
            self._forget_lag(model)
            await self.state.release(model, self.token)
        free = [m for m in models if m not in self.owned]
        random.shuffle(free)
        for model in free:
            if len(self.owned) >= fair:
                break
            if await self.state.acquire(model, self.token, self.settings.lease_seconds):
                await self.take_over(model, streams.get(model, ()))
        for model in list(self.owned):
            new = set(streams.get(model, ())) - self.owned[model].shards
            if new:
                log.info("model %s's log has %d more streams now", model, len(new))
                await self._replay(model, new)
        self.metrics.owned.set(len(self.owned))
        for model, owned in self.owned.items():
            lag = await self.log.lag_seconds(model, owned.shards)
            self.metrics.lag.labels(model).set(lag)

    async def renew(self) -> None:
        for model in list(self.owned):
            if not await self.state.renew(model, self.token, self.settings.lease_seconds):
                self._lost(model)

    def _lost(self, model: str) -> None:
        if self.owned.pop(model, None) is not None:
            log.warning("lost the lease of model %s; another replica reads it now", model)
            self.metrics.leases_lost.labels(model).inc()
            self._forget_lag(model)

    def _forget_lag(self, model: str) -> None:
        """Another replica reports ``model``'s lag now: this one's series goes."""
        with contextlib.suppress(KeyError):
            self.metrics.lag.remove(model)

    async def take_over(self, model: str, shards: Iterable[Shard] = ()) -> None:
        """Start reading ``model`` (its first stream and ``shards``): load its cursors, then
        replay what is still pending."""
        cursors, indexes, streaks = await self.state.cursors(model)
        windows = ModelWindows(self.spec, cursors=cursors, indexes=indexes)
        self.owned[model] = Owned(windows, streaks, self.references.kinds(model))
        replayed = await self._replay(model, {0, *shards})
        log.info("reading model %s (%d pending entries replayed)", model, replayed)

    async def _replay(self, model: str, shards: set[Shard]) -> int:
        """Join ``shards`` to what is read of ``model``: make each one's group, feed what is
        pending on it (whoever held it), and only then read it further. Returns how many
        entries were replayed."""
        replayed = 0
        # start_from applies once, when the model's first stream gets its group: a stream
        # that joins a log already being read is read whole (the router may have written
        # to it for a while before it was found).
        origin: str = self.settings.start_from if 0 in shards else "0"
        try:
            for shard in sorted(shards):
                if not await self.log.ensure_group(model, shard, origin):
                    origin = "0"
                start = "0-0"
                while model in self.owned:
                    start, entries = await self.log.claim(
                        model, shard, start, self.settings.batch_entries
                    )
                    replayed += len(entries)
                    if entries:
                        await self.process(model, entries, shard)
                    if start in ("0-0", "0"):
                        break
                if model in self.owned:
                    self.owned[model].shards.add(shard)
        except Exception:
            # A half-done replay would leave entries pending on nobody, or feed some twice
            # when tried again: drop the model (its open windows too) and start over later.
            self.owned.pop(model, None)
            with contextlib.suppress(Exception):
                await self.state.release(model, self.token)
            raise
        return replayed

    async def process(self, model: str, entries: list[RawEntry], shard: Shard = 0) -> None:
        owned = self.owned[model]
        if not owned.kinds:
            owned.kinds = infer_kinds(entries)
        batch = dataclasses.replace(decode_batch(entries, owned.kinds), shard=shard)
        owned.pending.setdefault(shard, deque()).extend(batch.ids)
        if batch.broken:
            self.metrics.broken.labels(model).inc(batch.broken)
        self.metrics.records.labels(model).inc(int(batch.rows.sum()))
        owned.held.append(batch)
        await self._drain(model)

    async def _drain(self, model: str) -> None:
        """Write what ``model`` holds, in order, until done or a write fails; then acknowledge.

        A failed write keeps its batch or window for the next try: nothing after it is fed,
        committed or acknowledged before it.
        """
        while (owned := self.owned.get(model)) is not None:
            if owned.unsaved:
                if not await self._commit(model, owned, owned.unsaved[0]):
                    break
            elif owned.held:
                try:
                    await self.feedback.remember(model, owned.held[0])
                except Exception as exc:
                    self._failed(model, "feedback", exc)
                    break
                self._recovered()
                self._evaluate(model, owned.windows.feed(owned.held.popleft()))
            else:
                break
        await self._ack(model)

    def _evaluate(self, model: str, closed: list[ClosedWindow]) -> None:
        """Queue closed windows for their commit, in order."""
        self.owned[model].unsaved.extend(Unsaved(w) for w in closed)

    def _report(self, model: str, owned: Owned, unsaved: Unsaved) -> dict[str, Any]:
        """The window's report, made when it heads the queue (its streak follows the last
        committed window and its alert) and kept, so a retry commits the same report."""
        if unsaved.report is not None:
            return unsaved.report
        window, now = unsaved.window, self.clock()
        if len(window.versions) == 1:
            version = window.versions[0]
            ref = self.references.reference(model, version)
            report = evaluate_version(model, window, ref, self.policy, now)
            state = next_streak(
                owned.streaks.get(version, {}), report["status"], window.index,
                self.settings.alert_after_windows,
            )  # fmt: skip
            unsaved.streak = (version, state)
            report["streak"] = state
        else:
            report = evaluate_pair(model, window, owned.kinds, self.policy, now)
        unsaved.report = report
        return report

    async def _commit(self, model: str, owned: Owned, unsaved: Unsaved) -> bool:
        """Commit the oldest unsaved window; False if it must wait (failed, or lease lost)."""
        window, report = unsaved.window, self._report(model, owned, unsaved)
        streak, rows = unsaved.streak, sum(s.rows for s in window.sides)
        try:
            ok = await self.state.commit(
                model, self.token, window.key, window.cursors(), report, rows, streak,
                self.settings.history_windows,
            )  # fmt: skip
        except Exception as exc:
            self._failed(model, "window", exc)
            return False
        self._recovered()
        if not ok:
            self._lost(model)
            return False
        owned.unsaved.popleft()
        owned.windows.committed(window)
        self.metrics.windows.labels(model, report["kind"], report["status"]).inc()
        if streak is not None:
            owned.streaks[streak[0]] = streak[1]
            if streak[1]["alert"] == "pending":
                await self._alert(model, streak[0], streak[1])
        return True

    def _failed(self, model: str, write: str, exc: Exception) -> None:
        """Count a failed write; log once per outage (the first failure after a success)."""
        self.metrics.write_failures.labels(model, write).inc()
        self.failures += 1
        if self.failing is None:
            log.error(
                "writing the %s of model %s failed (%r); holding it and retrying, "
                "nothing after it is acknowledged", write, model, exc,
            )  # fmt: skip
        self.failing = f"{write} write of {model} failing: {exc!r}"[:300]

    def _recovered(self) -> None:
        if self.failing is not None:
            log.warning("drift monitor writes work again after %d failures", self.failures)
        self.failures, self.failing = 0, None

    async def _ack(self, model: str) -> None:
        owned = self.owned.get(model)
        if owned is None:
            return
        horizons = owned.ack_horizon()
        for shard, pending in owned.pending.items():
            horizon = horizons.get(shard)
            done: list[str] = []
            for entry_id in pending:
                if horizon is not None and parse_id(entry_id) >= horizon:
                    break
                done.append(entry_id)
            if done:
                await self.log.ack(model, shard, done)
                for _ in done:  # only once acknowledged: a failed XACK is retried next time
                    pending.popleft()

    async def _alert(self, model: str, version: str, streak: dict[str, Any]) -> None:
        if self.alerts is None:
            return
        reports = await self.state.history(model, version, streak["count"])
        features = sorted({f for r in reports for f in r.get("drifted_features", [])})
        payload = {
            "kind": "drift_persisted",
            "alert_id": f"{model}/{version}/{streak['since']}",
            "model": model,
            "version": version,
            "windows": streak["count"],
            "alert_after_windows": self.settings.alert_after_windows,
            "drifted_features": features,
            "prediction_drifted": any((r.get("prediction") or {}).get("drifted") for r in reports),
            "evidence": [_evidence(r) for r in reports],
        }
        sent = await self.alerts.send(payload)
        self.metrics.alerts.labels(model, "sent" if sent else "failed").inc()
        if sent:
            done = {**streak, "alert": "sent"}
            self.owned[model].streaks[version] = done
            await self.state.set_streak(model, version, done)
            log.warning("drift alert sent for %s/%s: %s", model, version, ", ".join(features))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def retry_delay(failures: int) -> float:
    """Seconds before retrying after ``failures`` failed writes in a row: doubling, capped.

    >>> [retry_delay(n) for n in (1, 2, 3, 20)]
    [0.1, 0.2, 0.4, 5.0]
    """
    n = max(failures, 1) - 1
    return min(RETRY_FIRST_SECONDS * float(2 ** min(n, 16)), RETRY_MAX_SECONDS)


def _evidence(report: dict[str, Any]) -> dict[str, Any]:
    """A window's summary plus every figure of the features it flagged."""
    flagged = report.get("drifted_features", [])
    return {
        **{k: report.get(k) for k in SUMMARY_FIELDS},
        "features": {f: report["features"][f] for f in flagged},
        "prediction": report.get("prediction"),
    }
