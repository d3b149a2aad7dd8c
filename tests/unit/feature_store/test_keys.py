"""The online key layout and entity sharding (keys.py)."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from sluice.feature_store.keys import (
    REGISTRY_KEYS,
    data_key,
    effective_watermark,
    key_prefix,
    parse_shard,
    shard_of,
    watermark_field,
)


def test_a_data_key_names_view_schema_and_entity() -> None:
    key = data_key(key_prefix("customer_profile", "1a2b3c4d"), "C000001")
    assert key == "sluice:fs:customer_profile:1a2b3c4d:{C000001}"


@pytest.mark.parametrize("entity", ["C000001", "a}b", "{x}", "x:y", 42])
def test_one_entitys_views_share_a_cluster_slot(entity: str | int) -> None:
    slots = {
        key_slot(data_key(key_prefix(view, "00000000"), entity).encode())
        for view in ("customer_profile", "customer_activity", "v2")
    }
    assert len(slots) == 1


def test_different_entities_spread_over_slots() -> None:
    prefix = key_prefix("v", "00000000")
    slots = {key_slot(data_key(prefix, f"C{i:06d}").encode()) for i in range(200)}
    assert len(slots) > 150


def test_registry_keys_share_one_slot() -> None:
    assert len({key_slot(k.encode()) for k in REGISTRY_KEYS}) == 1


def test_shards_partition_the_entities() -> None:
    entities = [f"C{i:06d}" for i in range(3000)]
    per_shard = [[e for e in entities if shard_of(e, 3) == i] for i in range(3)]
    assert sorted(e for shard in per_shard for e in shard) == entities
    assert all(800 < len(s) < 1200 for s in per_shard)


def test_shard_of_is_stable_across_processes() -> None:
    # CRC-32, not hash(): these values must never change, or shards would move entities
    assert [shard_of(f"C{i:06d}", 8) for i in range(1, 6)] == [1, 3, 5, 6, 0]
    assert shard_of(12345, 8) == shard_of("12345", 8)


@pytest.mark.parametrize("spec", ["3", "3/3", "-1/2", "a/b", "0/0", "1/"])
def test_bad_shard_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        parse_shard(spec)


def test_watermark_fields_and_their_effective_value() -> None:
    assert watermark_field("v", (0, 1)) == "v"
    assert effective_watermark("v", {}) is None
    marks = {"v|0/3": 30.0, "v|1/3": 10.0, "v|2/3": 20.0, "other": 99.0}
    assert effective_watermark("v", marks) == 10.0
    assert effective_watermark("v", {**marks, "v": 25.0}) == 25.0
