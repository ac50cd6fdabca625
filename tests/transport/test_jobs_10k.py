"""10,000 jobs on three real node processes while something crashes: nothing acknowledged is lost.

- over a real Redis (a ``redis-server`` of the test's own, ``appendfsync always``), a node that
  is not the leader is SIGKILLed while it runs jobs, with the jobs submitted through the nodes'
  gateways, and again with a producer submitting straight to Redis (the direct lane);
- on the Raft store, the leader is SIGKILLed while the work is under way;
- over Redis again, ``redis-server`` itself is SIGKILLed mid-run and started again on the same
  port and files.

Each job is ``bench.work`` (:mod:`transport.bench_processors`): it appends its start to the
node's start log (line by line here, so a SIGKILL loses at most the line being written) and
sleeps a few milliseconds; in the node crash tests every tenth job takes 300 ms, so the victim
of a SIGKILL is cut off in the middle of jobs. In every test, every acknowledged job must end
``SUCCESS``; executions of a job beyond the first (a crash makes them: a lease runs out and the
job runs again) are counted from the start logs, checked against the store's attempt
histories, and printed. Every process is killed in a ``finally``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from troupe_testkit.redis_server import RedisServer

from transport.bench_processors import FLUSH_ENV, LOG_ENV, read_starts
from transport.cluster import free_ports
from transport.jobs_client import JobError, SyncJobClient
from transport.lane_feed import ALIVE_FOR
from transport.redis_producer import RedisProducer
from transport.testing import NodeProc, node_cmd, poll

N = 10_000
IDS = ["n1", "n2", "n3"]


@dataclass
class Cluster:
    """Three node processes, their addresses and start logs."""

    tmp: Path
    nodes: dict[str, NodeProc] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def starts_path(self, nid: str) -> Path:
        return self.tmp / f"{nid}.starts"

    def leader(self) -> str | None:
        views = set()
        for node in self.nodes.values():
            seen = node.find("leader.changed")
            if not seen:
                return None
            views.add(seen[-1]["leader"])
        return views.pop() if len(views) == 1 else None

    def addresses(self, last: str | None = None) -> list[str]:
        """Every node's address, ``last`` at the end (the client talks to the first that answers)."""
        order = [n for n in IDS if n != last] + ([last] if last else [])
        return [f"{n}=127.0.0.1:{self.ports[n]}" for n in order]

    def dump(self) -> str:
        return "\n".join(f"{n.node_id}: {line}" for n in self.nodes.values() for line in n.lines[-15:])


def start_cluster(tmp: Path, store: str, redis_port: int | None = None) -> Cluster:
    cluster = Cluster(tmp)
    cluster.ports = dict(zip(IDS, free_ports(3), strict=True))
    for nid in IDS:
        argv = node_cmd(
            "--id", nid, "--listen", f"127.0.0.1:{cluster.ports[nid]}", "--cluster", "tk",
            "--data-dir", str(tmp / "data"), "--interval", "0.5", "--suspect-after", "1", "--dead-after", "2",
            "--store", store, "--election-timeout", "500ms", "--election-interval", "100ms",
            "--workers", "64", "--worker-heartbeat", "500ms", "--worker-offline-after", "1.5s",
            "--retry-base-delay", "100ms", "--retry-max-delay", "500ms", "--max-retries", "20",
            "--jobs-module", "transport.bench_processors", "--log-json",
        )  # fmt: skip
        if redis_port is not None:
            argv += ["--redis-port", str(redis_port)]
        for other in IDS:
            if other != nid:
                argv += ["--peer", f"{other}=127.0.0.1:{cluster.ports[other]}"]
        env = {LOG_ENV: str(cluster.starts_path(nid)), FLUSH_ENV: "0"}
        cluster.nodes[nid] = NodeProc(nid, argv, tmp, env)
    for node in cluster.nodes.values():
        node.start()
    return cluster


