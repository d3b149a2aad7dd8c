"""Adaptive batching: concurrent requests to one model server gathered into one onnxruntime
call.

A single-row call costs most of what a 32-row call costs (the graph's fixed overhead
dominates), so under concurrency many small requests are cheaper as one batch. The batcher
never waits when it is idle: the first request runs at once, alone. While a batch is running
(on its own thread, so the event loop keeps reading requests), the requests that arrive queue;
when it ends they go together as the next batch, up to ``max_rows`` rows. ``max_wait`` adds an
optional wait before a batch that is not yet full leaves, trading latency for bigger batches
(Triton's ``max_queue_delay``, MLServer's ``max_batch_time``); 0 gathers only what arrives
while the previous batch runs, so latency at concurrency 1 is unchanged.

Each request was validated on its own before it queues (``build_feed``), so a batch holds
only well-formed feeds; a failure of the run itself fails every request of that batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

Feed = Mapping[str, np.ndarray]
Outputs = dict[str, np.ndarray]


@dataclass
class _Waiting:
    feed: Feed
    rows: int
    done: asyncio.Future[Outputs] = field(repr=False)


class Batcher:
    """Gathers concurrent feeds of one model into batches run one at a time on a thread."""

    def __init__(
        self,
        run: Callable[[Feed], Outputs],
        *,
        max_rows: int,
        max_wait: float = 0.0,
        observe: Callable[[float, int, Outputs], None] | None = None,
    ) -> None:
        self._run = run
        self._max_rows = max_rows
        self._max_wait = max_wait
        self._observe = observe
        self._queue: list[_Waiting] = []
        self._queued_rows = 0
        self._arrived = asyncio.Event()
        self._pool = ThreadPoolExecutor(1, "batch")
        self._task: asyncio.Task[None] | None = None

    async def infer(self, feed: Feed, rows: int) -> Outputs:
        """The outputs of ``feed`` (``rows`` rows), computed in a batch with whatever else
        is waiting."""
        if self._task is None:
            self._task = asyncio.create_task(self._serve(), name="batcher")
        done: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(feed, rows, done))
        self._queued_rows += rows
        self._arrived.set()
        return await done

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for waiting in self._queue:
            if not waiting.done.done():
                waiting.done.set_exception(RuntimeError("the model server is stopping"))
        self._pool.shutdown(wait=True)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            if self._max_wait > 0 and self._queued_rows < self._max_rows:
                deadline = loop.time() + self._max_wait
                while self._queued_rows < self._max_rows and loop.time() < deadline:
                    self._arrived.clear()
                    try:
                        await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
                    except TimeoutError:
                        break
            else:
                await asyncio.sleep(0)  # let requests read in this loop iteration join
            while self._queue:
                batch = self._take()
                await self._run_batch(loop, batch)

    def _take(self) -> list[_Waiting]:
        """The oldest waiting requests up to ``max_rows`` rows (at least one, whatever its
        size: a request is never split)."""
        batch, rows = [self._queue[0]], self._queue[0].rows
        for waiting in self._queue[1:]:
            if rows + waiting.rows > self._max_rows:
                break
            batch.append(waiting)
            rows += waiting.rows
        del self._queue[: len(batch)]
        self._queued_rows -= rows
        return batch

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Waiting]) -> None:
        batch = [w for w in batch if not w.done.cancelled()]  # its client went away
        if not batch:
            return
        if len(batch) == 1:
            feed = batch[0].feed
        else:
            feed = {name: np.concatenate([w.feed[name] for w in batch]) for name in batch[0].feed}
        rows = sum(w.rows for w in batch)
        started = time.perf_counter()
        try:
            outputs = await loop.run_in_executor(self._pool, self._run, feed)
        except Exception as exc:  # the run failed: every request in it gets the error
            for waiting in batch:
                if not waiting.done.done():
                    waiting.done.set_exception(exc)
            return
        if self._observe is not None:
            self._observe(time.perf_counter() - started, rows, outputs)
        start = 0
        for waiting in batch:
            end = start + waiting.rows
            if not waiting.done.done():
                waiting.done.set_result({k: v[start:end] for k, v in outputs.items()})
            start = end
