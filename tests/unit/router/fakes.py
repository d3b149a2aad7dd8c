"""In-process fakes of the router's own interfaces (no network, no Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from sluice.core.predlog import PredictionRecord
from sluice.core.routes import RevisionConflict, Route, Snapshot
from sluice.router.backends import Reply, UpstreamFailure
from sluice.router.enrich import Found

Row = Mapping[str, Any]


@dataclass
class FakeModelServer:
    """Answers like a Sluice model server for one (model, version): metadata, V1, V2."""

    model: str
    version: str
    features: tuple[str, ...] = ("tenure", "plan")
    classes: tuple[str, ...] = ("0", "1")
    predict: Callable[[Row], float] = lambda row: 0.9 if row.get("plan") == "basic" else 0.2
    """Positive-class probability of a row."""
    entity_key: str | None = "customer_id"
    defaults: dict[str, Any] = field(default_factory=lambda: {"tenure": 12.0, "plan": "basic"})
    fail: str | None = None
    """None, "connect", "timeout" or an HTTP status such as "500"."""
    calls: list[dict[str, Any]] = field(default_factory=list)
    task: str = "classification"
    """``regression``: ``predict`` gives the value, answered as ``value``."""
    published_refs: tuple[str, ...] | None = None
    """The features whose refs its card names (None: all); the router reads the others'
    from the feature views."""

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.model,
            "versions": [self.version],
            "platform": "onnxruntime",
            "inputs": [
                {"name": f, "datatype": "BYTES" if f == "plan" else "FP64", "shape": [-1, 1]}
                for f in self.features
            ],
            "parameters": {
                "task": self.task,
                "classes": list(self.classes) if self.task == "classification" else [],
                "entity_key": self.entity_key,
                "feature_refs": [
                    f"customer:{f}"
                    for f in self.features
                    if self.published_refs is None or f in self.published_refs
                ],
                "defaults": self.defaults,
            },
        }

    def answer(self, method: str, path: str, body: bytes | None) -> Reply:
        if method == "GET":
            if path.startswith("/v2/models/"):
                return _json(200, self.metadata())
            return _json(404, {"error": "not found"})
        if self.fail is not None and self.fail.isdigit():
            return _json(int(self.fail), {"error": "boom"})
        doc = orjson.loads(body or b"{}")
        if path.endswith(":explain"):
            self.calls.append({"path": path, "rows": doc["instances"]})
            explained = [
                {"prediction": self.predict(row), "attributions": {}} for row in doc["instances"]
            ]
            return _json(200, {"model_version": self.version, "explanations": explained})
        if path.endswith(":predict"):
            rows = doc["instances"]
            for row in rows:
                if set(row) != set(self.features):
                    return _json(422, {"error": {"message": f"features {sorted(row)}"}})
        else:
            cols = {t["name"]: t["data"] for t in doc["inputs"]}
            if set(cols) != set(self.features):
                return _json(400, {"error": f"inputs {sorted(cols)}"})
            n = len(next(iter(cols.values())))
            rows = [
                {k: (v[i][0] if isinstance(v[i], list) else v[i]) for k, v in cols.items()}
                for i in range(n)
            ]
        self.calls.append({"path": path, "rows": rows})
        probs = [self.predict(row) for row in rows]
        if self.task == "regression":
            return self._values(path, doc, probs)
        labels = [self.classes[1] if p >= 0.5 else self.classes[0] for p in probs]
        if path.endswith(":predict"):
            preds = [
                {"label": label, "probabilities": {self.classes[0]: 1 - p, self.classes[1]: p}}
                for label, p in zip(labels, probs, strict=True)
            ]
            return _json(
                200, {"predictions": preds, "model_name": self.model, "model_version": self.version}
            )
        flat = [x for p in probs for x in (1 - p, p)]
        return _json(
            200,
            {
                "model_name": self.model,
                "model_version": self.version,
                "id": doc.get("id", "x"),
                "outputs": [
                    {"name": "label", "datatype": "BYTES", "shape": [len(rows)], "data": labels},
                    {
                        "name": "probabilities",
                        "datatype": "FP64",
                        "shape": [len(rows), 2],
                        "data": flat,
                    },
                ],
            },
        )

    def _values(self, path: str, doc: dict[str, Any], values: list[float]) -> Reply:
        if path.endswith(":predict"):
            preds = [{"value": v} for v in values]
            return _json(
                200, {"predictions": preds, "model_name": self.model, "model_version": self.version}
            )
        output = {"name": "value", "datatype": "FP64", "shape": [len(values), 1], "data": values}
        return _json(200, {"model_name": self.model, "id": doc.get("id", "x"), "outputs": [output]})


def _json(status: int, doc: Any) -> Reply:
    return Reply(status, orjson.dumps(doc), "application/json")


class FakeUpstream:
    """An UpstreamClient whose hosts are FakeModelServers."""

    def __init__(self, servers: Mapping[str, FakeModelServer]) -> None:
        self.servers = dict(servers)
        self.requests: list[tuple[str, str, Mapping[str, str] | None]] = []

    async def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        base, _, rest = url.partition("://")[2].partition("/")
        self.requests.append((method, url, headers))
        server = self.servers.get(f"http://{base}")
        if server is None or server.fail == "connect":
            raise UpstreamFailure("connect", f"{url}: connection refused")
        if server.fail == "timeout" and method == "POST":
            raise UpstreamFailure("timeout", f"{url} did not answer in {timeout}s")
        return server.answer(method, "/" + rest, body)

    async def close(self) -> None:
        return None


class FakeSubscription:
    def __init__(self, queue: asyncio.Queue[str]) -> None:
        self.queue = queue

    async def wait(self, timeout: float) -> str | None:
        if not timeout:
            return None
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None

    async def close(self) -> None:
        return None


class FakeRoutingStore:
    """The routing table in a dict, with revisions and change announcements."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.revisions: dict[str, int] = {}
        self.queues: list[asyncio.Queue[str]] = []
        self.epoch: str | None = None
        self.floor = 0
        self.lives = 0

    def lose(self) -> None:
        """What Redis restarted empty does to the table."""
        self.routes, self.revisions, self.epoch, self.floor = {}, {}, None, 0

    async def load(self) -> dict[str, Route]:
        return dict(self.routes)

    async def snapshot(self) -> Snapshot:
        return Snapshot(dict(self.routes), self.epoch, max(self.revisions.values(), default=0))

    def rewind(self, kept: tuple[dict[str, Route], dict[str, int]]) -> None:
        """What a Redis that lost its last writes (AOF fsync, failover to a lagging
        replica) does: the table as it was, same epoch."""
        self.routes, self.revisions = dict(kept[0]), dict(kept[1])

    async def reseed(
        self, routes: Mapping[str, Route], epoch: str | None, floor: int, *, restore: bool = False
    ) -> str | None:
        if epoch != self.epoch:
            return None
        self.epoch = self.epoch or self._new_epoch()
        self.floor = max(self.floor, floor)
        for model, route in routes.items():
            stored = self.revisions.get(model)
            if stored is None or (restore and stored < route.revision):
                self.routes[model] = route
                self.revisions[model] = self.floor
        for model, rev in self.revisions.items():
            self.revisions[model] = max(rev, self.floor)
            if model in self.routes:
                self.routes[model] = self.routes[model].model_copy(
                    update={"revision": self.revisions[model]}
                )
        return self.epoch

    def _new_epoch(self) -> str:
        self.lives += 1
        return f"life-{self.lives}"

    async def put(self, route: Route, if_revision: int | None = None) -> Route:
        current = self.revisions.get(route.model, 0)
        if if_revision is not None and if_revision != current:
            raise RevisionConflict(f"at revision {current}, not {if_revision}")
        self.epoch = self.epoch or self._new_epoch()
        revision = max(current, self.floor) + 1
        stored = route.model_copy(update={"revision": revision, "updated_at": 1.0})
        self.revisions[route.model] = revision
        self.routes[route.model] = stored
        for queue in self.queues:
            queue.put_nowait(route.model)
        return stored

    async def delete(self, model: str, if_revision: int | None = None) -> int:
        if if_revision is not None and if_revision != self.revisions.get(model, 0):
            raise RevisionConflict(f"not at revision {if_revision}")
        self.epoch = self.epoch or self._new_epoch()
        self.revisions[model] = max(self.revisions.get(model, 0), self.floor) + 1
        self.routes.pop(model, None)
        return self.revisions[model]

    async def seed(self, seeds: Mapping[str, Route]) -> None:
        for model, route in seeds.items():
            if model not in self.routes:
                await self.put(route)

    def subscribe(self) -> FakeSubscription:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.queues.append(queue)
        return FakeSubscription(queue)