class Submitter:
    """Submits the jobs from a thread, so the test can crash things meanwhile."""

    def __init__(self, jobs: SyncJobClient, n: int, seconds: float, long: float | None = None) -> None:
        """``n`` jobs of ``seconds`` each; with ``long``, every tenth job takes that long."""
        self.specs = [
            {
                "type": "bench.work",
                "payload": {"key": f"j{i:05d}", "seconds": long if long and i % 10 == 0 else seconds},
                "id": f"j{i:05d}",
            }
            for i in range(n)
        ]
        self.jobs = jobs
        self.acked: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.acked = self.jobs.submit_many(self.specs)
        except BaseException as e:  # reported by join()
            self.error = e

    def start(self) -> Submitter:
        self.thread.start()
        return self

    def join(self, jobs: SyncJobClient) -> list[dict[str, Any]]:
        """Wait for every submit, as long as the store keeps taking jobs (see ``until_stalled``)."""
        until_stalled(lambda: not self.thread.is_alive(), lambda: int(jobs.stats()["total"]), "submitting")
        assert self.error is None, f"submit_many failed: {self.error!r}"
        return self.acked


class DirectSubmitter(Submitter):
    """Submits the jobs straight to Redis with a :class:`RedisProducer`, 256 in flight."""

    def __init__(self, redis_port: int, n: int, seconds: float, long: float | None = None) -> None:
        super().__init__(None, n, seconds, long)  # type: ignore[arg-type]
        self.port = redis_port

    def _run(self) -> None:
        async def main() -> None:
            acked: list[dict[str, Any]] = [{} for _ in self.specs]
            todo = iter(enumerate(self.specs))
            async with RedisProducer(port=self.port, timeout=60) as producer:

                async def lane() -> None:
                    for i, spec in todo:
                        acked[i] = await producer.submit(spec["type"], spec["payload"], id=spec["id"])

                async with trio.open_nursery() as nursery:
                    for _ in range(256):
                        nursery.start_soon(lane)
            self.acked = acked

        try:
            trio.run(main)
        except BaseException as e:  # reported by join()
            self.error = e


def went_direct(job: dict[str, Any]) -> bool:
    """True if the store dispatched ``job`` at a producer's submit: its first attempt opened at
    the very time it was created (a scheduler's or a gateway's dispatch comes later)."""
    return bool(job["attempts"]) and job["attempts"][0]["started"] == job["created_at"]


def successes(jobs: SyncJobClient) -> int:
    return int(jobs.stats()["by_status"].get("SUCCESS", 0))


def every_job(jobs: SyncJobClient) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    while True:
        page, total = jobs.list(limit=2000, offset=len(out))
        out.update((j["id"], j) for j in page)
        if not page or len(out) >= total:
            return out


STALL = 60.0
"""Seconds a wait goes on without progress before the test fails (progress, not speed, is tested)."""
CAP = 900.0
"""Seconds a wait goes on at most, progress or not."""


def until_stalled(
    done: Callable[[], bool], progress: Callable[[], int], what: str, dump: Callable[[], str] = str
) -> None:
    """Wait until ``done()``; fail if ``progress()`` stays put for STALL seconds (or after CAP).

    The machine's speed varies between runs by a factor of three, so a fixed deadline either
    fails slow runs or lets stuck ones hang; a stall is what a lost job or a dead cluster shows.
    """
    start = last_move = time.monotonic()
    seen = -1
    while not done():
        now = time.monotonic()
        assert now - start < CAP, f"{what}: not done after {CAP:.0f} s (at {seen})\n{dump()}"
        assert now - last_move < STALL, f"{what}: no progress for {STALL:.0f} s (stuck at {seen})\n{dump()}"
        time.sleep(0.5)
        try:
            now_seen = progress()
        except JobError:  # a node briefly unable to answer is no progress, not a failure
            continue
        if now_seen != seen:
            seen, last_move = now_seen, time.monotonic()


def wait_all_success(jobs: SyncJobClient, n: int, cluster: Cluster) -> None:
    count = [0]

    def done() -> bool:
        with contextlib.suppress(JobError):  # as in until_stalled
            count[0] = successes(jobs)
        return count[0] >= n

    until_stalled(done, lambda: count[0], f"{n} jobs SUCCESS", cluster.dump)


