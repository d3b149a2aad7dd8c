"""The read loop: own some models, read their logs, close windows, commit, acknowledge.

Replicas share the work by model: a model's stream is read by the one replica holding
its lease (a Redis key with a TTL, renewed; each replica takes about models/replicas).
Window state lives in that replica's memory and is made durable by the commit of each
closed window (report + cursor, in one Lua script that first checks the lease) and by
acknowledging an entry only when no open window holds it. After a crash the lease
expires, another replica (or the restarted one) claims the pending entries with
XAUTOCLAIM and rebuilds the open windows from them; the cursors skip anything already
in a committed window. Nothing is lost, nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sluice.drift_monitor.backends import AlertSink, PredictionLog, StateStore
from sluice.drift_monitor.batch import Kind, RawEntry, decode_batch, infer_kinds
from sluice.drift_monitor.evaluate import evaluate_pair, evaluate_version
from sluice.drift_monitor.feedback import FeedbackStore
from sluice.drift_monitor.metrics import Metrics
from sluice.drift_monitor.references import RegistryReferences
from sluice.drift_monitor.settings import Settings
from sluice.drift_monitor.verdict import next_streak
from sluice.drift_monitor.windows import ClosedWindow, ModelWindows, WindowSpec, parse_id

log = logging.getLogger(__name__)

SUMMARY_FIELDS = ("index", "start", "end", "rows", "status", "drifted_features")


@dataclass
class Owned:
    windows: ModelWindows
    streaks: dict[str, Any]
    kinds: dict[str, Kind]
    pending: deque[str] = field(default_factory=deque)


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
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("drift monitor loop failed; retrying")
                await asyncio.sleep(1.0)
        for model in list(self.owned):
            await self.state.release(model, self.token)

    async def step(self) -> None:
        """One read of every owned stream, then the windows whose time is up."""
        read = await self.log.read(
            list(self.owned), self.settings.batch_entries, self.settings.block_ms
        )
        for model, entries in read.items():
            if model in self.owned:
                await self.process(model, entries)
        now = self.clock()
        for model in list(self.owned):
            owned = self.owned.get(model)
            if owned is not None:
                await self._commit(model, owned.windows.expire(now))
                await self._ack(model)

    async def housekeeping(self) -> None:
        replicas = await self.state.heartbeat(
            self.settings.consumer, self.settings.lease_seconds * 2
        )
        self.references.forget()
        models = self.settings.models or sorted(
            set(self.references.models()) | set(await self.log.models())
        )
        fair = math.ceil(len(models) / max(replicas, 1)) if models else 0
        for model in list(self.owned)[fair:]:
            log.info("handing model %s over to another replica", model)
            self.owned.pop(model)
            await self.state.release(model, self.token)
        free = [m for m in models if m not in self.owned]
        random.shuffle(free)
        for model in free:
            if len(self.owned) >= fair:
                break
            if await self.state.acquire(model, self.token, self.settings.lease_seconds):
                await self.take_over(model)
        self.metrics.owned.set(len(self.owned))

    async def renew(self) -> None:
        for model in list(self.owned):
            if not await self.state.renew(model, self.token, self.settings.lease_seconds):
                self._lost(model)

    def _lost(self, model: str) -> None:
        if self.owned.pop(model, None) is not None:
            log.warning("lost the lease of model %s; another replica reads it now", model)
            self.metrics.leases_lost.labels(model).inc()

    async def take_over(self, model: str) -> None:
        """Start reading ``model``: load its cursors, then replay what is still pending."""
        await self.log.ensure_group(model)
        cursors, indexes, streaks = await self.state.cursors(model)
        windows = ModelWindows(self.spec, cursors=cursors, indexes=indexes)
        self.owned[model] = Owned(windows, streaks, self.references.kinds(model))
        start, replayed = "0-0", 0
        while model in self.owned:
            start, entries = await self.log.claim(model, start, self.settings.batch_entries)
            replayed += len(entries)
            if entries:
                await self.process(model, entries)
            if start in ("0-0", "0"):
                break
        log.info("reading model %s (%d pending entries replayed)", model, replayed)

    async def process(self, model: str, entries: list[RawEntry]) -> None:
        owned = self.owned[model]
        if not owned.kinds:
            owned.kinds = infer_kinds(entries)
        batch = decode_batch(entries, owned.kinds)
        owned.pending.extend(batch.ids)
        if batch.broken:
            self.metrics.broken.labels(model).inc(batch.broken)
        self.metrics.records.labels(model).inc(int(batch.rows.sum()))
        await self.feedback.remember(model, batch)
        await self._commit(model, owned.windows.feed(batch))
        await self._ack(model)

    async def _commit(self, model: str, closed: list[ClosedWindow]) -> None:
        for window in closed:
            owned = self.owned.get(model)
            if owned is None:
                return
            now = self.clock()
            streak: tuple[str, dict[str, Any]] | None = None
            if len(window.versions) == 1:
                version = window.versions[0]
                ref = self.references.reference(model, version)
                report = evaluate_version(model, window, ref, self.policy, now)
                state = next_streak(
                    owned.streaks.get(version, {}), report["status"], window.index,
                    self.settings.alert_after_windows,
                )  # fmt: skip
                streak = (version, state)
                report["streak"] = state
            else:
                report = evaluate_pair(model, window, owned.kinds, self.policy, now)
            rows = sum(s.rows for s in window.sides)
            ok = await self.state.commit(
                model, self.token, window.key, report, rows, streak, self.settings.history_windows
            )
            if not ok:
                self._lost(model)
                return
            owned.windows.committed(window)
            self.metrics.windows.labels(model, report["kind"], report["status"]).inc()
            if streak is not None:
                owned.streaks[streak[0]] = streak[1]
                if streak[1]["alert"] == "pending":
                    await self._alert(model, streak[0], streak[1])

    async def _ack(self, model: str) -> None:
        owned = self.owned.get(model)
        if owned is None:
            return
        horizon = owned.windows.ack_horizon()
        done: list[str] = []
        while owned.pending and (horizon is None or parse_id(owned.pending[0]) < horizon):
            done.append(owned.pending.popleft())
        if done:
            await self.log.ack(model, done)

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


def _evidence(report: dict[str, Any]) -> dict[str, Any]:
    """A window's summary plus every figure of the features it flagged."""
    flagged = report.get("drifted_features", [])
    return {
        **{k: report.get(k) for k in SUMMARY_FIELDS},
        "features": {f: report["features"][f] for f in flagged},
        "prediction": report.get("prediction"),
    }
