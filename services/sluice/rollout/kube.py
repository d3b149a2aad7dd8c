"""The Kubernetes adapter: ModelRollouts as custom resources, status through the status
subresource, Events, and a ``coordination.k8s.io`` Lease. Thin: the engine
(``service.py``) knows nothing of Kubernetes.

Built on the official ``kubernetes`` client, whose calls block: each runs in a thread.
Rollouts are read with a list each tick (the same cost as a watch's resync, and nothing
to resume after a dropped connection). RBAC needed in the namespace: modelrollouts
get/list/watch, modelrollouts/status get/update/patch, events create, leases
get/create/update.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from sluice.rollout.resource import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    Rollout,
    RolloutError,
    Status,
    parse,
)

log = logging.getLogger(__name__)


def api_client(kubeconfig: Path | None) -> k8s.ApiClient:
    """A client from a kubeconfig file, else from the pod's service account."""
    if kubeconfig is not None:
        made: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig)
        )
        return made
    k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
    return k8s.ApiClient()


def _now() -> dt.datetime:
    """Now, never at a whole second: the API server reads a Lease's MicroTime fields with
    exactly six fractional digits, which isoformat() leaves out at microsecond 0."""
    now = dt.datetime.now(dt.UTC)
    return now if now.microsecond else now.replace(microsecond=1)


class KubeRolloutSource:
    def __init__(self, api: k8s.ApiClient, namespace: str, identity: str) -> None:
        self.custom = k8s.CustomObjectsApi(api)
        self.core = k8s.CoreV1Api(api)
        self.namespace = namespace
        self.identity = identity
        self._uids: dict[str, str] = {}

    async def list(self) -> list[Rollout]:
        found: Any = await asyncio.to_thread(
            self.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL
        )
        out = []
        for item in found.get("items", []):
            meta = item.get("metadata", {})
            self._uids[meta.get("name", "")] = meta.get("uid", "")
            try:
                out.append(parse(item))
            except RolloutError as exc:  # the CRD schema lets few through; say so, go on
                log.error("skipping a ModelRollout the controller cannot read: %s", exc)
        return out

    async def save_status(self, rollout: Rollout, status: Status) -> None:
        # the whole status, replaced: a merge patch would keep map keys the new status no
        # longer has (a retried rollout's old totals and sequential-test minima)
        body = [
            {"op": "add", "path": "/status", "value": status.model_dump(mode="json", by_alias=True)}
        ]
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object_status,
            GROUP, VERSION, self.namespace, PLURAL, rollout.name, body,
            _content_type="application/json-patch+json",
        )  # fmt: skip

    async def event(self, rollout: Rollout, kind: str, reason: str, message: str) -> None:
        now = _now()
        event = k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(name=f"{rollout.name}.{uuid.uuid4().hex[:12]}"),
            involved_object=k8s.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}",
                kind=KIND,
                name=rollout.name,
                namespace=self.namespace,
                uid=self._uids.get(rollout.name),
            ),
            type=kind,
            reason=reason,
            message=message[:1024],
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=k8s.V1EventSource(component="sluice-rollout-controller"),
            reporting_component="sluice-rollout-controller",
            reporting_instance=self.identity,
        )
        try:
            await asyncio.to_thread(self.core.create_namespaced_event, self.namespace, event)
        except ApiException as exc:  # an event is a courtesy: never stop a rollout for one
            log.warning("could not create an Event for %s: %s", rollout.name, exc.reason)


class KubeLeader:
    """A ``coordination.k8s.io/v1`` Lease, taken when free or expired, renewed while held."""

    def __init__(
        self, api: k8s.ApiClient, namespace: str, name: str, identity: str, ttl: float
    ) -> None:
        self.leases = k8s.CoordinationV1Api(api)
        self.namespace, self.name, self.identity, self.ttl = namespace, name, identity, ttl
        self.held = False

    async def acquire(self) -> bool:
        self.held = await asyncio.to_thread(self._acquire)
        return self.held

    def _acquire(self) -> bool:
        now = _now()
        try:
            lease = self.leases.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = k8s.V1Lease(
                metadata=k8s.V1ObjectMeta(name=self.name),
                spec=self._spec(now, now, transitions=0),
            )
            try:
                self.leases.create_namespaced_lease(self.namespace, body)
            except ApiException as conflict:
                if conflict.status == 409:
                    return False  # another replica created it first
                raise
            return True
        spec = lease.spec or k8s.V1LeaseSpec()
        holder = spec.holder_identity
        renewed = spec.renew_time or spec.acquire_time
        duration = spec.lease_duration_seconds or int(self.ttl)
        expired = renewed is None or (now - renewed).total_seconds() > duration
        if holder != self.identity and not expired:
            return False
        transitions = (spec.lease_transitions or 0) + (0 if holder == self.identity else 1)
        acquired = spec.acquire_time if holder == self.identity else now
        lease.spec = self._spec(acquired or now, now, transitions)
        try:  # the resourceVersion in ``lease`` makes this a compare-and-swap
            self.leases.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def _spec(self, acquired: dt.datetime, renewed: dt.datetime, transitions: int) -> Any:
        return k8s.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=max(1, int(self.ttl)),
            acquire_time=acquired,
            renew_time=renewed,
            lease_transitions=transitions,
        )

    async def release(self) -> None:
        if not self.held:
            return
        self.held = False

        def give_up() -> None:
            lease = self.leases.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is not None and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                self.leases.replace_namespaced_lease(self.name, self.namespace, lease)

        try:
            await asyncio.to_thread(give_up)
        except ApiException as exc:
            log.warning("could not release the lease: %s", exc.reason)
