"""Where the `k8s` tier finds its cluster and its command-line tools.

The cluster is whatever kubeconfig the environment names: ``SLUICE_TEST_KUBECONFIG``,
else ``KUBECONFIG``. kubectl and helm are the ones ``scripts/kube-apiserver build``
installs into ``${SLUICE_CACHE:-$HOME/.cache/sluice}/bin`` (kubectl 1.33, helm 3.18).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

KUBECONFIG_VARS = ("SLUICE_TEST_KUBECONFIG", "KUBECONFIG")


def kubeconfig_from_env() -> Path | None:
    """The first of ``KUBECONFIG_VARS`` that is set and not empty, as a path."""
    for var in KUBECONFIG_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return Path(value)
    return None


def cache_bin() -> Path:
    """``${SLUICE_CACHE:-$HOME/.cache/sluice}/bin``: kubectl and helm."""
    cache = os.environ.get("SLUICE_CACHE") or str(Path.home() / ".cache" / "sluice")
    return Path(cache) / "bin"


class KubeTool:
    """kubectl or helm from the cache, pointed at one kubeconfig.

    ``tool("get", "ns")`` runs it and returns the CompletedProcess (text). With
    ``check=True`` (the default) a non-zero exit fails the test with the command's output;
    pass ``check=False`` where a non-zero exit is the answer (``kubectl auth can-i`` says
    ``no`` with exit 1).
    """

    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        if not binary.is_file():
            raise FileNotFoundError(f"{binary} missing: run scripts/kube-apiserver build")
        self.binary = binary
        self.kubeconfig = kubeconfig

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args]
        done = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{self.binary.name} {' '.join(args)} exited {done.returncode}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        return done

    def __repr__(self) -> str:
        return f"KubeTool({self.binary}, kubeconfig={self.kubeconfig})"
