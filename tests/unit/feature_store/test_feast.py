"""Feast's paths, with Feast's request and response shapes and Feast's error detail, as
Feast's feature server (sdk/python/feast/feature_server.py) and its ``remote`` online store
(infra/online_stores/remote.py, rest_error_handler.py) send and read them."""

from __future__ import annotations

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
TOKEN = "writer-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# classes Feast's client can import from feast.errors (FeastError.from_error_detail)
FEAST_CLASSES = {
    "FeastError", "FeatureViewNotFoundException", "FeastObjectNotFoundException",
    "PushSourceNotFoundException", "FeastPermissionError",
}  # fmt: skip


@pytest.fixture
def fake() -> FakeOnlineStore:
    store = FakeOnlineStore([PROFILE, ACTIVITY], clock=lambda: NOW)
    store.data[data_key(key_prefix("profile", PROFILE.schema_id), "C1")] = encode(
        int((NOW - 30) * 1e6), [41, "gold"]
    )
    return store


@pytest.fixture
def client(fake: FakeOnlineStore) -> Iterator[AppClient]:
    settings = Settings(max_entities=3, max_push_rows=2, feature_write_token=TOKEN)
    app = create_app(settings, store=fake, registry=CollectorRegistry(), clock=lambda: NOW)
    with AppClient(app) as client:
        yield client


def post(client: AppClient, path: str, body: Any, **headers: str) -> tuple[int, Any]:
    response = client.post(path, content=orjson.dumps(body), headers=headers)
    return response.status_code, response.json() if response.content else None


def feast_detail(body: Any) -> dict[str, str]:
    """What Feast's client does with an error body: ``FeastError.from_error_detail(
    response.json())``, i.e. json.loads of a string holding module, class and message."""
    assert isinstance(body, str), body
    detail: dict[str, str] = json.loads(body)
    assert detail["module"] == "feast.errors" and detail["class"] in FEAST_CLASSES
    return detail


def read(client: AppClient, ids: list[str]) -> list[Any]:
    request = {"features": ["profile:age", "profile:plan"], "entities": {"customer_id": ids}}
    status, body = post(client, "/get-online-features", request)
    assert status == 200, body
    return [column["values"] for column in body["results"][1:]]


