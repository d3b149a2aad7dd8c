"""The feature store over HTTP and the version schemas, through fakes of our own client."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson

from sluice.router.backends import HttpFeatureLookup, MetadataSchemas, Reply, refs_from_views
from tests.unit.router.fakes import FakeModelServer, FakeUpstream

VIEWS = {
    "views": [
        {
            "name": "profile",
            "entity": {"join_key": "customer_id", "dtype": "string"},
            "features": [{"name": "plan", "dtype": "string"}, {"name": "age", "dtype": "int64"}],
        },
        {
            "name": "activity",
            "entity": {"join_key": "customer_id", "dtype": "string"},
            "features": [{"name": "calls", "dtype": "int64"}, {"name": "plan", "dtype": "string"}],
        },
        {
            "name": "store",
            "entity": {"join_key": "store_id", "dtype": "string"},
            "features": [{"name": "age", "dtype": "int64"}],
        },
    ]
}


class FeatureStoreClient:
    """Answers like the feature store service."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []

    async def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        assert url.startswith("http://fs:8000/v1/features/")
        assert timeout > 0 and headers is None
        if method == "GET":
            return Reply(200, orjson.dumps(VIEWS))
        doc = orjson.loads(body or b"{}")
        self.bodies.append(doc)
        ids = doc["entities"]["customer_id"]
        results = [
            {
                "values": [7 if i == "C1" else None for i in ids],
                "statuses": ["PRESENT" if i == "C1" else "NOT_FOUND" for i in ids],
                "event_timestamps": [None for _ in ids],
            }
            for _ in doc["features"]
        ]
        return Reply(
            200, orjson.dumps({"metadata": {"feature_names": doc["features"]}, "results": results})
        )

    async def close(self) -> None:
        return None


def test_http_lookup_speaks_the_feature_store_api() -> None:
    client = FeatureStoreClient()
    lookup = HttpFeatureLookup("http://fs:8000/", client, timeout=1.0)
    found = asyncio.run(lookup.lookup(["activity:calls"], "customer_id", ["C1", "C9"]))
    assert client.bodies == [
        {"features": ["activity:calls"], "entities": {"customer_id": ["C1", "C9"]}}
    ]
    assert found == {"activity:calls": ([7, None], ["PRESENT", "NOT_FOUND"])}
    refs = asyncio.run(lookup.refs_for("customer_id", ["plan", "calls", "age", "other"]))
    assert refs == {"calls": "activity:calls", "plan": "activity:plan", "age": "profile:age"}


def test_refs_are_resolved_by_entity_key_and_name() -> None:
    assert refs_from_views(VIEWS, "store_id", ["age"]) == {"age": "store:age"}
    assert refs_from_views(VIEWS, "nobody", ["age"]) == {}


def test_schemas_come_from_the_servers_metadata() -> None:
    server = FakeModelServer("churn", "v1")
    client = FakeUpstream({"http://v1:8000": server})
    source = MetadataSchemas(client, registry=None, lookup=None, timeout=1.0)
    schema = asyncio.run(source.schema("churn", "v1", "http://v1:8000"))
    assert schema.features == ("tenure", "plan")
    assert schema.datatypes == {"tenure": "FP64", "plan": "BYTES"}
    assert schema.entity_key == "customer_id"
    assert schema.refs == {"tenure": "customer:tenure", "plan": "customer:plan"}
    assert schema.defaults == {"tenure": 12.0, "plan": "basic"}
    assert schema.classes == ("0", "1")