class FakeSamples:
    def __init__(self) -> None:
        self.entries: dict[str, list[dict[str, Any]]] = {}

    async def add(self, model: str, entries: Sequence[dict[str, Any]]) -> None:
        self.entries.setdefault(model, [])[:0] = list(entries)

    async def newest(self, model: str, limit: int) -> list[dict[str, Any]]:
        return self.entries.get(model, [])[:limit]


class FakePredictionLog:
    def __init__(self) -> None:
        self.records: list[tuple[str, PredictionRecord]] = []

    def write(self, model: str, record: PredictionRecord) -> None:
        self.records.append((model, record))

    def start(self) -> None:
        return None

    async def close(self, drain_seconds: float = 2.0) -> None:
        assert drain_seconds >= 0


class FakeLookup:
    """Feature values by (ref, entity id); absent ones are NOT_FOUND."""

    def __init__(self, values: Mapping[tuple[str, str], Any], stale: set[str] | None = None):
        self.values = dict(values)
        self.stale = stale or set()
        self.calls: list[tuple[tuple[str, ...], str, tuple[Any, ...]]] = []
        self.refs_calls = 0
        self.fail = False

    async def lookup(self, refs: Sequence[str], entity_key: str, ids: Sequence[Any]) -> Found:
        self.calls.append((tuple(refs), entity_key, tuple(ids)))
        if self.fail:
            raise OSError("redis is down")
        out: dict[str, tuple[list[Any], list[str]]] = {}
        for ref in refs:
            values, statuses = [], []
            for entity in ids:
                if (ref, entity) not in self.values:
                    values.append(None)
                    statuses.append("NOT_FOUND")
                elif entity in self.stale:
                    values.append(None)
                    statuses.append("OUTSIDE_MAX_AGE")
                else:
                    values.append(self.values[(ref, entity)])
                    statuses.append("PRESENT")
            out[ref] = (values, statuses)
        return out

    async def refs_for(self, entity_key: str, features: Sequence[str]) -> dict[str, str]:
        """Every feature the store holds lives in the view ``customer``."""
        self.refs_calls += 1
        if self.fail:
            raise OSError("redis is down")
        held = {ref.split(":", 1)[1] for ref, _ in self.values}
        known = entity_key == "customer_id"
        return {f: f"customer:{f}" for f in features if known and f in held}

    async def close(self) -> None:
        return None
