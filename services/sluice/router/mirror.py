"""Shadow traffic: a bounded queue of mirrored calls, sent by a few workers, compared with
what stable answered, recorded as metrics, disagreements and shadow prediction-log records.

The user's request only ever does ``submit`` (never waits; a full queue drops the copy and
counts it). Failures of the candidate are counted and logged as shadow, never surfaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from sluice.core.predlog import PredictionRecord
from sluice.router.backends import PredictionLog, ShadowSamples, UpstreamFailure
from sluice.router.calls import Upstreams, UpstreamStatus
from sluice.router.codec import CodecError, Frame, read_answer
from sluice.router.compare import Answer, Comparison, MismatchError, compare
from sluice.router.enrich import VersionSchema
from sluice.router.metrics import Metrics
from sluice.router.table import Route

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ShadowJob:
    route: Route
    stable: str
    """The version that answered the user."""
    candidate: str
    frame: Frame
    answer: Answer
    """What ``stable`` answered."""
    request_id: str
    schema: VersionSchema
    """The candidate's."""
    stable_schema: VersionSchema


class Mirror:
    def __init__(
        self,
        upstreams: Upstreams,
        metrics: Metrics,
        samples: ShadowSamples,
        predlog: PredictionLog,
        *,
        size: int,
        concurrency: int,
    ) -> None:
        self.upstreams = upstreams
        self.metrics = metrics
        self.samples = samples
        self.predlog = predlog
        self.concurrency = concurrency
        self._queue: asyncio.Queue[ShadowJob] = asyncio.Queue(size)
        self._workers: list[asyncio.Task[None]] = []

    def has_room(self) -> bool:
        return not self._queue.full()

    def submit(self, job: ShadowJob) -> None:
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.dropped(job.route.model, "queue_full")

    def dropped(self, model: str, reason: str) -> None:
        self.metrics.child(self.metrics.shadow_dropped, model, reason).inc()

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"shadow-{i}") for i in range(self.concurrency)
        ]

    async def drain(self) -> None:
        """Wait until every queued copy was sent and recorded."""
        await self._queue.join()

    async def stop(self, drain_seconds: float = 2.0) -> None:
        if any(not task.done() for task in self._workers):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drain(), drain_seconds)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self.run(job)
            except Exception:
                log.exception("shadow call failed unexpectedly", extra={"role": "shadow"})
            finally:
                self._queue.task_done()

    async def run(self, job: ShadowJob) -> Comparison | None:
        """Send one copy and record how the candidate compared (None: it failed)."""
        model = job.route.model
        pair = (model, job.stable, job.candidate)
        try:
            reply, seconds = await self.upstreams.infer(
                job.route, job.candidate, job.frame, job.schema, "shadow"
            )
            if reply.status != 200:
                raise UpstreamStatus(reply)
            labels, scores = read_answer(job.frame.protocol, reply.body, job.schema.classes)
            result = compare(job.answer, Answer(labels, scores, seconds))
        except (UpstreamFailure, UpstreamStatus, CodecError, MismatchError) as exc:
            reason = _reason(exc)
            self.metrics.child(self.metrics.shadow_errors, *pair, reason).inc()
            extra = {"role": "shadow", "model": model, "version": job.candidate}
            log.warning("shadow call failed: %s", exc, extra=extra)
            return None
        self.metrics.compared(
            pair, result.agreed, result.rows, result.abs_diffs, result.latency_delta
        )
        seen = job.frame.seen(job.schema.features)
        record = PredictionRecord(
            job.request_id,
            time.time(),
            job.candidate,
            "shadow",
            seen,
            labels,
            scores,
            seconds * 1000,
        )
        self.predlog.write(model, record)
        if result.disagreements:
            await self._keep(job, result, labels, scores)
        return result

    async def _keep(
        self, job: ShadowJob, result: Comparison, labels: list[str], scores: list[float]
    ) -> None:
        names = dict.fromkeys([*job.stable_schema.features, *job.schema.features])
        entries = [
            {
                "ts": time.time(),
                "request_id": job.request_id,
                "row": row,
                "inputs": {n: job.frame.columns[n][row] for n in names if n in job.frame.columns},
                "stable": {
                    "version": job.stable,
                    "label": job.answer.labels[row],
                    "score": job.answer.scores[row],
                },
                "candidate": {"version": job.candidate, "label": labels[row], "score": scores[row]},
            }
            for row in result.disagreements
        ]
        try:
            await self.samples.add(job.route.model, entries)
        except Exception as exc:
            log.warning("could not keep shadow disagreements: %s", exc, extra={"role": "shadow"})


def _reason(exc: Exception) -> str:
    if isinstance(exc, UpstreamFailure):
        return exc.reason
    if isinstance(exc, UpstreamStatus):
        return "status"
    return "unreadable"
