"""charts/sluice: lint, render every ci/ scenario, validate every object with the real schemas.

Built-in kinds are validated by kubernetes-validate --strict for the oldest Kubernetes the
chart supports (its kubeVersion); the Prometheus Operator's kinds against that operator's own
CRD schemas (tests/chart/schemas/), the ModelRollouts against crds/modelrollouts.yaml.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.chart.conftest import CHART, CI_VALUES, SCHEMAS, Render, run

KUBE_VERSION = re.search(r'kubeVersion: ">=(\d+\.\d+)', (CHART / "Chart.yaml").read_text())
OLDEST = KUBE_VERSION.group(1) if KUBE_VERSION else "unknown"
CRD = CHART / "crds" / "modelrollouts.yaml"
SERVING = {"feature-store", "router", "drift-monitor", "rollout-controller", "model-server"}
POD_KINDS = {"Deployment", "StatefulSet", "Job"}
IDS = [p.name for p in CI_VALUES]


LOGIC = frozenset(("anyOf", "oneOf", "allOf", "not"))


def closed(schema: Any, structural: bool = True) -> Any:
    """A CRD's openAPIV3Schema as strict JSON Schema: objects that list their properties
    refuse others (the API server would prune them without a word). The branches of
    anyOf/oneOf/allOf/not only add constraints to the structure around them (a structural
    schema says so), so they stay open."""
    if isinstance(schema, dict):
        out = {k: closed(v, structural and k not in LOGIC) for k, v in schema.items()}
        open_ = "additionalProperties" in out or out.get("x-kubernetes-preserve-unknown-fields")
        if structural and "properties" in out and not open_:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(item, structural) for item in schema]
    return schema


def operator_schema(kind: str) -> dict[str, Any]:
    path = SCHEMAS / "prometheus-operator" / f"{kind.lower()}-v1.json"
    schema: dict[str, Any] = closed(json.loads(path.read_text()))
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


def rollout_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    schema: dict[str, Any] = closed(version["schema"]["openAPIV3Schema"])
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    schema["properties"].setdefault("apiVersion", {"type": "string"})
    schema["properties"].setdefault("kind", {"type": "string"})
    return schema


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "Pod":
        spec: dict[str, Any] = obj["spec"]
        return spec
    template: dict[str, Any] = obj["spec"]["template"]["spec"]
    return template


def pods(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in POD_KINDS | {"Pod"}]


def component(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["labels"]["app.kubernetes.io/component"])


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_lint_strict(helm: Path, values: Path) -> None:
    run([str(helm), "lint", "--strict", str(CHART), "-f", str(values)])


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_every_object_validates_against_the_oldest_supported_kubernetes(
    render: Render, values: Path
) -> None:
    assert OLDEST == "1.25", "the chart's kubeVersion names the oldest Kubernetes we support"
    problems = []
    for obj in render(f"ci/{values.name}"):
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            if obj["apiVersion"] == "monitoring.coreos.com/v1":
                # no check_schema: the CRDs' patterns are Go regexps, e.g. "^(?i)(abort|warn)?$"
                jsonschema.Draft7Validator(operator_schema(obj["kind"])).validate(obj)
            elif obj["kind"] == "ModelRollout":
                # OpenAPI 3.0 keeps draft 4's boolean exclusiveMinimum
                jsonschema.Draft4Validator(rollout_schema()).validate(obj)
            else:
                kubernetes_validate.validate(obj, OLDEST, strict=True)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            problems.append(f"{name}: {exc}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{name}: no schema for {obj['apiVersion']} in Kubernetes {OLDEST}")
    assert not problems, "\n".join(problems)


def test_values_schema_refuses_unknown_keys(helm: Path) -> None:
    for typo in ("router.replicas=3", "models.churn.versions[0].nam=v1", "monitoring.grafana=1"):
        done = run_failing(helm, "--set", typo)
        assert "Additional property" in done, done


def run_failing(helm: Path, *args: str) -> str:
    import subprocess

    done = subprocess.run(
        [str(helm), "template", "sluice", str(CHART), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0, f"helm template {' '.join(args)} should have failed"
    return done.stderr


def test_every_value_is_documented() -> None:
    """Each key of values.yaml (two levels deep) has a comment above it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        key = re.match(r"^( {0,2})[A-Za-z][\w.-]*:", line)
        if key and not lines[i - 1].strip().startswith("#"):
            undocumented.append(line)
    assert lines[0] == "# yaml-language-server: $schema=values.schema.json"
    assert not undocumented, undocumented


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_every_pod_is_restricted(render: Render, values: Path) -> None:
    for obj in pods(render(f"ci/{values.name}")):
        spec = pod_spec(obj)
        who = f"{obj['kind']}/{obj['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, who
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, who
        expect_token = component(obj) == "rollout-controller"
        assert spec["automountServiceAccountToken"] is expect_token, who
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, who
            assert context["readOnlyRootFilesystem"] is True, who
            assert context["capabilities"] == {"drop": ["ALL"]}, who
            assert set(container["resources"]) >= {"requests", "limits"}, who
            assert set(container["resources"]["limits"]) >= {"cpu", "memory"}, who


