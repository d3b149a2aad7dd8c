"""The rollout controller in a cluster: the ModelRollout CRD on a real API server, the
engine (``service.RolloutController``) driven through the Kubernetes adapter (``kube.py``)
with the routing table in a real Redis, and ``kubectl sluice`` steering it.

The only fake is our own ``Evidence`` interface: it answers the traffic tallies each test
chooses, so that one rollout sees a healthy candidate and another a failing one. The
engine runs on a clock the test moves one second per look (``reconcile_all``), so a
rollout's checks come due without waiting; every outcome is polled with a bounded number
of looks and read back through the API server, Redis or kubectl.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml
from kubernetes import client
from prometheus_client import CollectorRegistry

from sluice.core.routes import RedisRoutingStore, Route, parse_route
from sluice.core.tally import Counts
from sluice.rollout import kube
from sluice.rollout.kube import KubeLeader, KubeRolloutSource
from sluice.rollout.metrics import Metrics
from sluice.rollout.resource import API_VERSION, GROUP, KIND, PLURAL, VERSION
from sluice.rollout.service import RolloutController
from sluice.rollout.settings import Settings
from tests.k8s.fakes import ChosenTallies
from tests.support.kube import KubeTool

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "charts" / "sluice" / "crds" / "modelrollouts.yaml"
CRD_NAME = f"{PLURAL}.{GROUP}"
PLUGIN = Path(sys.executable).parent / "kubectl-sluice"
LEASE = Settings.model_fields["lease_name"].default
LOOKS = 40
"""Looks (one clock second each) a rollout gets to reach the state a test waits for."""

HEALTHY: Counts = {"n": 200, "ok": 200, "err": 0}
FAILING: Counts = {"n": 200, "ok": 170, "err": 30}


@pytest.fixture(scope="module")
def crd(kubectl: KubeTool) -> str:
    """The chart's CRD applied with kubectl and Established (kept: it is cluster-wide)."""
    kubectl("apply", "-f", str(CRD_FILE))
    kubectl("wait", "--for", "condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    return CRD_NAME


def rollout(name: str, model: str, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "model": model, "stable": "v1", "candidate": "v2",
            "strategy": {"canary": {"steps": steps}}, **spec,
        },
    }  # fmt: skip


ANALYSIS = {
    "interval": "1s",
    "minSamples": 10,
    "metrics": [
        {"name": "error-rate", "builtin": "errorRate", "condition": "< 0.05"},
        {"name": "vs-stable", "builtin": "errorRate", "compare": "stable", "maxIncrease": 0.02},
    ],
}
ANALYSED_STEPS = [{"setWeight": 20}, {"analysis": {}}, {"setWeight": 60}, {"analysis": {}}]


class Clock:
    """The engine's clock: starts now, moves only when the test says."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Harness:
    """One controller replica against the namespace, and ways to look at what it did."""

    def __init__(
        self, api: client.ApiClient, namespace: str, redis: aioredis.Redis, evidence: ChosenTallies
    ) -> None:
        self.namespace = namespace
        self.objects = client.CustomObjectsApi(api)
        self.routes = RedisRoutingStore(redis)
        self.clock = Clock()
        self.identity = "controller-a"
        self.leader = KubeLeader(api, namespace, LEASE, self.identity, ttl=15)
        self.controller = RolloutController(
            source=KubeRolloutSource(api, namespace, self.identity),
            leader=self.leader,
            routes=self.routes,
            evidence=evidence,
            metrics=Metrics(CollectorRegistry()),
            tick=0.5,
            settle=0.0,
            clock=self.clock,
        )

    async def seed(self, model: str) -> None:
        ups = {"v1": "http://127.0.0.1:9", "v2": "http://127.0.0.1:9"}
        await self.routes.put(parse_route(model, {"upstreams": ups, "stable": "v1"}))

    def create(self, doc: dict[str, Any]) -> None:
        self.objects.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, doc)

    def status(self, name: str) -> dict[str, Any]:
        got = self.objects.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        found: dict[str, Any] = got.get("status") or {}
        return found

    async def route(self, model: str) -> Route:
        return (await self.routes.load())[model]

    async def look(self) -> None:
        """What one tick of the controller's loop does: hold the lease, reconcile all."""
        assert await self.leader.acquire(), "the controller lost its lease"
        await self.controller.reconcile_all()
        self.clock.now += 1

    async def until(self, done: Callable[[], bool], what: str) -> None:
        for _ in range(LOOKS):
            await self.look()
            if await asyncio.to_thread(done):
                return
        statuses = self.objects.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL
        )["items"]
        summary = {i["metadata"]["name"]: i.get("status", {}).get("message") for i in statuses}
        raise AssertionError(f"not {what} after {LOOKS} looks: {summary}")

    def phase_is(self, name: str, *phases: str) -> Callable[[], bool]:
        return lambda: self.status(name).get("phase") in phases


