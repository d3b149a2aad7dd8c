"""The cluster under test does what the rollout controller's adapter relies on: CRDs with a
status subresource, Leases, Events and RBAC, through the Python client, kubectl and helm."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.kube import KubeTool


class Crd:
    """A throwaway namespaced CRD (`Widget`), unique per run, deleted after."""

    def __init__(self) -> None:
        self.group = f"t{secrets.token_hex(3)}.smoke.sluice.dev"
        self.version = "v1"
        self.plural = "widgets"
        self.kind = "Widget"
        self.name = f"{self.plural}.{self.group}"

    def manifest(self) -> dict[str, Any]:
        schema = {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["replicas"],
                    "properties": {"replicas": {"type": "integer", "minimum": 0}},
                },
                "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
            },
        }
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": self.name},
            "spec": {
                "group": self.group,
                "scope": "Namespaced",
                "names": {"plural": self.plural, "singular": "widget", "kind": self.kind},
                "versions": [
                    {
                        "name": self.version,
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": schema},
                        "subresources": {"status": {}},
                    }
                ],
            },
        }

    def widget(self, name: str, replicas: Any) -> dict[str, Any]:
        return {
            "apiVersion": f"{self.group}/{self.version}",
            "kind": self.kind,
            "metadata": {"name": name},
            "spec": {"replicas": replicas},
        }


def wait_established(ext: client.ApiextensionsV1Api, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = ext.read_custom_resource_definition(name)
        conditions = (crd.status and crd.status.conditions) or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            return
        time.sleep(0.2)
    raise AssertionError(f"CRD {name} not Established after {timeout}s: {conditions}")


@pytest.fixture
def crd(api_client: client.ApiClient) -> Iterator[Crd]:
    crd = Crd()
    ext = client.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(crd.manifest())
    wait_established(ext, crd.name)
    yield crd
    ext.delete_custom_resource_definition(crd.name)


def test_custom_resource_status_goes_through_its_subresource(
    api_client: client.ApiClient, namespace: str, crd: Crd
) -> None:
    objects = client.CustomObjectsApi(api_client)
    args = (crd.group, crd.version, namespace, crd.plural)

    created = objects.create_namespaced_custom_object(*args, crd.widget("w1", 3))
    assert created["spec"] == {"replicas": 3}
    assert created["metadata"]["generation"] == 1

    # the schema is enforced: a string where an integer belongs is rejected
    with pytest.raises(ApiException) as bad:
        objects.create_namespaced_custom_object(*args, crd.widget("w2", "three"))
    assert bad.value.status == 422

    # status only changes through /status, and changing it leaves the generation alone
    patched = objects.patch_namespaced_custom_object_status(
        *args, "w1", {"status": {"phase": "Progressing"}}
    )
    assert patched["status"] == {"phase": "Progressing"}
    objects.patch_namespaced_custom_object(*args, "w1", {"status": {"phase": "Ignored"}})
    got = objects.get_namespaced_custom_object(*args, "w1")
    assert got["status"] == {"phase": "Progressing"}
    assert got["metadata"]["generation"] == 1


def test_lease_and_event_round_trip(api_client: client.ApiClient, namespace: str) -> None:
    # MicroTime wants microseconds on the wire: a datetime with microsecond=0 would be
    # serialised without them and rejected, so keep them non-zero.
    now = datetime.now(UTC).replace(microsecond=123456)
    leases = client.CoordinationV1Api(api_client)
    leases.create_namespaced_lease(
        namespace,
        client.V1Lease(
            metadata=client.V1ObjectMeta(name="sluice-rollout"),
            spec=client.V1LeaseSpec(
                holder_identity="controller-a",
                lease_duration_seconds=15,
                acquire_time=now,
                renew_time=now,
            ),
        ),
    )
    lease = leases.read_namespaced_lease("sluice-rollout", namespace)
    assert lease.spec.holder_identity == "controller-a"
    assert lease.spec.renew_time == now

    core = client.CoreV1Api(api_client)
    core.create_namespaced_event(
        namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="w1.smoke"),
            involved_object=client.V1ObjectReference(
                api_version="coordination.k8s.io/v1",
                kind="Lease",
                name="sluice-rollout",
                namespace=namespace,
                uid=lease.metadata.uid,
            ),
            reason="Acquired",
            message="controller-a holds the lease",
            type="Normal",
            count=1,
            first_timestamp=now,
            last_timestamp=now,
            source=client.V1EventSource(component="sluice-smoke"),
        ),
    )
    events = core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=sluice-rollout"
    )
    assert [(e.reason, e.message) for e in events.items] == [
        ("Acquired", "controller-a holds the lease")
    ]


def can_i(kubectl: KubeTool, namespace: str, who: str | None) -> str:
    as_ = [f"--as={who}"] if who else []
    done = kubectl("auth", "can-i", *as_, "list", "pods", "-n", namespace, check=False)
    return done.stdout.strip()


def test_rbac_denies_an_unbound_service_account(
    api_client: client.ApiClient, namespace: str, kubectl: KubeTool
) -> None:
    sa = f"system:serviceaccount:{namespace}:nobody"
    assert can_i(kubectl, namespace, None) == "yes"  # the admin (system:masters)
    assert can_i(kubectl, namespace, sa) == "no"

    # bound to a Role, the same ServiceAccount may: RBAC is really being evaluated
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="pod-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="nobody-reads-pods"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="pod-reader"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="nobody", namespace=namespace)
            ],
        ),
    )
    deadline = time.monotonic() + 15
    while can_i(kubectl, namespace, sa) != "yes":
        assert time.monotonic() < deadline, "the RoleBinding never took effect"
        time.sleep(0.2)


def test_helm_reaches_the_cluster(helm: KubeTool, namespace: str) -> None:
    assert helm("version", "--short").stdout.startswith("v3.18.")
    assert helm("list", "-n", namespace, "-q").stdout.strip() == ""
