"""The routing-table watcher against an in-memory store: a table Redis lost is served from
memory and put back, above every revision seen; a table emptied by the writer is not."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from sluice.core.routes import RESEED_GAP, Route, RouteWriter, parse_route
from sluice.router.watch import TableWatcher
from tests.unit.router.fakes import FakeRoutingStore

V1 = {"upstreams": {"v1": "http://a.test:8000"}, "stable": "v1"}
V2 = {"upstreams": {"v1": "http://a.test:8000", "v2": "http://b.test:8000"}, "stable": "v2"}


class Applied:
    """What the router would be serving: the last table the watcher applied."""

    def __init__(self) -> None:
        self.table: dict[str, Route] = {}
        self.losses: list[bool] = []

    def __call__(self, routes: Mapping[str, Route]) -> None:
        self.table = dict(routes)


def watcher(
    store: FakeRoutingStore, seeds: Mapping[str, Route] | None = None
) -> tuple[TableWatcher, Applied]:
    applied = Applied()
    w = TableWatcher(store, seeds or {}, 0.5, applied, on_lost=applied.losses.append)
    return w, applied


def test_a_lost_table_keeps_serving_is_reseeded_and_revisions_grow() -> None:
    async def scenario() -> None:
        store = FakeRoutingStore()
        writer = RouteWriter(store)
        seeds = {"declared": parse_route("declared", V1)}
        w, applied = watcher(store, seeds)
        await store.seed(seeds)
        await writer.put("churn", V1)
        changed = await writer.put("churn", V2)  # an operator's change, revision 2
        await writer.put("gone", V1)
        await writer.delete("gone")  # revision 2: the highest any model reached
        await w.reload()
        assert applied.table["churn"].stable == "v2"

        store.lose()  # Redis restarted empty
        await w.reload()

        # the operator's version of churn is back, not the settings' or nothing
        assert applied.table["churn"].stable == "v2"
        assert set(applied.table) == {"churn", "declared"}
        assert set(store.routes) == {"churn", "declared"}
        assert store.routes["churn"].revision == changed.revision + RESEED_GAP
        assert applied.losses == [False, True]
        assert w.loss is not None and w.loss.reseeded
        # a stale if_revision from before the loss no longer matches; new ones are higher
        assert (await writer.put("churn", V1)).revision == changed.revision + RESEED_GAP + 1

    asyncio.run(scenario())


def test_routes_deleted_through_the_writer_are_a_change_not_a_loss() -> None:
    async def scenario() -> None:
        store = FakeRoutingStore()
        writer = RouteWriter(store)
        w, applied = watcher(store)
        await writer.put("churn", V1)
        await w.reload()
        await writer.delete("churn")
        await w.reload()
        assert applied.table == {}
        assert store.routes == {}
        assert applied.losses == []
        assert w.loss is None

    asyncio.run(scenario())


def test_a_table_recreated_by_another_writer_gets_the_missing_routes_back() -> None:
    async def scenario() -> None:
        store = FakeRoutingStore()
        writer = RouteWriter(store)
        w, applied = watcher(store)
        await writer.put("churn", V1)
        await writer.put("fraud", V1)
        await w.reload()
        store.lose()
        await writer.put("fraud", V2)  # e.g. the rollout controller, before we looked
        await w.reload()
        assert set(applied.table) == {"churn", "fraud"}
        assert applied.table["fraud"].stable == "v2"  # the newer write wins over memory
        assert min(r.revision for r in applied.table.values()) > 1
        assert applied.losses == [False, True]

    asyncio.run(scenario())


def test_a_table_gone_back_in_time_is_a_loss_and_the_later_routes_come_back() -> None:
    """Redis lost its last writes but kept the table (an AOF fsynced every second, a
    failover to a lagging replica): same epoch, lower revisions."""

    async def scenario() -> None:
        store = FakeRoutingStore()
        writer = RouteWriter(store)
        seeds = {"declared": parse_route("declared", V1)}
        w, applied = watcher(store, seeds)
        await store.seed(seeds)
        await writer.put("churn", V1)
        await w.reload()
        kept = (dict(store.routes), dict(store.revisions))
        changed = await writer.put("churn", V2)  # read by the router, then lost
        await writer.put("fresh", V1)  # likewise
        await w.reload()
        epoch = store.epoch

        store.rewind(kept)
        await w.reload()

        assert store.epoch == epoch  # the same life of the table, put forward again
        assert applied.table["churn"].stable == "v2"  # what the router read wins
        assert set(applied.table) == set(store.routes) == {"churn", "fresh", "declared"}
        assert store.routes["churn"].stable == "v2"
        assert store.revisions["churn"] == changed.revision + RESEED_GAP
        assert applied.losses == [False, True]
        assert w.loss is not None and w.loss.reseeded
        # the revision the lost write had cannot be handed out, nor matched, again
        assert (await writer.put("churn", V1)).revision == changed.revision + RESEED_GAP + 1

    asyncio.run(scenario())


def test_a_route_changed_by_another_writer_after_a_rewind_is_kept() -> None:
    """Within one life, a route stored above what this router read is newer: kept."""

    async def scenario() -> None:
        store = FakeRoutingStore()
        writer = RouteWriter(store)
        w, applied = watcher(store)
        await writer.put("churn", V1)
        await writer.put("fraud", V1)
        await writer.put("fraud", V1)
        await w.reload()
        kept = (dict(store.routes), dict(store.revisions))
        await writer.put("fraud", V1)  # revision 3, read, then lost
        await w.reload()
        store.rewind(kept)
        await writer.put("churn", V2)  # revision 2: above what the router read of churn
        await w.reload()
        assert applied.table["churn"].stable == "v2"
        assert applied.losses == [False, True]

    asyncio.run(scenario())
