"""Both images, built for real and run as a cluster runs them.

The trainer image generates a table, applies the churn feature views, materialises them into
a real Redis and trains churn v1 from the feature store, as uid 10001; then every service
starts from the serving image on a read-only root filesystem (the model server as another
uid, 10002: versions must be readable by any reader) and answers /readyz and a real request.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.image.conftest import ROOT, SERVE, TRAIN, Podman, wait_ready
from tests.support.procs import free_port, redis_server

MAX_SERVE_BYTES = 500_000_000
WRITER, READER = "10001:10001", "10002:10002"


@dataclass
class World:
    redis_url: str
    data: Path
    registry: Path


def owned_by_writer(path: Path) -> Path:
    path.mkdir()
    os.chown(path, 10001, 10001)
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def world(
    built: dict[str, float], podman: Podman, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """churn v1 trained by the trainer image from features it materialised into Redis."""
    base = tmp_path_factory.mktemp("image")
    data, registry = owned_by_writer(base / "data"), owned_by_writer(base / "registry")
    views = (ROOT / "examples" / "churn" / "features.yaml").read_text()
    (data / "features.yaml").write_text(re.sub(r"path: .*", "path: /data/churn.parquet", views))
    with redis_server(base / "redis") as (url, _):
        mounts = {"v_data": f"{data}:/data", "SLUICE_REDIS_URL": url}
        for step in (
            ["data", "generate", "--rows", "3000", "--seed", "7", "--out", "/data/churn.parquet"],
            ["features", "apply", "-f", "/data/features.yaml"],
            ["features", "materialize", "--incremental"],
        ):
            done = podman.run(TRAIN, *step, entrypoint="sluice", **mounts)
            assert done.returncode == 0, f"{step}: {done.stdout}{done.stderr}"
        done = podman.run(
            TRAIN, v_registry=f"{registry}:/models", **mounts,
            SLUICE_TRAINER_MODEL="churn", SLUICE_TRAINER_VERSION="v1",
            SLUICE_TRAINER_REGISTRY="/models", SLUICE_TRAINER_DATA="/data/churn.parquet",
            SLUICE_TRAINER_FEATURES="/data/features.yaml", SLUICE_TRAINER_ALGORITHM="logreg",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        yield World(url, data, registry)
        podman.stop_all()


def test_the_serving_image_is_small_non_root_and_labelled(
    built: dict[str, float], podman: Podman
) -> None:
    (info,) = json.loads(podman("image", "inspect", SERVE).stdout)
    size = int(info["Size"])
    print(f"\nsluice-serve: {size / 1e6:.0f} MB; build {built['build_seconds']:.0f} s")  # noqa: T201
    assert size <= MAX_SERVE_BYTES, f"{size / 1e6:.0f} MB: pull time is scale-out time"
    config = info["Config"]
    assert config["User"] == "10001:10001"
    labels = config["Labels"]
    for key in ("title", "source", "version", "revision", "licenses"):
        assert labels[f"org.opencontainers.image.{key}"], key
    assert config["Entrypoint"] == ["sluice"]


def test_the_serving_image_has_no_trainer_or_build_tools(
    podman: Podman, built: dict[str, float]
) -> None:
    done = podman.run(
        SERVE, "-c", "import importlib.util as u; print([m for m in ('sklearn', 'pyarrow', "
        "'skl2onnx', 'onnx', 'uv', 'pip') if u.find_spec(m)])",
        entrypoint="python",
    )  # fmt: skip
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    assert podman.run(SERVE, "-c", "command -v gcc cc uv", entrypoint="sh").stdout == ""


def test_the_trainer_image_trained_from_the_feature_store(world: World) -> None:
    card = json.loads((world.registry / "churn" / "v1" / "card.json").read_text())
    assert card["feature_refs"], "trained from the feature views"
    assert (world.registry / "churn" / "v1").stat().st_uid == 10001


def test_a_registry_the_trainer_cannot_write_is_one_line(world: World, podman: Podman) -> None:
    done = podman.run(
        TRAIN, v_registry=f"{world.registry}:/models:ro",
        SLUICE_TRAINER_MODEL="churn", SLUICE_TRAINER_VERSION="v2",
        SLUICE_TRAINER_REGISTRY="/models",
    )  # fmt: skip
    assert done.returncode == 1
    (line,) = (done.stdout + done.stderr).strip().splitlines()
    assert "the registry /models is not writable here" in json.loads(line)["message"]


def serve(podman: Podman, service: str, *, user: str = "", **env: str) -> tuple[str, str]:
    port = free_port()
    prefix = (
        "SLUICE_ROLLOUT"
        if service == "rollout-controller"
        else ("SLUICE_" + service.upper().replace("-", "_"))
    )
    container = podman.start(
        SERVE, "serve", service, user=user,
        **{f"{prefix}_HOST": "127.0.0.1", f"{prefix}_PORT": str(port)}, **env,
    )  # fmt: skip
    return f"http://127.0.0.1:{port}", container


def test_every_service_starts_from_the_image_and_answers(world: World, podman: Podman) -> None:
    models = f"{world.registry}:/models:ro"
    feature_store, fs_id = serve(podman, "feature-store", SLUICE_REDIS_URL=world.redis_url)
    # another uid than the trainer's: the registry must be readable by any reader
    model_server, ms_id = serve(
        podman, "model-server", user=READER, v_models=models,
        SLUICE_MODEL_SERVER_REGISTRY="/models", SLUICE_MODEL_SERVER_MODEL="churn",
        SLUICE_MODEL_SERVER_VERSION="v1",
    )  # fmt: skip
    routes = {"churn": {"upstreams": {"v1": [model_server]}, "stable": "v1"}}
    router, r_id = serve(
        podman, "router", v_models=models, SLUICE_REDIS_URL=world.redis_url,
        SLUICE_ROUTER_REGISTRY="/models", SLUICE_ROUTER_ROUTES=json.dumps(routes),
        SLUICE_ADMIN_TOKEN="image-test",
    )  # fmt: skip
    drift, d_id = serve(
        podman, "drift-monitor", v_models=models, SLUICE_REDIS_URL=world.redis_url,
        SLUICE_DRIFT_MONITOR_REGISTRY="/models",
    )  # fmt: skip
    ready = {
        name: wait_ready(url, podman, container)
        for name, url, container in [
            ("feature-store", feature_store, fs_id), ("model-server", model_server, ms_id),
            ("router", router, r_id), ("drift-monitor", drift, d_id),
        ]
    }  # fmt: skip
    print(f"\nready after (s): {ready}")  # noqa: T201

    online = httpx.post(
        f"{feature_store}/get-online-features",
        json={"features": ["customer_profile:plan"], "entities": {"customer_id": ["C000001"]}},
    )
    assert online.status_code == 200, online.text
    assert online.json()["results"][1]["statuses"] == ["PRESENT"]

    card = json.loads((world.registry / "churn" / "v1" / "card.json").read_text())
    instance = {f["name"]: f["default"] for f in card["features"]}
    direct = httpx.post(f"{model_server}/v1/models/churn:predict", json={"instances": [instance]})
    assert direct.status_code == 200, direct.text

    routed = httpx.post(
        f"{router}/v1/models/churn:predict", json={"instances": [{"customer_id": "C000001"}]}
    )
    assert routed.status_code == 200, routed.text
    assert len(routed.json()["predictions"]) == 1

    report = httpx.get(f"{drift}/v1/drift/churn")
    assert report.status_code == 200, report.text
    for url in (feature_store, model_server, router, drift):
        assert "# TYPE" in httpx.get(f"{url}/metrics").text


def test_the_rollout_controller_starts_from_the_image(world: World, podman: Podman) -> None:
    url, container = serve(
        podman, "rollout-controller", SLUICE_REDIS_URL=world.redis_url,
        SLUICE_ADMIN_TOKEN="image-test",
    )  # fmt: skip
    wait_ready(url, podman, container)
