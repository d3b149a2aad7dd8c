"""``kubectl sluice`` before it reaches a cluster: where the kubeconfig, context and
namespace come from, and one clear line when they are wrong. Against a real API server:
tests/k8s/test_rollout_controller.py."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sluice.rollout.kubectl import connect, main

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
  - {name: c, cluster: {server: "https://127.0.0.1:6443"}}
users:
  - {name: u, user: {token: abc}}
contexts:
  - {name: team-a, context: {cluster: c, user: u, namespace: team-a}}
  - {name: plain, context: {cluster: c, user: u}}
current-context: team-a
"""


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str]]:
    """``run("list")``: the plugin's exit code and what it wrote to stderr."""

    def plugin(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["kubectl-sluice", *args])
        with pytest.raises(SystemExit) as exited:
            main()
        code = exited.value.code
        return code if isinstance(code, int) else 1, capsys.readouterr().err

    return plugin


def test_the_namespace_is_the_flag_else_the_contexts_else_default(kubeconfig: Path) -> None:
    assert connect(None, None, None).namespace == "team-a"
    assert connect(None, None, "prod").namespace == "prod"
    assert connect(None, "plain", None).namespace == "default"
    assert connect(str(kubeconfig), "plain", None).server == "https://127.0.0.1:6443"


def test_without_a_kubeconfig_it_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[..., tuple[int, str]]
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    code, err = run("list")
    assert code == 1
    where = tmp_path / ".kube" / "config"
    assert err == f"error: no kubeconfig at {where}: pass --kubeconfig or set KUBECONFIG\n"


def test_a_missing_kubeconfig_file_is_named(
    tmp_path: Path, run: Callable[..., tuple[int, str]]
) -> None:
    code, err = run("promote", "churn", "--kubeconfig", str(tmp_path / "nope"))
    assert (code, err.count("\n")) == (1, 1)
    assert f"no kubeconfig at {tmp_path / 'nope'} (--kubeconfig)" in err


def test_an_unknown_context_is_named(kubeconfig: Path, run: Callable[..., tuple[int, str]]) -> None:
    code, err = run("abort", "churn", "--context", "staging")
    assert code == 1
    assert err == f"error: kubeconfig {kubeconfig}: no context 'staging' in it\n"


def test_an_unknown_output_format_is_refused(
    kubeconfig: Path, run: Callable[..., tuple[int, str]]
) -> None:
    code, err = run("get", "churn", "-o", "xml")
    assert code == 1
    assert err == "error: --output 'xml': one of text, yaml, json\n"
