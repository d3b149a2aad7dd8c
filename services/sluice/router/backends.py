"""The outside things the router talks to, a Protocol each, and their implementations.

- :class:`UpstreamClient`: HTTP to the model servers, chosen by measurement
  (bench/results/router.md): the router's own keep-alive client (``http1``) by default,
  :class:`AiohttpUpstream` as the alternative; httpx's own async transport collapses under
  concurrency (encode/httpx#3215).
- :class:`ShadowSamples`, :class:`PredictionLog`: Redis (``store``); the routing table's
  store is shared with the rollout controller (``sluice.core.routes``).
- :class:`FeatureLookup`: the online store, in process through the feature store's read
  module, or over HTTP through the feature store service.
- :class:`SchemaSource`: what each version takes, from its model server's V2 metadata and
  the model card (metadata ``parameters``, else a registry).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp
import orjson

from sluice.core import predlog
from sluice.core.errors import InvalidInput, Unavailable
from sluice.core.registry import ModelCard, ModelRegistry
from sluice.feature_store.backends import OnlineStore
from sluice.router.enrich import Found, VersionSchema

FailureReason = Literal["connect", "timeout", "too_large"]
"""No connection or a broken one; no answer in time; an answer over the size limit."""
log = logging.getLogger(__name__)
HEADER_LENGTH = "inference-header-content-length"
"""V2 binary tensor data extension: the length of the JSON part of a body."""


@dataclass(frozen=True, slots=True)
class Reply:
    """An upstream's answer, whatever its status."""

    status: int
    body: bytes
    content_type: str = "application/json"
    header_length: str | None = None
    """``inference-header-content-length`` of a V2 answer with binary tensor data."""


class UpstreamFailure(Exception):
    """No usable answer: the connection failed, the timeout passed, or the answer was
    over the client's size limit."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: FailureReason = reason
        self.detail = detail


class LookupRefused(Exception):
    """The feature store refused a lookup for its entity ids (``status`` 413 or 422; the
    message names the field as the feature store saw it, ``entities.<key>[i]``): the
    client's mistake. Any other refusal (an unknown view, a missing token) is ours, and
    raised as a failure."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def refused(status: int, message: str) -> LookupRefused | None:
    """A LookupRefused for a refusal about the entity ids, else None.

    >>> refused(422, "entities.customer_id[0]: expected a string, got int 7").status
    422
    >>> refused(404, "feature view 'x' is not registered") is None
    True
    """
    if status in (413, 422) and message.startswith("entities"):
        return LookupRefused(status, message)
    return None


