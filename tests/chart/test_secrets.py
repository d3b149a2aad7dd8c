"""charts/sluice: every token and the Redis password reach exactly the containers that need
them, from Secrets (never a ConfigMap or an argument in plain text), and the release's Redis
requires its password."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart.conftest import CHART, Render
from tests.chart.test_render import by_kind, component, pod_spec

ADMIN = "SLUICE_ADMIN_TOKEN"
WRITE = "SLUICE_FEATURE_WRITE_TOKEN"
FEEDBACK = "SLUICE_FEEDBACK_TOKEN"
READ = "SLUICE_FEATURE_READ_TOKEN"
REDIS = "SLUICE_REDIS_PASSWORD"


def secret_env(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """A container's env from Secrets: variable -> (Secret, key)."""
    refs = {}
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            refs[entry["name"]] = (ref["name"], ref["key"])
    return refs


def deployments_env(objects: list[dict[str, Any]]) -> dict[str, dict[str, tuple[str, str]]]:
    return {
        component(d): secret_env(pod_spec(d)["containers"][0])
        for d in by_kind(objects, "Deployment").values()
    }


def secret_keys(objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {name: sorted(s["data"]) for name, s in by_kind(objects, "Secret").items()}


def test_each_deployment_reads_the_tokens_it_needs_and_no_other(render: Render) -> None:
    objects = render()
    redis = ("sluice-redis-auth", "password")
    assert deployments_env(objects) == {
        "feature-store": {WRITE: ("sluice-feature-writer", "token"), REDIS: redis},
        "router": {ADMIN: ("sluice-admin", "token"), REDIS: redis},
        "drift-monitor": {FEEDBACK: ("sluice-feedback", "token"), REDIS: redis},
        "rollout-controller": {ADMIN: ("sluice-admin", "token"), REDIS: redis},
        "model-server": {},
    }
    assert secret_keys(objects) == {
        "sluice-admin": ["token"],
        "sluice-feature-writer": ["token"],
        "sluice-feedback": ["token"],
        "sluice-redis-auth": ["password"],
    }
    for name, config in by_kind(objects, "ConfigMap").items():
        data = config.get("data") or {}
        assert not {ADMIN, WRITE, FEEDBACK, READ, REDIS} & set(data), name


def test_the_read_token_goes_to_the_feature_store_and_the_router_when_enabled(
    render: Render,
) -> None:
    objects = render(args=("--set", "featureReadToken.enabled=true"))
    env = deployments_env(objects)
    reader = ("sluice-feature-reader", "token")
    assert env["feature-store"][READ] == reader
    assert env["router"][READ] == reader
    assert [c for c, refs in env.items() if READ in refs] == ["feature-store", "router"]
    assert secret_keys(objects)["sluice-feature-reader"] == ["token"]


def test_existing_secrets_are_used_as_they_are(render: Render) -> None:
    objects = render(args=("--set", "feedbackToken.existingSecret=ops,feedbackToken.secretKey=fb"))
    assert deployments_env(objects)["drift-monitor"][FEEDBACK] == ("ops", "fb")
    assert "sluice-feedback" not in secret_keys(objects)


def test_the_release_redis_requires_the_password_from_the_secret(render: Render) -> None:
    objects = render()
    redis = by_kind(objects, "StatefulSet")["sluice-redis"]
    container = pod_spec(redis)["containers"][0]
    command = container["command"] + container["args"]
    assert command[command.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    ref = ("sluice-redis-auth", "password")
    assert secret_env(container) == {"REDIS_PASSWORD": ref, "REDISCLI_AUTH": ref}
    for probe in ("livenessProbe", "readinessProbe"):
        # redis-cli authenticates with REDISCLI_AUTH: a probe carries no password
        assert container[probe]["exec"]["command"] == ["redis-cli", "ping"]
    generated = by_kind(objects, "Secret")["sluice-redis-auth"]["data"]["password"]
    assert generated not in str(redis)


def test_redis_auth_off_leaves_no_password_anywhere(render: Render) -> None:
    objects = render(args=("--set", "redis.auth.enabled=false"))
    container = pod_spec(by_kind(objects, "StatefulSet")["sluice-redis"])["containers"][0]
    assert "--requirepass" not in container["command"] + container["args"]
    assert "env" not in container
    assert all(REDIS not in refs for refs in deployments_env(objects).values())
    assert "sluice-redis-auth" not in secret_keys(objects)


@pytest.mark.parametrize(
    ("own", "secret"),
    [("redis-cluster-password", "redis-cluster-password"), ("", "redis-password")],
)
def test_the_materialize_job_gets_the_online_stores_password(
    render: Render, own: str, secret: str
) -> None:
    """The online store's own Secret when it has one, else the one Redis password."""
    objects = render(
        "ci/redis-cluster-values.yaml",
        args=("--set", f"redis.onlineStore.auth.existingSecret={own}"),
    )
    spec = pod_spec(by_kind(objects, "Job")["sluice-materialize"])
    for container in spec["initContainers"] + spec["containers"]:
        assert secret_env(container) == {REDIS: (secret, "password")}, container["name"]


def test_an_external_redis_needs_its_password_or_auth_off(helm: Path, render: Render) -> None:
    external = ("--set", "redis.enabled=false", "--set", "redis.url=redis://r.example:6379/0")
    done = subprocess.run(
        [str(helm), "template", "sluice", str(CHART), *external],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "redis.auth.existingSecret" in done.stderr, done.stderr
    open_ = render(args=(*external, "--set", "redis.auth.enabled=false"))
    assert all(REDIS not in refs for refs in deployments_env(open_).values())


def test_a_changed_token_rolls_only_the_pods_that_read_it(render: Render) -> None:
    def checksums(*args: str) -> dict[str, str]:
        objects = render(args=args)
        pods = [*by_kind(objects, "Deployment").values(), *by_kind(objects, "StatefulSet").values()]
        return {
            component(p): p["spec"]["template"]["metadata"]["annotations"].get("checksum/secrets")
            for p in pods
        }

    before = checksums()
    after = checksums("--set", "feedbackToken.value=rotated")
    assert {c for c in before if before[c] != after[c]} == {"drift-monitor"}
    redis = checksums("--set", "redis.auth.value=rotated")
    changed = {c for c in before if before[c] != redis[c]}
    assert changed == {"feature-store", "router", "drift-monitor", "rollout-controller", "redis"}
