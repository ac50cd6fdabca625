"""The Redis job store: it answers exactly as the machine does, and keeps what it acknowledged.

Given / When / Expect. The differential tests feed the same command sequences (hand-written
lifecycles, seeded random walks and hypothesis-drawn scripts) to a bare ``JobMachine`` and to
``RedisJobStore`` in batches and compare every result, retry times included: the store
reproduces the machine's jitter exactly. The durability tests crash the private
``redis-server`` (``appendfsync always``) in the middle of a run.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from troupe_testkit.redis_server import RedisServer, redis_server_fixture

from actors.jobs import DEAD, FIXED, PENDING, RETRYING, RUNNING, Job, RetryPolicy
from actors.jobs._plain import job_to_plain
from actors.jobs.machine import MAX_PAGE, JobMachine
from transport.redis_conn import RedisConn
from transport.stores import StoreUnavailable, make_backend
from transport.stores.redis_store import RedisJobStore

redis_server = redis_server_fixture()

POLICY = RetryPolicy(base_delay=1.0, max_delay=8.0, jitter_factor=0.5)
IDS = [f"j{i}" for i in range(20)]
T0 = 1_700_000_000.123456  # a UNIX time with microseconds: times must round-trip exactly


def submit(job_id: str, now: float = T0, **kw: Any) -> dict[str, Any]:
    payload = kw.pop("payload", {"id": job_id, "blob": b"\x00\x01", "n": [1, 2.5, None, True], "e": []})
    jtype = kw.pop("type", "t")
    return {"op": "submit", "job": job_to_plain(Job.create(job_id, jtype, payload, now=now, **kw))}


@asynccontextmanager
async def fresh_store(
    server: RedisServer, policy: RetryPolicy = POLICY, **kw: Any
) -> AsyncIterator[RedisJobStore]:
    """A store on an emptied database (each test starts from nothing)."""
    conn = RedisConn(port=server.port)
    await conn.execute("FLUSHDB")
    await conn.aclose()
    store = RedisJobStore(port=server.port, policy=policy, **kw)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def check_same(store: RedisJobStore, ref: JobMachine, batch: list[Any]) -> list[dict[str, Any]]:
    """Apply ``batch`` to both; every result must be equal."""
    expected = [ref.apply(ref.last_index + 1, cmd) for cmd in batch]
    got = await store.execute(batch)
    for cmd, want, have in zip(batch, expected, got):
        assert have == want, f"command {cmd!r}"
    return got


def views() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"op": "list", "limit": MAX_PAGE},
        {"op": "dlq_list", "limit": MAX_PAGE},
        {"op": "stats"},
    ]
    out += [{"op": "list", "status": s, "limit": MAX_PAGE} for s in (PENDING, RUNNING, RETRYING, DEAD)]
    out += [{"op": "list", "status": PENDING, "type": "u", "limit": 3, "offset": 1}]
    return out


# ------------------------------------------------------------------ hand-written lifecycles


def lifecycle_script() -> list[list[Any]]:
    """Batches covering every command, the retry paths, fencing, and malformed input."""
    t = T0
    return [
        [
            submit("a", t, priority=5),
            submit("b", t, priority=8, type="u"),
            submit("c", t, priority=5, scheduled_at=t + 5.5),
            submit("d", t, priority=5, idempotency_key="k"),
            submit("e", t, priority=5, idempotency_key="k"),  # same key: returns d
            submit("f", t, priority=2, max_retries=0, type="u"),
            submit("a", t + 1),  # same id: returns the first a
        ],
        [{"op": "ready", "at": t + 1, "limit": 10}, {"op": "stats"}],
        [
            {
                "op": "dispatch",
                "epoch": 1,
                "at": t + 1.5,
                "lease_until": t + 31.5,
                "mark": 8,
                "assign": [["b", "w1"], ["a", "w2"], ["c", "w1"], ["zz", "w1"], ["f", "w3"]],
            },
        ],
        [  # a resent dispatch answers the same jobs
            {
                "op": "dispatch",
                "epoch": 1,
                "at": t + 1.5,
                "lease_until": t + 31.5,
                "mark": 8,
                "assign": [["b", "w1"], ["a", "w2"]],
            },
            {"op": "report", "id": "b", "attempt": 1, "worker": "w1", "ok": True, "at": t + 2.25},
            {"op": "report", "id": "b", "attempt": 1, "worker": "w1", "ok": True, "at": t + 2.5},
            {"op": "report", "id": "b", "attempt": 1, "worker": "w1", "ok": False, "at": t + 2.5},
            {"op": "report", "id": "a", "attempt": 1, "worker": "w9", "ok": True, "at": t + 2.5},
            {
                "op": "report",
                "id": "a",
                "attempt": 1,
                "worker": "w2",
                "ok": False,
                "error": "boom",
                "at": t + 3,
            },
            {"op": "report", "id": "f", "attempt": 1, "worker": "w3", "ok": False, "at": t + 3},
            {"op": "report", "id": "nope", "attempt": 1, "worker": "w3", "ok": True, "at": t + 3},
        ],
        [
            {
                "op": "renew",
                "epoch": 1,
                "at": t + 3,
                "lease_until": t + 40,
                "worker": "w1",
                "held": [["a", 1], ["b", 1], [7, 1], ["zz", True]],
            },
            {"op": "maintain", "epoch": 0, "at": t + 9},  # fenced: a deposed scheduler
            {"op": "dispatch", "epoch": 0, "at": t + 9, "lease_until": t + 20, "mark": 0, "assign": []},
            {"op": "renew", "epoch": 0, "at": t + 9, "lease_until": t + 20, "worker": "w", "held": []},
            {"op": "maintain", "epoch": 2, "at": t + 9},  # a retries, c is promoted
            {"op": "ready", "at": t + 9, "limit": 10},
            {"op": "list", "status": RETRYING},
        ],
        [
            {
                "op": "dispatch",
                "epoch": 2,
                "at": t + 10,
                "lease_until": t + 12,
                "mark": 20,
                "assign": [["a", "w1"], ["c", "w2"]],
            },
            {
                "op": "renew",
                "epoch": 2,
                "at": t + 11,
                "lease_until": t + 11.5,
                "worker": "w2",
                "held": [["c", 1.0]],
            },  # an earlier lease does not shorten the current one
            {"op": "maintain", "epoch": 2, "at": t + 13},  # both leases expire: c retries, a too
            {"op": "maintain", "epoch": 2, "at": t + 60},
            {"op": "cancel", "id": "c", "at": t + 61, "reason": "user"},
            {"op": "cancel", "id": "c", "at": t + 61},
            {"op": "cancel", "id": "zz", "at": "bad"},
            {"op": "cancel", "id": "d", "at": "bad"},
            {"op": "dlq_list"},
            {"op": "dlq_requeue", "at": t + 62, "ids": ["f", "a"]},
            {"op": "get", "id": "f"},
        ],
        [
            {"op": "ready", "at": t + 62, "limit": 10},
            {
                "op": "dispatch",
                "epoch": 3,
                "at": t + 63,
                "lease_until": t + 93,
                "mark": 30,
                "assign": [["f", "w1"], ["d", "w1"], ["a", "w2"]],
            },
            {
                "op": "report",
                "id": "f",
                "attempt": 2,
                "worker": "w1",
                "ok": False,
                "at": t + 64,
                "error": "again",
                "retryable": False,
            },
            {"op": "report", "id": "d", "attempt": 1, "worker": "w1", "ok": False, "at": t + 64, "error": 5},
            {
                "op": "report",
                "id": "d",
                "attempt": 1,
                "worker": "w1",
                "ok": False,
                "at": t + 64,
                "error": "x",
                "retryable": False,
            },
            {"op": "cancel", "id": "a", "at": t + 65},
        ],
        [  # malformed and nonsense commands
            5,
            {"op": "zap"},
            {"op": "submit", "job": {"id": "x"}},
            {"op": "submit", "job": {**submit("y")["job"], "status": RUNNING}},
            {"op": "get"},
            {"op": "list", "status": "NOPE"},
            {"op": "list", "limit": 0},
            {"op": "ready", "at": t, "limit": MAX_PAGE + 1},
            {"op": "dispatch", "epoch": "x"},
            {"op": "dispatch", "epoch": 9, "at": None},  # raises the epoch, then refuses
            {"op": "dispatch", "epoch": 1, "at": None},  # fenced before its fields are read
            {"op": "dispatch", "epoch": 9, "at": t, "lease_until": t, "mark": 0, "assign": [["b", "w"], 3]},
            {"op": "renew", "epoch": 9, "at": t, "lease_until": t, "worker": "w", "held": [["b", 1], [1]]},
            {"op": "renew", "epoch": 9, "at": t, "lease_until": t, "worker": "", "held": []},
            {"op": "report", "id": "b", "attempt": True, "worker": "w", "ok": True, "at": t},
            {"op": "report", "id": "b", "attempt": 1, "worker": "w", "ok": "yes", "at": t},
            {"op": "maintain", "epoch": 9},
            {"op": "dlq_requeue", "at": t, "ids": "f"},
            {"op": "dlq_purge", "ids": [1]},
            {"op": "stats"},
        ],
        [
            {"op": "list", "type": "u"},
            {"op": "list", "type": ""},
            {"op": "list", "status": PENDING, "type": "t", "limit": 1, "offset": 1},
            {"op": "list", "limit": 2, "offset": 10**30},
            {"op": "dlq_purge"},
            {"op": "submit", "job": submit("e2", t, idempotency_key="k")["job"]},
            {"op": "stats"},
        ],
    ]


@pytest.mark.parametrize("functions", [True, False], ids=["fcall", "evalsha"])
async def test_every_command_answers_exactly_as_the_machine(
    redis_server: RedisServer, functions: bool
) -> None:
    # The same code runs as a Redis Functions library (FCALL) and as a script (EVALSHA)
    ref = JobMachine(POLICY)
    async with fresh_store(redis_server, functions=functions) as store:
        seen = set()
        for batch in lifecycle_script():
            for result in await check_same(store, ref, batch):
                seen.add(result.get("status"))
        await check_same(store, ref, views())
        assert {RETRYING, DEAD, "FAILED", "SUCCESS"} <= seen  # the script took every report path


async def test_where_the_store_differs_from_the_machine_on_purpose(redis_server: RedisServer) -> None:
    async with fresh_store(redis_server) as store:
        # A payload msgpack cannot carry is refused (the machine keeps any object in memory)
        (bad,) = await store.execute([{"op": "submit", "job": {**submit("z")["job"], "payload": {1, 2}}}])
        assert bad["error"].startswith("submit: job 'z': payload is not plain data")
        # An id listed twice is requeued and purged once (the machine raises)
        dispatch = {"op": "dispatch", "epoch": 1, "at": T0, "lease_until": T0 + 1, "mark": 0}
        await store.execute([submit("x", max_retries=0), {**dispatch, "assign": [["x", "w"]]}])
        await store.execute([{"op": "maintain", "epoch": 1, "at": T0 + 2}])
        assert await store.execute([{"op": "dlq_requeue", "at": T0 + 3, "ids": ["x", "x"]}]) == [
            {"requeued": ["x"]}
        ]
        await store.execute([{**dispatch, "at": T0 + 4, "lease_until": T0 + 5, "assign": [["x", "w"]]}])
        await store.execute([{"op": "maintain", "epoch": 1, "at": T0 + 6}])
        assert await store.execute([{"op": "dlq_purge", "ids": ["x", "x"]}]) == [{"purged": 1, "ids": ["x"]}]


async def test_the_fast_lane_dispatches_only_the_head_of_the_queue(redis_server: RedisServer) -> None:
    ref = JobMachine(POLICY)

    def lane(epoch: int, at: float = T0) -> dict[str, Any]:
        return {"epoch": epoch, "worker": "w1", "at": at, "lease_until": at + 10}

    async with fresh_store(redis_server) as store:
        first = await check_same(store, ref, [{**submit("a", priority=5), "lane": lane(4097)}])
        assert first[0]["lane"] == "dispatched" and first[0]["job"]["status"] == RUNNING
        assert first[0]["job"]["attempts"][0]["worker"] == "w1" and first[0]["left_best"] is None
        # b waits (no lane); c, as urgent as b but younger, queues behind it; d is more urgent
        got = await check_same(
            store,
            ref,
            [
                submit("b", priority=7),
                {**submit("c", priority=7), "lane": lane(4097)},
                {**submit("d", priority=9), "lane": lane(4097)},
                {**submit("e", priority=9), "lane": lane(4096)},  # a deposed leader's token
                {**submit("f", priority=9, scheduled_at=T0 + 60), "lane": lane(4097)},  # delayed
                {**submit("a", priority=9), "lane": lane(4097)},  # known: no lane at all
                {**submit("g"), "lane": {"epoch": "x", "worker": "w1", "at": T0, "lease_until": T0}},
            ],
        )
        assert [r.get("lane") for r in got[1:6]] == ["queued", "dispatched", "fenced", "queued", None]
        assert got[2]["left_best"] == 7 and got[3]["epoch"] == 4097
        assert got[6]["error"].startswith("submit: epoch must be an integer")
        await check_same(store, ref, views())


async def test_chunks_smaller_than_a_batch_answer_the_same(redis_server: RedisServer) -> None:
    ref = JobMachine(POLICY)
    async with fresh_store(redis_server, chunk=3) as store:
        await check_same(store, ref, [cmd for batch in lifecycle_script() for cmd in batch])
        await check_same(store, ref, views())


# ------------------------------------------------------------------ random walks


KINDS = ["submit", "ready", "dispatch", "report", "renew", "maintain", "cancel", "dlq", "read", "bad"]


def random_command(rng: random.Random, m: JobMachine, now: float, epoch: int, kind: str | None = None) -> Any:
    """A command of ``kind`` (random if None) that makes sense against ``m`` as it is.

    A report or renew with nothing running becomes a dispatch; every ``bad`` one is nonsense.
    """
    if kind is None:
        kind = rng.choices(KINDS, weights=[22, 8, 18, 20, 6, 10, 3, 6, 5, 2])[0]
    running = sorted(m.running)
    if kind == "submit":
        delay = rng.choice([None, None, 2.5, 7.0])
        cmd = submit(
            rng.choice(IDS),
            now,
            priority=rng.randint(1, 10),
            max_retries=rng.randint(0, 2),
            scheduled_at=None if delay is None else now + delay,
            idempotency_key=rng.choice([None, None, "k1", "k2"]),
            type=rng.choice(["t", "u"]),
        )
        if rng.random() < 0.5:  # through the fast lane, sometimes with a stale token
            cmd["lane"] = {
                "epoch": epoch + rng.choice([0, 0, 0, 1, -1]),
                "worker": rng.choice(["w1", "w2"]),
                "at": now,
                "lease_until": now + rng.choice([3.0, 10.0]),
            }
        return cmd
    if kind == "ready":
        return {"op": "ready", "at": now, "limit": rng.randint(1, 5)}
    if kind == "report" and rng.random() < 0.2:
        # a resent report of a closed attempt: a duplicate if it says what happened
        closed = [j for j in m.jobs.values() if j.attempts and not j.attempts[-1].is_open]
        if closed:
            job = rng.choice(sorted(closed, key=lambda j: j.id))
            last = job.attempts[-1]
            return {"op": "report", "id": job.id, "attempt": last.number, "worker": last.worker,
                    "ok": last.outcome == "SUCCESS", "at": now, "error": "again"}  # fmt: skip
    if kind in ("report", "renew") and not running:
        kind = "dispatch"
    if kind == "dispatch":
        top = m.queue.top(rng.randint(1, 4))
        extra = [rng.choice(IDS)] if rng.random() < 0.2 else []
        return {
            "op": "dispatch",
            "epoch": epoch + rng.choice([0, 0, 0, 1, -1]),
            "at": now,
            "lease_until": now + rng.choice([3.0, 10.0]),
            "mark": m.ops - rng.randint(0, 3),
            "assign": [[i, rng.choice(["w1", "w2"])] for i in top + extra],
        }
    if kind in ("report", "renew"):
        job = m.jobs[rng.choice(running)]
        attempt = job.attempts[-1]
        stale = rng.random() < 0.15
        if kind == "renew":
            return {
                "op": "renew",
                "epoch": epoch,
                "at": now,
                "lease_until": now + rng.choice([2.0, 10.0]),
                "worker": "w3" if stale else attempt.worker,
                "held": [[job.id, attempt.number], [rng.choice(IDS), 1]],
            }
        return {
            "op": "report",
            "id": job.id,
            "attempt": attempt.number - (1 if stale else 0),
            "worker": attempt.worker,
            "ok": rng.random() < 0.4,
            "at": now,
            "error": rng.choice(["boom", None, ""]),
            "retryable": rng.random() < 0.85,
        }
    if kind == "maintain":
        return {"op": "maintain", "epoch": epoch + rng.choice([0, 0, 0, -1]), "at": now}
    if kind == "cancel":
        return {"op": "cancel", "id": rng.choice(IDS), "at": now, "reason": rng.choice(["", "test"])}
    if kind == "dlq":
        ids = rng.choice([None, rng.sample(IDS, 3)])
        return rng.choice(
            [
                {"op": "dlq_requeue", "at": now, "ids": ids},
                {"op": "dlq_purge", "ids": ids},
                {"op": "dlq_list", "limit": rng.randint(1, 4), "offset": rng.randint(0, 2)},
            ]
        )
    if kind == "read":
        return rng.choice(
            [
                {"op": "stats"},
                {"op": "get", "id": rng.choice(IDS)},
                {"op": "list", "status": rng.choice([None, PENDING, RUNNING, RETRYING, DEAD])},
                {"op": "list", "type": "u", "limit": 3, "offset": rng.randint(0, 2)},
                {"op": "list", "status": rng.choice([PENDING, RUNNING]), "type": "t"},
            ]
        )
    return rng.choice([{"op": rng.choice(["submit", "dispatch", "zap", "report"]), "at": "bad"}, 7])


@pytest.mark.parametrize("seed", range(4))
async def test_random_walks_answer_exactly_as_the_machine(redis_server: RedisServer, seed: int) -> None:
    # Long seeded walks reach the deep states (retries, the DLQ, requeues) short scripts rarely do;
    # odd seeds run the code by EVALSHA, even ones by FCALL
    rng = random.Random(seed)
    ref = JobMachine(POLICY)
    twin = JobMachine(POLICY)  # builds the commands; ref checks the store's answers
    async with fresh_store(redis_server, functions=seed % 2 == 0) as store:
        now, epoch = T0, 1
        for _ in range(80):
            batch = []
            for _ in range(rng.randint(1, 12)):
                now += rng.choice([0.0, 0.5, 1.25, 3.0, 12.0])
                cmd = random_command(rng, twin, now, epoch)
                twin.apply(twin.last_index + 1, cmd)
                epoch = max(epoch, twin.epoch)
                batch.append(cmd)
            await check_same(store, ref, batch)
        await check_same(store, ref, views())
        assert ref.next_seq > 5


# ------------------------------------------------------------------ hypothesis scripts

step = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, 2**32),
    st.sampled_from([0.0, 0.0, 0.25, 1.0, 2.5, 9.0]),
    st.booleans(),
)
POLICIES = [
    POLICY,
    RetryPolicy(kind=FIXED, base_delay=0.0, jitter_factor=0.0),
    RetryPolicy(jitter_factor=1.0),
]


@settings(max_examples=40)
@given(
    script=st.lists(step, min_size=1, max_size=40),
    policy=st.sampled_from(POLICIES),
    chunk=st.sampled_from([1, 4, 256]),
)
async def test_hypothesis_scripts_answer_exactly_as_the_machine(
    redis_server: RedisServer, script: list[tuple[str, int, float, bool]], policy: RetryPolicy, chunk: int
) -> None:
    # Given a drawn script: each step is a command of the drawn kind made from the machine's
    # state at that point (a twin runs ahead to make them), and a step with the flag set
    # closes the batch sent to the store
    ref = JobMachine(policy)
    twin = JobMachine(policy)
    async with fresh_store(redis_server, policy, chunk=chunk) as store:
        now, epoch = T0, 1
        batch: list[Any] = []
        for kind, seed, advance, cut in script:
            now += advance
            cmd = random_command(random.Random(seed), twin, now, epoch, kind)
            twin.apply(twin.last_index + 1, cmd)
            epoch = max(epoch, twin.epoch)
            batch.append(cmd)
            if cut:
                await check_same(store, ref, batch)
                batch = []
        # Expect equal answers all along, and equal contents at the end
        await check_same(store, ref, [*batch, *views()])


# ------------------------------------------------------------------ queue semantics


async def test_priority_then_fifo_and_delayed_promotion(redis_server: RedisServer) -> None:
    async with fresh_store(redis_server) as store:
        t = T0
        # Given jobs of mixed priorities, and delayed ones due at the same time
        await store.execute([submit(f"p{i}", t, priority=[5, 8, 5, 2, 8][i]) for i in range(5)])
        await store.execute([submit("late1", t, priority=8, scheduled_at=t + 10)])
        await store.execute([submit("late2", t, priority=8, scheduled_at=t + 10)])
        (ready,) = await store.execute([{"op": "ready", "at": t + 1, "limit": 10}])
        # Expect priority first, then submission order; delayed jobs wait
        assert [j[0] for j in ready["jobs"]] == ["p1", "p4", "p0", "p2", "p3"]
        assert ready["jobs"][0] == ["p1", 8, "t"]
        # When their time comes, Expect them behind the jobs already ready at their priority
        (ready,) = await store.execute([{"op": "ready", "at": t + 10, "limit": 10}])
        assert [j[0] for j in ready["jobs"]] == ["p1", "p4", "late1", "late2", "p0", "p2", "p3"]
        # dispatching behind the best leaves left_best to prove the order was kept
        (d,) = await store.execute(
            [{"op": "dispatch", "epoch": 1, "at": t + 10, "lease_until": t + 40, "mark": ready["mark"],
              "assign": [["p0", "w"]]}]
        )  # fmt: skip
        assert [j["id"] for j in d["jobs"]] == ["p0"] and d["left_best"] == 8


async def test_fencing_refuses_a_deposed_scheduler(redis_server: RedisServer) -> None:
    async with fresh_store(redis_server) as store:
        t = T0
        await store.execute([submit("a", t), submit("b", t)])
        (new,) = await store.execute(
            [{"op": "dispatch", "epoch": 5, "at": t, "lease_until": t + 9, "mark": 0, "assign": [["a", "w"]]}]
        )
        assert not new["fenced"] and new["epoch"] == 5
        old = await store.execute(
            [
                {
                    "op": "dispatch",
                    "epoch": 4,
                    "at": t,
                    "lease_until": t + 9,
                    "mark": 0,
                    "assign": [["b", "w"]],
                },
                {
                    "op": "renew",
                    "epoch": 4,
                    "at": t,
                    "lease_until": t + 99,
                    "worker": "w",
                    "held": [["a", 1]],
                },
                {"op": "maintain", "epoch": 4, "at": t + 50},
                {"op": "get", "id": "b"},
                {"op": "stats"},
            ]
        )
        assert [r["fenced"] for r in old[:3]] == [True, True, True]
        assert all(r["epoch"] == 5 for r in old[:3])
        assert old[3]["job"]["status"] == PENDING and old[4]["epoch"] == 5  # nothing changed


async def test_idempotency_key_returns_the_first_job_until_it_is_purged(redis_server: RedisServer) -> None:
    async with fresh_store(redis_server, RetryPolicy(jitter_factor=0.0)) as store:
        t = T0
        first, again = await store.execute(
            [
                submit("one", t, idempotency_key="order-7", max_retries=0),
                submit("two", t, idempotency_key="order-7"),
            ]
        )
        assert first["created"] and not again["created"] and again["job"]["id"] == "one"
        await store.execute(
            [
                {
                    "op": "dispatch",
                    "epoch": 1,
                    "at": t,
                    "lease_until": t + 5,
                    "mark": 0,
                    "assign": [["one", "w"]],
                }
            ]
        )
        await store.execute(
            [{"op": "report", "id": "one", "attempt": 1, "worker": "w", "ok": False, "at": t + 1}]
        )
        (dlq,) = await store.execute([{"op": "dlq_list"}])
        assert [j["id"] for j in dlq["jobs"]] == ["one"] and dlq["jobs"][0]["status"] == DEAD
        (purged,) = await store.execute([{"op": "dlq_purge", "ids": ["one", "ghost"]}])
        assert purged == {"purged": 1, "ids": ["one"]}
        (third,) = await store.execute([submit("three", t, idempotency_key="order-7")])
        assert third["created"] and third["job"]["id"] == "three"


async def test_dlq_requeue_grants_a_fresh_budget(redis_server: RedisServer) -> None:
    async with fresh_store(redis_server) as store:
        t = T0
        await store.execute([submit("d", t, max_retries=0)])
        for attempt in (1, 2):
            dispatch = {"op": "dispatch", "epoch": 1, "at": t, "lease_until": t + 1, "mark": 0}
            await store.execute(
                [
                    {"op": "ready", "at": t, "limit": 1},
                    {**dispatch, "assign": [["d", "w"]]},
                    {"op": "maintain", "epoch": 1, "at": t + 2},  # the lease runs out: no retries left
                ]
            )
            (dlq,) = await store.execute([{"op": "dlq_list"}])
            job = dlq["jobs"][0]
            assert job["status"] == DEAD and len(job["attempts"]) == attempt
            assert job["attempts"][-1]["outcome"] == "LEASE_EXPIRED"
            (requeued,) = await store.execute([{"op": "dlq_requeue", "at": t + 3}])
            assert requeued == {"requeued": ["d"]}
            t += 10
        (got,) = await store.execute([{"op": "get", "id": "d"}])
        assert got["job"]["requeue_count"] == 2 and got["job"]["attempts_at_requeue"] == 2


async def test_retry_times_are_the_machines_to_the_last_bit(redis_server: RedisServer) -> None:
    # Given many jobs failing at odd times, Expect the machine's jittered scheduled_at exactly
    ref = JobMachine(POLICY)
    async with fresh_store(redis_server) as store:
        ids = [f"retry-{i}-é" for i in range(60)]
        await check_same(store, ref, [submit(i, T0, max_retries=5) for i in ids])
        t = T0
        for _ in range(3):
            t += 100.123
            await check_same(store, ref, [{"op": "maintain", "epoch": 1, "at": t}])
            assign = [[i, "w"] for i in ids]
            await check_same(
                store,
                ref,
                [{"op": "dispatch", "epoch": 1, "at": t, "lease_until": t + 1, "mark": 0, "assign": assign}],
            )
            half = [
                {"op": "report", "id": i, "attempt": len(ref.jobs[i].attempts), "worker": "w", "ok": False}
                for i in ids[::2]
            ]
            half = [{**cmd, "at": t + 0.37} for cmd in half]
            await check_same(store, ref, half)
            await check_same(store, ref, [{"op": "maintain", "epoch": 1, "at": t + 5}])  # the rest expire
        await check_same(store, ref, [{"op": "list", "status": RETRYING, "limit": MAX_PAGE}])
        assert len(ref.retrying) > len(ids) // 2 and all(len(j.attempts) >= 2 for j in ref.jobs.values())


# ------------------------------------------------------------------ durability and outages


async def test_acknowledged_submits_survive_a_redis_crash(redis_server: RedisServer) -> None:
    async with fresh_store(redis_server) as store:
        acknowledged: list[str] = []

        async def submit_forever() -> None:
            n = 0
            while True:
                batch = [submit(f"crash-{n + i}") for i in range(20)]
                try:
                    results = await store.execute(batch)
                except StoreUnavailable:
                    return
                acknowledged.extend(r["job"]["id"] for r in results)
                n += 20

        # When Redis is killed while batches are in flight
        async with trio.open_nursery() as nursery:
            nursery.start_soon(submit_forever)
            await trio.sleep(0.3)
            redis_server.kill()
        assert len(acknowledged) >= 20
        redis_server.start()
        # Expect every acknowledged submit to be there after the restart (a batch whose reply
        # was lost may be there too), and the store to go on working on its own connection
        results = await store.execute([{"op": "get", "id": i} for i in acknowledged])
        assert all(r["job"] is not None for r in results)
        (listed,) = await store.execute([{"op": "list", "limit": MAX_PAGE}])
        assert listed["total"] >= len(acknowledged)
        (again,) = await store.execute([submit("after")])
        assert again["created"]


async def test_unreachable_redis_raises_store_unavailable_then_recovers(redis_server: RedisServer) -> None:
    async with fresh_store(redis_server) as store:
        await store.execute([submit("before")])
        redis_server.stop()
        with pytest.raises(StoreUnavailable) as info:
            await store.execute([{"op": "stats"}])
        text = str(info.value)
        assert f"127.0.0.1:{redis_server.port}" in text and "\n" not in text
        redis_server.start()
        (got,) = await store.execute([{"op": "get", "id": "before"}])
        assert got["job"]["id"] == "before"
    # a closed store refuses work until opened again
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.execute([{"op": "stats"}])


async def test_open_on_a_dead_port_raises_store_unavailable() -> None:
    store = RedisJobStore(port=1, connect_timeout=2.0)
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1 "):
        await store.open()


async def test_a_refused_login_is_unavailable_in_one_line(redis_server: RedisServer) -> None:
    admin = RedisConn(port=redis_server.port)
    await admin.execute("CONFIG", "SET", "requirepass", "s3cret")
    try:
        with pytest.raises(StoreUnavailable, match="refused AUTH") as info:
            await RedisJobStore(port=redis_server.port, password="wrong").open()
        assert "\n" not in str(info.value)
        store = RedisJobStore(port=redis_server.port, password="s3cret", prefix="auth")
        await store.open()
        assert (await store.execute([{"op": "stats"}]))[0]["total"] == 0
        await store.close()
    finally:
        await admin.execute("CONFIG", "SET", "requirepass", "")
        await admin.aclose()


async def test_the_store_reloads_its_code_when_the_server_lost_it(redis_server: RedisServer) -> None:
    for functions in (True, False):
        async with fresh_store(redis_server, functions=functions) as store:
            (first,) = await store.execute([submit(f"a{functions}")])
            assert first["created"] is True
            # When Redis forgets every function and script (a restart without persistence, a
            # flush), Expect the next batch to load the code again and to apply as usual
            conn = RedisConn(port=redis_server.port)
            await conn.execute("FUNCTION", "FLUSH")
            await conn.execute("SCRIPT", "FLUSH")
            await conn.aclose()
            got = await store.execute([submit(f"b{functions}"), {"op": "stats"}])
            assert got[0]["created"] is True and got[1]["total"] == 2


async def test_make_backend_builds_the_redis_store(redis_server: RedisServer) -> None:
    backend = make_backend("redis", redis_port=redis_server.port, policy=POLICY)
    assert isinstance(backend, RedisJobStore) and backend.policy == POLICY
    await backend.open()
    (stats,) = await backend.execute([{"op": "stats"}])
    assert set(stats) >= {"by_status", "ready", "total", "epoch"}
    await backend.close()
