"""The floor proxy of `sluice.bench.peers`: it forwards as it is, over kept-alive
connections, or the floor it measures is not a proxy's."""

from __future__ import annotations

from pathlib import Path

import httpx

from sluice.bench.model_server import model_server, train, write_bodies
from sluice.bench.peers import floor_proxy


def test_the_floor_proxy_forwards_requests_and_answers_as_they_are(tmp_path: Path) -> None:
    registry = train(tmp_path / "registry", 500)
    body = write_bodies(tmp_path, registry)[1].read_bytes()
    json = {"content-type": "application/json"}
    with (
        model_server(tmp_path, registry, "direct") as (upstream, _),
        floor_proxy(tmp_path, upstream) as (floor, _),
        httpx.Client(timeout=30) as client,
    ):
        direct = client.post(f"{upstream}/v2/models/churn/infer", content=body, headers=json)
        answers = [
            client.post(f"{floor}/v2/models/churn/infer", content=body, headers=json)
            for _ in range(3)  # one kept-alive connection: each answer has its length
        ]
        missing = client.post(f"{floor}/v2/models/nope/infer", content=body, headers=json)
    assert direct.status_code == 200
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(a.json()["outputs"] == direct.json()["outputs"] for a in answers)
    # without its length an answer ends only when the connection does: wrk counts none
    assert all(a.headers["content-length"] == str(len(a.content)) for a in answers)
    assert missing.status_code == 404 and "nope" in missing.text  # the upstream's own answer
