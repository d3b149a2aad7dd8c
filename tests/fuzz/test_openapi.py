"""schemathesis against every service's own /openapi.json, on real processes.

Each operation gets a bounded number of generated requests (valid and invalid ones), from a
fixed seed, so a run is repeatable. Two checks: no answer is a 5xx, and every answer matches
the document (status, content type, body schema). Path parameters naming a model or a
version are pinned to the served ones, so the requests reach the model, not only a 404.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.fuzz.conftest import MODEL, VERSION, Call, Service

EXAMPLES = 40
"""Generated requests per operation and mode (most operations have fewer distinct ones)."""
SLOW_EXAMPLES = 10
"""For :explain, where one valid request is a KernelSHAP run (a second or more)."""
PINNED = {"model": [MODEL], "version": [VERSION], "name": [MODEL]}


def pinned(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the model / version / rollout name path parameters pinned."""
    doc = copy.deepcopy(doc)
    for operations in doc["paths"].values():
        for op in operations.values():
            for param in op.get("parameters", []):
                if param.get("in") == "path" and param["name"] in PINNED:
                    param["schema"] = {"type": "string", "enum": PINNED[param["name"]]}
    return doc


def with_model_inputs(doc: dict[str, Any], inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """``doc`` whose V2 and V1 request bodies name exactly the model's inputs.

    With any names a schema-valid body is refused for its first unknown input; with the
    model's names the generated shapes, datatypes and values reach the decoding and the
    model. Datatypes, shapes and values stay free: those are what gets fuzzed.
    """
    schemas = doc.get("components", {}).get("schemas", {})
    if "request_input" not in schemas:
        return doc
    request_input = schemas["request_input"]
    items = []
    for spec in inputs:
        item = copy.deepcopy(request_input)
        item["properties"]["name"] = {"const": spec["name"]}
        items.append(item)
    count = len(items)
    schemas["inference_request"]["properties"]["inputs"] = {
        "type": "array", "prefixItems": items, "minItems": count, "maxItems": count,
    }  # fmt: skip
    json_type = {"BYTES": "string", "BOOL": "boolean", "FP16": "number", "FP32": "number"}
    json_type["FP64"] = "number"  # the rest are integers
    features = {i["name"]: {"type": json_type.get(i["datatype"], "integer")} for i in inputs}
    instances = schemas["v1_predict_request"]["properties"]["instances"]
    instances["items"] = {
        "type": "object", "required": list(features), "properties": features,
        "additionalProperties": False,
    }  # fmt: skip
    return doc


def load(service: Service) -> Any:
    doc = httpx.get(f"{service.url}/openapi.json", timeout=10).json()
    metadata = httpx.get(f"{service.url}/v2/models/{MODEL}", timeout=10)
    if metadata.status_code == 200:  # the model server and the router
        doc = with_model_inputs(doc, metadata.json()["inputs"])
    config = schemathesis.Config()
    config.projects.default.update(
        base_url=service.url, headers={"Authorization": f"Bearer {service.token}"}
    )
    config.projects.default.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=EXAMPLES,
        deterministic=True,
        database="none",
    )
    return schemathesis.openapi.from_dict(pinned(doc), config=config)


FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is reported
)
CHECKS = [not_a_server_error, response_schema_conformance]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


def fuzz(operation: Any, mode: GenerationMode) -> str | None:
    """Run one operation's generated requests; the first failure, described, or None."""

    examples = SLOW_EXAMPLES if operation.path.endswith(":explain") else EXAMPLES

    @settings(FUZZ, max_examples=examples)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.call_and_validate(checks=CHECKS, timeout=30)

    try:
        run()
    except Unsatisfiable:
        return None  # negative mode on an operation that takes no input: nothing to break
    except Exception as exc:
        return f"{operation.label} ({mode.value}): {exc}"
    return None


def known_good(schema: Any, call: Call, token: str) -> str | None:
    """One request that must succeed (2xx) and match the document; the failure, or None."""
    operation = schema.find_operation_by_path(call.method, call.path)
    assert operation is not None, f"{call.method} {call.path} is not in the document"
    pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/:]+)", re.escape(operation.path))
    match = re.fullmatch(pattern, call.path)
    assert match is not None, (operation.path, call.path)
    params = match.groupdict()
    body = {} if call.body is None else {"body": call.body, "media_type": "application/json"}
    auth = {"Authorization": f"Bearer {token}"}
    case = operation.Case(path_parameters=params, headers=auth, **body)
    try:
        response = case.call_and_validate(checks=CHECKS, timeout=60)
    except Exception as exc:
        return f"{call.method} {call.path} (known good): {exc}"
    if not 200 <= response.status_code < 300:
        return f"{call.method} {call.path} (known good): {response.status_code} {response.text}"
    return None


@pytest.mark.parametrize(
    "name", ["feature-store", "model-server", "router", "drift-monitor", "rollout-controller"]
)
def test_no_5xx_and_every_answer_matches_the_document(
    services: dict[str, Service], name: str
) -> None:
    service = services[name]
    schema = load(service)
    # deletes last: the route and the rollout the other operations reach stay until then
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda op: op.method.upper() == "DELETE",
    )
    assert len(operations) >= 5
    good = (known_good(schema, call, service.token) for call in service.calls)
    failures = [f for f in good if f is not None]
    failures += [f for op in operations for mode in MODES if (f := fuzz(op, mode)) is not None]
    assert not failures, "\n\n".join(failures) + "\n\nservice log:\n" + service.output()[-3000:]
