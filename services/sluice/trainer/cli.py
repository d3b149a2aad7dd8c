"""The trainer's commands: `sluice data generate|example`, `sluice train`,
`sluice models list|import`.

Results go to stdout; progress goes to stderr. Errors are SluiceErrors, which the
top-level ``sluice`` command prints as ``error: ...`` with exit code 1. pandas,
scikit-learn and skl2onnx are imported inside the commands that need them, so the other
`sluice` commands start without paying seconds for them.
"""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from sluice.core.errors import InvalidInput
from sluice.core.registry import FeatureSpec, ModelCard, ModelRegistry
from sluice.trainer.progress import ConsoleSteps
from sluice.trainer.versions import ensure_new_version

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse", "r2")


class Algorithm(enum.StrEnum):
    linear = "linear"
    logreg = "logreg"
    hgb = "hgb"
    rf = "rf"


class TaskChoice(enum.StrEnum):
    classification = "classification"
    regression = "regression"


data_app = typer.Typer(help="Make and inspect data: a churn table, an example request.")
models_app = typer.Typer(help="Look at the model registry; import a model you already have.")

RegistryOption = Annotated[
    Path, typer.Option("--registry", help="Registry folder (ROOT/<model>/<version>/).")
]


@data_app.command("generate")
def generate(
    out: Annotated[Path, typer.Option("--out", help="File to write: .csv or .parquet.")],
    rows: Annotated[int, typer.Option(min=1, help="Customers (rows) to generate.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same table.")] = 0,
    shift_feature: Annotated[
        str | None,
        typer.Option(
            help="Drift demo: shift this feature. Numeric (e.g. monthly_charges): add "
            "--shift-amount standard deviations. Categorical (region, plan, contract, "
            "payment_method): move a --shift-amount fraction of the other rows to --shift-to."
        ),
    ] = None,
    shift_amount: Annotated[
        float, typer.Option(help="Std units (numeric) or fraction 0..1 (categorical).")
    ] = 0.0,
    shift_to: Annotated[
        str | None, typer.Option(help="Target category of a categorical shift, e.g. premium.")
    ] = None,
    churn_rate: Annotated[
        float | None,
        typer.Option(help="Label shift: expected share of churners, 0..1 (natural: ~0.25)."),
    ] = None,
) -> None:
    """Write a realistic customer-churn table, one row per customer, deterministic per seed.

    Ids and times: customer_id, event_timestamp (UTC, the 90 days before 2026-11-01).

    Numeric: age, tenure_months, monthly_charges, total_charges, support_calls,
    data_usage_gb, days_since_last_login, num_products.

    Categorical: region, plan, contract, payment_method. Label: churned (0/1, about 25%).

    Shifts are applied before the label is drawn, to the same customers as without them.
    """
    from sluice.trainer.data import generate_churn
    from sluice.trainer.tables import table_format, write_table

    table_format(out)
    steps = ConsoleSteps()
    with steps.step(f"generate {rows:,} churn rows"):
        table = generate_churn(
            rows, seed, shift_feature=shift_feature, shift_amount=shift_amount,
            shift_to=shift_to, churn_rate=churn_rate,
        )  # fmt: skip
    with steps.step(f"write {out}"):
        write_table(table, out)
    rate = float(table["churned"].mean())
    typer.echo(f"wrote {len(table):,} rows to {out} (churn rate {rate:.1%})")


@data_app.command("example")
def example(
    registry: RegistryOption,
    model: Annotated[str, typer.Option(help="Model name.")],
    version: Annotated[str, typer.Option(help="Model version.")],
) -> None:
    """Print a valid request body for POST /v1/models/{model}:predict, from the model card.

    Every feature gets its training default (median or most frequent category).
    """
    card = ModelRegistry(registry).card(model, version)
    instance = {spec.name: example_value(spec) for spec in card.features}
    typer.echo(json.dumps({"instances": [instance]}))


def example_value(spec: FeatureSpec) -> Any:
    """A feature's training default as a client would send it (ints as ints, bools as bools).

    For example a numeric int64 feature with default 2.5 gives 2 (rounded half to even),
    a bool one with default 1.0 gives true.
    """
    if spec.kind == "categorical":
        return spec.default if spec.default is not None else (spec.categories or [""])[0]
    value = float(spec.default) if isinstance(spec.default, int | float) else 0.0
    if spec.dtype == "bool":
        return value >= 0.5
    if spec.dtype == "int64":
        return round(value)
    return value


