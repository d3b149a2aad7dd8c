from __future__ import annotations

import pytest
from pydantic import ValidationError

from sluice.router.settings import Settings

CLUSTER = "redis://shard-0.example:6379/0"


@pytest.mark.parametrize(
    "given",
    [
        pytest.param({}, id="no-feature-redis-url"),
        pytest.param(
            {
                "feature_redis_url": CLUSTER,
                "feature_lookup": "http",
                "feature_store_url": "http://fs:8000",
            },
            id="http-lookup",
        ),
    ],
)
def test_a_cluster_online_store_needs_the_in_process_lookup_and_its_url(
    given: dict[str, str],
) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(feature_redis_cluster=True, **given)
    message = str(raised.value)
    assert "SLUICE_ROUTER_FEATURE_REDIS_CLUSTER=true needs SLUICE_ROUTER_FEATURE_LOOKUP=redis" in (
        message
    )
    assert "SLUICE_ROUTER_FEATURE_REDIS_URL" in message


def test_a_cluster_online_store_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLUICE_ROUTER_FEATURE_REDIS_URL", CLUSTER)
    monkeypatch.setenv("SLUICE_ROUTER_FEATURE_REDIS_CLUSTER", "true")
    settings = Settings()
    assert settings.feature_redis_cluster and settings.feature_redis_url == CLUSTER
    assert settings.feature_lookup == "redis"
