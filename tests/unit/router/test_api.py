"""Inference through the router app, with fake model servers and a fake feature store."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from sluice.router.split import bucket
from tests.unit.router.conftest import ADMIN, V1_URL, V2_URL, World


def test_entity_only_request_is_enriched_and_answered_by_stable(world: World) -> None:
    world.route()
    resp = world.predict({"customer_id": "C3"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-sluice-version"] == "v1"
    assert resp.json()["predictions"][0]["label"] == "1"  # C3 is on the basic plan
    assert world.servers[V1_URL].calls[-1]["rows"] == [{"tenure": 3.0, "plan": "basic"}]
    assert len(world.lookup.calls) == 1


def test_features_given_in_the_request_win(world: World) -> None:
    world.route()
    world.predict({"customer_id": "C3", "plan": "premium"})
    assert world.servers[V1_URL].calls[-1]["rows"] == [{"tenure": 3.0, "plan": "premium"}]
    assert world.lookup.calls[-1][0] == ("customer:tenure",)


def test_a_complete_request_needs_no_lookup(world: World) -> None:
    world.route()
    assert world.predict({"tenure": 1.0, "plan": "basic"}).status_code == 200
    assert world.lookup.calls == []


def test_canary_is_sticky_per_entity_and_matches_the_weight(world: World) -> None:
    world.route(candidate="v2", mode="canary", weight=30)
    for i in range(40):
        key = f"C{i}"
        expected = "v2" if bucket(key) < 3000 else "v1"
        for _ in range(2):
            resp = world.predict({"customer_id": key})
            assert resp.headers["x-sluice-version"] == expected
    assert world.metric("sluice_router_traffic_weight_ratio", model="churn", version="v2") == 0.3


def test_the_key_header_routes_requests_without_an_entity(world: World) -> None:
    world.route(candidate="v2", mode="canary", weight=50)
    row = {"tenure": 1.0, "plan": "basic"}
    for key in ("a", "b", "c", "d", "e"):
        expected = "v2" if bucket(key) < 5000 else "v1"
        assert world.predict(row, **{"x-sluice-key": key}).headers["x-sluice-version"] == expected


def test_the_version_header_pins_a_routed_version_only(world: World) -> None:
    world.route(candidate="v2", mode="bluegreen")
    assert world.predict({"customer_id": "C1"}).headers["x-sluice-version"] == "v1"
    pinned = world.predict({"customer_id": "C1"}, **{"x-sluice-version": "v2"})
    assert pinned.headers["x-sluice-version"] == "v2"
    unknown = world.predict({"customer_id": "C1"}, **{"x-sluice-version": "v9"})
    assert unknown.status_code == 404
    assert "v9" in unknown.json()["error"]["message"]


def test_a_failing_candidate_is_answered_by_stable_and_counted(world: World) -> None:
    world.route(candidate="v2", mode="canary", weight=100)
    world.servers[V2_URL].fail = "500"
    for _ in range(3):
        resp = world.predict({"customer_id": "C1"})
        assert resp.status_code == 200
        assert resp.headers["x-sluice-version"] == "v1"
    assert world.metric("sluice_router_fallbacks_total", model="churn", version="v2") == 3
    assert (
        world.metric(
            "sluice_router_upstream_errors_total",
            model="churn",
            version="v2",
            role="primary",
            reason="status",
        )
        >= 3
    )


def test_the_breaker_stops_calling_a_candidate_that_keeps_failing(world: World) -> None:
    world.route(candidate="v2", mode="canary", weight=100)
    assert world.predict({"customer_id": "C1"}).headers["x-sluice-version"] == "v2"
    world.upstream.requests.clear()
    world.servers[V2_URL].fail = "connect"
    for _ in range(10):
        assert world.predict({"customer_id": "C1"}).headers["x-sluice-version"] == "v1"
    tried = [u for m, u, _ in world.upstream.requests if m == "POST" and u.startswith(V2_URL)]
    # 5 failed calls (each retried once) open the breaker; the other 5 skip v2
    assert len(tried) == 10
    assert world.metric("sluice_router_circuit_open", model="churn", version="v2") == 1
    assert world.metric("sluice_router_fallbacks_total", model="churn", version="v2") == 10


def test_a_candidate_whose_metadata_cannot_be_read_is_skipped(world: World) -> None:
    world.route(candidate="v2", mode="canary", weight=100)
    world.servers[V2_URL].fail = "connect"
    resp = world.predict({"customer_id": "C1"})
    assert resp.status_code == 200
    assert resp.headers["x-sluice-version"] == "v1"
    labels = {"model": "churn", "version": "v2", "role": "primary", "reason": "metadata"}
    assert world.metric("sluice_router_upstream_errors_total", **labels) == 1


def test_stable_failures_reach_the_user_as_gateway_errors(world: World) -> None:
    world.route()
    world.servers[V1_URL].fail = "connect"
    cold = world.predict({"customer_id": "C1"})
    assert cold.status_code == 503  # never answered: what v1 takes is unknown
    world.servers[V1_URL].fail = None
    assert world.predict({"customer_id": "C1"}).status_code == 200
    world.servers[V1_URL].fail = "connect"
    unreachable = world.predict({"customer_id": "C1"})
    assert unreachable.status_code == 502
    assert V1_URL not in unreachable.text  # the upstream's address stays in our log
    world.servers[V1_URL].fail = "timeout"
    assert world.predict({"customer_id": "C1"}).status_code == 504
    world.servers[V1_URL].fail = "500"
    assert world.predict({"customer_id": "C1"}).status_code == 500
    assert world.metric("http_request_duration_seconds_count", status="502") == 1


def test_missing_or_stale_features_follow_the_models_policy(world: World) -> None:
    world.route()
    refused = world.predict({"customer_id": "C199"})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "missing_feature"
    assert "outside max age" in refused.json()["error"]["message"]
    world.route(on_missing="default")
    filled = world.predict({"customer_id": "unknown"})
    assert filled.status_code == 200
    assert world.servers[V1_URL].calls[-1]["rows"] == [{"tenure": 12.0, "plan": "basic"}]
    labels = {"model": "churn", "feature": "tenure", "status": "NOT_FOUND", "action": "default"}
    assert world.metric("sluice_router_feature_gaps_total", **labels) == 1


def test_a_lookup_failure_is_a_503(world: World) -> None:
    world.route()
    world.lookup.fail = True
    resp = world.predict({"customer_id": "C1"})
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "feature_lookup_unavailable"
    message = resp.json()["error"]["message"]
    assert message.startswith("feature lookup failed: the feature store is unavailable")
    assert "redis is down" not in message  # the lookup's own words stay in our log
    assert world.metric("sluice_router_feature_lookup_errors_total") == 1


def test_a_lookup_failure_under_the_default_policy_is_answered_with_training_defaults(
    world: World,
) -> None:
    world.route(on_missing="default")
    world.lookup.fail = True
    resp = world.predict({"customer_id": "C1"}, {"customer_id": "C2", "plan": "premium"})
    assert resp.status_code == 200, resp.text
    assert world.servers[V1_URL].calls[-1]["rows"] == [
        {"tenure": 12.0, "plan": "basic"},
        {"tenure": 12.0, "plan": "premium"},  # what the request gave still wins
    ]
    gaps = "sluice_router_feature_gaps_total"
    for feature, n in (("tenure", 2), ("plan", 1)):
        labels = {"feature": feature, "status": "UNAVAILABLE", "action": "default"}
        assert world.metric(gaps, model="churn", **labels) == n
    assert world.metric("sluice_router_feature_lookup_errors_total") == 1  # still our outage
    world.lookup.fail = False
    assert world.predict({"customer_id": "C3"}).json()["predictions"][0]["label"] == "1"


def test_a_version_first_used_while_the_store_is_down_follows_the_policy(
    make_world: Callable[..., World],
) -> None:
    """The feature views' refs cannot be read (the card names none): every request is a
    failed lookup under the route's policy, and once the store answers the refs are read
    again by a request and the features looked up."""
    world = make_world(schema_retry_seconds=0)
    world.servers[V1_URL].published_refs = ()
    world.route(on_missing="default")
    world.lookup.fail = True
    for _ in range(2):
        resp = world.predict({"customer_id": "C1"})
        assert resp.status_code == 200, resp.text
        assert world.servers[V1_URL].calls[-1]["rows"] == [{"tenure": 12.0, "plan": "basic"}]
    labels = {"model": "churn", "status": "UNAVAILABLE", "action": "default"}
    assert world.metric("sluice_router_feature_gaps_total", feature="tenure", **labels) == 2
    assert world.metric("sluice_router_feature_lookup_errors_total") == 2
    assert world.lookup.calls == []  # nothing to look up by: no refs
    world.route(on_missing="reject")
    refused = world.predict({"customer_id": "C1"})
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "feature_lookup_unavailable"
    world.lookup.fail = False
    resp = world.predict({"customer_id": "C3"})
    assert resp.status_code == 200, resp.text
    assert world.servers[V1_URL].calls[-1]["rows"] == [{"tenure": 3.0, "plan": "basic"}]


def test_refs_pending_beside_a_failed_lookup_count_one_lookup_error(world: World) -> None:
    world.servers[V1_URL].published_refs = ("tenure",)  # plan's ref from the views
    world.route(on_missing="default")
    world.lookup.fail = True
    assert world.predict({"customer_id": "C1"}).status_code == 200
    assert len(world.lookup.calls) == 1  # tenure was looked up, and failed
    labels = {"model": "churn", "status": "UNAVAILABLE", "action": "default"}
    for feature in ("tenure", "plan"):
        assert world.metric("sluice_router_feature_gaps_total", feature=feature, **labels) == 1
    assert world.metric("sluice_router_feature_lookup_errors_total") == 1


def test_a_pending_version_rereads_its_refs_once_a_second_not_per_request(world: World) -> None:
    world.servers[V1_URL].published_refs = ()
    world.route(on_missing="default")
    world.lookup.fail = True
    for _ in range(5):
        assert world.predict({"customer_id": "C1"}).status_code == 200
    assert world.lookup.refs_calls == 1  # the default schema_retry_seconds is 1 s


def test_a_bad_entity_id_is_a_422_naming_the_field_and_no_lookup(world: World) -> None:
    world.route()
    resp = world.predict({"customer_id": "C1"}, {"customer_id": ["C2"]})
    assert resp.status_code == 422
    assert resp.json()["error"] == {
        "code": "invalid_entity",
        "message": "instances[1].customer_id: expected a string or an integer, got list ['C2']",
    }
    assert world.lookup.calls == []
    assert world.metric("sluice_router_feature_lookup_errors_total") == 0
    assert world.metric("http_request_duration_seconds_count", status="422") == 1


def test_every_answer_goes_to_the_prediction_log(world: World) -> None:
    world.route()
    world.predict({"customer_id": "C3"}, {"customer_id": "C4"}, **{"x-request-id": "req-1"})
    model, record = world.predlog.records[-1]
    assert model == "churn"
    assert (record.request_id, record.version, record.role) == ("req-1", "v1", "primary")
    assert record.features == {"tenure": [3.0, 4.0], "plan": ["basic", "premium"]}
    assert record.labels == ["1", "0"]
    assert record.scores == [0.9, 0.2]
    assert record.latency_ms > 0


def test_a_stable_only_route_logs_a_sample_and_counts_the_rest(
    make_world: Callable[..., World],
) -> None:
    world = make_world(predlog_sample=0.25)
    world.route()
    for _ in range(400):
        assert world.predict({"customer_id": "C3"}).status_code == 200
    written = len(world.predlog.records)
    assert 50 <= written <= 160  # binomial(400, 0.25): 100 +- 8.7
    assert world.metric("sluice_router_predlog_sampled_out_total", model="churn") == 400 - written


def test_with_a_candidate_every_request_is_logged_whatever_the_sample(
    make_world: Callable[..., World],
) -> None:
    world = make_world(predlog_sample=0.01)
    world.route(candidate="v2", mode="canary", weight=50)
    for i in range(100):
        assert world.predict({"customer_id": f"C{i}"}).status_code == 200
    assert len(world.predlog.records) == 100
    assert world.metric("sluice_router_predlog_sampled_out_total", model="churn") == 0


def test_a_routes_own_sample_rate_wins_over_the_setting(world: World) -> None:
    world.route(predlog_sample=0.01)
    for _ in range(200):
        assert world.predict({"customer_id": "C3"}).status_code == 200
    assert len(world.predlog.records) <= 12  # binomial(200, 0.01): 2 +- 1.4
    bad = world.client.put(
        "/admin/v1/routes/churn",
        json={"upstreams": {"v1": "http://x"}, "stable": "v1", "predlog_sample": 0},
        headers=ADMIN,
    )
    assert bad.status_code == 422 and "predlog_sample" in bad.text


def test_v2_infer_is_routed_enriched_and_pinned_by_path(world: World) -> None:
    world.route(candidate="v2", mode="bluegreen")
    body = {
        "id": "abc",
        "inputs": [{"name": "customer_id", "shape": [1], "datatype": "BYTES", "data": ["C3"]}],
    }
    resp = world.client.post("/v2/models/churn/infer", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-sluice-version"] == "v1"
    assert resp.json()["id"] == "abc"
    pinned = world.client.post("/v2/models/churn/versions/v2/infer", json=body)
    assert pinned.headers["x-sluice-version"] == "v2"
    assert world.predlog.records[-1][1].features == {"tenure": [3.0], "plan": ["basic"]}
    bad = world.client.post("/v2/models/churn/infer", content=b"{")
    assert bad.status_code == 400  # malformed JSON: as the model server says
    assert isinstance(bad.json()["error"], str)


def test_v2_binary_requests_are_forwarded_as_they_are(world: World) -> None:
    world.route()
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "plan",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": 9},
                }
            ]
        }
    )
    world.client.post(
        "/v2/models/churn/infer",
        content=head + b"\x05\x00\x00\x00basic",
        headers={"inference-header-content-length": str(len(head))},
    )
    _method, url, headers = world.upstream.requests[-1]
    assert url == f"{V1_URL}/v2/models/churn/versions/v1/infer"
    assert headers is not None
    assert headers["inference-header-content-length"] == str(len(head))


def test_metadata_and_health_look_like_a_model_server(world: World) -> None:
    assert world.client.get("/v2/models/churn").status_code == 404
    world.route(candidate="v2", mode="bluegreen")
    meta = world.client.get("/v2/models/churn")
    assert meta.json()["versions"] == ["v1"]
    assert meta.headers["x-sluice-version"] == "v1"
    assert world.client.get("/v2/models/churn/versions/v2").json()["versions"] == ["v2"]
    assert world.client.get("/v2/health/live").json() == {"live": True}
    assert world.client.get("/v2/health/ready").json() == {"ready": True}
    assert world.client.get("/readyz").status_code == 200


def test_unknown_models_and_bad_bodies_are_client_errors(world: World) -> None:
    assert world.predict({"customer_id": "C1"}).status_code == 404
    world.route()
    assert world.client.post("/v1/models/churn:predict", content=b"[").status_code == 400
    assert world.client.post("/v1/models/churn:predict", json={"rows": []}).status_code == 422


def test_body_and_batch_limits(make_world: object) -> None:
    world = make_world(max_body_bytes=2048, max_batch_size=4)  # type: ignore[operator]
    world.route()
    assert world.predict(*[{"customer_id": "C1"}] * 5).status_code == 413
    huge = world.client.post(
        "/v1/models/churn:predict", content=b'{"instances": [' + b" " * 4096 + b"]}"
    )
    assert huge.status_code == 413


def test_rate_limit_answers_429_with_retry_after(make_world: object) -> None:
    world = make_world(rate_limit_rps=0.5, rate_limit_burst=2)  # type: ignore[operator]
    world.route()
    codes = [world.predict({"customer_id": "C1"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    limited = world.predict({"customer_id": "C1"})
    assert limited.headers["retry-after"] == "2"
    assert world.predict({"customer_id": "C1"}, **{"x-api-key": "other"}).status_code == 200
    assert world.metric("sluice_router_rate_limited_total") == 2


def test_api_key_is_required_when_configured(make_world: object) -> None:
    world = make_world(api_keys="k1,k2")  # type: ignore[operator]
    world.route()
    assert world.predict({"customer_id": "C1"}).status_code == 401
    assert world.predict({"customer_id": "C1"}, **{"x-api-key": "k2"}).status_code == 200
    assert world.predict({"customer_id": "C1"}, authorization="Bearer k1").status_code == 200
    assert world.predict({"customer_id": "C1"}, **{"x-api-key": "nope"}).status_code == 401


def test_explain_goes_to_the_version_that_answers_with_the_features_looked_up(
    world: World,
) -> None:
    world.route(candidate="v2", mode="canary", weight=100)
    body = {"instances": [{"customer_id": "C1"}]}
    response = world.client.post("/v1/models/churn:explain", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-sluice-version"] == "v2"
    assert response.json()["model_version"] == "v2"
    (call,) = [c for c in world.servers[V2_URL].calls if c["path"].endswith(":explain")]
    assert call["rows"] == [{"tenure": 1.0, "plan": "premium"}]
    pinned = world.client.post(
        "/v1/models/churn:explain", json=body, headers={"x-sluice-version": "v1"}
    )
    assert pinned.headers["x-sluice-version"] == "v1"
    assert world.predlog.records == []  # an explanation is not a prediction
    unknown = world.client.post("/v1/models/nope:explain", json=body)
    assert unknown.status_code == 404


def test_a_body_that_is_not_json_is_400_malformed_json_on_every_route(world: World) -> None:
    """The same answer as the model server gives (not 422), in each route's own shape."""
    world.route()
    v1 = world.client.post("/v1/models/churn:predict", content=b'{"instances": [')
    assert v1.status_code == 400, v1.text
    assert v1.json()["error"]["code"] == "malformed_json"
    assert "not valid JSON" in v1.json()["error"]["message"]
    v2 = world.client.post("/v2/models/churn/infer", content=b"\xff\xfe not utf-8")
    assert v2.status_code == 400 and "not valid JSON" in v2.json()["error"]
    admin = world.client.put(
        "/admin/v1/routes/churn",
        content=b'{"stable": ',
        headers={**ADMIN, "content-type": "application/json"},
    )
    assert admin.status_code == 400, admin.text
    assert admin.json()["error"]["code"] == "malformed_json"
