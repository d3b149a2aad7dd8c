"""``kubectl sluice``: see and steer ModelRollouts in a cluster with the user's kubeconfig.

Installed as the ``kubectl-sluice`` executable, which kubectl runs as a plugin when it is
on PATH. It talks to the API server only, never to the controller: an action (promote,
abort, pause, ...) is a merge patch of the ``serving.sluice.dev/action`` annotation,
``{"action": ..., "id": <fresh uuid>, "weight": ...}``, which the leading controller
carries out on its next look and records as ``status.lastActionId``.

The cluster and namespace are chosen as kubectl chooses them: ``--kubeconfig`` (else
``KUBECONFIG``, else ``~/.kube/config``), ``--context`` (else the current one),
``-n/--namespace`` (else the context's namespace, else ``default``). RBAC needed:
modelrollouts get/list, and patch for the actions.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError, InsecureRequestWarning

from sluice.core.errors import InvalidInput, NotFound, SluiceError, Unauthorized, Unavailable
from sluice.rollout.cli import Interval, Output, Watch, describe, show_watch, table
from sluice.rollout.errors import RolloutNotFound
from sluice.rollout.resource import ACTION_ANNOTATION, GROUP, PLURAL, VERSION

app = typer.Typer(
    name="kubectl sluice",
    help="See and steer Sluice ModelRollouts in a Kubernetes cluster.",
    no_args_is_help=True,
    add_completion=False,
)

Kubeconfig = Annotated[
    str | None,
    typer.Option(
        "--kubeconfig", help="kubeconfig file(s) (default: $KUBECONFIG, else ~/.kube/config)"
    ),
]
Namespace = Annotated[
    str | None,
    typer.Option("-n", "--namespace", help="Namespace (default: the context's, else default)"),
]
Context = Annotated[str | None, typer.Option("--context", help="kubeconfig context to use")]


@dataclass(frozen=True, slots=True)
class Cluster:
    """The ModelRollouts of one namespace, as the kubeconfig's user sees them."""

    api: k8s.CustomObjectsApi
    namespace: str
    server: str

    def call(self, what: Callable[..., Any], *args: Any, name: str | None = None) -> Any:
        """One API call; its failure becomes a SluiceError of one line."""
        try:
            return what(GROUP, VERSION, self.namespace, PLURAL, *args, _request_timeout=30)
        except ApiException as exc:
            raise _api_error(exc, self.namespace, name) from None
        except HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise Unavailable(f"cannot reach the API server {self.server}: {reason}") from None


def _api_error(exc: ApiException, namespace: str, name: str | None) -> SluiceError:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    message = str(body.get("message") or exc.reason or "").strip()
    if exc.status == 404:
        if name is not None and (body.get("details") or {}).get("name") == name:
            return RolloutNotFound(f'modelrollout "{name}" not found in namespace "{namespace}"')
        return NotFound(
            f"the cluster has no {PLURAL}.{GROUP} resource: install the CRD "
            "(kubectl apply -f charts/sluice/crds/modelrollouts.yaml)"
        )
    if exc.status == 403:
        return Unauthorized(f"forbidden: {message}")
    if exc.status == 401:
        return Unauthorized("unauthorized: the API server refused the kubeconfig's credentials")
    return SluiceError(f"the API server answered {exc.status}: {message}")


def _kubeconfig(given: str | None) -> str:
    """The kubeconfig path(s) as kubectl picks them; an error naming where it looked."""
    where = given or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    paths = [Path(p).expanduser() for p in where.split(os.pathsep) if p]
    if not any(p.is_file() for p in paths):
        source = "--kubeconfig" if given else "KUBECONFIG" if os.environ.get("KUBECONFIG") else ""
        raise InvalidInput(
            f"no kubeconfig at {where}" + (f" ({source})" if source else "")
            + ": pass --kubeconfig or set KUBECONFIG"
        )  # fmt: skip
    return os.pathsep.join(str(p) for p in paths)


def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Cluster:
    path = _kubeconfig(kubeconfig)
    try:
        contexts, current = k8s_config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
        chosen = next((c for c in contexts if c["name"] == context), None) if context else current
        if chosen is None:
            raise ConfigException(f"no context {context!r} in it")
        api: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context
        )
    except (ConfigException, OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"kubeconfig {path}: {exc}") from None
    ns = namespace or (chosen.get("context") or {}).get("namespace") or "default"
    return Cluster(k8s.CustomObjectsApi(api), ns, str(api.configuration.host))


