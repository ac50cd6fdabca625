"""The Python job API against an in-process cluster: three NodeRuntimes over loopback TCP running
the job engine on the Raft store, with the demo processors. Also the processor registry."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.jobs import RetryPolicy
from actors.jobs.blueprint import jobs_blueprint
from actors.jobs.config import JobsConfig
from transport import demo_jobs  # noqa: F401 - registers the demo processors
from transport.cluster import free_ports
from transport.events import EventLog
from transport.jobs_client import JobClient, JobError, SyncJobClient, new_job, parse_nodes
from transport.processors import ProcessorError, Registry, load_modules, registry
from transport.runtime import NodeRuntime
from transport.tcp import TcpTransport

IDS = ("n1", "n2", "n3")
CONFIG = JobsConfig(
    heartbeat_interval=0.3,
    offline_after=1.0,
    policy=RetryPolicy(base_delay=0.05, max_delay=0.2),
)


class Cluster:
    def __init__(self, ports: dict[str, int], runtimes: dict[str, NodeRuntime], events: EventLog):
        self.ports = ports
        self.runtimes = runtimes
        self.events = events

    def addresses(self, *ids: str) -> list[str]:
        return [f"127.0.0.1:{self.ports[i]}" for i in ids or IDS]


@pytest.fixture
async def cluster(nursery: trio.Nursery) -> AsyncIterator[Cluster]:
    ports = dict(zip(IDS, free_ports(3), strict=True))
    bp = jobs_blueprint(IDS, config=CONFIG, store="raft", election_timeout=0.3, interval=0.05)
    events = EventLog(keep=100_000)
    runtimes: dict[str, NodeRuntime] = {}
    for nid in IDS:
        peers = {o: ("127.0.0.1", ports[o]) for o in IDS if o != nid}
        transport = TcpTransport(nid, "t", ("127.0.0.1", ports[nid]), peers, accept_joins=True, events=events)
        runtime = NodeRuntime(nid, bp, transport, processors=registry(), events=events)
        runtimes[nid] = await nursery.start(runtime.serve)
    with trio.fail_after(10):  # a leader first, so the tests measure the API, not the election
        while len({r.get("leader") for r in events.find("leader.changed")} - {None}) != 1 or len(
            {r["node"] for r in events.find("leader.changed")}
        ) < len(IDS):
            await trio.sleep(0.02)
    yield Cluster(ports, runtimes, events)
    for r in runtimes.values():
        r.crash()


async def test_submit_get_list_stats(cluster: Cluster) -> None:
    async with JobClient(cluster.addresses(), cluster="t") as jobs:
        # Given jobs of two types submitted one by one and in a batch
        first = await jobs.submit("noop", {"n": 1}, priority="high")
        assert (
            first["status"] in ("PENDING", "RUNNING")
            and first["priority"] == 8
            and first["payload"] == {"n": 1}
        )
        batch = await jobs.submit_many([{"type": "email", "payload": {"to": f"u{i}@x.io"}} for i in range(5)])
        assert len({j["id"] for j in batch}) == 5

        # When the cluster has run them, Expect every one SUCCESS, each with one attempt
        stats = await jobs.wait_idle(timeout=20)
        assert stats["by_status"]["SUCCESS"] == 6 and stats["total"] == 6 and stats["dlq"] == 0
        got = await jobs.get(first["id"])
        assert got is not None and got["status"] == "SUCCESS" and len(got["attempts"]) == 1
        assert got["attempts"][0]["worker"] in IDS
        assert await jobs.get("no-such-job") is None

        # And list filters by type and status, pages with limit/offset, in submission order
        emails, total = await jobs.list(type="email")
        assert total == 5 and {j["id"] for j in emails} == {j["id"] for j in batch}
        page, total = await jobs.list(type="email", limit=2, offset=1)
        assert total == 5 and page == emails[1:3]
        done, total = await jobs.list(status="success")
        assert total == 6 and done[0]["id"] == first["id"]
        assert (await jobs.list(status="DEAD")) == ([], 0)


async def test_idempotency_key_returns_the_same_job(cluster: Cluster) -> None:
    async with JobClient(cluster.addresses("n2"), cluster="t") as jobs:
        a = await jobs.submit("noop", {"v": 1}, idempotency_key="order-42")
        b = await jobs.submit("noop", {"v": 2}, idempotency_key="order-42")
        assert a["id"] == b["id"] and b["payload"] == {"v": 1}
        _, total = await jobs.list()
        assert total == 1


async def test_delayed_job_cancel_and_a_refused_cancel(cluster: Cluster) -> None:
    async with JobClient(cluster.addresses(), cluster="t") as jobs:
        later = await jobs.submit("noop", delay=60)
        assert later["scheduled_at"] == pytest.approx(time.time() + 60, abs=5)
        at = await jobs.submit("noop", scheduled_at=time.time() + 3600)
        stats = await jobs.stats()
        assert stats["delayed"] == 2 and stats["by_status"]["PENDING"] == 2

        cancelled = await jobs.cancel(later["id"], reason="changed my mind")
        assert cancelled["status"] == "CANCELLED"
        with pytest.raises(JobError, match="CANCELLED and cannot be cancelled") as e:
            await jobs.cancel(later["id"])
        assert "\n" not in str(e.value)
        with pytest.raises(JobError, match="no job 'nope'"):
            await jobs.cancel("nope")
        assert (await jobs.cancel(at["id"]))["status"] == "CANCELLED"


async def test_cancelling_a_running_job_stops_its_processor(cluster: Cluster) -> None:
    async with JobClient(cluster.addresses(), cluster="t") as jobs:
        # Given a job that would sleep for a minute, running on some worker
        job = await jobs.submit("sleep", {"seconds": 60}, timeout=120)
        with trio.fail_after(10):
            while (await jobs.get(job["id"]) or {}).get("status") != "RUNNING":
                await trio.sleep(0.05)

        # When it is cancelled
        cancelled = await jobs.cancel(job["id"], reason="no longer needed")

        # Expect the attempt closed as cancelled, and the processor stopped well before its minute
        assert cancelled["status"] == "CANCELLED"
        assert cancelled["attempts"][-1]["outcome"] == "CANCELLED"
        with trio.fail_after(10):
            while not cluster.events.find("job.finished", id=job["id"], ok=False):
                await trio.sleep(0.05)
        assert cluster.events.find("job.lease_lost", id=job["id"])
        assert (await jobs.get(job["id"]) or {})["status"] == "CANCELLED"


async def test_dead_letter_queue_list_requeue_purge(cluster: Cluster) -> None:
    async with JobClient(cluster.addresses(), cluster="t") as jobs:
        # Given jobs that always fail, with one retry each, and one that succeeds
        broken = await jobs.submit_many([{"type": "broken", "max_retries": 1} for _ in range(3)])
        ok = await jobs.submit("noop")
        await jobs.wait_idle(timeout=20)

        # Expect them dead-lettered after two attempts, with the processor's error
        dead, total = await jobs.dlq_list()
        assert total == 3 and {j["id"] for j in dead} == {j["id"] for j in broken}
        assert all(len(j["attempts"]) == 2 and "always fails" in j["attempts"][-1]["error"] for j in dead)

        # When one is requeued, Expect a fresh budget: two more attempts, then dead again
        assert await jobs.dlq_requeue([broken[0]["id"], ok["id"]]) == [broken[0]["id"]]
        await jobs.wait_idle(timeout=20)
        again = await jobs.get(broken[0]["id"])
        assert again is not None and again["status"] == "DEAD" and again["requeue_count"] == 1
        assert len(again["attempts"]) == 4

        # When one is purged, Expect it gone; then purge the rest
        assert await jobs.dlq_purge([broken[1]["id"]]) == [broken[1]["id"]]
        assert await jobs.get(broken[1]["id"]) is None
        assert sorted(await jobs.dlq_purge()) == sorted([broken[0]["id"], broken[2]["id"]])
        assert (await jobs.stats())["dlq"] == 0
        assert (await jobs.get(ok["id"]) or {}).get("status") == "SUCCESS"


async def test_bad_input_is_one_line_and_the_node_keeps_serving(cluster: Cluster) -> None:
    async with JobClient(cluster.addresses(), cluster="t") as jobs:
        bad: list[tuple[Callable[[], Awaitable[Any]], str]] = [
            (lambda: jobs.submit("noop", {1, 2}), "cannot send this command"),  # not plain data
            (lambda: jobs.submit("noop", priority="urgent"), "invalid job priority 'urgent'"),
            (lambda: jobs.submit("", None), "job type must be a non-empty string"),
            (lambda: jobs.submit("noop", max_retries=-1), "max_retries must be an integer >= 0"),
            (lambda: jobs.submit("noop", timeout=0), "timeout_seconds must be a positive number"),
            (lambda: jobs.submit("noop", delay=1, scheduled_at=2), "delay or scheduled_at, not both"),
            # refused by the store or the gateway, not the client:
            (lambda: jobs.request({"op": "submit", "job": {"id": "x", "type": "noop"}}), "missing field"),
            (lambda: jobs.request({"op": "list", "status": "LOST"}), "unknown status 'LOST'"),
            (lambda: jobs.request({"op": "dispatch"}), "unknown or reserved op 'dispatch'"),
            (lambda: jobs.list(limit=0), "limit must be an integer in 1..10000"),
        ]
        for call, needle in bad:
            with pytest.raises(JobError) as e:
                await call()
            assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)
        # Expect the cluster to go on serving
        job = await jobs.submit("noop")
        await jobs.wait_idle(timeout=20)
        assert (await jobs.get(job["id"]) or {}).get("status") == "SUCCESS"
        # And a job whose processor rejects its payload fails with that processor's error
        poor = await jobs.submit("email", {"to": "nobody"}, max_retries=0)
        await jobs.wait_idle(timeout=20)
        failed = await jobs.get(poor["id"])
        assert failed is not None and failed["status"] == "DEAD"
        assert "email needs a payload like" in failed["attempts"][0]["error"]
        unknown = await jobs.submit("no-such-type", max_retries=0)
        await jobs.wait_idle(timeout=20)
        err = ((await jobs.get(unknown["id"])) or {})["attempts"][0]["error"]
        assert "unknown job type 'no-such-type'" in err


async def test_a_dead_address_is_skipped_and_errors_name_the_nodes(cluster: Cluster) -> None:
    dead_port = free_ports(1)[0]
    async with JobClient([f"127.0.0.1:{dead_port}", *cluster.addresses("n3")], cluster="t") as jobs:
        assert (await jobs.submit("noop"))["status"] in ("PENDING", "RUNNING")
    async with JobClient(f"127.0.0.1:{dead_port}", cluster="t", timeout=1.0) as jobs:
        with pytest.raises(JobError, match=f"no node answered within 1 s .*127.0.0.1:{dead_port}"):
            await jobs.stats()
    async with JobClient(cluster.addresses("n1"), cluster="other", timeout=2.0) as jobs:
        with pytest.raises(JobError, match="refused this client: cluster 'other' is not"):
            await jobs.stats()


async def test_sync_client_from_a_thread(cluster: Cluster) -> None:
    def use() -> tuple[str, str | None]:
        with SyncJobClient(cluster.addresses(), cluster="t") as jobs:
            job = jobs.submit("noop", {"sync": True})
            jobs.wait_idle(timeout=20)
            got = jobs.get(job["id"])
            return job["id"], None if got is None else got["status"]

    job_id, status = await trio.to_thread.run_sync(use)
    assert status == "SUCCESS" and len(job_id) == 32


def test_sync_client_reports_a_bad_node_list() -> None:
    with pytest.raises(JobError, match="is not host:port"):
        SyncJobClient("nowhere")
    assert parse_nodes("n1=127.0.0.1:7001, 127.0.0.1:7002") == [
        ("n1", ("127.0.0.1", 7001)),
        (None, ("127.0.0.1", 7002)),
    ]
    job = new_job("noop", {"a": 1}, priority=9, delay=5, now=100.0, idempotency_key="k")
    assert (job["priority"], job["scheduled_at"], job["idempotency_key"], job["created_at"]) == (
        9,
        105.0,
        "k",
        100.0,
    )


# --- the processor registry --------------------------------------------------------------------


def test_registry_decorator_and_one_line_errors(tmp_path: Path) -> None:
    reg = Registry()

    @reg.processor("double")
    async def double(payload: Any) -> Any:
        return payload * 2

    assert reg.snapshot() == {"double": double} and "double" in reg

    def plain(payload: Any) -> Any:
        return payload

    with pytest.raises(ProcessorError, match="is not an async function; define it with 'async def'"):
        reg.register("plain", plain)  # type: ignore[arg-type]

    async def other(payload: Any) -> Any:
        return None

    with pytest.raises(ProcessorError, match="already registered by"):
        reg.register("double", other)
    reg.register("double", other, replace=True)
    with pytest.raises(ProcessorError, match="non-empty job type"):
        reg.register(" ", other)


def test_job_modules_load_from_paths_and_names_with_one_line_errors(tmp_path: Path) -> None:
    good = tmp_path / "my_jobs.py"
    good.write_text(
        "from transport.processors import processor\n\n"
        "@processor('test-greet')\nasync def greet(payload):\n    return f'hi {payload}'\n"
    )
    assert load_modules(f"{good}, transport.demo_jobs") == [str(good), "transport.demo_jobs"]
    assert "test-greet" in registry() and "broken" in registry()

    broken = tmp_path / "broken_jobs.py"
    broken.write_text("raise RuntimeError('boom\\nsecond line')\n")
    sync = tmp_path / "sync_jobs.py"
    sync.write_text("from transport.processors import register\nregister('test-sync', lambda p: p)\n")
    cases = [
        ("no_such_module_xyz", "cannot import 'no_such_module_xyz'"),
        (str(tmp_path / "missing.py"), "no such file"),
        (str(broken), "RuntimeError: boom"),
        (str(sync), "is not an async function"),
    ]
    for spec, needle in cases:
        with pytest.raises(ProcessorError) as e:
            load_modules(spec)
        assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)
        assert str(e.value).startswith("JOB_MODULES")
