"""skaffold.yaml against skaffold's own JSON Schema, at the newest skaffold/v4beta* version."""

from __future__ import annotations

import json

import jsonschema
import yaml

from tests.chart.conftest import CHART, ROOT, SCHEMAS


def test_skaffold_yaml_matches_skaffolds_schema() -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    (schema_file,) = (SCHEMAS / "skaffold").glob("v4beta*.json")
    assert config["apiVersion"] == f"skaffold/{schema_file.stem}"
    jsonschema.Draft7Validator(json.loads(schema_file.read_text())).validate(config)


def test_skaffold_builds_both_images_and_deploys_the_chart() -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    dockerfiles = {a["docker"]["dockerfile"] for a in config["build"]["artifacts"]}
    assert dockerfiles == {"Dockerfile.serve", "Dockerfile.train"}
    (release,) = config["manifests"]["helm"]["releases"]
    assert (ROOT / release["chartPath"]) == CHART
    assert {p["name"] for p in config["profiles"]} == {"dev", "canary"}
    for profile in config["profiles"]:
        for patch in profile["patches"]:
            for file in patch["value"] if patch["path"].endswith("valuesFiles") else []:
                assert (ROOT / file).is_file(), file