class UpstreamClient(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> Reply: ...

    async def close(self) -> None: ...


class ShadowSamples(Protocol):
    """The newest disagreements per model."""

    async def add(self, model: str, entries: Sequence[dict[str, Any]]) -> None: ...

    async def newest(self, model: str, limit: int) -> list[dict[str, Any]]: ...


class PredictionLog(Protocol):
    """Where every answered prediction goes; ``write`` never waits and never raises."""

    def write(self, model: str, record: predlog.PredictionRecord) -> None: ...

    def start(self) -> None: ...

    async def close(self, drain_seconds: float = 2.0) -> None: ...


class FeatureLookup(Protocol):
    async def lookup(self, refs: Sequence[str], entity_key: str, ids: Sequence[Any]) -> Found:
        """Values and statuses of ``refs`` ("view:feature") for each id, in order."""
        ...

    async def refs_for(self, entity_key: str, features: Sequence[str]) -> dict[str, str]:
        """Feature name -> ref, for the features some view keyed by ``entity_key`` holds."""
        ...

    async def close(self) -> None: ...


class SchemaSource(Protocol):
    async def schema(self, model: str, version: str, url: str) -> VersionSchema: ...


class AiohttpUpstream:
    """An aiohttp session with a keep-alive pool per upstream host; answers of at most
    ``max_response_bytes``."""

    def __init__(
        self, *, connections: int, connect_timeout: float, max_response_bytes: int = 16 << 20
    ) -> None:
        self._connections = connections
        self._connect_timeout = connect_timeout
        self.max_response_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=self._connections, ttl_dns_cache=60
            )
            # no skip_auto_headers: aiohttp rebuilds a header set per request when it is set
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        session = self._open()
        limits = self._timeouts.get(timeout)
        if limits is None:
            limits = self._timeouts[timeout] = aiohttp.ClientTimeout(
                total=timeout, connect=min(timeout, self._connect_timeout)
            )
        try:
            async with session.request(
                method, url, data=body, headers=headers, timeout=limits
            ) as resp:
                data = await self._read(resp)
                return Reply(
                    resp.status,
                    data,
                    resp.headers.get("content-type", ""),
                    resp.headers.get(HEADER_LENGTH),
                )
        except TimeoutError as exc:
            raise UpstreamFailure("timeout", f"{url} did not answer in {timeout}s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamFailure("connect", f"{url}: {exc}") from exc

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.max_response_bytes
        declared = resp.content_length
        if declared is not None and declared > limit:
            resp.close()
            raise UpstreamFailure(
                "too_large", f"the answer is over the limit of {limit} bytes ({declared} declared)"
            )
        chunks, size = [], 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                resp.close()
                raise UpstreamFailure(
                    "too_large", f"the answer is over the limit of {limit} bytes (more sent)"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpFeatureLookup:
    """Lookups through the feature store service (``POST /v1/features/get-online``),
    sending ``Authorization: Bearer <SLUICE_FEATURE_READ_TOKEN>`` when one is set."""

    def __init__(
        self, base_url: str, client: UpstreamClient, timeout: float, token: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.timeout = timeout
        self.headers = {"authorization": f"Bearer {token}"} if token else None

    async def lookup(self, refs: Sequence[str], entity_key: str, ids: Sequence[Any]) -> Found:
        body = orjson.dumps({"features": list(refs), "entities": {entity_key: list(ids)}})
        reply = await self._call("POST", "/v1/features/get-online", body)
        doc = orjson.loads(reply.body)
        names = doc["metadata"]["feature_names"]
        results = doc["results"]
        found: dict[str, tuple[Sequence[Any], Sequence[str]]] = {}
        for name, result in zip(names, results, strict=True):
            found[name] = (result["values"], result["statuses"])
        return found

    async def refs_for(self, entity_key: str, features: Sequence[str]) -> dict[str, str]:
        reply = await self._call("GET", "/v1/features/views", None)
        return refs_from_views(orjson.loads(reply.body), entity_key, features)

    async def _call(self, method: str, path: str, body: bytes | None) -> Reply:
        reply = await self.client.request(
            method, self.base_url + path, body, self.timeout, self.headers
        )
        if 400 <= reply.status < 500:
            try:
                error = orjson.loads(reply.body)["error"]
                refusal = refused(reply.status, str(error.get("message") or error))
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                refusal = None
            if refusal is not None:
                raise refusal
        if reply.status != 200:
            raise UpstreamFailure(
                "connect", f"feature store answered {reply.status}: {reply.body[:200]!r}"
            )
        return reply

    async def close(self) -> None:
        return None


def refs_from_views(doc: Any, entity_key: str, features: Sequence[str]) -> dict[str, str]:
    """Feature -> "view:feature" from a ``GET /v1/features/views`` document; the first view
    (in name order) keyed by ``entity_key`` that has the feature wins."""
    views = doc.get("views", doc) if isinstance(doc, dict) else doc
    wanted = set(features)
    out: dict[str, str] = {}
    for view in sorted(views, key=lambda v: str(v.get("name"))):
        entity = view.get("entity") or {}
        key = entity.get("join_key") if isinstance(entity, dict) else entity
        if key != entity_key:
            continue
        for feature in view.get("features", []):
            name = feature.get("name") if isinstance(feature, dict) else feature
            if name in wanted and name not in out:
                out[name] = f"{view['name']}:{name}"
    return out


class MetadataSchemas:
    """Version schemas from the model server's V2 metadata (the inputs it really takes),
    completed from the model card: its ``parameters`` when the server publishes them,
    else the registry. Feature refs missing from the card are resolved by feature name in
    the feature store's views. Versions are immutable, so each is fetched once."""

    def __init__(
        self,
        client: UpstreamClient,
        *,
        registry: ModelRegistry | None,
        lookup: FeatureLookup | None,
        timeout: float,
        lookup_timeout: float = 0.5,
    ) -> None:
        self.client = client
        self.registry = registry
        self.lookup = lookup
        self.timeout = timeout
        self.lookup_timeout = lookup_timeout

    async def schema(self, model: str, version: str, url: str) -> VersionSchema:
        target = f"{url}/v2/models/{model}/versions/{version}"
        reply = await self.client.request("GET", target, None, self.timeout)
        if reply.status != 200:
            raise UpstreamFailure("connect", f"{target} answered {reply.status}")
        doc = orjson.loads(reply.body)
        inputs = doc.get("inputs") or []
        params = doc.get("parameters") or {}
        card: ModelCard | None = None
        if self.registry is not None:
            card = await asyncio.to_thread(self.registry.card, model, version)
        return await self._complete(inputs, params, card)

    async def _complete(
        self, inputs: list[dict[str, Any]], params: Mapping[str, Any], card: ModelCard | None
    ) -> VersionSchema:
        features = tuple(str(i["name"]) for i in inputs)
        datatypes = {str(i["name"]): str(i.get("datatype", "BYTES")) for i in inputs}
        specs = {f.name: f for f in card.features} if card else {}
        entity_key = params.get("entity_key") or (card.entity_key if card else None)
        refs_list = params.get("feature_refs") or (card.feature_refs if card else [])
        refs = {r.split(":", 1)[1]: r for r in refs_list if ":" in r}
        defaults = params.get("defaults") or {n: s.default for n, s in specs.items()}
        nullable = params.get("allow_missing") or [n for n, s in specs.items() if s.allow_missing]
        classes = params.get("classes") or (card.classes if card else None)
        unresolved = [f for f in features if f not in refs]
        pending: frozenset[str] = frozenset()
        if entity_key and unresolved and self.lookup is not None:
            try:
                async with asyncio.timeout(self.lookup_timeout):
                    refs.update(await self.lookup.refs_for(entity_key, unresolved))
            except (Unavailable, UpstreamFailure, OSError, TimeoutError) as exc:
                # served as a failed lookup until a later read names them (SchemaCache)
                log.warning("cannot read the feature views' refs of %s: %s: %s",
                            ", ".join(unresolved), type(exc).__name__, exc)  # fmt: skip
                pending = frozenset(unresolved)
        return VersionSchema(
            features=features,
            datatypes=datatypes,
            entity_key=entity_key,
            refs={f: r for f, r in refs.items() if f in datatypes},
            defaults={k: v for k, v in defaults.items() if v is not None},
            nullable=frozenset(nullable),
            classes=tuple(str(c) for c in classes) if classes else None,
            task=str(params.get("task") or (card.task if card else "classification")),
            pending=pending,
        )


class StoreFeatureLookup:
    """Lookups in process through the feature store's read module (``OnlineStore``): one
    Redis round trip, the feature store's own key layout and TTL rules, no extra hop."""

    def __init__(self, store: OnlineStore, *, max_entities: int = 1024) -> None:
        self.store = store
        self.max_entities = max_entities

    @classmethod
    def from_url(cls, url: str, *, timeout: float, cluster: bool = False) -> StoreFeatureLookup:
        from sluice.feature_store.backends import RedisOnlineStore

        # the router bounds each lookup with asyncio.timeout (RouterService._enrich)
        store = RedisOnlineStore.from_url(
            url, cluster=cluster, timeout=timeout, command_timeout=False
        )
        return cls(store)

    async def lookup(self, refs: Sequence[str], entity_key: str, ids: Sequence[Any]) -> Found:
        try:
            result = await self.store.get_online(
                list(refs), {entity_key: list(ids)}, max_entities=self.max_entities
            )
        except InvalidInput as exc:  # PayloadTooLarge too
            refusal = refused(exc.status, exc.message)
            if refusal is None:
                raise
            raise refusal from None
        return {
            ref: (values, statuses)
            for ref, values, statuses in zip(
                result.feature_refs, result.values, result.statuses, strict=True
            )
        }

    async def refs_for(self, entity_key: str, features: Sequence[str]) -> dict[str, str]:
        catalog = await self.store.refresh()
        views = [
            {
                "name": view.name,
                "entity": {"join_key": view.entity.join_key},
                "features": [{"name": f.name} for f in view.features],
            }
            for view in catalog.views.values()
        ]
        return refs_from_views({"views": views}, entity_key, features)

    async def close(self) -> None:
        await self.store.aclose()
