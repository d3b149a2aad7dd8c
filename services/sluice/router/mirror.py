"""Shadow traffic: a bounded queue of mirrored requests, sent to the candidate, compared
with what stable answered, recorded as metrics, disagreements and shadow prediction-log
records.

The user's request only ever does ``submit`` (never waits; a full queue drops the copy and
counts it). Failures of the candidate are counted and logged as shadow, never surfaced.

Copies that wait in the queue together go to the candidate in one call (up to
``batch_rows`` rows; the collector lingers ``linger`` seconds for more): a call costs the router
and the candidate about the same for one row as for thirty, and on shared cores that cost
lands on the users' latency. Each copy is still compared, counted and logged on its own;
its latency is that of the call that carried it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sluice.core.predlog import PredictionRecord
from sluice.core.routes import Route
from sluice.core.tally import Tally
from sluice.router.backends import PredictionLog, ShadowSamples, UpstreamFailure
from sluice.router.calls import Upstreams, UpstreamStatus
from sluice.router.codec import CodecError, Frame, concat, read_answer
from sluice.router.compare import Answer, Comparison, MismatchError, Tolerance, compare
from sluice.router.enrich import VersionSchema
from sluice.router.metrics import Metrics

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

    def goes_with(self, other: ShadowJob) -> bool:
        """Whether the two copies can share one call to the candidate."""
        return (
            self.route is other.route
            and self.candidate == other.candidate
            and self.stable == other.stable
            and self.schema is other.schema
            and self.frame.protocol == other.frame.protocol
        )


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
        tally: Tally,
        batch_rows: int = 1,
        linger: float = 0.0,
        values: Tolerance | None = None,
    ) -> None:
        self.tally = tally
        self.upstreams = upstreams
        self.metrics = metrics
        self.samples = samples
        self.predlog = predlog
        self.concurrency = concurrency
        self.batch_rows = batch_rows
        self.linger = linger
        self.values = values or Tolerance()
        """When two regressors' values agree."""
        self._queue: asyncio.Queue[ShadowJob] = asyncio.Queue(size)
        self._collector: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)

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
        self._collector = asyncio.create_task(self._collect(), name="shadow-collector")

    async def drain(self) -> None:
        """Wait until every queued copy was sent and recorded."""
        await self._queue.join()

    async def stop(self, drain_seconds: float = 2.0) -> None:
        if self._collector is not None and not self._collector.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drain(), drain_seconds)
        tasks = [t for t in (self._collector, *self._calls) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _collect(self) -> None:
        """One task gathers the waiting copies into calls; ``concurrency`` calls fly at once
        (while all are busy, copies wait in the queue and the next call grows)."""
        while True:
            jobs = [await self._queue.get()]
            rows = jobs[0].frame.rows
            if rows < self.batch_rows and self.linger > 0:
                await asyncio.sleep(self.linger)  # let more copies join this call
            while rows < self.batch_rows and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
                rows += jobs[-1].frame.rows
            await self._slots.acquire()
            call = asyncio.create_task(self._send(jobs))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    async def _send(self, jobs: list[ShadowJob]) -> None:
        try:
            await asyncio.gather(*(self.run(group) for group in _groups(jobs)))
        except Exception:
            log.exception("shadow call failed unexpectedly", extra={"role": "shadow"})
        finally:
            self._slots.release()
            for _ in jobs:
                self._queue.task_done()

    async def run(self, jobs: Sequence[ShadowJob]) -> list[Comparison] | None:
        """Send copies that go together in one call; record how the candidate compared on
        each (None: the call failed, counted once per copy)."""
        job = jobs[0]
        frame = job.frame
        if len(jobs) > 1:
            frame = concat([one.frame for one in jobs], job.schema.features)
        model = job.route.model
        pair = (model, job.stable, job.candidate)
        try:
            reply, seconds = await self.upstreams.infer(
                job.route, job.candidate, frame, job.schema, "shadow"
            )
            if reply.status != 200:
                raise UpstreamStatus(reply)
            labels, scores = read_answer(frame.protocol, reply.body, job.schema.classes)
            if len(labels) != frame.rows or len(scores) != frame.rows:
                raise MismatchError(f"candidate answered {len(labels)} rows of {frame.rows}")
            results, start = [], 0
            for one in jobs:
                end = start + one.frame.rows
                theirs = Answer(labels[start:end], scores[start:end], seconds)
                close = self.values if job.schema.task == "regression" else None
                results.append((one, theirs, compare(one.answer, theirs, close)))
                start = end
        except (UpstreamFailure, UpstreamStatus, CodecError, MismatchError) as exc:
            reason = _reason(exc)
            self.metrics.child(self.metrics.shadow_errors, *pair, reason).inc(len(jobs))
            self.tally.shadow_failed(model, job.candidate, frame.rows)
            extra = {"role": "shadow", "model": model, "version": job.candidate}
            log.warning("shadow call failed: %s", exc, extra=extra)
            return None
        for one, theirs, result in results:
            self.metrics.compared(
                pair, result.agreed, result.rows, result.abs_diffs, result.latency_delta
            )
            self.tally.shadow(
                model, one.candidate, result.rows, result.agreed, sum(result.abs_diffs)
            )
            record = PredictionRecord(
                one.request_id,
                time.time(),
                one.candidate,
                "shadow",
                one.frame.seen(one.schema.features),
                theirs.labels,
                theirs.scores,
                seconds * 1000,
            )
            self.predlog.write(model, record)
            if result.disagreements:
                await self._keep(one, result, theirs.labels, theirs.scores)
        return [result for _, _, result in results]

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


def _groups(jobs: Sequence[ShadowJob]) -> list[list[ShadowJob]]:
    """The copies split into those that can share a call, in queue order."""
    groups: list[list[ShadowJob]] = []
    for job in jobs:
        group = next((g for g in groups if g[0].goes_with(job)), None)
        if group is None:
            groups.append([job])
        else:
            group.append(job)
    return groups


def _reason(exc: Exception) -> str:
    if isinstance(exc, UpstreamFailure):
        return exc.reason
    if isinstance(exc, UpstreamStatus):
        return "status"
    return "unreadable"
