"""The `k8s` tier: tests against a real Kubernetes API server.

The cluster is the kubeconfig in ``SLUICE_TEST_KUBECONFIG`` (else ``KUBECONFIG``). CI starts a
real kube-apiserver with etcd and RBAC (``scripts/kube-apiserver``) and sets it; docs/testing.md
says how to do the same locally. Without a kubeconfig every test here is deselected and the
summary says why; with ``CI`` set, a missing kubeconfig is an error instead, so the tier can
never silently stop running in CI.

Every test in this folder is marked ``k8s`` (by tests/conftest.py, from the folder). Fixtures:

- ``kube_config`` (session): ``Path`` of the kubeconfig.
- ``api_client`` (session): ``kubernetes.client.ApiClient`` built from it, checked to reach
  the server.
- ``namespace`` (per test): ``str``, a fresh namespace, deleted after the test. With no
  controller-manager (``scripts/kube-apiserver``) a deleted namespace stays Terminating:
  never reuse a name.
- ``kubectl``, ``helm`` (session): ``KubeTool``, the cached binary with ``--kubeconfig``;
  ``kubectl("get", "ns")`` returns a ``subprocess.CompletedProcess[str]``.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.support.kube import KUBECONFIG_VARS, KubeTool, cache_bin, kubeconfig_from_env

HERE = Path(__file__).resolve().parent
NO_KUBECONFIG = (
    f"the k8s tier needs a kubeconfig: set {' or '.join(KUBECONFIG_VARS)} "
    "(docs/testing.md: scripts/kube-apiserver build && scripts/kube-apiserver start /tmp/kas)"
)
# kubeconfigs of test API servers skip TLS verification, and urllib3 warns on every request;
# filterwarnings=error would turn that into a failure, so this tier (only) ignores it.
INSECURE_OK = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

DESELECTED = pytest.StashKey[int]()


def _in_tier(item: pytest.Item) -> bool:
    return item.path.is_relative_to(HERE)


@pytest.hookimpl(tryfirst=True)  # before `-m` selection, so `-m k8s` / `-m "not k8s"` work
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tier = [item for item in items if _in_tier(item)]
    for item in tier:
        item.add_marker(INSECURE_OK)
    if not tier or kubeconfig_from_env() is not None:
        return
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        raise pytest.UsageError(f"CI is set but {NO_KUBECONFIG}")
    items[:] = [item for item in items if not _in_tier(item)]
    config.hook.pytest_deselected(items=tier)
    config.stash[DESELECTED] = len(tier)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    if deselected := config.stash.get(DESELECTED, 0):
        terminalreporter.write_line(f"k8s: {deselected} tests deselected: {NO_KUBECONFIG}")


@pytest.fixture(scope="session")
def kube_config() -> Path:
    """The kubeconfig of the cluster under test."""
    path = kubeconfig_from_env()
    if path is None:
        pytest.skip(NO_KUBECONFIG)
    if not path.is_file():
        pytest.fail(f"kubeconfig {path} does not exist (is the API server started?)")
    return path


@pytest.fixture(scope="session")
def api_client(kube_config: Path) -> Iterator[client.ApiClient]:
    """An ApiClient for that cluster; fails at once, naming the kubeconfig, if unreachable."""
    api = config.new_client_from_config(config_file=str(kube_config))
    try:
        client.VersionApi(api).get_code(_request_timeout=10)
    except Exception as exc:
        api.close()
        pytest.fail(f"no Kubernetes API server answers for {kube_config}: {exc}")
    yield api
    api.close()


@pytest.fixture
def namespace(api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, deleted after it."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture(scope="session")
def kubectl(kube_config: Path) -> KubeTool:
    """kubectl 1.33 from the cache, with --kubeconfig of the cluster under test."""
    return KubeTool(cache_bin() / "kubectl", kube_config)


@pytest.fixture(scope="session")
def helm(kube_config: Path) -> KubeTool:
    """helm 3.18 from the cache, with --kubeconfig of the cluster under test."""
    return KubeTool(cache_bin() / "helm", kube_config)
