"""The chart's RBAC against a real kube-apiserver with RBAC on, proved by impersonation.

The rollout controller's ServiceAccount may do exactly its job (read and watch ModelRollouts,
write their status, create Events, hold its Lease) and the ServiceAccount every other
component runs as may do nothing at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# the k8s tier's fixtures (kubectl, helm, namespace) come with tests/k8s/conftest.py
pytest.importorskip("tests.support.kube", reason="the k8s tier (tests/k8s/conftest.py) is absent")

CHART = Path(__file__).resolve().parents[2] / "charts" / "sluice"
CRD = CHART / "crds" / "modelrollouts.yaml"
CONTROLLER = "sluice-rollout-controller"
NOBODY = "sluice"  # the router's, feature store's, drift monitor's and model servers' account

ALLOWED = [
    ("get", "modelrollouts.serving.sluice.dev"),
    ("list", "modelrollouts.serving.sluice.dev"),
    ("watch", "modelrollouts.serving.sluice.dev"),
    ("get", "modelrollouts.serving.sluice.dev", "--subresource=status"),
    ("update", "modelrollouts.serving.sluice.dev", "--subresource=status"),
    ("patch", "modelrollouts.serving.sluice.dev", "--subresource=status"),
    ("create", "events"),
    ("patch", "events"),
    ("create", "events.events.k8s.io"),
    ("patch", "events.events.k8s.io"),
    ("create", "leases.coordination.k8s.io"),
    ("get", f"leases.coordination.k8s.io/{CONTROLLER}"),
    ("update", f"leases.coordination.k8s.io/{CONTROLLER}"),
]
REFUSED = [
    ("create", "modelrollouts.serving.sluice.dev"),
    ("update", "modelrollouts.serving.sluice.dev"),
    ("delete", "modelrollouts.serving.sluice.dev"),
    ("patch", "modelrollouts.serving.sluice.dev"),
    ("get", "secrets"),
    ("list", "pods"),
    ("create", "deployments.apps"),
    ("get", "configmaps"),
    ("update", "leases.coordination.k8s.io/someone-else"),
    ("delete", f"leases.coordination.k8s.io/{CONTROLLER}"),
    ("list", "events"),
]


def can_i(kubectl: Any, namespace: str, account: str, *check: str, where: str = "") -> bool:
    """May the account (of ``namespace``) do ``check`` in ``where`` (default: its own)?"""
    done = kubectl(
        "auth", "can-i", "-n", where or namespace,
        f"--as=system:serviceaccount:{namespace}:{account}", *check, check=False,
    )  # fmt: skip
    return bool(done.stdout.strip() == "yes")


@pytest.fixture
def installed(kubectl: Any, helm: Any, namespace: str) -> str:
    """The CRD and the chart's ServiceAccounts, Role and RoleBinding, applied."""
    if CRD.is_file():
        kubectl("apply", "-f", str(CRD))
    rendered = helm(
        "template", "sluice", str(CHART), "--namespace", namespace,
        "--show-only", "templates/serviceaccounts.yaml", "--show-only", "templates/rbac.yaml",
    ).stdout  # fmt: skip
    kubectl("apply", "-n", namespace, "-f", "-", input=rendered)
    return namespace


def test_the_rollout_controller_may_do_its_job(kubectl: Any, installed: str) -> None:
    refused = [c for c in ALLOWED if not can_i(kubectl, installed, CONTROLLER, *c)]
    assert not refused, f"the controller cannot: {refused}"


def test_the_rollout_controller_may_do_nothing_more(kubectl: Any, installed: str) -> None:
    allowed = [c for c in REFUSED if can_i(kubectl, installed, CONTROLLER, *c)]
    assert not allowed, f"the controller may, but should not: {allowed}"
    elsewhere = ("list", "modelrollouts.serving.sluice.dev")
    assert not can_i(kubectl, installed, CONTROLLER, *elsewhere, where="kube-system")


def test_the_other_components_may_do_nothing(kubectl: Any, installed: str) -> None:
    allowed = [c for c in ALLOWED + REFUSED if can_i(kubectl, installed, NOBODY, *c)]
    assert not allowed, f"the router's ServiceAccount may: {allowed}"
