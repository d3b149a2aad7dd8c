"""``sluice bench``: run the benchmarks from an installed package or a checkout."""

from __future__ import annotations

from typing import Annotated

import typer

from sluice.core.errors import InvalidInput, SluiceError


def bench(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Benchmarks to run (default: all); see --list", show_default=False),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Fewer, shorter rounds")] = False,
    list_: Annotated[bool, typer.Option("--list", help="Name the benchmarks and exit")] = False,
) -> None:
    """Run the benchmarks one after the other; pages in bench/results/ under the current
    folder (SLUICE_BENCH_RESULTS moves them), and one record of the whole run."""
    from sluice.bench.run import QUICK, run_all

    if list_:
        typer.echo("\n".join(QUICK))
        return
    if unknown := [n for n in names or [] if n not in QUICK]:
        raise InvalidInput(f"no benchmark named {', '.join(unknown)}; known: {', '.join(QUICK)}")
    if failed := run_all(names or list(QUICK), quick=quick):
        raise SluiceError(f"benchmarks failed: {', '.join(failed)} (their output is above)")