def train(
    model: Annotated[str, typer.Option(help="Model name, e.g. churn.")],
    version: Annotated[str, typer.Option(help="New version name, e.g. v1 (never replaced).")],
    registry: RegistryOption,
    data: Annotated[
        Path | None,
        typer.Option(help="Training table (.csv or .parquet); default: a generated churn table."),
    ] = None,
    label: Annotated[
        str, typer.Option(help="Label column: classes, or a number to predict.")
    ] = "churned",
    algorithm: Annotated[
        Algorithm,
        typer.Option(
            help="linear (logistic or ridge regression; logreg is the same), hgb (histogram "
            "gradient boosting) or rf (random forest)."
        ),
    ] = Algorithm.hgb,
    task: Annotated[
        TaskChoice | None,
        typer.Option(
            help="classification or regression; default: regression when the label is "
            "numeric with fractions or more than 20 distinct values."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the split, the model and the profile.")] = 0,
    rows: Annotated[
        int, typer.Option(min=1, help="Rows to generate when --data is not given.")
    ] = 10_000,
    threads: Annotated[
        int, typer.Option(min=1, help="CPU threads for the fit (more helps only on idle cores).")
    ] = 1,
    features: Annotated[
        Path | None,
        typer.Option(
            help="Feature views (YAML): join features point-in-time from their offline "
            "sources onto --data, which then only needs the entity key, event_timestamp "
            "and the label."
        ),
    ] = None,
    feature: Annotated[
        list[str] | None,
        typer.Option(help="With --features: a 'view:feature' or 'view:*' (repeat); default all."),
    ] = None,
) -> None:
    """Train a classifier or a regressor on a table, check its ONNX export, and register it.

    Numeric columns are scaled, text columns one-hot encoded.

    Id and timestamp columns are left out; the first id column becomes the entity key.

    The version is registered only if ONNX and scikit-learn agree within 1e-5.
    """
    from sluice.trainer.run import train as run
    from sluice.trainer.schema import Task

    if feature and features is None:
        raise InvalidInput("--feature needs --features (the feature views file)")
    kind: Task | None = None if task is None else task.value
    store = ModelRegistry(registry)
    card = run(
        store, model=model, version=version, data=data, label=label, algorithm=algorithm.value,
        task=kind, seed=seed, rows=rows, threads=threads, features=features,
        feature_refs=feature or [], steps=ConsoleSteps(),
    )  # fmt: skip
    typer.echo(summary(card, store.path(model, version)))


def summary(card: ModelCard, path: Path) -> str:
    scores = "  ".join(f"{k} {v:.3f}" for k, v in card.metrics.items())
    what = f"classes {', '.join(card.classes)}" if card.classes else f"predicts {card.label}"
    diff = "p" if card.task == "classification" else "y"
    return "\n".join(
        [
            f"registered {card.model} {card.version} at {path}",
            f"  {card.algorithm}"
            + (f" on {card.data.train_rows:,} rows" if card.data.train_rows else "")
            + f", {len(card.features)} features, {what}",
            f"  {'sample' if card.data.train_rows == 0 else 'held-out'} "
            f"({card.data.test_rows:,} rows): {scores or 'no label to score on'}",
            f"  ONNX parity: max |{diff}_sklearn - {diff}_onnx| = {card.parity_max_abs_diff:.2g}",
        ]
    )


@models_app.command("list")
def list_models(registry: RegistryOption) -> None:
    """List every registered version: model, version, algorithm, created, held-out metrics."""
    store = ModelRegistry(registry)
    rows = [["model", "version", "algorithm", "created", *METRICS]]
    for name in store.models():
        for version in store.versions(name):
            try:
                card = store.card(name, version)
            except (ValueError, OSError) as exc:
                typer.echo(f"warning: skipping {name} {version}: {exc}", err=True)
                continue
            metrics = [f"{card.metrics[m]:.3f}" if m in card.metrics else "-" for m in METRICS]
            rows.append([name, version, card.algorithm, card.created_at, *metrics])
    if len(rows) == 1 and not store.root.is_dir():
        typer.echo(f"no registry at {registry} yet", err=True)
    sys.stdout.write(format_table(rows))


def format_table(rows: list[list[str]]) -> str:
    """Left-aligned columns two spaces apart, no trailing blanks.

    For example [["model", "v"], ["churn", "v1"]] gives "model  v\\nchurn  v1\\n".
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "".join(f"{line}\n" for line in lines)


@models_app.command("import")
def import_command(
    source: Annotated[
        Path,
        typer.Argument(
            help="A fitted scikit-learn model (.joblib/.pkl/.pickle), an MLflow model folder "
            "(sklearn flavour) or an .onnx file."
        ),
    ],
    model: Annotated[str, typer.Option(help="Model name, e.g. prices.")],
    version: Annotated[str, typer.Option(help="New version name (never replaced).")],
    registry: RegistryOption,
    sample: Annotated[
        Path,
        typer.Option(
            help="A sample of the training data (.csv/.parquet) with every feature column: "
            "the schema, the parity check and the drift profile come from it."
        ),
    ],
    label: Annotated[
        str | None,
        typer.Option(help="The sample's label column, if it has one: scores the model on it."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the profile's samples.")] = 0,
) -> None:
    """Register a model you already have: convert it to ONNX, check it, profile the sample.

    Loading a pickle or joblib file runs code stored in it: import only files you trust.

    Refused, with the reason, when ONNX does not reproduce the model on every sample row
    within 1e-5 or a step cannot be converted.
    """
    from sluice.trainer.tables import read_table

    store = ModelRegistry(registry)
    ensure_new_version(store, model, version)
    steps = ConsoleSteps()
    with steps.step(f"read {sample}"):
        table = read_table(sample)
    from sluice.trainer.importer import import_model  # takes seconds to import

    card = import_model(
        source, table, model=model, version=version, registry=store, label=label, seed=seed,
        steps=steps,
    )  # fmt: skip
    typer.echo(summary(card, store.path(model, version)))