@asynccontextmanager
async def harness(
    api: client.ApiClient, namespace: str, redis_url: str, evidence: ChosenTallies
) -> AsyncIterator[Harness]:
    redis = aioredis.from_url(redis_url)
    try:
        yield Harness(api, namespace, redis, evidence)
    finally:
        await redis.aclose()


@pytest.fixture
def plugin(kube_config: Path, kubectl: KubeTool) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``plugin("promote", NAME, "-n", NS)``: ``kubectl sluice ...`` as a user types it,
    kubectl finding the installed ``kubectl-sluice`` on PATH."""
    assert PLUGIN.is_file(), f"{PLUGIN} is not installed (uv sync)"
    env = {
        **os.environ,
        "KUBECONFIG": str(kube_config),
        "PATH": f"{PLUGIN.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(kubectl.binary), "sluice", *args]
        return subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    return run


def test_the_crd_refuses_a_broken_rollout_and_shows_its_columns(
    crd: str, kubectl: KubeTool, namespace: str, api_client: client.ApiClient
) -> None:
    got = kubectl("get", "crd", crd, "-o", "json")
    conditions = {c["type"]: c["status"] for c in json.loads(got.stdout)["status"]["conditions"]}
    assert conditions.get("Established") == "True"
    assert "NonStructuralSchema" not in conditions

    broken = rollout("broken", "churn", [{"setWeight": 120}])
    refused = kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(broken), check=False
    )
    assert refused.returncode != 0
    assert "spec.strategy.canary.steps.setWeight" in refused.stderr

    two_kinds = rollout("broken", "churn", [{"setWeight": 10, "pause": {}}])
    refused = kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(two_kinds), check=False
    )
    assert refused.returncode != 0
    assert "spec.strategy.canary.steps" in refused.stderr

    kubectl("apply", "-n", namespace, "-f", str(ROOT / "examples" / "rollouts"))
    objects = client.CustomObjectsApi(api_client)
    objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "churn-canary",
        {"status": {"phase": "Progressing", "weight": 10, "step": 1}},
    )  # fmt: skip
    table = kubectl("get", "modelrollouts", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "MODEL", "PHASE", "WEIGHT", "STEP", "AGE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) == {"churn-canary", "churn-blue-green", "churn-shadow"}
    assert rows["churn-canary"][1:5] == ["churn", "Progressing", "10", "1"]
    short = kubectl("get", "mro", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(short) == sorted(f"modelrollout.{GROUP}/{name}" for name in rows)


def test_one_rollout_is_promoted_and_the_other_aborted_on_its_evidence(
    crd: str, api_client: client.ApiClient, namespace: str, redis_url: str, kubectl: KubeTool,
    plugin: Callable[..., subprocess.CompletedProcess[str]],
) -> None:  # fmt: skip
    evidence = ChosenTallies({
        "churn": {"v1": HEALTHY, "v2": HEALTHY},
        "upsell": {"v1": HEALTHY, "v2": FAILING},
    })  # fmt: skip

    async def scenario() -> None:
        async with harness(api_client, namespace, redis_url, evidence) as h:
            await h.seed("churn")
            await h.seed("upsell")
            h.create(rollout("churn-canary", "churn", ANALYSED_STEPS, analysis=ANALYSIS))
            h.create(rollout("upsell-canary", "upsell", ANALYSED_STEPS, analysis=ANALYSIS))
            await h.until(
                lambda: (
                    h.phase_is("churn-canary", "Promoted")()
                    and h.phase_is("upsell-canary", "Aborted")()
                ),
                "promoted and aborted",
            )
            churn, upsell = await h.route("churn"), await h.route("upsell")
            assert (churn.stable, churn.candidate, churn.mode) == ("v2", None, None)
            assert (upsell.stable, upsell.candidate, upsell.weight) == ("v1", None, 0)

    asyncio.run(scenario())
    objects = client.CustomObjectsApi(api_client)
    aborted = objects.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "upsell-canary"
    )["status"]
    assert aborted["phase"] == "Aborted"
    assert "error-rate=0.15" in aborted["message"]
    assert aborted["weight"] == 20  # it never went past the first analysis
    events = kubectl("get", "events", "-n", namespace).stdout.splitlines()
    failed = [e.split() for e in events if "AnalysisFailed" in e]
    assert len(failed) == 1, events
    assert "Warning" in failed[0]
    assert "modelrollout/upsell-canary" in failed[0]

    listed = plugin("list", "-n", namespace).stdout.splitlines()
    phases = {line.split()[0]: line.split()[2] for line in listed[1:]}
    assert phases == {"churn-canary": "Promoted", "upsell-canary": "Aborted"}
    described = plugin("get", "upsell-canary", "-n", namespace).stdout
    assert "Phase:     Aborted" in described
    (line,) = [ln for ln in described.splitlines() if ln.strip().startswith("error-rate")]
    assert "0.15" in line
    assert "fail" in line
    watched = plugin("get", "upsell-canary", "-n", namespace, "--watch", "--interval", "0.2")
    assert watched.returncode == 0, watched.stderr  # a final phase: shown once, then done
    assert "error-rate" in watched.stdout
    assert watched.stdout.strip().splitlines()[-1].startswith("✖ upsell-canary Aborted:")

    lease = client.CoordinationV1Api(api_client).read_namespaced_lease(LEASE, namespace)
    assert lease.spec.holder_identity == "controller-a"

    async def second_replica() -> bool:
        other = KubeLeader(api_client, namespace, LEASE, "controller-b", ttl=15)
        return await other.acquire()

    assert asyncio.run(second_replica()) is False
    lease = client.CoordinationV1Api(api_client).read_namespaced_lease(LEASE, namespace)
    assert lease.spec.holder_identity == "controller-a"


def test_kubectl_sluice_promote_moves_a_paused_rollout_on(
    crd: str, api_client: client.ApiClient, namespace: str, redis_url: str,
    plugin: Callable[..., subprocess.CompletedProcess[str]],
) -> None:  # fmt: skip
    steps = [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]

    async def scenario() -> None:
        async with harness(api_client, namespace, redis_url, ChosenTallies({})) as h:
            await h.seed("churn")
            h.create(rollout("churn-canary", "churn", steps))
            await h.until(h.phase_is("churn-canary", "Paused"), "paused at the first pause")
            assert (h.status("churn-canary")["step"], h.status("churn-canary")["weight"]) == (1, 10)
            assert (await h.route("churn")).weight == 10

            done = plugin("promote", "churn-canary", "-n", namespace)
            assert done.returncode == 0, done.stderr
            assert "promote requested" in done.stdout
            await h.until(lambda: h.status("churn-canary").get("step") == 3, "at the second pause")
            status = h.status("churn-canary")
            assert (status["phase"], status["weight"]) == ("Paused", 50)
            assert (await h.route("churn")).weight == 50

    asyncio.run(scenario())


def test_kubectl_sluice_abort_sends_every_request_back_to_stable(
    crd: str, api_client: client.ApiClient, namespace: str, redis_url: str,
    kube_config: Path,
) -> None:  # fmt: skip
    steps = [{"setWeight": 30}, {"pause": {"duration": "1h"}}, {"setWeight": 100}]

    async def scenario() -> None:
        async with harness(api_client, namespace, redis_url, ChosenTallies({})) as h:
            await h.seed("churn")
            h.create(rollout("churn-canary", "churn", steps))
            await h.until(lambda: h.status("churn-canary").get("step") == 1, "at the pause")
            route = await h.route("churn")
            assert (route.candidate, route.mode, route.weight) == ("v2", "canary", 30)

            argv = [str(PLUGIN), "abort", "churn-canary", "-n", namespace,
                    "--kubeconfig", str(kube_config)]  # fmt: skip
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 0, done.stderr
            await h.until(h.phase_is("churn-canary", "Aborted"), "aborted")
            route = await h.route("churn")
            assert (route.stable, route.candidate, route.mode, route.weight) == (
                "v1",
                None,
                None,
                0,
            )

    asyncio.run(scenario())


def test_a_retried_rollout_is_judged_on_new_evidence_only(
    crd: str, api_client: client.ApiClient, namespace: str, redis_url: str,
    plugin: Callable[..., subprocess.CompletedProcess[str]],
) -> None:  # fmt: skip
    evidence = ChosenTallies({"churn": {"v1": HEALTHY, "v2": FAILING}})

    async def scenario() -> None:
        async with harness(api_client, namespace, redis_url, evidence) as h:
            await h.seed("churn")
            h.create(rollout("churn-canary", "churn", ANALYSED_STEPS, analysis=ANALYSIS))
            await h.until(h.phase_is("churn-canary", "Aborted"), "aborted")

            evidence.per_second["churn"]["v2"] = HEALTHY  # the candidate was fixed
            done = plugin("retry", "churn-canary", "-n", namespace)
            assert done.returncode == 0, done.stderr
            await h.until(h.phase_is("churn-canary", "Promoted", "Aborted"), "finished again")
            status = h.status("churn-canary")
            assert status["phase"] == "Promoted", status["message"]
            assert (await h.route("churn")).stable == "v2"

    asyncio.run(scenario())


def test_kubectl_sluice_says_in_one_line_what_stops_it(
    crd: str, namespace: str, kubectl: KubeTool, kube_config: Path, tmp_path: Path,
    plugin: Callable[..., subprocess.CompletedProcess[str]],
) -> None:  # fmt: skip
    kubectl("apply", "-n", namespace, "-f", str(ROOT / "examples" / "rollouts" / "canary.yaml"))

    missing = plugin("promote", "churn-typo", "-n", namespace)
    assert missing.returncode == 1
    expected = f'error: modelrollout "churn-typo" not found in namespace "{namespace}"\n'
    assert missing.stderr == expected

    # a user who may look at rollouts but not steer them
    kubectl("create", "serviceaccount", "viewer", "-n", namespace)
    kubectl("create", "role", "rollout-viewer", "-n", namespace, "--verb=get,list",
            f"--resource={PLURAL}.{GROUP}")  # fmt: skip
    kubectl("create", "rolebinding", "rollout-viewer", "-n", namespace,
            "--role=rollout-viewer", f"--serviceaccount={namespace}:viewer")  # fmt: skip
    token = kubectl("create", "token", "viewer", "-n", namespace).stdout.strip()
    config = yaml.safe_load(kube_config.read_text())
    config["users"] = [{"name": config["users"][0]["name"], "user": {"token": token}}]
    viewer = tmp_path / "viewer.kubeconfig"
    viewer.write_text(yaml.safe_dump(config))

    def as_viewer(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(PLUGIN), *args, "-n", namespace, "--kubeconfig", str(viewer)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    listed = as_viewer("list")
    assert listed.returncode == 0, listed.stderr
    assert "churn-canary" in listed.stdout
    refused = as_viewer("pause", "churn-canary")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: forbidden: ")
    assert refused.stderr.count("\n") == 1
    assert f'cannot patch resource "{PLURAL}"' in refused.stderr


def test_a_lease_taken_and_renewed_at_a_whole_second_is_accepted(
    api_client: client.ApiClient, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    class WholeSeconds(datetime):
        """The clock of a replica that happens to look at a whole second."""

        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return datetime.now(tz).replace(microsecond=0)

    monkeypatch.setattr(kube, "dt", SimpleNamespace(datetime=WholeSeconds, UTC=UTC))

    async def take_and_renew() -> tuple[bool, bool]:
        leader = KubeLeader(api_client, namespace, LEASE, "controller-a", ttl=15)
        return await leader.acquire(), await leader.acquire()

    assert asyncio.run(take_and_renew()) == (True, True)
    lease = client.CoordinationV1Api(api_client).read_namespaced_lease(LEASE, namespace)
    assert lease.spec.holder_identity == "controller-a"


def test_pause_resume_set_weight_and_spec_paused_steer_a_canary(
    crd: str, api_client: client.ApiClient, namespace: str, redis_url: str,
    plugin: Callable[..., subprocess.CompletedProcess[str]], kubectl: KubeTool,
) -> None:  # fmt: skip
    steps = [{"setWeight": 10}, {"pause": {"duration": "1h"}}, {"setWeight": 50}]

    async def scenario() -> None:
        async with harness(api_client, namespace, redis_url, ChosenTallies({})) as h:
            await h.seed("churn")
            h.create(rollout("churn-canary", "churn", steps))
            await h.until(lambda: h.status("churn-canary").get("step") == 1, "at the pause")

            def act(*args: str) -> None:
                done = plugin(*args, "churn-canary", "-n", namespace)
                assert done.returncode == 0, done.stderr

            act("pause")
            await h.until(h.phase_is("churn-canary", "Paused"), "paused")
            act("resume")
            await h.until(h.phase_is("churn-canary", "Progressing"), "resumed")
            assert h.status("churn-canary")["step"] == 1  # the timed pause still holds it

            done = plugin("set-weight", "churn-canary", "40", "-n", namespace)
            assert done.returncode == 0, done.stderr
            await h.until(h.phase_is("churn-canary", "Paused"), "paused at a hand-set weight")
            assert (await h.route("churn")).weight == 40

            act("resume")  # one action at a time: the annotation holds the newest only
            await h.until(h.phase_is("churn-canary", "Progressing"), "resumed")
            paused = json.dumps({"spec": {"paused": True}})
            kubectl("patch", "mro", "churn-canary", "-n", namespace, "--type=merge", "-p", paused)
            await h.until(h.phase_is("churn-canary", "Paused"), "paused by spec.paused")
            assert h.status("churn-canary")["pausedReason"] == "PausedBySpec"
            going = json.dumps({"spec": {"paused": False}})
            kubectl("patch", "mro", "churn-canary", "-n", namespace, "--type=merge", "-p", going)
            await h.until(h.phase_is("churn-canary", "Progressing"), "going again")

            act("promote")
            await h.until(h.phase_is("churn-canary", "Promoted"), "promoted")
            route = await h.route("churn")
            assert (route.stable, route.candidate, route.mode) == ("v2", None, None)

    asyncio.run(scenario())


def test_a_blue_green_rollout_waits_in_preview_and_switches_on_promote(
    crd: str, api_client: client.ApiClient, namespace: str, redis_url: str,
    plugin: Callable[..., subprocess.CompletedProcess[str]],
) -> None:  # fmt: skip
    doc = rollout("churn-bg", "churn", [], analysis=ANALYSIS)
    doc["spec"]["strategy"] = {"blueGreen": {
        "prePromotionAnalysis": {"checks": 2}, "postPromotionAnalysis": {},
        "scaleDownDelay": "5s",
    }}  # fmt: skip
    evidence = ChosenTallies({"churn": {"v1": HEALTHY, "v2": HEALTHY}})

    async def scenario() -> None:
        async with harness(api_client, namespace, redis_url, evidence) as h:
            await h.seed("churn")
            h.create(doc)
            await h.until(h.phase_is("churn-bg", "Paused"), "ready in preview")
            assert h.status("churn-bg")["pausedReason"] == "WaitingForPromotion"
            route = await h.route("churn")
            assert (route.stable, route.candidate, route.mode) == ("v1", "v2", "bluegreen")

            done = plugin("promote", "churn-bg", "-n", namespace)
            assert done.returncode == 0, done.stderr
            await h.until(lambda: h.status("churn-bg").get("stage") == "postPromotion", "switched")
            route = await h.route("churn")
            assert (route.stable, route.candidate, route.mode) == ("v2", "v1", "bluegreen")

            await h.until(h.phase_is("churn-bg", "Promoted"), "promoted")
            route = await h.route("churn")
            assert (route.stable, route.candidate, route.mode) == ("v2", None, None)

    asyncio.run(scenario())


def test_a_shadow_rollout_mirrors_then_promotes_once_enough_rows_agree(
    crd: str, api_client: client.ApiClient, namespace: str, redis_url: str
) -> None:
    doc = rollout("churn-shadow", "churn", [], analysis={
        "interval": "1s", "minSamples": 10,
        "metrics": [{"name": "agreement", "builtin": "shadowAgreement", "condition": ">= 0.97"}],
    })  # fmt: skip
    doc["spec"]["strategy"] = {"shadow": {"mirrorPercent": 50, "requests": 500}}
    compared = {"n": 100, "ok": 100, "sh": 100, "sha": 99}  # 99% of compared rows agree
    evidence = ChosenTallies({"churn": {"v1": HEALTHY, "v2": compared}})

    async def scenario() -> None:
        async with harness(api_client, namespace, redis_url, evidence) as h:
            await h.seed("churn")
            h.create(doc)
            await h.until(lambda: h.status("churn-shadow").get("checks", 0) >= 1, "checked")
            route = await h.route("churn")
            assert (route.stable, route.candidate, route.mode) == ("v1", "v2", "shadow")
            assert (route.mirror, route.weight) == (50, 0)

            await h.until(h.phase_is("churn-shadow", "Promoted"), "promoted")
            assert h.status("churn-shadow")["totals"]["candidate"]["sh"] >= 500
            assert (await h.route("churn")).stable == "v2"

    asyncio.run(scenario())
