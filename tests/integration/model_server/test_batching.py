"""Adaptive batching in the real model server: concurrent requests gathered into one
onnxruntime call, each answered with its own rows' predictions."""

from __future__ import annotations

import asyncio
import re

import httpx
import numpy as np

from tests.integration.model_server.conftest import MODEL, StartServer, Trained, v2_inputs


def test_concurrent_requests_are_gathered_and_each_gets_its_own_answer(
    start_server: StartServer, trained: Trained
) -> None:
    rows = trained.rows.head(16)
    expected = trained.predict_proba(rows)
    # a batch leaves when 8 rows wait (long before the 1 s wait), so 16 concurrent one-row
    # requests after an idle spell become two calls of 8
    with start_server(batch_max_rows=8, batch_max_wait_ms=1000) as server:

        async def send() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                return await asyncio.gather(
                    *(
                        client.post(
                            f"/v2/models/{MODEL}/infer",
                            json={"inputs": v2_inputs(rows.iloc[[i]])},
                        )
                        for i in range(len(rows))
                    )
                )

        answers = asyncio.run(send())
        metrics = httpx.get(f"{server.url}/metrics").text

    for i, response in enumerate(answers):
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        assert outputs["probabilities"]["shape"] == [1, 2]
        np.testing.assert_allclose(outputs["probabilities"]["data"], expected[i], atol=1e-5, rtol=0)

    def series(name: str) -> float:
        match = re.search(rf"^sluice_model_server_{name}\{{[^}}]*\}} (\S+)$", metrics, re.M)
        assert match, name
        return float(match.group(1))

    calls = series("batch_size_rows_count")
    assert series("batch_size_rows_sum") == 16
    assert calls < 16  # gathered: fewer onnxruntime calls than requests
