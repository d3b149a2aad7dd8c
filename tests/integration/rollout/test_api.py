"""The controller's admin API over a real Redis: declare, read, steer, refuse."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sluice.rollout.app import create_app
from sluice.rollout.settings import Settings
from tests.support.asgi import AppClient
from tests.support.procs import free_port, redis_on
from tests.support.rollouts import AOF

pytestmark = pytest.mark.integration

TOKEN = "t0ken"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
DOCS = Path(__file__).resolve().parents[3] / "docs" / "rollouts.md"


def example() -> dict[str, object]:
    """The first ModelRollout of docs/rollouts.md."""
    text = DOCS.read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    doc: dict[str, object] = yaml.safe_load(block)
    return doc


@pytest.fixture
def client(redis_url: str) -> Iterator[AppClient]:
    settings = Settings(redis_url=redis_url, admin_token=TOKEN, tick_seconds=0.1)  # type: ignore[arg-type]
    with AppClient(create_app(settings)) as c:
        yield c


def test_a_rollout_is_declared_read_back_and_steered(client: AppClient) -> None:
    resp = client.put("/admin/v1/rollouts/churn", json=example(), headers=ADMIN)
    assert resp.status_code == 200, resp.text
    listed = client.get("/admin/v1/rollouts", headers=ADMIN).json()["rollouts"]
    assert [r["metadata"]["name"] for r in listed] == ["churn"]
    deadline = time.monotonic() + 10
    while client.get("/admin/v1/rollouts/churn", headers=ADMIN).json()["status"]["phase"] in (
        "Pending",
    ):
        assert time.monotonic() < deadline
        client.run(_pause())
    doc = client.get("/admin/v1/rollouts/churn", headers=ADMIN).json()
    # no route for churn in this Redis: the controller says so instead of guessing
    assert doc["status"]["phase"] == "Degraded"
    assert "no route" in doc["status"]["message"]
    resp = client.post("/admin/v1/rollouts/churn/actions", json={"action": "abort"}, headers=ADMIN)
    assert resp.status_code == 202 and resp.json()["action"] == "abort"
    assert client.delete("/admin/v1/rollouts/churn", headers=ADMIN).status_code == 200
    assert client.get("/admin/v1/rollouts/churn", headers=ADMIN).status_code == 404


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"spec": {"model": "churn"}}, 422, "stable"),
        ({"kind": "Rollout"}, 422, "kind ModelRollout"),
        ({"metadata": {"name": "other"}}, 422, "is not 'churn'"),
    ],
)
def test_a_broken_rollout_is_refused_and_nothing_is_stored(
    client: AppClient, change: dict[str, object], status: int, words: str
) -> None:
    body = {**example(), **change}
    resp = client.put("/admin/v1/rollouts/churn", json=body, headers=ADMIN)
    assert resp.status_code == status
    assert words in resp.json()["error"]["message"]
    assert client.get("/admin/v1/rollouts", headers=ADMIN).json()["rollouts"] == []


def test_actions_are_checked_and_need_the_token(client: AppClient) -> None:
    assert client.put("/admin/v1/rollouts/churn", json=example(), headers=ADMIN).status_code == 200
    bad = client.post("/admin/v1/rollouts/churn/actions", json={"action": "launch"}, headers=ADMIN)
    assert bad.status_code == 422 and "not one of" in bad.json()["error"]["message"]
    weight = {"action": "set-weight", "weight": 140}
    bad = client.post("/admin/v1/rollouts/churn/actions", json=weight, headers=ADMIN)
    assert bad.status_code == 422 and "0-100" in bad.json()["error"]["message"]
    assert client.get("/admin/v1/rollouts").status_code == 401
    wrong = {"authorization": "Bearer nope"}
    assert client.put("/admin/v1/rollouts/churn", json=example(), headers=wrong).status_code == 401
    missing = client.post(
        "/admin/v1/rollouts/nope/actions", json={"action": "abort"}, headers=ADMIN
    )
    assert missing.status_code == 404


def test_a_body_that_is_not_json_is_400_malformed_json(client: AppClient) -> None:
    headers = {**ADMIN, "content-type": "application/json"}
    for path, method in (("/admin/v1/rollouts/churn", "PUT"),
                         ("/admin/v1/rollouts/churn/actions", "POST")):  # fmt: skip
        resp = client.request(method, path, content=b'{"action": ', headers=headers)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["code"] == "malformed_json"
    assert client.get("/admin/v1/rollouts", headers=ADMIN).json()["rollouts"] == []


def test_a_second_rollout_of_the_same_model_is_refused(client: AppClient) -> None:
    assert client.put("/admin/v1/rollouts/churn", json=example(), headers=ADMIN).status_code == 200
    other = example()
    other["metadata"] = {"name": "churn-again"}
    resp = client.put("/admin/v1/rollouts/churn-again", json=other, headers=ADMIN)
    assert resp.status_code == 422 and "already has a rollout" in resp.json()["error"]["message"]


def test_redis_restarted_with_its_data_costs_no_call_an_error(tmp_path: Path) -> None:
    """Every connection the pool held died with Redis: none of them reaches a caller."""
    port = free_port()
    settings = Settings(  # type: ignore[arg-type]
        redis_url=f"redis://127.0.0.1:{port}/0", admin_token=TOKEN, tick_seconds=0.1
    )
    url = "/admin/v1/rollouts/churn"
    with redis_on(port, tmp_path / "redis", *AOF) as redis, AppClient(create_app(settings)) as c:
        assert c.put(url, json=example(), headers=ADMIN).is_success
        before = c.get_concurrently(url, 4, headers=ADMIN)  # four pooled connections
        redis.stop(signal.SIGKILL)  # the app runs nothing between calls: no call notices
        with redis_on(port, tmp_path / "redis", *AOF):
            after = c.get_concurrently(url, 4, headers=ADMIN)
    assert [r.status_code for r in before + after] == [200] * 8, [r.text for r in after]
    assert after[0].json()["spec"] == before[0].json()["spec"]