def account(
    cluster: Cluster, acked: list[dict[str, Any]], everything: dict[str, dict[str, Any]], crashed: set[str]
) -> int:
    """Check that no acknowledged job is lost and that every execution is accounted for by an
    attempt; print the duplicates and return how many executions went beyond one per job."""
    ids = [j["id"] for j in acked]
    assert len(set(ids)) == len(ids) == N
    lost = [jid for jid in ids if everything.get(jid, {}).get("status") != "SUCCESS"]
    assert not lost, f"{len(lost)} acknowledged jobs are not SUCCESS, such as {everything.get(lost[0])}"

    starts = read_starts([cluster.starts_path(n) for n in IDS])
    by_node = {n: read_starts([cluster.starts_path(n)]) for n in IDS}
    extra_attempts = 0
    reran: list[str] = []
    outcomes: Counter[str] = Counter()
    for jid in ids:
        attempts = everything[jid]["attempts"]
        extra_attempts += len(attempts) - 1
        # exactly one attempt succeeded, the last; the others were closed by a crash's aftermath
        assert [a["outcome"] for a in attempts].count("SUCCESS") == 1, attempts
        assert attempts[-1]["outcome"] == "SUCCESS", attempts
        outcomes.update(str(a["outcome"]) for a in attempts[:-1])
        for nid in IDS:
            ran = len(by_node[nid].get(jid, []))
            opened = sum(1 for a in attempts if a["worker"] == nid)
            # a worker runs an attempt at most once; one that lived runs the one that succeeded
            assert ran <= opened, (jid, nid, ran, attempts)
            if nid not in crashed and attempts[-1]["worker"] == nid:
                assert ran >= 1, (jid, nid, attempts)
        if len(starts.get(jid, [])) > 1:
            reran.append(jid)
    duplicates = sum(len(starts.get(jid, [])) - 1 for jid in ids if jid in starts)
    assert duplicates <= extra_attempts
    assert set(outcomes) <= {"LEASE_EXPIRED", "FAILED"}, outcomes
    print(
        f"\n{N} jobs acknowledged, 0 lost; duplicate executions: {duplicates} "
        f"({len(reran)} jobs ran more than once, such as {reran[:3]}); attempts beyond the first "
        f"in the store: {extra_attempts} ({dict(outcomes)})"
    )
    return duplicates


def kill_while_busy(jobs: SyncJobClient, cluster: Cluster, victim: str, floor: int) -> list[str]:
    """Wait until ``floor`` jobs succeeded and ``victim`` runs some, then SIGKILL it; the jobs
    it held."""
    held: list[str] = []

    def busy() -> bool:
        if successes(jobs) < floor:
            return False
        running, _ = jobs.list(status="RUNNING", limit=2000)
        held[:] = [j["id"] for j in running if j["attempts"][-1]["worker"] == victim]
        return bool(held)

    assert poll(busy, 180), cluster.dump()
    cluster.nodes[victim].kill()
    return held


