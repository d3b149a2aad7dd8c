"""SLUICE_REDIS_PASSWORD reaches every Redis URL of every service's settings."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

from sluice.core import settings as core_settings
from sluice.drift_monitor.settings import Settings as DriftSettings
from sluice.feature_store.settings import Settings as FeatureSettings
from sluice.rollout.settings import Settings as RolloutSettings
from sluice.router.settings import Settings as RouterSettings


def test_doctests() -> None:
    assert doctest.testmod(core_settings).failed == 0


def test_every_service_puts_the_password_into_its_redis_urls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SLUICE_REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("SLUICE_REDIS_PASSWORD", "s3/cret")
    monkeypatch.setenv("SLUICE_ROUTER_FEATURE_REDIS_URL", "redis://features:6379/2")
    router = RouterSettings()
    assert router.redis_url == "redis://:s3%2Fcret@redis:6379/0"
    assert router.feature_redis_url == "redis://:s3%2Fcret@features:6379/2"
    for settings in [FeatureSettings(), RolloutSettings(), DriftSettings(registry=tmp_path)]:
        assert settings.redis_url == "redis://:s3%2Fcret@redis:6379/0", type(settings)


def test_a_url_with_its_own_password_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_REDIS_URL", "redis://:own@redis:6379/0")
    monkeypatch.setenv("SLUICE_REDIS_PASSWORD", "other")
    assert FeatureSettings().redis_url == "redis://:own@redis:6379/0"
    monkeypatch.delenv("SLUICE_REDIS_PASSWORD")
    monkeypatch.setenv("SLUICE_REDIS_URL", "redis://redis:6379/0")
    assert FeatureSettings().redis_url == "redis://redis:6379/0"


def test_the_online_store_may_have_a_password_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("SLUICE_ROUTER_FEATURE_REDIS_URL", "redis://features:6379/2")
    monkeypatch.setenv("SLUICE_ROUTER_FEATURE_REDIS_PASSWORD", "features-pw")
    router = RouterSettings()
    assert router.feature_redis_url == "redis://:features-pw@features:6379/2"
    assert router.redis_url == "redis://redis:6379/0"  # the routing table's Redis: none
    monkeypatch.setenv("SLUICE_REDIS_PASSWORD", "state-pw")
    router = RouterSettings()
    assert router.feature_redis_url == "redis://:features-pw@features:6379/2"
    assert router.redis_url == "redis://:state-pw@redis:6379/0"


def test_the_prediction_log_may_have_a_redis_and_a_password_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLUICE_REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("SLUICE_REDIS_PASSWORD", "state-pw")
    monkeypatch.setenv("SLUICE_ROUTER_PREDLOG_REDIS_URL", "redis://predlog:6379")
    monkeypatch.setenv("SLUICE_ROUTER_PREDLOG_REDIS_PASSWORD", "log-pw")
    monkeypatch.setenv("SLUICE_ROUTER_PREDLOG_REDIS_CLUSTER", "true")
    router = RouterSettings()
    assert router.predlog_redis_url == "redis://:log-pw@predlog:6379"
    assert router.predlog_redis_cluster
    assert router.redis_url == "redis://:state-pw@redis:6379/0"
