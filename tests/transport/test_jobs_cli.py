"""``troupe submit``, ``troupe jobs``, ``troupe dlq``, ``troupe stats`` and the job settings of
``troupe node`` and ``troupe cluster up``: bad arguments are one line with exit code 2, and the
commands work against a real single-node cluster (a ``troupe node`` process, SQLite store)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from transport.cli import main
from transport.cluster import free_ports
from transport.testing import NodeProc, child_env, node_cmd, poll


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["submit"], "troupe submit: error: the following arguments are required: type"),
        (["submit", "x", "--priority", "urgent"], "--priority: invalid job priority 'urgent'"),
        (["submit", "x", "--payload", "{nope"], "--payload: not valid JSON"),
        (["submit", "x", "--delay", "soon"], "--delay='soon': must be a duration"),
        (["submit", "x", "--delay", "1s", "--at", "5"], "give --delay or --at, not both"),
        (["submit", "x", "--at", "tomorrow"], "--at='tomorrow': give UNIX seconds"),
        (["submit", "x", "--retries", "-1"], "--retries='-1': must be a whole number"),
        (["submit", "x", "--timeout", "0"], "--timeout='0': must be a duration > 0"),
        (["submit", "x", "--node", "nowhere"], "--node/TROUPE_NODES: node 'nowhere'"),
        (["jobs", "--status", "lost"], "--status='lost': choose one of PENDING"),
        (["jobs", "--limit", "0"], "--limit='0': must be a whole number from 1 to 10000"),
        (["jobs", "a", "--cancel", "b"], "give a job ID to show or --cancel ID, not both"),
        (["jobs", "--bogus"], "troupe: error: unrecognized arguments: --bogus"),
        (["dlq"], "the following arguments are required: ACTION"),
        (["dlq", "purge"], "give their IDS, or --all"),
        (["dlq", "purge", "a", "--all"], "give IDS or --all, not both"),
        (["stats", "--request-timeout", "x"], "--request-timeout='x'"),
        (["cluster", "up", "--store", "mongo"], "--store='mongo': choose one of sqlite, raft, redis, memory"),
        (["cluster", "up", "--demo-jobs", "0"], "--demo-jobs='0': must be a whole number"),
        (["cluster", "up", "--demo", "--demo-jobs", "5"], "give --demo or --demo-jobs, not both"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_code_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(argv, capsys)
    assert_one_line(code, err, needle)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"STORE": "mongo"}, "--store/STORE='mongo': choose one of sqlite, raft, redis, memory"),
        ({"STORE_NODE": "n9"}, "--store-node/STORE_NODE='n9': must be one of this cluster's nodes (n1)"),
        ({"WORKER_COUNT": "0"}, "--workers/WORKER_COUNT='0': must be a whole number from 1"),
        ({"WORKER_HEARTBEAT_INTERVAL": "fast"}, "--worker-heartbeat/WORKER_HEARTBEAT_INTERVAL='fast'"),
        ({"WORKER_OFFLINE_AFTER": "2s"}, "WORKER_OFFLINE_AFTER=2s must exceed"),
        (
            {"LOAD_BALANCER_STRATEGY": "fastest"},
            "LOAD_BALANCER_STRATEGY='fastest': choose one of round_robin",
        ),
        ({"RETRY_POLICY": "linear"}, "--retry-policy/RETRY_POLICY='linear'"),
        ({"RETRY_BASE_DELAY": "soon"}, "--retry-base-delay/RETRY_BASE_DELAY='soon'"),
        ({"RETRY_JITTER_FACTOR": "2"}, "--retry-jitter/RETRY_JITTER_FACTOR='2'"),
        ({"MAX_RETRIES": "many"}, "--max-retries/MAX_RETRIES='many'"),
        ({"STORE": "redis", "REDIS_PORT": "0"}, "--redis-port/REDIS_PORT='0': must be a whole number"),
        ({"STORE": "redis", "REDIS_DB": "x"}, "--redis-db/REDIS_DB='x'"),
        ({"STORE": "raft", "ELECTION_ALGORITHM": "bully"}, "the raft store replicates the queue"),
        ({"STORE": "sqlite", "ELECTION_ALGORITHM": "none"}, "needs the job engine, which needs an election"),
        (
            {"JOB_MODULES": "no_such_jobs_module"},
            "--jobs-module/JOB_MODULES: cannot import 'no_such_jobs_module'",
        ),
    ],
)
def test_bad_job_settings_of_a_node_are_one_line_and_exit_code_2(
    env: dict[str, str], needle: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in {"NODE_ID": "n1", "WORKER_HEARTBEAT_INTERVAL": "5s", **env}.items():
        monkeypatch.setenv(k, v)
    code, _, err = run(["node"], capsys)
    assert_one_line(code, err, needle)


def test_job_settings_come_from_the_environment_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from transport.node_cli import register, resolve_settings

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="cmd"))
    env = {
        "NODE_ID": "n2",
        "NODE_PEERS": "n1=127.0.0.1:7001,n3=127.0.0.1:7003",
        "WORKER_COUNT": "8",
        "WORKER_HEARTBEAT_INTERVAL": "1s",
        "WORKER_OFFLINE_AFTER": "3s",
        "LOAD_BALANCER_STRATEGY": "least_loaded",
        "RETRY_POLICY": "fixed",
        "RETRY_BASE_DELAY": "250ms",
        "JOB_MODULES": "a.b, ./c.py",
        "STORE": "sqlite",
    }
    s = resolve_settings(parser.parse_args(["node", "--workers", "2", "--store-node", "n3"]), env)
    assert (s.election, s.store, s.store_node, s.job_modules) == ("raft", "sqlite", "n3", ("a.b", "./c.py"))
    cfg = s.jobs
    assert (cfg.worker_count, cfg.heartbeat_interval, cfg.offline_after, cfg.strategy) == (
        2,
        1.0,
        3.0,
        "least_loaded",
    )
    assert (cfg.policy.kind, cfg.policy.base_delay) == ("fixed", 0.25)
    # defaults: sqlite on the first node in sorted order, round_robin, 10 workers, 5 s / 15 s
    d = resolve_settings(parser.parse_args(["node"]), {"NODE_ID": "n2", "NODE_PEERS": "n1=127.0.0.1:7001"})
    assert (d.store, d.store_node, d.election, d.jobs.strategy, d.jobs.worker_count) == (
        "sqlite",
        "n1",
        "raft",
        "round_robin",
        10,
    )
    assert (d.jobs.heartbeat_interval, d.jobs.offline_after) == (5.0, 15.0)
    r = resolve_settings(
        parser.parse_args(["node", "--store", "redis"]), {"NODE_ID": "n1", "REDIS_ADDR": "h:6380"}
    )
    assert (r.store_node, r.redis.host, r.redis.port) == (None, "h", 6380)
    none = resolve_settings(parser.parse_args(["node", "--election", "none"]), {"NODE_ID": "n1"})
    assert not none.job_engine


# --- against a running node ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("jobs-cli")
    port = free_ports(1)[0]
    argv = node_cmd(
        "--id", "n1", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp), "--cluster", "cli",
        "--election-timeout", "300ms", "--election-interval", "50ms", "--retry-base-delay", "50ms",
        "--jobs-module", "transport.demo_jobs", "--log-json",
    )  # fmt: skip
    proc = NodeProc("n1", argv, tmp)
    proc.start()
    try:
        assert poll(
            lambda: bool(proc.find("leader.changed", leader="n1")) and bool(proc.find("store.open")), 20
        ), "\n".join(proc.lines[-20:])
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()


def test_the_entry_point_submits_and_waits(node: str, tmp_path: Path) -> None:
    cmd = ["troupe", "submit", "noop", "--payload", '{"a": 1}', "--node", node, "--cluster", "cli", "--wait"]
    r = subprocess.run(
        [*node_cmd()[:3], *cmd[1:]], env=child_env(), capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("submitted ") and r.stdout.strip().endswith("SUCCESS"), r.stdout


def test_submit_jobs_dlq_stats(
    node: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TROUPE_NODES", node)
    monkeypatch.setenv("TROUPE_CLUSTER", "cli")

    # submit --json gives the record; --key twice gives the same job
    code, out, _ = run(["submit", "email", "--payload", '{"to": "a@b.io"}', "--key", "k1", "--json"], capsys)
    assert code == 0
    first = json.loads(out)
    assert first["status"] in ("PENDING", "RUNNING") and first["idempotency_key"] == "k1"  # fast lane
    code, out, _ = run(["submit", "email", "--key", "k1"], capsys)
    assert code == 0 and out.startswith(f"already submitted (same idempotency key) {first['id']}")

    # a failing job with --wait exits 1 and shows its error; it is dead-lettered
    code, out, _ = run(["submit", "broken", "--retries", "0", "--priority", "high", "--wait"], capsys)
    assert code == 1 and "DEAD" in out and "last error: RuntimeError: broken" in out
    broken_id = out.split()[1]

    # jobs: a table, one job's detail, filters, JSON
    code, out, _ = run(["jobs", "--type", "broken"], capsys)
    assert code == 0 and broken_id in out and "DEAD" in out and out.splitlines()[0].startswith("ID")
    code, out, _ = run(["jobs", broken_id], capsys)
    assert code == 0 and f"id          {broken_id}" in out and "#1   FAILED" in out
    code, out, _ = run(["jobs", "--status", "dead", "--json"], capsys)
    listed = json.loads(out)
    assert code == 0 and [j["id"] for j in listed["jobs"]] == [broken_id] and listed["total"] == 1
    code, _, err = run(["jobs", "nope"], capsys)
    assert code == 1 and err.strip() == "troupe jobs: error: no job 'nope'"

    # cancel a delayed job; cancelling it again is refused in one line
    code, out, _ = run(["submit", "noop", "--delay", "10m"], capsys)
    later = out.split()[1]
    code, out, _ = run(["jobs", "--cancel", later], capsys)
    assert code == 0 and out.startswith(f"cancelled {later}") and "CANCELLED" in out
    code, _, err = run(["jobs", "--cancel", later], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "cannot be cancelled" in err

    # dlq list / requeue / purge
    code, out, _ = run(["dlq", "list"], capsys)
    assert code == 0 and broken_id in out and "1 shown of 1 dead-lettered jobs" in out
    code, out, _ = run(["dlq", "requeue", broken_id], capsys)
    assert code == 0 and out.strip() == f"requeued 1 jobs: {broken_id}"
    assert poll(lambda: run(["jobs", broken_id, "--json"], capsys)[1].count('"DEAD"') == 1, 10)
    code, out, _ = run(["dlq", "purge", "--all"], capsys)
    assert code == 0 and out.strip() == f"purged 1 jobs: {broken_id}"

    # stats
    code, out, _ = run(["stats", "--json"], capsys)
    stats = json.loads(out)
    assert code == 0 and stats["dlq"] == 0 and stats["by_status"]["CANCELLED"] == 1
    code, out, _ = run(["stats"], capsys)
    assert code == 0 and "CANCELLED        1" in out and "dead-lettered 0" in out


def test_an_unreachable_cluster_is_one_line_and_exit_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_ports(1)[0]
    code, _, err = run(["stats", "--node", f"127.0.0.1:{port}", "--request-timeout", "500ms"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"troupe stats: error: stats: no node answered within 0.5 s (127.0.0.1:{port}:")
