"""The admin API: token, validation, revisions; a refused change leaves the table alone."""

from __future__ import annotations

from collections.abc import Callable

from tests.unit.router.conftest import ADMIN, V1_URL, V2_URL, World


def test_a_change_is_stored_applied_and_shown(world: World) -> None:
    doc = world.route(candidate="v2", mode="canary", weight=25)
    assert doc["revision"] == 1
    assert doc["applied_revision"] == 1
    assert doc["weights"] == {"v1": 0.75, "v2": 0.25}
    shown = world.client.get("/admin/v1/routes/churn", headers=ADMIN).json()
    assert shown["upstreams"]["v2"]["urls"] == [V2_URL]
    listed = world.client.get("/admin/v1/routes", headers=ADMIN).json()
    assert list(listed["routes"]) == ["churn"]


def test_invalid_changes_are_refused_and_change_nothing(world: World) -> None:
    world.route(candidate="v2", mode="canary", weight=10)
    ups = {"v1": V1_URL, "v2": V2_URL}
    for body, message in [
        ({"upstreams": ups, "stable": "v3"}, "stable version 'v3' has no upstream"),
        (
            {"upstreams": ups, "stable": "v1", "candidate": "v2", "mode": "canary", "weight": 150},
            "weight",
        ),
        (
            {"upstreams": {"v1": V1_URL}, "stable": "v1", "candidate": "v2", "mode": "shadow"},
            "candidate version 'v2' has no upstream",
        ),
    ]:
        resp = world.client.put("/admin/v1/routes/churn", json=body, headers=ADMIN)
        assert resp.status_code == 422
        assert resp.json()["error"]["code"] == "invalid_route"
        assert message in resp.json()["error"]["message"]
    shown = world.client.get("/admin/v1/routes/churn", headers=ADMIN).json()
    assert (shown["revision"], shown["weight"]) == (1, 10)
    assert world.service.table.routes["churn"].weight == 10


def test_a_stale_revision_is_a_conflict(world: World) -> None:
    world.route()
    body = {"upstreams": {"v1": V1_URL}, "stable": "v1", "if_revision": 0}
    resp = world.client.put("/admin/v1/routes/churn", json=body, headers=ADMIN)
    assert resp.status_code == 409
    body["if_revision"] = 1
    assert world.client.put("/admin/v1/routes/churn", json=body, headers=ADMIN).status_code == 200


def test_the_token_is_required(world: World, make_world: Callable[..., World]) -> None:
    assert world.client.get("/admin/v1/routes").status_code == 401
    wrong = world.client.get("/admin/v1/routes", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    disabled = make_world(admin_token=None)
    resp = disabled.client.get("/admin/v1/routes", headers=ADMIN)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "admin_disabled"


def test_delete_removes_the_route(world: World) -> None:
    world.route()
    assert world.client.delete("/admin/v1/routes/churn", headers=ADMIN).status_code == 200
    assert world.client.get("/admin/v1/routes/churn", headers=ADMIN).status_code == 404
    assert world.predict({"customer_id": "C1"}).status_code == 404


def test_routes_from_settings_are_seeded_at_start(make_world: Callable[..., World]) -> None:
    seeded = make_world(routes={"churn": {"upstreams": {"v1": V1_URL}, "stable": "v1"}})
    assert seeded.client.get("/admin/v1/routes/churn", headers=ADMIN).json()["revision"] == 1
    assert seeded.predict({"customer_id": "C1"}).status_code == 200


def test_a_deleted_route_stops_exporting_its_series(world: World) -> None:
    world.route(candidate="v2", mode="canary", weight=20)
    assert world.metric("sluice_router_traffic_weight_ratio", model="churn", version="v2") == 0.2
    world.route()  # v2 stays an upstream but gets no traffic
    assert world.client.delete("/admin/v1/routes/churn", headers=ADMIN).status_code == 200
    scrape = world.client.get("/metrics").text
    for name in ("traffic_weight_ratio", "mirror_ratio", "table_revision"):
        assert f'sluice_router_{name}{{model="churn"' not in scrape


def test_a_version_removed_from_a_route_stops_exporting_its_weight(world: World) -> None:
    world.route(candidate="v2", mode="canary", weight=20)
    resp = world.client.put(
        "/admin/v1/routes/churn",
        json={"upstreams": {"v1": "http://v1.test:8000"}, "stable": "v1"},
        headers=ADMIN,
    )
    assert resp.status_code == 200
    scrape = world.client.get("/metrics").text
    assert 'sluice_router_traffic_weight_ratio{model="churn",version="v1"} 1.0' in scrape
    assert (
        'version="v2"'
        not in scrape.split("# HELP sluice_router_traffic_weight_ratio")[1].split("# HELP")[0]
    )