def test_serving_containers_probe_livez_and_readyz_and_carry_a_config_checksum(
    render: Render,
) -> None:
    deployments = by_kind(render(), "Deployment")
    assert {component(d) for d in deployments.values()} == SERVING
    for name, deployment in deployments.items():
        container = pod_spec(deployment)["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["args"] == ["serve", component(deployment)], name
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/config"]), name
        assert annotations["prometheus.io/scrape"] == "true", name


def test_a_changed_setting_rolls_the_pods(render: Render) -> None:
    def checksum(*args: str) -> str:
        router = by_kind(render(args=args), "Deployment")["sluice-router"]
        return str(router["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum() != checksum("--set", "router.env.SLUICE_ROUTER_RETRIES=2")


def test_one_model_server_per_version_and_the_router_routes_to_them(render: Render) -> None:
    objects = render("ci/canary-values.yaml")
    deployments = by_kind(objects, "Deployment")
    assert {"sluice-churn-v1", "sluice-churn-v2"} <= set(deployments)
    v2 = pod_spec(deployments["sluice-churn-v2"])["containers"][0]
    config = by_kind(objects, "ConfigMap")["sluice-churn-v2"]["data"]
    assert v2["envFrom"] == [{"configMapRef": {"name": "sluice-churn-v2"}}]
    assert config["SLUICE_MODEL_SERVER_MODEL"] == "churn"
    assert config["SLUICE_MODEL_SERVER_VERSION"] == "v2"
    router = by_kind(objects, "ConfigMap")["sluice-router"]["data"]
    routes = json.loads(router["SLUICE_ROUTER_ROUTES"])
    assert routes == {
        "churn": {
            "stable": "v1",
            "upstreams": {
                "v1": ["http://sluice-churn-v1:8000"],
                "v2": ["http://sluice-churn-v2:8000"],
            },
        }
    }
    hpas = {component(h) for h in by_kind(objects, "HorizontalPodAutoscaler").values()}
    assert hpas == {"router", "model-server"}
    pdbs = {component(p) for p in by_kind(objects, "PodDisruptionBudget").values()}
    assert pdbs >= {"router", "model-server", "feature-store"}


def test_only_the_rollout_controller_has_kubernetes_api_rights(render: Render) -> None:
    objects = render()
    assert not [o for o in objects if o["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    (role,) = by_kind(objects, "Role").values()
    (binding,) = by_kind(objects, "RoleBinding").values()
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "sluice-rollout-controller", "namespace": "serving"}
    ]
    granted = {
        (group, resource, verb, tuple(rule.get("resourceNames", [])))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    lease = ("sluice-rollout-controller",)
    assert granted == {
        *(("serving.sluice.dev", "modelrollouts", v, ()) for v in ("get", "list", "watch")),
        *(("serving.sluice.dev", "modelrollouts/status", v, ()) for v in ("get", "update")),
        ("serving.sluice.dev", "modelrollouts/status", "patch", ()),
        ("", "events", "create", ()), ("", "events", "patch", ()),
        ("events.k8s.io", "events", "create", ()), ("events.k8s.io", "events", "patch", ()),
        ("coordination.k8s.io", "leases", "create", ()),
        ("coordination.k8s.io", "leases", "get", lease),
        ("coordination.k8s.io", "leases", "update", lease),
    }  # fmt: skip
    accounts = {
        pod_spec(d)["serviceAccountName"]: component(d)
        for d in by_kind(objects, "Deployment").values()
    }
    assert accounts.pop("sluice-rollout-controller") == "rollout-controller"
    assert set(accounts) == {"sluice"}  # the no-rights account


def test_network_policies_let_only_the_router_take_outside_traffic(render: Render) -> None:
    policies = {component(p): p["spec"] for p in by_kind(render(), "NetworkPolicy").values()}
    assert set(policies) == SERVING | {"redis"}
    release = {"app.kubernetes.io/instance": "sluice", "app.kubernetes.io/name": "sluice"}

    def peers(name: str) -> list[dict[str, Any]]:
        (rule,) = policies[name]["ingress"]
        return list(rule.get("from", [{"anyone": True}]))

    assert peers("router") == [{"anyone": True}]
    assert peers("redis") == [{"podSelector": {"matchLabels": release}}]
    senders = {
        p["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        for p in peers("model-server")
    }
    assert senders == {"router", "rollout-controller", None}  # None: Prometheus
    for name in ("feature-store", "drift-monitor", "rollout-controller"):
        assert {"podSelector": {"matchLabels": release}} in peers(name)


def test_monitoring_objects_are_toggled(render: Render) -> None:
    kinds = {o["kind"] for o in render()}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    canary = render("ci/canary-values.yaml")
    rule = by_kind(canary, "PrometheusRule")["sluice"]
    plain = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["spec"] == plain, "the PrometheusRule carries the plain rules file"
    dashboards = [o for o in canary if o["metadata"].get("labels", {}).get("grafana_dashboard")]
    assert len(dashboards) == len(list((CHART / "dashboards").glob("*.json")))


def test_external_redis_and_redis_cluster(render: Render) -> None:
    external = render("ci/external-redis-values.yaml")
    assert "StatefulSet" not in {o["kind"] for o in external}
    router = by_kind(external, "ConfigMap")["sluice-router"]["data"]
    assert router["SLUICE_REDIS_URL"] == "rediss://redis.example.internal:6380/0"
    cluster = render("ci/redis-cluster-values.yaml")
    configs = by_kind(cluster, "ConfigMap")
    assert configs["sluice-feature-store"]["data"]["SLUICE_FEATURE_STORE_REDIS_CLUSTER"] == "true"
    router = configs["sluice-router"]["data"]
    assert "SLUICE_ROUTER_FEATURE_LOOKUP" not in router  # read in process, shard by shard
    assert router["SLUICE_ROUTER_FEATURE_REDIS_CLUSTER"] == "true"
    assert (
        router["SLUICE_ROUTER_FEATURE_REDIS_URL"]
        == (configs["sluice-feature-store"]["data"]["SLUICE_REDIS_URL"])
    )
    # the prediction log on its own cluster: the router writes it, the monitor reads it there
    monitor = configs["sluice-drift-monitor"]["data"]
    assert router["SLUICE_ROUTER_PREDLOG_REDIS_URL"] == monitor["SLUICE_REDIS_URL"]
    assert monitor["SLUICE_REDIS_URL"] == "redis://redis-predlog.example.internal:6379"
    assert router["SLUICE_ROUTER_PREDLOG_REDIS_CLUSTER"] == "true"
    assert router["SLUICE_ROUTER_PREDLOG_STREAMS"] == "3"  # the monitor finds them itself
    assert monitor["SLUICE_DRIFT_MONITOR_REDIS_CLUSTER"] == "true"
    assert router["SLUICE_REDIS_URL"] == "redis://redis-state.example.internal:6379/0"
    single = by_kind(external, "ConfigMap")
    assert "SLUICE_ROUTER_PREDLOG_REDIS_URL" not in single["sluice-router"]["data"]
    assert "SLUICE_ROUTER_PREDLOG_STREAMS" not in single["sluice-router"]["data"]
    assert single["sluice-drift-monitor"]["data"]["SLUICE_REDIS_URL"] == (
        "rediss://redis.example.internal:6380/0"
    )
    assert single["sluice-drift-monitor"]["data"]["SLUICE_DRIFT_MONITOR_REDIS_CLUSTER"] == "false"
    job = by_kind(cluster, "Job")["sluice-materialize"]
    assert "--redis-cluster" in pod_spec(job)["containers"][0]["args"]
    # each Redis its own password: the cluster's Secret where the online store is read
    deployments = by_kind(cluster, "Deployment")
    cluster_pw = {"name": "redis-cluster-password", "key": "password"}
    state_pw = {"name": "redis-password", "key": "password"}
    predlog_pw = {"name": "redis-predlog-password", "key": "password"}
    for container, variable, secret in [
        (pod_spec(deployments["sluice-feature-store"])["containers"][0], "SLUICE_REDIS_PASSWORD",
         cluster_pw),
        (pod_spec(job)["containers"][0], "SLUICE_REDIS_PASSWORD", cluster_pw),
        (pod_spec(job)["initContainers"][0], "SLUICE_REDIS_PASSWORD", cluster_pw),
        (pod_spec(deployments["sluice-router"])["containers"][0],
         "SLUICE_ROUTER_FEATURE_REDIS_PASSWORD", cluster_pw),
        (pod_spec(deployments["sluice-router"])["containers"][0], "SLUICE_REDIS_PASSWORD",
         state_pw),
        (pod_spec(deployments["sluice-router"])["containers"][0],
         "SLUICE_ROUTER_PREDLOG_REDIS_PASSWORD", predlog_pw),
        (pod_spec(deployments["sluice-drift-monitor"])["containers"][0], "SLUICE_REDIS_PASSWORD",
         predlog_pw),
    ]:  # fmt: skip
        env = {e["name"]: e for e in container["env"]}
        assert env[variable]["valueFrom"]["secretKeyRef"] == secret, (container["name"], variable)
    router_env = {e["name"] for e in pod_spec(deployments["sluice-router"])["containers"][0]["env"]}
    plain = {e["name"] for e in pod_spec(by_kind(external, "Deployment")["sluice-router"])[
        "containers"][0]["env"]}  # fmt: skip
    assert "SLUICE_ROUTER_FEATURE_REDIS_PASSWORD" in router_env
    assert "SLUICE_ROUTER_FEATURE_REDIS_PASSWORD" not in plain  # one Redis, one password
    assert "SLUICE_ROUTER_PREDLOG_REDIS_PASSWORD" not in plain


def test_a_redis_cluster_without_its_url_is_refused(helm: Path) -> None:
    done = run_failing(helm, "--set", "redis.onlineStore.cluster=true")
    assert "redis.onlineStore.url is required when redis.onlineStore.cluster is true" in done
    done = run_failing(helm, "--set", "redis.predictionLog.cluster=true")
    assert "redis.predictionLog.url is required when redis.predictionLog.cluster is true" in done


def test_redis_keeps_its_data_by_default(render: Render) -> None:
    """A restarted Redis comes back with its data: AOF on a PVC, fsync every second."""
    (redis,) = [o for o in render() if o["kind"] == "StatefulSet" and component(o) == "redis"]
    args = pod_spec(redis)["containers"][0]["args"]
    flags = dict(zip(args[::2], args[1::2], strict=True))
    assert flags["--appendonly"] == "yes" and flags["--appendfsync"] == "everysec"
    assert flags["--dir"] == "/data"
    assert [c["metadata"]["name"] for c in redis["spec"]["volumeClaimTemplates"]] == ["data"]
    (off,) = [
        o
        for o in render(args=("--set", "redis.aof.enabled=false"))
        if o["kind"] == "StatefulSet" and component(o) == "redis"
    ]
    off_args = pod_spec(off)["containers"][0]["args"]
    assert "--appendfsync" not in off_args
    assert off_args[off_args.index("--appendonly") + 1] == "no"


def test_the_helm_test_pod_sends_the_first_request_of_the_notes(render: Render) -> None:
    (pod,) = [o for o in render() if o["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod_spec(pod)["containers"][0]["args"][0]
    assert "/v1/models/churn:predict" in script
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    assert "/v1/models/{{ $model }}:predict" in notes


def test_the_crd_is_the_one_the_controller_reads() -> None:
    crd = yaml.safe_load(CRD.read_text())
    assert crd["spec"]["group"] == "serving.sluice.dev"
    assert crd["spec"]["names"]["plural"] == "modelrollouts"


def test_k8s_holds_the_current_render_of_the_chart(helm: Path, tmp_path: Path) -> None:
    run([str(CHART.parents[1] / "scripts" / "manifests"), str(tmp_path)])
    k8s = CHART.parents[1] / "k8s"
    fresh = {p.relative_to(tmp_path): p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {p.relative_to(k8s): p.read_text() for p in k8s.rglob("*") if p.is_file()}
    assert committed == fresh, "k8s/ is stale: run `make manifests` and commit k8s/"
