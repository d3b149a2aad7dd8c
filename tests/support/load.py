"""Load from a thread through a router: one prediction after another by entity id, every
status counted; a test asserts outcomes (how many answered, with what), never a rate."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx


class Load:
    """Predictions sent one after another from a thread; every status counted, in total
    and per second since the start (the per-second counts show in a failure's message,
    they are never asserted on)."""

    def __init__(self, url: str, customers: list[str], model: str = "churn") -> None:
        self.url = url
        self.customers = customers
        self.model = model
        self.statuses: Counter[int] = Counter()
        self.per_second: dict[int, Counter[int]] = {}
        self.errors: Counter[str] = Counter()
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                body = {"instances": [{"customer_id": self.customers[i % len(self.customers)]}]}
                i += 1
                try:
                    resp = client.post(f"/v1/models/{self.model}:predict", json=body)
                    status = resp.status_code
                    if status != 200:
                        self.errors[resp.text[:200]] += 1
                except httpx.TransportError as exc:  # counted as status 0: never expected
                    status = 0
                    self.errors[repr(exc)[:200]] += 1
                second = int(time.monotonic() - self._started)
                self.statuses[status] += 1
                self.per_second.setdefault(second, Counter())[status] += 1

    def report(self) -> str:
        """Statuses per second since the start, then the bodies of the non-200 answers."""
        seconds = " ".join(f"{s}s:{dict(c)}" for s, c in sorted(self.per_second.items()))
        return f"{seconds}; errors {dict(self.errors)}"

    def answered(self) -> int:
        return self.statuses[200]

    def since(self, mark: Counter[int]) -> Counter[int]:
        """Statuses counted after ``mark`` (a copy of ``statuses`` taken earlier)."""
        return self.statuses - mark

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
