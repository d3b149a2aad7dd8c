"""The ModelRollout CRD (charts/sluice/crds/modelrollouts.yaml) against resource.py: the
examples pass both, broken specs are refused by both, and every field the models know is
in the schema (an untyped field would be pruned by the API server without a word).

The schema is Kubernetes' OpenAPI v3 subset, which is JSON Schema draft 4 for what it
shares (boolean exclusiveMinimum); the ``x-kubernetes-*`` keys are ignored here and
checked by the k8s tier against a real API server.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator
from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from sluice.rollout.resource import GROUP, KIND, PLURAL, VERSION, RolloutError, Spec, parse

ROOT = Path(__file__).resolve().parents[3]
CRD_FILE = ROOT / "charts" / "sluice" / "crds" / "modelrollouts.yaml"
EXAMPLES = sorted((ROOT / "examples" / "rollouts").glob("*.yaml"))
DOCS = ROOT / "docs" / "rollouts.md"
FENCED_YAML = re.compile(r"^```ya?ml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def load_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    return crd


def schema() -> dict[str, Any]:
    (version,) = load_crd()["spec"]["versions"]
    found: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return found


VALIDATOR = Draft4Validator(schema())


def schema_errors(doc: dict[str, Any]) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in VALIDATOR.iter_errors(doc)]


def example_docs() -> list[dict[str, Any]]:
    """The ModelRollouts of examples/rollouts/*.yaml and of docs/rollouts.md's yaml blocks."""
    texts = [f.read_text() for f in EXAMPLES] + FENCED_YAML.findall(DOCS.read_text())
    docs = [d for text in texts for d in yaml.safe_load_all(text)]
    return [d for d in docs if isinstance(d, dict) and d.get("kind") == KIND]


def test_the_crd_names_the_resource() -> None:
    crd = load_crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == (GROUP, "Namespaced")
    assert spec["names"]["kind"] == KIND
    assert spec["names"]["plural"] == PLURAL
    assert spec["names"]["singular"] == "modelrollout"
    assert spec["names"]["shortNames"] == ["mro"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == (VERSION, True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Weight"] == ".status.weight"
    assert columns["Step"] == ".status.step"
    assert {"Model", "Age"} <= set(columns)


def test_there_are_examples_of_every_strategy() -> None:
    strategies = {s for d in example_docs() for s in d["spec"]["strategy"]}
    assert strategies == {"canary", "blueGreen", "shadow"}


@pytest.mark.parametrize("doc", example_docs(), ids=lambda d: d["metadata"]["name"])
def test_every_example_passes_the_schema_and_the_controller(doc: dict[str, Any]) -> None:
    assert schema_errors(doc) == []
    assert parse(doc).name == doc["metadata"]["name"]


def _canary() -> dict[str, Any]:
    """A fresh copy of examples/rollouts/canary.yaml, to break."""
    doc: dict[str, Any] = yaml.safe_load(
        (ROOT / "examples" / "rollouts" / "canary.yaml").read_text()
    )
    return doc


def _metric(**given: Any) -> dict[str, Any]:
    doc = _canary()
    doc["spec"]["analysis"]["metrics"] = [{"name": "m", **given}]
    return doc


def _spec(**changes: Any) -> dict[str, Any]:
    doc = _canary()
    doc["spec"].update(changes)
    return doc


def _analysis(**given: Any) -> dict[str, Any]:
    metric = {"name": "m", "builtin": "errorRate", "condition": "< 0.01"}
    return _spec(analysis={**given, "metrics": [metric]})


def _without(field: str) -> dict[str, Any]:
    doc = _canary()
    del doc["spec"][field]
    return doc


def _steps(*steps: dict[str, Any]) -> dict[str, Any]:
    return _spec(strategy={"canary": {"steps": list(steps)}})


PROM = {"address": "http://prometheus:9090", "query": "up"}
BROKEN = {
    "no candidate": (_without("candidate"), "candidate"),
    "no strategy": (_without("strategy"), "strategy"),
    "model name with capitals": (_spec(model="Churn"), "model"),
    "weight over 100": (_steps({"setWeight": 120}), "setWeight"),
    "mirror below 0": (_steps({"setMirror": -1}), "setMirror"),
    "a step of two kinds": (_steps({"setWeight": 10, "pause": {}}), "steps"),
    "an empty step": (_steps({}), "steps"),
    "no steps": (_steps(), "steps"),
    "two strategies": (
        _spec(strategy={"canary": {"steps": [{"setWeight": 5}]}, "blueGreen": {}}),
        "strategy",
    ),
    "shadow then canary without canary steps": (
        _spec(strategy={"shadow": {"requests": 10, "then": "canary"}}),
        "strategy",
    ),
    "shadow without an end": (_spec(strategy={"shadow": {"mirrorPercent": 50}}), "shadow"),
    "a duration without a unit we know": (
        _steps({"pause": {"duration": "5 minutes"}}),
        "duration",
    ),
    "a zero interval": (_analysis(interval="0s"), "interval"),
    "a condition that is not <op> <number>": (
        _metric(builtin="errorRate", condition="about 0.01"),
        "condition",
    ),
    "an unknown builtin": (_metric(builtin="latency", condition="< 1"), "builtin"),
    "neither builtin nor provider": (_metric(condition="< 1"), "metrics"),
    "builtin and provider": (
        _metric(builtin="errorRate", condition="< 1", provider={"web": {"url": "http://x"}}),
        "metrics",
    ),
    "a provider of two kinds": (
        _metric(condition="< 1", provider={"web": {"url": "http://x"}, "prometheus": PROM}),
        "provider",
    ),
    "condition and compare": (
        _metric(builtin="errorRate", condition="< 1", compare="stable", maxIncrease=0.01),
        "metrics",
    ),
    "compare with the wrong margin": (
        _metric(builtin="errorRate", compare="stable", maxDecrease=0.01),
        "metrics",
    ),
    "compare on a builtin that cannot be compared": (
        _metric(builtin="latencyP99", compare="stable", maxIncrease=0.01),
        "metrics",
    ),
    "minSamples 0": (_analysis(minSamples=0), "minSamples"),
    "alpha of one half": (_analysis(alpha=0.5), "alpha"),
}


@pytest.mark.parametrize(("doc", "field"), BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_spec_is_refused_by_the_schema_and_the_controller(
    doc: dict[str, Any], field: str
) -> None:
    errors = schema_errors(doc)
    assert errors, "the CRD schema accepted it"
    assert any(field in e for e in errors), errors
    with pytest.raises(RolloutError, match="is not valid"):
        parse(doc)


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside ``X | None``, ``list[X]``, ``dict[str, X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def _node(node: dict[str, Any]) -> dict[str, Any]:
    """Where an object's properties are: itself, its array items or its map values."""
    for key in ("items", "additionalProperties"):
        if key in node and "properties" not in node:
            return _node(node[key])
    return node


def _missing(model: type[BaseModel], node: dict[str, Any], path: str) -> list[str]:
    out = []
    properties = _node(node).get("properties", {})
    for name, field in model.model_fields.items():
        alias = to_camel(name)
        if alias not in properties:
            out.append(f"{path}.{alias}")
            continue
        for inner in _models(field.annotation):
            out += _missing(inner, properties[alias], f"{path}.{alias}")
    return out


def test_every_field_of_the_spec_is_in_the_schema() -> None:
    assert _missing(Spec, schema()["properties"]["spec"], "spec") == []
