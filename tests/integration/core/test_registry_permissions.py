"""A version written by one uid is readable by another (the trainer Job vs the model server).

The writer and the reader are forked processes running as two unprivileged uids, so the
kernel checks every open and listing; switching uids needs root (CI runs as root), elsewhere
the test is skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice.core.registry import ModelRegistry
from tests.support.users import as_user
from tests.unit.core.test_registry import make_card, make_profile

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="switching uids needs root"),
]

WRITER, READER = 10001, 10002


@pytest.fixture
def registry() -> Iterator[Path]:
    """An empty registry the writer owns, in a folder every uid may enter."""
    base = Path(tempfile.mkdtemp(prefix="sluice-registry-"))
    base.chmod(0o755)
    root = base / "models"
    root.mkdir()
    os.chown(root, WRITER, WRITER)
    yield root
    shutil.rmtree(base)


def test_a_version_written_by_one_uid_is_read_by_another(registry: Path) -> None:
    def write() -> int:
        ModelRegistry(registry).register(make_card(), make_profile(), b"onnx-bytes")
        return 0

    def read() -> int:
        reader = ModelRegistry(registry)
        card, profile = reader.card("churn", "v1"), reader.profile("churn", "v1")
        onnx = reader.onnx_path("churn", "v1").read_bytes().decode()
        print(reader.versions("churn"), card.version, profile.rows, onnx)  # noqa: T201
        return 0

    code, output = as_user(WRITER, write)
    assert code == 0, output
    version = registry / "churn" / "v1"
    assert version.stat().st_uid == WRITER
    assert version.stat().st_mode & 0o777 == 0o755
    assert (version / "card.json").stat().st_mode & 0o777 == 0o644
    assert as_user(READER, read) == (0, "['v1'] v1 10 onnx-bytes\n")


def test_a_registry_another_uid_owns_is_refused_before_training(registry: Path) -> None:
    registry.chmod(0o755)  # readable, not writable, by the reader's uid

    def check() -> int:
        ModelRegistry(registry).check_writable("churn")
        return 0

    code, output = as_user(READER, check)
    assert code != 0
    assert f"the registry {registry} is not writable here" in output
    assert "running as uid 10002" in output