def _show(doc: dict[str, Any], output: str) -> str:
    doc.get("metadata", {}).pop("managedFields", None)  # as kubectl hides them
    if output == "yaml":
        return yaml.safe_dump(doc, sort_keys=False).rstrip()
    if output == "json":
        return json.dumps(doc, indent=2)
    return describe(doc)


@app.command("list")
def list_(
    kubeconfig: Kubeconfig = None, namespace: Namespace = None, context: Context = None
) -> None:
    """Every rollout of the namespace, one line each."""
    cluster = connect(kubeconfig, context, namespace)
    items = cluster.call(cluster.api.list_namespaced_custom_object)["items"]
    if not items:
        typer.echo(f"No modelrollouts in namespace {cluster.namespace}.", err=True)
        return
    typer.echo(table(items))


@app.command("get")
def get(
    name: str,
    output: Output = "text",
    kubeconfig: Kubeconfig = None,
    namespace: Namespace = None,
    context: Context = None,
    watch: Watch = False,
    interval: Interval = 2.0,
) -> None:
    """One rollout: phase, step, weight and every analysis value against its condition."""
    if output not in ("text", "yaml", "json"):
        raise InvalidInput(f"--output {output!r}: one of text, yaml, json")
    if watch and output != "text":
        raise InvalidInput(f"--watch shows text, not -o {output}")
    cluster = connect(kubeconfig, context, namespace)
    if watch:
        from sluice.rollout.watch import Snapshot

        def fetch() -> Snapshot:  # no events here: the status' history is shown
            doc = cluster.call(cluster.api.get_namespaced_custom_object, name, name=name)
            return Snapshot(doc, None)

        show_watch(fetch, interval, source="API server")
        return
    typer.echo(
        _show(cluster.call(cluster.api.get_namespaced_custom_object, name, name=name), output)
    )


def request(cluster: Cluster, name: str, action: str, weight: int | None = None) -> str:
    """Ask the controller for ``action`` on rollout ``name``; returns the action's id."""
    action_id = str(uuid.uuid4())
    value = json.dumps({"action": action, "id": action_id, "weight": weight})
    patch = {"metadata": {"annotations": {ACTION_ANNOTATION: value}}}
    cluster.call(cluster.api.patch_namespaced_custom_object, name, patch, name=name)
    return action_id


def _action(
    name: str, action: str, kubeconfig: str | None, namespace: str | None,
    context: str | None, weight: int | None = None,
) -> None:  # fmt: skip
    cluster = connect(kubeconfig, context, namespace)
    action_id = request(cluster, name, action, weight)
    typer.echo(f"modelrollout.{GROUP}/{name}: {action} requested (id {action_id})")


@app.command("promote")
def promote(
    name: str,
    full: Annotated[bool, typer.Option("--full", help="Skip every remaining step")] = False,
    kubeconfig: Kubeconfig = None,
    namespace: Namespace = None,
    context: Context = None,
) -> None:
    """Leave the current step (pause or analysis) now; --full promotes at once."""
    _action(name, "promote-full" if full else "promote", kubeconfig, namespace, context)


def _simple(action: str, doc: str) -> None:
    def command(
        name: str, kubeconfig: Kubeconfig = None, namespace: Namespace = None,
        context: Context = None,
    ) -> None:  # fmt: skip
        _action(name, action, kubeconfig, namespace, context)

    command.__doc__ = doc
    app.command(action)(command)


_simple("abort", "Send every request back to stable (candidate weight 0, mirror 0).")
_simple("pause", "Hold the rollout where it is.")
_simple("resume", "Go on from a pause (or after too many inconclusive checks).")
_simple("retry", "Start an aborted or stopped rollout again from its first step.")
_simple("skip-analysis", "Count the current analysis step as passed.")


@app.command("set-weight")
def set_weight(
    name: str,
    weight: Annotated[int, typer.Argument(min=0, max=100, help="Percent to the candidate")],
    kubeconfig: Kubeconfig = None,
    namespace: Namespace = None,
    context: Context = None,
) -> None:
    """Set the canary weight by hand; the rollout pauses until resumed."""
    _action(name, "set-weight", kubeconfig, namespace, context, weight)


def main() -> None:
    """Entry point: a SluiceError becomes ``error: ...`` on stderr and exit 1.

    A kubeconfig that skips TLS verification asked for it: like kubectl, say nothing of
    it on every request (urllib3 would warn each time)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRequestWarning)
            app()
    except SluiceError as exc:
        typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
        sys.exit(1)