def run_with_crash(
    tmp: Path,
    store: str,
    choose_victim: Callable[[str], str],
    redis_port: int | None = None,
    direct: bool = False,
) -> None:
    cluster = start_cluster(tmp, store, redis_port)
    try:
        assert poll(lambda: cluster.leader() is not None, 30), cluster.dump()
        leader = cluster.leader()
        assert leader is not None
        victim = choose_victim(leader)
        with SyncJobClient(cluster.addresses(last=victim), cluster="tk", timeout=60) as jobs:
            # Given 10,000 jobs being submitted and run
            if direct:
                assert redis_port is not None
                submitter: Submitter = DirectSubmitter(redis_port, N, 0.005, long=0.3).start()
            else:
                submitter = Submitter(jobs, N, 0.005, long=0.3).start()
            # When a node is SIGKILLed while it runs jobs
            held = kill_while_busy(jobs, cluster, victim, floor=N // 5)
            acked = submitter.join(jobs)
            # Expect every acknowledged job to succeed, the victim's included
            wait_all_success(jobs, N, cluster)
            everything = every_job(jobs)
            account(cluster, acked, everything, {victim})
            # (a job the victim held may still have finished and been reported before the kill)
            moved = sum(1 for jid in held if everything[jid]["attempts"][-1]["worker"] != victim)
            print(
                f"{store}: SIGKILLed {victim} (leader {leader}) while it held {len(held)} running "
                f"jobs; {moved} of them succeeded on another node"
            )
            if direct:
                check_direct_lane(redis_port, everything, victim)
        # And the survivors stop cleanly
        for nid, node in cluster.nodes.items():
            if nid != victim:
                assert node.terminate() == 0, cluster.dump()
    finally:
        for node in cluster.nodes.values():
            node.kill()


@pytest.mark.slow
def test_10k_jobs_over_redis_survive_a_sigkilled_worker_node(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    with RedisServer(tmp_path / "redis", fsync=True) as redis:
        run_with_crash(tmp_path, "redis", lambda leader: next(n for n in IDS if n != leader), redis.port)


def check_direct_lane(redis_port: int | None, everything: dict[str, dict[str, Any]], victim: str) -> None:
    """Some jobs went by the direct lane; once the victim's registration ran out, a producer's
    jobs go to the live nodes only, each dispatched at its submit."""
    assert redis_port is not None
    direct = [j for j in everything.values() if went_direct(j)]
    assert direct, "no job went by the direct lane"
    time.sleep(ALIVE_FOR + 0.5)

    async def late() -> list[dict[str, Any]]:
        out = []
        async with RedisProducer(port=redis_port) as producer:
            for i in range(10):
                out.append(await producer.submit("bench.work", {"key": f"late{i}", "seconds": 0.001}))
                await trio.sleep(0.1)
        return out

    jobs = trio.run(late)
    workers = {j["attempts"][0]["worker"] for j in jobs if went_direct(j)}
    assert workers and victim not in workers, [j["attempts"] for j in jobs]
    print(f"direct lane: {len(direct)} of {N} jobs started at submit; after the kill, late jobs: {workers}")


@pytest.mark.slow
def test_10k_direct_submits_over_redis_survive_a_sigkilled_worker_node(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    with RedisServer(tmp_path / "redis", fsync=True) as redis:
        run_with_crash(
            tmp_path, "redis", lambda leader: next(n for n in IDS if n != leader), redis.port, direct=True
        )


@pytest.mark.slow
def test_10k_jobs_on_the_raft_store_survive_a_sigkilled_leader(tmp_path: Path) -> None:
    run_with_crash(tmp_path, "raft", lambda leader: leader)


@pytest.mark.slow
def test_10k_jobs_survive_a_redis_crash_and_restart(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis", fsync=True)
    cluster: Cluster | None = None
    try:
        redis.start()
        cluster = start_cluster(tmp_path, "redis", redis.port)
        assert poll(lambda: cluster is not None and cluster.leader() is not None, 30), cluster.dump()
        with SyncJobClient(cluster.addresses(), cluster="tk", timeout=60) as jobs:
            # Given 10,000 jobs being submitted and run
            submitter = Submitter(jobs, N, 0.002).start()
            assert poll(lambda: successes(jobs) >= N // 5, 180), cluster.dump()
            # When redis-server is SIGKILLed mid-run and started again a second later
            before = successes(jobs)
            redis.kill()
            down_at = time.monotonic()
            time.sleep(1.0)
            redis.start()
            print(f"\nredis was down for {time.monotonic() - down_at:.2f} s, after {before} jobs succeeded")
            # Expect the nodes to keep running and finish the work: nothing acknowledged lost
            acked = submitter.join(jobs)
            wait_all_success(jobs, N, cluster)
            account(cluster, acked, every_job(jobs), set())
            assert all(n.proc is not None and n.proc.poll() is None for n in cluster.nodes.values())
            assert any(n.find("store.unavailable") for n in cluster.nodes.values()), cluster.dump()
        for node in cluster.nodes.values():
            assert node.terminate() == 0, cluster.dump()
    finally:
        if cluster is not None:
            for node in cluster.nodes.values():
                node.kill()
        redis.close()
