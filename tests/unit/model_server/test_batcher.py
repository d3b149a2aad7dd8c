"""Adaptive batching over a fake run (our own callable): who is gathered with whom, and that
every request gets its own rows back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping

import numpy as np
import pytest

from sluice.model_server.batcher import Batcher


class Model:
    """Doubles its input; the first call can be held, so later requests queue behind it."""

    def __init__(self, hold_first: bool = False) -> None:
        self.calls: list[int] = []
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.fail = False
        self.entered = threading.Event()

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.entered.set()
        if not self.calls:
            self.release.wait(10)
        self.calls.append(len(feed["x"]))
        if self.fail:
            raise RuntimeError("onnxruntime failed")
        return {"y": feed["x"] * 2, "label": feed["x"][:, 0].astype(str)}


def feed(*values: float) -> dict[str, np.ndarray]:
    return {"x": np.array(values, dtype=np.float64).reshape(-1, 1)}


async def running(model: Model) -> None:
    """Until the first call is inside the model (held there)."""
    while not model.entered.is_set():
        await asyncio.sleep(0.001)


async def wait_queued(batcher: Batcher, rows: int) -> None:
    while batcher._queued_rows < rows:
        await asyncio.sleep(0.001)


def test_an_idle_batcher_runs_a_request_at_once_and_gathers_the_ones_that_wait() -> None:
    model = Model(hold_first=True)

    async def scenario() -> list[dict[str, np.ndarray]]:
        batcher = Batcher(model.run, max_rows=64)
        first = asyncio.create_task(batcher.infer(feed(0), 1))
        await running(model)
        rest = [asyncio.create_task(batcher.infer(feed(i, i + 0.5), 2)) for i in range(1, 11)]
        await wait_queued(batcher, 20)
        model.release.set()
        answers = await asyncio.gather(first, *rest)
        await batcher.close()
        return answers

    answers = asyncio.run(scenario())
    assert model.calls == [1, 20]  # the first alone, the ten that waited as one call
    np.testing.assert_array_equal(answers[0]["y"], [[0.0]])
    for i, answer in enumerate(answers[1:], start=1):
        np.testing.assert_array_equal(answer["y"], [[2.0 * i], [2.0 * i + 1]])
        assert list(answer["label"]) == [str(float(i)), str(i + 0.5)]


def test_batches_hold_at_most_max_rows_and_never_split_a_request() -> None:
    model = Model(hold_first=True)

    async def scenario() -> None:
        batcher = Batcher(model.run, max_rows=8)
        first = asyncio.create_task(batcher.infer(feed(0), 1))
        await running(model)
        sizes = [3, 3, 3, 5, 1, 12, 2]
        rest = [asyncio.create_task(batcher.infer(feed(*([float(n)] * n)), n)) for n in sizes]
        await wait_queued(batcher, sum(sizes))
        model.release.set()
        answers = await asyncio.gather(first, *rest)
        for n, answer in zip(sizes, answers[1:], strict=True):
            assert answer["y"].shape == (n, 1) and set(answer["y"][:, 0]) == {2.0 * n}
        await batcher.close()

    asyncio.run(scenario())
    # in arrival order: 3+3 (a third 3 would pass 8), 3+5, 1, 12 alone (bigger than a batch), 2
    assert model.calls == [1, 6, 8, 1, 12, 2]


def test_max_wait_lets_a_batch_fill_after_an_idle_spell() -> None:
    model = Model()

    async def scenario() -> None:
        batcher = Batcher(model.run, max_rows=4, max_wait=10.0)
        tasks = []
        for i in range(4):  # the batch leaves when full, long before the 10 s wait
            tasks.append(asyncio.create_task(batcher.infer(feed(i), 1)))
            await asyncio.sleep(0.01)
        answers = await asyncio.gather(*tasks)
        assert [float(a["y"][0, 0]) for a in answers] == [0.0, 2.0, 4.0, 6.0]
        await batcher.close()

    asyncio.run(scenario())
    assert model.calls == [4]


def test_a_failed_run_fails_every_request_of_its_batch_and_the_next_batch_runs() -> None:
    model = Model(hold_first=True)

    async def scenario() -> None:
        batcher = Batcher(model.run, max_rows=64)
        first = asyncio.create_task(batcher.infer(feed(0), 1))
        await running(model)
        doomed = [asyncio.create_task(batcher.infer(feed(i), 1)) for i in range(1, 4)]
        await wait_queued(batcher, 3)
        model.fail = True
        model.release.set()
        results = await asyncio.gather(first, *doomed, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        model.fail = False
        answer = await batcher.infer(feed(7), 1)
        assert float(answer["y"][0, 0]) == 14.0
        await batcher.close()

    asyncio.run(scenario())


def test_a_request_whose_client_left_is_not_run() -> None:
    model = Model(hold_first=True)

    async def scenario() -> None:
        batcher = Batcher(model.run, max_rows=64)
        first = asyncio.create_task(batcher.infer(feed(0), 1))
        await running(model)
        gone = asyncio.create_task(batcher.infer(feed(1, 1, 1), 3))
        kept = asyncio.create_task(batcher.infer(feed(2), 1))
        await wait_queued(batcher, 4)
        gone.cancel()
        model.release.set()
        await first
        assert float((await kept)["y"][0, 0]) == 4.0
        with pytest.raises(asyncio.CancelledError):
            await gone
        await batcher.close()

    asyncio.run(scenario())
    assert model.calls == [1, 1]
