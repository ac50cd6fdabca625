"""The SQLite job store: it answers exactly as the machine does, and keeps what it acknowledged.

Given / When / Expect. The differential tests feed the same random command sequences to a bare
``JobMachine`` and to ``SqliteJobStore`` (in batches) and compare every result; the durability
tests reopen the file after a close, after a killed process, and after a failed commit.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

import actors.jobs.machine as machine_module
from actors.jobs import DEAD, PENDING, RUNNING, SUCCESS, Job, RetryPolicy
from actors.jobs._plain import job_to_plain
from actors.jobs.machine import MAX_PAGE, JobMachine
from transport.stores import SqliteJobStore, StoreUnavailable, make_backend
from transport.stores.memory_store import MemoryJobStore

POLICY = RetryPolicy(base_delay=1.0, max_delay=8.0, jitter_factor=0.5)
IDS = [f"j{i}" for i in range(40)]
REPO = Path(__file__).resolve().parents[2]


def submit(job_id: str, now: float = 0.0, **kw: Any) -> dict[str, Any]:
    payload = kw.pop("payload", {"id": job_id, "blob": b"\x00\x01", "n": [1, 2.5, None, True]})
    return {"op": "submit", "job": job_to_plain(Job.create(job_id, "t", payload, now=now, **kw))}


def random_command(rng: random.Random, m: JobMachine, now: float, epoch: int) -> dict[str, Any]:
    """A command that makes sense against ``m`` as it is (with some nonsense mixed in)."""
    kind = rng.choices(
        ["submit", "ready", "dispatch", "report", "renew", "maintain", "cancel", "dlq", "read", "bad"],
        weights=[25, 8, 18, 20, 6, 10, 3, 4, 4, 2],
    )[0]
    running = sorted(m.running)
    if kind == "submit":
        delay = rng.choice([None, None, 5.0])
        return submit(
            rng.choice(IDS),
            now,
            priority=rng.randint(1, 10),
            max_retries=rng.randint(0, 2),
            scheduled_at=None if delay is None else now + delay,
            idempotency_key=rng.choice([None, None, "k1", "k2"]),
        )
    if kind == "ready":
        return {"op": "ready", "at": now, "limit": rng.randint(1, 5)}
    if kind == "dispatch":
        top = m.queue.top(rng.randint(1, 4))
        worker = rng.choice(["w1", "w2"])
        return {
            "op": "dispatch",
            "epoch": epoch + rng.choice([0, 0, 0, -1]),
            "at": now,
            "lease_until": now + 10.0,
            "mark": m.ops,
            "assign": [[i, worker] for i in top],
        }
    if kind in ("report", "renew") and running:
        job = m.jobs[rng.choice(running)]
        attempt = job.attempts[-1]
        if kind == "renew":
            return {
                "op": "renew",
                "epoch": epoch,
                "at": now,
                "lease_until": now + 10.0,
                "worker": attempt.worker,
                "held": [[job.id, attempt.number]],
            }
        return {
            "op": "report",
            "id": job.id,
            "attempt": attempt.number,
            "worker": attempt.worker,
            "ok": rng.random() < 0.5,
            "at": now,
            "error": "boom",
            "retryable": rng.random() < 0.9,
        }
    if kind == "maintain":
        return {"op": "maintain", "epoch": epoch, "at": now}
    if kind == "cancel":
        return {"op": "cancel", "id": rng.choice(IDS), "at": now, "reason": "test"}
    if kind == "dlq":
        return rng.choice([{"op": "dlq_requeue", "at": now}, {"op": "dlq_purge", "ids": IDS[:5]}])
    if kind == "read":
        return rng.choice([{"op": "stats"}, {"op": "list", "status": PENDING}, {"op": "get", "id": "j1"}])
    return {"op": rng.choice(["submit", "dispatch", "zap"]), "at": "bad"}


async def run_differential(
    store: SqliteJobStore, seed: int, steps: int, max_batch: int
) -> tuple[JobMachine, float]:
    """Feed one random sequence to a bare machine and the store; every result must match."""
    rng = random.Random(seed)
    ref = JobMachine(POLICY)
    now, epoch, done = 1000.0, 1, 0
    while done < steps:
        batch: list[dict[str, Any]] = []
        expected: list[dict[str, Any]] = []
        for _ in range(rng.randint(1, max_batch)):
            now += rng.choice([0.0, 0.5, 3.0, 12.0])
            cmd = random_command(rng, ref, now, epoch)
            batch.append(cmd)
            expected.append(ref.apply(ref.last_index + 1, cmd))
        got = await store.execute(batch)
        assert got == expected
        done += len(batch)
    return ref, now


async def read_all(store: Any) -> dict[str, Any]:
    results = await store.execute(
        [
            {"op": "list", "limit": MAX_PAGE},
            {"op": "dlq_list", "limit": MAX_PAGE},
            {"op": "stats"},
        ]
    )
    return {"list": results[0], "dlq": results[1], "stats": results[2]}


def ref_view(ref: JobMachine) -> dict[str, Any]:
    return {
        "list": ref.apply(0, {"op": "list", "limit": MAX_PAGE}),
        "dlq": ref.apply(0, {"op": "dlq_list", "limit": MAX_PAGE}),
        "stats": ref.apply(0, {"op": "stats"}),
    }


# ------------------------------------------------------------------ same answers as the machine


@pytest.mark.parametrize("seed", range(4))
async def test_store_answers_exactly_as_the_machine(tmp_path: Path, seed: int) -> None:
    # Given the same random command sequence, in random batches
    store = SqliteJobStore(tmp_path / "jobs.sqlite3", POLICY)
    await store.open()
    ref, now = await run_differential(store, seed, steps=400, max_batch=12)
    # Expect equal results all along (checked inside), and equal contents at the end
    assert await read_all(store) == ref_view(ref)
    await store.close()
    # When the file is reopened, Expect the same jobs, DLQ, epoch and statistics
    again = SqliteJobStore(tmp_path / "jobs.sqlite3", POLICY)
    await again.open()
    release = {"op": "ready", "at": now, "limit": MAX_PAGE}  # release delayed jobs that fell due
    assert {j[0] for j in (await again.execute([release]))[0]["jobs"]} == {
        j[0] for j in ref.apply(0, release)["jobs"]
    }
    assert await read_all(again) == ref_view(ref)
    assert again.machine.epoch == ref.epoch and again.machine.next_seq == ref.next_seq
    await again.close()


async def test_memory_store_answers_as_the_machine_too() -> None:
    store = MemoryJobStore(POLICY)
    await store.open()
    rng = random.Random(7)
    ref = JobMachine(POLICY)
    for step in range(200):
        cmd = random_command(rng, ref, 1000.0 + step, 1)
        assert await store.execute([cmd]) == [ref.apply(0, cmd)]
    await store.close()


# ------------------------------------------------------------------ durability


async def test_reopen_after_close_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "n1" / "jobs.sqlite3"
    store = SqliteJobStore(path, POLICY)
    await store.open()
    await store.execute([submit(f"a{i}", priority=1 + i % 10) for i in range(30)])
    await store.execute([{"op": "dispatch", "epoch": 4, "at": 1.0, "lease_until": 50.0, "mark": 0,
                          "assign": [["a1", "w"], ["a2", "w"]]}])  # fmt: skip
    await store.execute([{"op": "report", "id": "a1", "attempt": 1, "worker": "w", "ok": True, "at": 2.0}])
    before = await read_all(store)
    await store.close()
    # a closed store refuses work instead of answering from memory
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.execute([{"op": "stats"}])
    reopened = SqliteJobStore(path, POLICY)
    await reopened.open()
    assert await read_all(reopened) == before
    assert reopened.machine.epoch == 4
    statuses = {j["id"]: j["status"] for j in before["list"]["jobs"]}
    assert statuses["a1"] == SUCCESS and statuses["a2"] == RUNNING and statuses["a3"] == PENDING
    # the sequence continues where it stopped
    created = (await reopened.execute([submit("late")]))[0]
    assert created["created"] is True
    assert reopened.machine.seq["late"] == 31
    await reopened.close()


CHILD = textwrap.dedent(
    """
    import json, sys, trio
    from actors.jobs import Job
    from actors.jobs._plain import job_to_plain
    from transport.stores.sqlite_store import SqliteJobStore

    async def main():
        store = SqliteJobStore(sys.argv[1])
        await store.open()
        n = 0
        while True:
            ids = [f"c{n + k}" for k in range(50)]
            n += 50
            now = float(n)
            subs = [{"op": "submit", "job": job_to_plain(Job.create(i, "t", {"i": i}, now=now))} for i in ids]
            await store.execute(subs)
            print(json.dumps({"submitted": ids}), flush=True)
            assign = [[i, "w"] for i in ids[:10]]
            cmd = {"op": "dispatch", "epoch": 1, "at": now, "lease_until": now + 1e6, "mark": 0}
            cmd["assign"] = assign
            reports = [
                {"op": "report", "id": i, "attempt": 1, "worker": "w", "ok": True, "at": now}
                for i in ids[:5]
            ]
            await store.execute([{"op": "ready", "at": now, "limit": 10}, cmd])
            print(json.dumps({"dispatched": ids[:10]}), flush=True)
            await store.execute(reports)
            print(json.dumps({"succeeded": ids[:5]}), flush=True)

    trio.run(main)
    """
)


async def test_a_killed_process_keeps_every_acknowledged_command(tmp_path: Path) -> None:
    # Given a process that applies batches and prints each acknowledgement
    path = tmp_path / "jobs.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    acked: dict[str, set[str]] = {"submitted": set(), "dispatched": set(), "succeeded": set()}
    assert child.stdout is not None
    try:
        # When it is killed (SIGKILL: no close, no cleanup) in the middle of its work
        for _ in range(3 * 12):
            line = await trio.to_thread.run_sync(child.stdout.readline)
            assert line, "the child process ended early"
            for key, ids in json.loads(line).items():
                acked[key].update(ids)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    # Expect every acknowledged change in the file
    store = SqliteJobStore(path)
    await store.open()
    jobs = {j["id"]: j for j in (await store.execute([{"op": "list", "limit": MAX_PAGE}]))[0]["jobs"]}
    assert acked["submitted"] <= set(jobs)
    assert all(jobs[i]["status"] in (RUNNING, SUCCESS) for i in acked["dispatched"])
    assert all(jobs[i]["status"] == SUCCESS for i in acked["succeeded"])
    assert all(jobs[i]["payload"] == {"i": i} for i in acked["submitted"])
    await store.close()


async def test_a_failed_commit_raises_unavailable_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    store = SqliteJobStore(path, POLICY)
    await store.open()
    await store.execute([submit(f"a{i}") for i in range(20)])
    before = await read_all(store)
    conn = store._conn
    assert conn is not None
    # When the disk fills up (the file may not grow any more)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreUnavailable, match="commit failed") as failure:
        await store.execute([submit(f"big{i}", payload="x" * 2000) for i in range(50)])
    assert "\n" not in str(failure.value)
    # Expect memory not ahead of disk: the refused batch is nowhere, the acknowledged jobs all there
    assert await read_all(store) == before
    assert (await store.execute([{"op": "get", "id": "big0"}]))[0] == {"job": None}
    # When the disk has room again, Expect the same batch to go through
    conn.execute("PRAGMA max_page_count = 1073741823")
    results = await store.execute([submit(f"big{i}", payload="x" * 2000) for i in range(50)])
    assert all(r["created"] for r in results)
    await store.close()
    reopened = SqliteJobStore(path, POLICY)
    await reopened.open()
    assert (await reopened.execute([{"op": "stats"}]))[0]["total"] == 70
    await reopened.close()


async def test_a_read_only_file_refuses_writes_but_still_reads(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.sqlite3", POLICY)
    await store.open()
    await store.execute([submit("a")])
    assert store._conn is not None
    store._conn.execute("PRAGMA query_only = ON")  # as if the file had become read-only
    with pytest.raises(StoreUnavailable, match="readonly"):
        await store.execute([submit("b"), {"op": "cancel", "id": "a", "at": 1.0}])
    # reads need no commit and still work; the refused cancel did not happen
    got = await store.execute([{"op": "get", "id": "a"}, {"op": "get", "id": "b"}])
    assert got[0]["job"]["status"] == PENDING and got[1] == {"job": None}
    store._conn.execute("PRAGMA query_only = OFF")
    assert (await store.execute([submit("b")]))[0]["created"] is True
    await store.close()


async def test_a_batch_is_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    store = SqliteJobStore(path, POLICY)
    await store.open()
    # Given a batch of 100 submits, Expect one commit for all of them
    commits = store.commits
    await store.execute([submit(f"a{i}") for i in range(100)])
    assert store.commits == commits + 1
    # and none for a batch that only reads
    await store.execute([{"op": "stats"}, {"op": "ready", "at": 0.0, "limit": 5}])
    assert store.commits == commits + 1
    # When one row of a batch cannot be written (a trigger stands in for the disk error)
    assert store._conn is not None
    store._conn.execute(
        "CREATE TRIGGER poison BEFORE INSERT ON jobs WHEN NEW.id = 'p' "
        "BEGIN SELECT RAISE(ABORT, 'simulated write error'); END"
    )
    batch = [submit(f"b{i}") for i in range(30)] + [submit("p")] + [submit(f"c{i}") for i in range(30)]
    with pytest.raises(StoreUnavailable, match="simulated write error"):
        await store.execute(batch)
    # Expect none of the batch on disk, nor in memory
    rows = store._conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    assert rows == 100 and (await store.execute([{"op": "stats"}]))[0]["total"] == 100
    store._conn.execute("DROP TRIGGER poison")
    await store.close()


async def test_a_command_that_makes_the_machine_raise_is_isolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a machine bug: cancel changes a job and then raises
    def broken_cancel(self: JobMachine, cmd: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs[cmd["id"]]
        self.queue.remove(job.id)
        raise RuntimeError("bug")

    store = SqliteJobStore(tmp_path / "jobs.sqlite3", POLICY)
    await store.open()
    await store.execute([submit("old")])
    monkeypatch.setitem(machine_module._HANDLERS, "cancel", broken_cancel)
    # When it runs in the middle of a batch
    results = await store.execute([submit("a"), {"op": "cancel", "id": "old", "at": 1.0}, submit("b")])
    # Expect only that command refused, the others applied, and the machine as it was
    assert results[0]["created"] and results[2]["created"]
    assert results[1] == {"error": "cancel: internal store error (RuntimeError: bug)"}
    stats = (await store.execute([{"op": "stats"}]))[0]
    assert stats["total"] == 3 and stats["ready"] == 3
    await store.close()


async def test_a_payload_that_is_not_plain_data_is_refused(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.sqlite3", POLICY)
    await store.open()
    results = await store.execute([submit("x", payload={1, 2}), submit("y")])
    assert "not plain data" in results[0]["error"] and results[1]["created"]
    await store.close()


async def test_a_second_process_cannot_open_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    first = SqliteJobStore(path)
    await first.open()
    second = SqliteJobStore(path, busy_timeout=0.05)
    with pytest.raises(StoreUnavailable, match="in use by another process"):
        await second.open()
    await first.close()
    await second.open()  # free once the first closed it
    await second.close()


async def test_dead_jobs_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    store = SqliteJobStore(path, POLICY)
    await store.open()
    await store.execute([submit("d", max_retries=0)])
    await store.execute(
        [
            {"op": "dispatch", "epoch": 1, "at": 1.0, "lease_until": 2.0, "mark": 0, "assign": [["d", "w"]]},
            {"op": "maintain", "epoch": 1, "at": 3.0},
        ]
    )
    await store.close()
    again = SqliteJobStore(path, POLICY)
    await again.open()
    dlq = (await again.execute([{"op": "dlq_list"}]))[0]
    assert [j["id"] for j in dlq["jobs"]] == ["d"] and dlq["jobs"][0]["status"] == DEAD
    await again.close()


# ------------------------------------------------------------------ make_backend


def test_make_backend_builds_each_kind_and_refuses_the_rest(tmp_path: Path) -> None:
    assert isinstance(make_backend("memory"), MemoryJobStore)
    sqlite = make_backend("sqlite", data_dir=tmp_path, node_id="n/1")
    assert isinstance(sqlite, SqliteJobStore)
    assert sqlite.path == tmp_path / "n%2F1" / "jobs.sqlite3"
    with pytest.raises(ValueError, match="data directory"):
        make_backend("sqlite")
    with pytest.raises(ValueError, match="not a backend"):
        make_backend("raft")
    with pytest.raises(ValueError, match="use one of memory, sqlite, redis, raft"):
        make_backend("mongo")
