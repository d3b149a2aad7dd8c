"""The `sluice` command. Each service's commands live in its own ``cli.py``; this file
only assembles them and turns Sluice errors into a message and a non-zero exit."""

from __future__ import annotations

import sys

import typer

from sluice.bench.cli import bench
from sluice.core.errors import SluiceError
from sluice.drift_monitor.cli import serve as serve_drift_monitor
from sluice.feature_store.cli import app as features_app
from sluice.feature_store.cli import serve as serve_feature_store
from sluice.local.cli import down, status, up
from sluice.local.demo import demo
from sluice.model_server.cli import score
from sluice.model_server.cli import serve as serve_model_server
from sluice.rollout.cli import rollout_app
from sluice.rollout.cli import serve as serve_rollout_controller
from sluice.router.cli import route_app, shadow_app
from sluice.router.cli import serve as serve_router
from sluice.trainer.cli import data_app, models_app, train

app = typer.Typer(
    name="sluice",
    help="Serve ML models safely: train or import, register, serve, explain, score, route, "
    "watch for drift.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
serve = typer.Typer(help="Run one Sluice service in the foreground.", no_args_is_help=True)
app.command("up")(up)
app.command("down")(down)
app.command("status")(status)
app.command("demo")(demo)
app.add_typer(serve, name="serve")
app.add_typer(features_app, name="features")
serve.command("feature-store")(serve_feature_store)
app.add_typer(data_app, name="data")
app.command("train")(train)
app.add_typer(models_app, name="models")
serve.command("model-server")(serve_model_server)
app.command("score")(score)
serve.command("router")(serve_router)
app.add_typer(route_app, name="route")
app.add_typer(shadow_app, name="shadow")
serve.command("drift-monitor")(serve_drift_monitor)
serve.command("rollout-controller")(serve_rollout_controller)
app.add_typer(rollout_app, name="rollout")
app.command("bench")(bench)


def main() -> None:
    """Entry point: run the CLI; a SluiceError becomes `error: ...` on stderr and exit 1."""
    try:
        app()
    except SluiceError as exc:
        typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
        sys.exit(1)


if __name__ == "__main__":
    main()
