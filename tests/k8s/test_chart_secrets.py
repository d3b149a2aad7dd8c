"""The chart's Secrets against a real kube-apiserver: a generated token or Redis password is
kept on upgrade (helm's ``lookup`` finds the one in the cluster), and a value given to helm
replaces only its own Secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

# the k8s tier's fixtures (kubectl, helm, namespace) come with tests/k8s/conftest.py
pytest.importorskip("tests.support.kube", reason="the k8s tier (tests/k8s/conftest.py) is absent")

CHART = Path(__file__).resolve().parents[2] / "charts" / "sluice"
GENERATED = {"sluice-admin", "sluice-feature-writer", "sluice-feedback", "sluice-redis-auth"}


def secrets(helm: Any, namespace: str, *args: str) -> tuple[str, dict[str, dict[str, str]]]:
    """The chart's Secrets as an upgrade renders them (lookup reaches the cluster):
    (the manifest, name -> data)."""
    rendered = helm(
        "template", "sluice", str(CHART), "--namespace", namespace, "--dry-run=server",
        "--show-only", "templates/secret.yaml", *args,
    ).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    return rendered, {d["metadata"]["name"]: d["data"] for d in docs}


def test_generated_secrets_are_kept_and_a_given_value_replaces_only_its_own(
    kubectl: Any, helm: Any, namespace: str
) -> None:
    manifest, installed = secrets(helm, namespace)
    assert set(installed) == GENERATED
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest)

    _, upgraded = secrets(helm, namespace)
    assert upgraded == installed, "an upgrade must keep the tokens clients already use"

    _, rotated = secrets(helm, namespace, "--set", "feedbackToken.value=rotated")
    assert rotated["sluice-feedback"] != installed["sluice-feedback"]
    assert {k: v for k, v in rotated.items() if k != "sluice-feedback"} == {
        k: v for k, v in installed.items() if k != "sluice-feedback"
    }
