"""The HTTP API through the app, with an in-process fake of our OnlineStore."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from sluice.feature_store.app import create_app
from sluice.feature_store.codec import encode
from sluice.feature_store.keys import data_key, key_prefix
from sluice.feature_store.settings import Settings
from tests.support.asgi import AppClient
from tests.unit.feature_store.fakes import FakeOnlineStore, view

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
PROFILE = view("profile", [("age", "int64"), ("plan", "string")], ttl=3600)
ACTIVITY = view("activity", [("calls", "int64"), ("plan", "string")], ttl=60)


@pytest.fixture
def fake() -> FakeOnlineStore:
    store = FakeOnlineStore([PROFILE, ACTIVITY], clock=lambda: NOW)
    store.data[data_key(key_prefix("profile", PROFILE.schema_id), "C1")] = encode(
        int((NOW - 30) * 1e6), [41, "gold"]
    )
    store.data[data_key(key_prefix("activity", ACTIVITY.schema_id), "C1")] = encode(
        int((NOW - 120) * 1e6), [3, "x"]
    )
    return store


TOKEN = "writer-secret"
WRITER = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(fake: FakeOnlineStore) -> Iterator[AppClient]:
    settings = Settings(
        max_entities=3,
        max_push_rows=2,
        max_body_bytes=2048,
        feature_write_token=TOKEN,  # type: ignore[arg-type]
    )
    app = create_app(settings, store=fake, registry=CollectorRegistry(), clock=lambda: NOW)
    with AppClient(app, WRITER) as client:
        yield client


def post(client: AppClient, path: str, body: Any) -> tuple[int, Any]:
    response = client.post(path, content=orjson.dumps(body))
    return response.status_code, response.json()


def test_get_online_answers_feast_style(client: AppClient) -> None:
    status, body = post(client, "/v1/features/get-online",
                        {"features": ["profile:*", "activity:calls"],
                         "entities": {"customer_id": ["C1", "C9"]}})  # fmt: skip
    assert status == 200
    assert body["metadata"] == {"feature_names": ["profile:age", "profile:plan", "activity:calls"]}
    assert body["results"] == [
        {"values": [41, None], "statuses": ["PRESENT", "NOT_FOUND"],
         "event_timestamps": ["2027-01-15T07:59:30Z", None]},
        {"values": ["gold", None], "statuses": ["PRESENT", "NOT_FOUND"],
         "event_timestamps": ["2027-01-15T07:59:30Z", None]},
        {"values": [None, None], "statuses": ["OUTSIDE_MAX_AGE", "NOT_FOUND"],
         "event_timestamps": ["2027-01-15T07:58:00Z", None]},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"features": ["nope:x"], "entities": {"customer_id": ["C1"]}}, 404,
         "'nope' is not registered"),
        ({"features": ["profile:x"], "entities": {"customer_id": ["C1"]}}, 404, "no feature 'x'"),
        ({"features": ["profile:age"], "entities": {"customer_id": [1]}}, 422, "expected a string"),
        ({"features": ["profile:age"], "entities": {"customer_id": []}}, 422, "at least one value"),
        ({"features": [], "entities": {"customer_id": ["C1"]}}, 422, "at least one 'view:feature'"),
        ({"features": ["profile:age"], "entities": {"customer_id": list("abcd")}}, 413,
         "limit of 3"),
        (["not", "an", "object"], 422, "must be a JSON object"),
    ],
)  # fmt: skip
def test_bad_reads_are_4xx_naming_the_problem(
    client: AppClient, body: Any, status: int, message: str
) -> None:
    got, answer = post(client, "/v1/features/get-online", body)
    assert got == status and message in answer["error"]["message"]


def test_malformed_and_oversized_bodies(client: AppClient) -> None:
    response = client.post("/v1/features/get-online", content=b"{nope")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    assert response.json()["error"]["code"] == "malformed_json"  # as every service says it
    response = client.post("/get-online-features", content=b"\xff\xfe")  # Feast's path:
    assert response.status_code == 400  # Feast's error detail, a JSON string of a document
    assert "not valid JSON" in json.loads(response.json())["message"]
    response = client.post("/v1/features/push", content=b"x" * 4096)
    assert response.status_code == 413


def push_row(**changes: Any) -> dict[str, Any]:
    row = {"customer_id": "C1", "event_timestamp": "2027-01-15T07:59:50Z", "age": 42, "plan": "p"}
    return {**row, **changes}


def test_push_writes_newer_rows_and_skips_older_ones(
    client: AppClient, fake: FakeOnlineStore
) -> None:
    rows = [push_row(), push_row(customer_id="C2", event_timestamp="2027-01-15T06:59:59")]
    status, body = post(client, "/v1/features/push", {"view": "profile", "rows": rows})
    assert (status, body) == (200, {"view": "profile", "rows": 2, "written": 2, "skipped": 0})
    older = push_row(event_timestamp="2027-01-15T07:59:40Z", age=1)
    status, body = post(client, "/v1/features/push", {"view": "profile", "rows": [older]})
    assert body["skipped"] == 1
    both = {"features": ["profile:age"], "entities": {"customer_id": ["C1", "C2"]}}
    _, read = post(client, "/v1/features/get-online", both)
    assert read["results"][0]["values"] == [42, None]  # C2's row is over an hour old
    assert read["results"][0]["statuses"] == ["PRESENT", "OUTSIDE_MAX_AGE"]
    metrics = client.get("/metrics").text
    assert 'sluice_feature_store_push_rows_total{result="written",view="profile"} 2.0' in metrics
    assert 'sluice_feature_store_push_rows_total{result="skipped",view="profile"} 1.0' in metrics


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"view": "nope", "rows": [push_row()]}, 404, "'nope' is not registered"),
        ({"rows": [push_row()]}, 422, "view: name the feature view"),
        ({"view": "profile", "rows": []}, 422, "rows: list at least one row"),
        ({"view": "profile", "rows": [push_row()] * 3}, 413, "3 rows, over the limit of 2"),
        ({"view": "profile", "rows": [push_row(), push_row(age="old")]}, 422,
         "rows[1].age: expected int64, got str"),
        ({"view": "profile", "rows": [push_row(), push_row(agee=1)]}, 422,
         "rows[1]: view 'profile' has no field 'agee'"),
        ({"view": "profile", "rows": [{"customer_id": "C1", "event_timestamp": "2027-01-01"}]},
         422, "rows[0].age: missing"),
        ({"view": "profile", "rows": [push_row(event_timestamp="2027-01-16T00:00:00Z")]}, 422,
         "is in the future"),
        ({"view": "profile", "rows": [push_row(event_timestamp="yesterday")]}, 422,
         "rows[0].event_timestamp: 'yesterday' is not an ISO-8601 timestamp"),
        ({"view": "profile", "rows": [push_row(customer_id=5)]}, 422,
         "rows[0].customer_id: expected a string"),
    ],
)  # fmt: skip
def test_bad_pushes_change_nothing(
    client: AppClient, fake: FakeOnlineStore, body: Any, status: int, message: str
) -> None:
    before = dict(fake.data)
    got, answer = post(client, "/v1/features/push", body)
    assert got == status and message in answer["error"]["message"]
    assert fake.data == before


def test_views_list_entity_features_ttl_and_materialised_time(
    client: AppClient, fake: FakeOnlineStore
) -> None:
    fake._catalog = dataclasses.replace(
        fake.catalog,
        watermarks={"profile|0/2": NOW - 100, "profile|1/2": NOW - 50},
        freshness_us={"profile": int((NOW - 30) * 1e6)},
        materialized_rows={"profile": 7},
    )
    views = client.get("/v1/features/views").json()["views"]
    assert [v["name"] for v in views] == ["activity", "profile"]
    profile = views[1]
    assert profile["entity"] == {"join_key": "customer_id", "dtype": "string"}
    assert profile["features"] == [
        {"name": "age", "dtype": "int64"},
        {"name": "plan", "dtype": "string"},
    ]
    assert profile["ttl_seconds"] == 3600
    assert profile["materialized_until"] == "2027-01-15T07:58:20Z"
    assert profile["freshest_event_timestamp"] == "2027-01-15T07:59:30Z"
    assert views[0]["materialized_until"] is None
    metrics = client.get("/metrics").text
    assert 'sluice_feature_store_staleness_seconds{view="profile"} 30.0' in metrics
    assert 'sluice_feature_store_ttl_seconds{view="profile"} 3600.0' in metrics
    assert 'sluice_feature_store_materialized_rows_total{view="profile"} 7.0' in metrics


def test_redis_down_is_503_with_a_clear_message_then_recovers(
    client: AppClient, fake: FakeOnlineStore
) -> None:
    request = {"features": ["profile:age"], "entities": {"customer_id": ["C1"]}}
    fake.down = True
    status, body = post(client, "/v1/features/get-online", request)
    assert status == 503 and "Redis at fake is down" in body["error"]["message"]
    assert post(client, "/v1/features/push", {"view": "profile", "rows": [push_row()]})[0] == 503
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("unreachable")
    assert client.get("/livez").status_code == 200
    assert "sluice_feature_store_redis_up 0.0" in client.get("/metrics").text
    fake.down = False
    assert post(client, "/v1/features/get-online", request)[0] == 200
    assert client.get("/readyz").status_code == 200


def test_lookup_metrics(client: AppClient) -> None:
    post(client, "/v1/features/get-online",
         {"features": ["profile:*"], "entities": {"customer_id": ["C1", "C2"]}})  # fmt: skip
    text = client.get("/metrics").text
    assert 'sluice_feature_store_lookup_results_total{status="PRESENT",view="profile"} 2.0' in text
    assert (
        'sluice_feature_store_lookup_results_total{status="NOT_FOUND",view="profile"} 2.0' in text
    )
    assert "sluice_feature_store_lookup_duration_seconds_count 1.0" in text
    assert "sluice_feature_store_lookup_entities_sum 2.0" in text
    assert (
        'sluice_feature_store_http_requests_total{code="200",endpoint="/v1/features/get-online"}'
        in text
    )
