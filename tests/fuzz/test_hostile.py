"""Hostile bodies against every service's write and inference paths, on the real processes
of the fuzz tier: 50 MB (declared and streamed), nested 100,000 deep, not UTF-8, NaN.
Each is a 4xx with a JSON body, and the process's peak memory (VmHWM) stays well below
what buffering or parsing the body would cost."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fuzz.conftest import MODEL, Service

MB = 1024 * 1024
HUGE = 50 * MB
PEAK_GROWTH = 20 * MB
"""Less than half the huge body: a service that buffered it would pass this."""

TARGETS = {
    "feature-store": ["/v1/features/get-online", "/v1/features/push", "/push"],
    "model-server": [f"/v2/models/{MODEL}/infer", f"/v1/models/{MODEL}:predict"],
    "router": [f"/v2/models/{MODEL}/infer", f"/v1/models/{MODEL}:predict"],
    "drift-monitor": ["/v1/feedback"],
    "rollout-controller": [f"/admin/v1/rollouts/{MODEL}/actions"],
}


def peak_memory(pid: int) -> int:
    """VmHWM of ``pid`` in bytes: the most resident memory it has ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def streamed(size: int) -> Iterator[bytes]:
    chunk = b"[" + b"1," * (MB // 2 - 1) + b"1]"
    for _ in range(size // len(chunk)):
        yield chunk


def send(service: Service, path: str, content: bytes | Iterator[bytes]) -> httpx.Response:
    headers = {"authorization": f"Bearer {service.token}", "content-type": "application/json"}
    return httpx.post(service.url + path, content=content, headers=headers, timeout=60)


def nested_list() -> bytes:
    return b"[" * 100_000 + b"]" * 100_000


def nested_object() -> bytes:
    return b'{"a":' * 100_000 + b"1" + b"}" * 100_000


CASES: dict[str, Callable[[], bytes | Iterator[bytes]]] = {
    "huge": lambda: b"[" + b"1," * (HUGE // 2) + b"1]",
    "huge-streamed": lambda: streamed(HUGE),
    "nested-list": nested_list,
    "nested-object": nested_object,
    "not-utf8": lambda: b'{"model": "\xff\xfe\xfd", "ids": ["\xc3\x28"], "labels": [1]}',
    "nan": lambda: (
        b'{"model": "churn", "ids": ["a"], "labels": [NaN], "action": "set-weight", '
        b'"weight": NaN, "inputs": [{"name": "age", "datatype": "FP64", "shape": [1, 1], '
        b'"data": [NaN]}], "instances": [{"age": NaN}], "view": "customer_activity", '
        b'"rows": [{"customer_id": "C1", "age": NaN}]}'
    ),
}
TOO_LARGE = {"huge", "huge-streamed"}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", list(TARGETS))
def test_hostile_bodies_are_4xx_in_bounded_memory(
    services: dict[str, Service], name: str, case: str
) -> None:
    service = services[name]
    before = peak_memory(service.pid)
    for path in TARGETS[name]:
        response = send(service, path, CASES[case]())
        # too large: 413; malformed: 400 (the V2 protocol's bad request) or 422 (invalid input)
        expected = {413} if case in TOO_LARGE else {400, 422}
        assert response.status_code in expected, (path, response.status_code, response.text)
        error = response.json()
        assert error, (path, response.text)  # a JSON body saying what is wrong
    growth = peak_memory(service.pid) - before
    assert growth < PEAK_GROWTH, f"{name} peak memory grew {growth / MB:.1f} MB on {case}"
