"""Steady traffic for ``sluice demo``: real HTTP requests through the router, one customer
per request from the churn table, each answer counted per second, version and status, and
the true label of every answered request kept for the drift monitor's feedback.

A drift is injected by :meth:`Traffic.shift`: from then on every request carries one
feature's value itself, moved by a given amount (the router lets a value in the request win
over the feature store's), so the model sees a population the training profile does not.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

FAILED = "failed"
"""The status of a request that got no HTTP answer (refused, reset, timed out)."""


@dataclass(frozen=True)
class Customer:
    """One row of the churn table: its id, the values a shift may override, its label."""

    id: str
    values: dict[str, float]
    label: int


def load_customers(table: Path, numeric: tuple[str, ...]) -> list[Customer]:
    """The customers of the churn table (its latest row each), with ``numeric`` values."""
    import pandas as pd

    frame = pd.read_parquet(table, columns=["customer_id", "event_timestamp", *numeric, "churned"])
    frame = frame.sort_values("event_timestamp").drop_duplicates("customer_id", keep="last")
    return [
        Customer(str(row["customer_id"]), {n: float(row[n]) for n in numeric},
                 int(row["churned"]))
        for row in frame.to_dict("records")
    ]  # fmt: skip


@dataclass
class Tally:
    """Answers counted per whole second since the start, version and status."""

    per_second: dict[int, Counter[tuple[str, str]]] = field(default_factory=dict)
    total: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, second: int, version: str, status: str) -> None:
        self.per_second.setdefault(second, Counter())[(version, status)] += 1
        self.total[(version, status)] += 1

    def failed(self) -> int:
        """User requests that did not succeed: a 5xx or no answer at all."""
        return sum(n for (_, s), n in self.total.items() if s == FAILED or s.startswith("5"))

    def requests(self) -> int:
        return sum(self.total.values())


class Traffic:
    """A load generator on its own threads; :meth:`take_feedback` hands over the labels of
    the requests answered since the last call."""

    def __init__(
        self, router: str, model: str, customers: list[Customer], *, start: float,
        rate: float = 100.0, workers: int = 2, seed: int = 11,
    ) -> None:  # fmt: skip
        self.url = f"{router}/v1/models/{model}:predict"
        self.customers = customers
        self.start = start
        self.tally = Tally()
        self.workers = workers
        self.interval = workers / rate
        """Seconds between two requests of one worker: ``rate`` per second in all, as long
        as the stack keeps up (a slow answer delays that worker's next request)."""
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.labels: list[tuple[str, int]] = []
        self.shifted: tuple[str, float] | None = None
        self.sent = 0

    def shift(self, feature: str, by: float) -> None:
        """From now on, send ``feature`` as its value plus ``by`` with every request."""
        self.shifted = (feature, by)

    def __enter__(self) -> Traffic:
        for i in range(self.workers):
            thread = threading.Thread(target=self._run, name=f"demo-traffic-{i}", daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def take_feedback(self) -> list[tuple[str, int]]:
        with self.lock:
            taken, self.labels = self.labels, []
        return taken

    def _next(self) -> tuple[str, Customer]:
        with self.lock:
            self.sent += 1
            return f"demo-{int(self.start)}-{self.sent}", self.random.choice(self.customers)

    def _run(self) -> None:
        due = time.monotonic()
        with httpx.Client(timeout=30) as client:
            while not self.stopping.is_set():
                due = max(due + self.interval, time.monotonic() - self.interval)
                if self.stopping.wait(max(0.0, due - time.monotonic())):
                    break
                rid, customer = self._next()
                row: dict[str, Any] = {"customer_id": customer.id}
                shifted = self.shifted
                if shifted is not None:
                    row[shifted[0]] = round(customer.values[shifted[0]] + shifted[1], 2)
                try:
                    answer = client.post(
                        self.url, json={"instances": [row]}, headers={"x-request-id": rid}
                    )
                except httpx.HTTPError:
                    version, status = "none", FAILED
                else:
                    version = answer.headers.get("x-sluice-version", "none")
                    status = str(answer.status_code)
                second = int(time.monotonic() - self.start)
                with self.lock:
                    self.tally.add(second, version, status)
                    if status == "200":
                        self.labels.append((rid, customer.label))
