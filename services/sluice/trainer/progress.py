"""Progress of the long training steps: a spinner while a step runs, a line when it ends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol

from rich.console import Console


class Steps(Protocol):
    """Reports the steps of a long job (generate, fit, export, parity, profile)."""

    def step(self, what: str) -> AbstractContextManager[None]: ...

    def note(self, message: str) -> None:
        """Tell the user something worth knowing that is not a step (e.g. columns left out)."""


class QuietSteps:
    """Reports nothing: for library callers and tests."""

    def step(self, what: str) -> AbstractContextManager[None]:  # noqa: ARG002
        return nullcontext()

    def note(self, message: str) -> None:
        pass


class ConsoleSteps:
    """A rich spinner on stderr while a step runs, then ``done <step> (1.2s)``."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        start = time.perf_counter()
        with self.console.status(f"{what} ..."):
            yield
        elapsed = time.perf_counter() - start
        self.console.print(f"[green]done[/green] {what} ({elapsed:.1f}s)", highlight=False)

    def note(self, message: str) -> None:
        self.console.print(message, highlight=False, markup=False)