def test_get_online_features_keeps_feasts_exact_shapes(client: AppClient) -> None:
    request = {"features": ["profile:age"], "entities": {"customer_id": ["C1", "C9"]}}
    status, body = post(client, "/get-online-features", request)
    assert status == 200
    assert body == {
        "metadata": {"feature_names": ["customer_id", "age"]},
        "results": [
            {"values": ["C1", "C9"], "statuses": ["PRESENT", "PRESENT"],
             "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
            {"values": [41, None], "statuses": ["PRESENT", "NOT_FOUND"],
             "event_timestamps": ["2027-01-15T07:59:30Z", "1970-01-01T00:00:00Z"]},
        ],
    }  # fmt: skip
    both = {**request, "features": ["profile:plan", "activity:plan"]}
    status, body = post(client, "/get-online-features", {**both, "full_feature_names": True})
    assert body["metadata"]["feature_names"] == ["customer_id", "profile__plan", "activity__plan"]


@pytest.mark.parametrize(
    ("body", "status", "feast_class", "message"),
    [
        ({"features": ["nope:x"], "entities": {"customer_id": ["C1"]}}, 404,
         "FeatureViewNotFoundException", "'nope' is not registered"),
        ({"features": ["profile:x"], "entities": {"customer_id": ["C1"]}}, 404,
         "FeastObjectNotFoundException", "no feature 'x'"),
        ({"features": ["profile:plan", "activity:plan"], "entities": {"customer_id": ["C1"]}},
         422, "FeastError", "'plan' is in more than one view"),
        ({"features": ["profile:age"], "entities": {"customer_id": ["C1"]},
          "feature_service": "svc"}, 422, "FeastError", "feature services are not supported"),
        ({"features": ["profile:age"], "entities": {"customer_id": list("abcd")}}, 413,
         "FeastError", "limit of 3"),
        (["not", "an", "object"], 422, "FeastError", "must be a JSON object"),
    ],
)  # fmt: skip
def test_read_errors_are_feasts_error_detail(
    client: AppClient, body: Any, status: int, feast_class: str, message: str
) -> None:
    got, answer = post(client, "/get-online-features", body)
    detail = feast_detail(answer)
    assert got == status and detail["class"] == feast_class and message in detail["message"]


def test_write_to_online_store_takes_what_feasts_remote_store_sends(client: AppClient) -> None:
    # remote.py's online_write_batch: columnar, naive UTC ISO timestamps, a `created` column
    df = {
        "customer_id": ["C1", "C2"],
        "age": [42, None],
        "plan": ["silver", "basic"],
        "event_timestamp": ["2027-01-15T07:59:50", "2027-01-15T07:59:55"],
        "created": [None, None],
    }
    body = {"feature_view_name": "profile", "df": df, "allow_registry_cache": False}
    assert post(client, "/write-to-online-store", body, **AUTH) == (200, None)
    assert read(client, ["C1", "C2"]) == [[42, None], ["silver", "basic"]]


def test_push_writes_through_the_same_path_as_our_push(client: AppClient) -> None:
    df = {"customer_id": ["C3"], "age": [7], "plan": ["x"],
          "event_timestamp": ["2027-01-15T07:00:00Z"]}  # fmt: skip
    body = {"push_source_name": "profile", "df": df, "to": "online"}
    assert post(client, "/push", body, **AUTH) == (200, None)
    assert read(client, ["C3"]) == [[7], ["x"]]
    metrics = client.get("/metrics").text
    assert 'sluice_feature_store_push_rows_total{result="written",view="profile"} 1.0' in metrics


ROW = {"customer_id": ["C1"], "age": [1], "plan": ["p"], "event_timestamp": ["2027-01-15T07:59:59"]}


@pytest.mark.parametrize(
    ("path", "body", "status", "feast_class", "message"),
    [
        ("/push", {"push_source_name": "nope", "df": ROW}, 404,
         "PushSourceNotFoundException", "'nope' is not registered"),
        ("/write-to-online-store", {"feature_view_name": "nope", "df": ROW}, 404,
         "FeatureViewNotFoundException", "'nope' is not registered"),
        ("/push", {"push_source_name": "profile", "df": ROW, "to": "offline"}, 422,
         "FeastError", "'online' only"),
        ("/push", {"push_source_name": "profile", "df": {**ROW, "age": [1, 2]}}, 422,
         "FeastError", "the same number of values"),
        ("/push", {"push_source_name": "profile", "df": {**ROW, "age": ["old"]}}, 422,
         "FeastError", "rows[0].age: expected int64"),
        ("/push", {"push_source_name": "profile", "df": {**ROW, "agee": [1]}}, 422,
         "FeastError", "has no field 'agee'"),
        ("/push", {"push_source_name": "profile", "df": {k: v * 3 for k, v in ROW.items()}},
         413, "FeastError", "over the limit of 2"),
        ("/write-to-online-store", {"df": ROW}, 422, "FeastError", "feature_view_name"),
    ],
)  # fmt: skip
def test_bad_writes_change_nothing_and_say_why_feasts_way(
    client: AppClient, fake: FakeOnlineStore, path: str, body: Any, status: int,
    feast_class: str, message: str,
) -> None:  # fmt: skip
    before = dict(fake.data)
    got, answer = post(client, path, body, **AUTH)
    detail = feast_detail(answer)
    assert got == status and detail["class"] == feast_class and message in detail["message"]
    assert fake.data == before


@pytest.mark.parametrize("path", ["/push", "/write-to-online-store"])
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", TOKEN, f"Basic {TOKEN}", f"bearer {TOKEN}x"]
)
def test_writes_need_the_feature_writer_token(
    client: AppClient, fake: FakeOnlineStore, path: str, authorization: str | None
) -> None:
    before = dict(fake.data)
    body = {"push_source_name": "profile", "feature_view_name": "profile", "df": ROW}
    headers = {"Authorization": authorization} if authorization else {}
    got, answer = post(client, path, body, **headers)
    assert got == 401 and feast_detail(answer)["class"] == "FeastPermissionError"
    assert fake.data == before
    # the scheme is case-insensitive (RFC 7235)
    assert post(client, path, body, Authorization=f"bEARER {TOKEN}")[0] == 200


def test_with_no_token_configured_writes_are_refused(fake: FakeOnlineStore) -> None:
    app = create_app(Settings(), store=fake, registry=CollectorRegistry(), clock=lambda: NOW)
    with AppClient(app) as client:
        status, answer = post(client, "/push", {"push_source_name": "profile", "df": ROW}, **AUTH)
    assert status == 401 and "SLUICE_FEATURE_WRITE_TOKEN" in feast_detail(answer)["message"]
