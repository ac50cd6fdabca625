"""The durable store: an append-only log per actor, torn tails cut, compaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from transport.store import ActorStore, StoreError, replay


async def test_each_sync_appends_only_its_writes_and_a_reload_replays_them(tmp_path: Path) -> None:
    path = tmp_path / "n1" / "raft.wal"
    store = ActorStore(path)
    assert await store.load() == {}
    for i in range(100):
        store.persist(f"log/{i}", ["entry", i])
        await store.sync()
    size = path.stat().st_size
    store.persist("log/100", ["entry", 100])
    await store.sync()
    assert path.stat().st_size - size < 40  # one small record, not the whole state again
    store.persist("log/0", None)  # a delete
    await store.sync()
    store.persist("unsynced", 1)  # never synced
    fresh = ActorStore(path)
    state = await fresh.load()
    assert sorted(state) == sorted(f"log/{i}" for i in range(1, 101))
    assert state["log/100"] == ["entry", 100] and "unsynced" not in state


async def test_a_torn_tail_is_cut_and_the_next_sync_follows_the_last_good_record(tmp_path: Path) -> None:
    # Given a log whose last record was half written when the machine died
    path = tmp_path / "a.wal"
    store = ActorStore(path)
    await store.load()
    store.persist("term", 1)
    await store.sync()
    store.persist("term", 2)
    await store.sync()
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    # When it is loaded, Expect the torn sync lost and the file cut back to the good prefix
    again = ActorStore(path)
    assert await again.load() == {"term": 1}
    again.persist("vote", "n2")
    await again.sync()
    assert replay(path)[0] == {"term": 1, "vote": "n2"}


async def test_the_log_is_compacted_when_it_outgrows_its_state(tmp_path: Path) -> None:
    path = tmp_path / "a.wal"
    store = ActorStore(path, compact_bytes=2_000)
    await store.load()
    for i in range(500):
        store.persist("counter", i)  # one live key rewritten over and over
        await store.sync()
    assert store.compactions >= 1
    assert path.stat().st_size < 8_000
    assert replay(path)[0] == {"counter": 499}


async def test_garbage_that_passes_no_checksum_is_treated_as_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "a.wal"
    path.write_bytes(b"not a log at all, just bytes")
    assert await ActorStore(path).load() == {}


async def test_values_that_are_not_plain_data_are_refused_and_kept_pending(tmp_path: Path) -> None:
    store = ActorStore(tmp_path / "a.wal")
    await store.load()
    store.persist("bad", {1, 2})
    with pytest.raises(StoreError, match="not plain msgpack data"):
        await store.sync()
    assert store.sealed == {"bad": {1, 2}}
