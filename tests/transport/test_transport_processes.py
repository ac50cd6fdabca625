"""Real ``troupe node`` OS processes on loopback: configuration errors, crash detection, restart.

The nodes run as ``python -m transport.cli node ... --log-json``; the test reads their JSON
lines from pipes. Every process is killed in a ``finally`` whatever happens.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from transport.cluster import free_ports
from transport.testing import NodeProc, child_env, node_cmd, poll

INTERVAL, SUSPECT, DEAD = 0.2, 0.6, 1.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, NodeProc]]:
    ids = ["n1", "n2", "n3"]
    ports = free_ports(3)
    nodes: dict[str, NodeProc] = {}
    for i, nid in enumerate(ids):
        argv = node_cmd(
            "--id", nid, "--listen", f"127.0.0.1:{ports[i]}", "--cluster", "t",
            "--data-dir", str(tmp_path), "--interval", str(INTERVAL),
            "--suspect-after", str(SUSPECT), "--dead-after", str(DEAD), "--log-json",
        )  # fmt: skip
        for j, other in enumerate(ids):
            if j != i:
                argv += ["--peer", f"{other}=127.0.0.1:{ports[j]}"]
        nodes[nid] = NodeProc(nid, argv, tmp_path)
    try:
        for n in nodes.values():
            n.start()
        yield nodes
    finally:
        for n in nodes.values():
            n.kill()


@pytest.mark.slow
def test_three_processes_detect_a_sigkilled_node_and_its_restart(cluster: dict[str, NodeProc]) -> None:
    ids = list(cluster)
    victim, survivors = "n3", [cluster["n1"], cluster["n2"]]

    # Given three nodes connected both ways
    def linked() -> bool:
        return all(
            cluster[a].find("tcp.link_up", peer=b, direction=d)
            for a in ids
            for b in ids
            if a != b
            for d in ("in", "out")
        )

    assert poll(linked, 20), "\n".join(line for n in cluster.values() for line in n.lines[-20:])
    time.sleep(3 * INTERVAL)
    assert not any(n.find("peer.dead") for n in cluster.values())

    # When n3 is SIGKILLed
    killed_at = time.time()
    cluster[victim].kill()

    # Expect both survivors log peer.dead for it, within dead_after + interval (+1 s slack)
    assert poll(lambda: all(n.find("peer.dead", killed_at, peer=victim) for n in survivors), 15)
    for n in survivors:
        latency = n.find("peer.dead", killed_at, peer=victim)[0]["time"] - killed_at
        assert latency <= DEAD + INTERVAL + 1.0, f"{n.node_id} took {latency:.2f} s"
        assert latency >= SUSPECT  # not before it could know

    # When n3 restarts, Expect both log peer.alive for it
    restarted_at = time.time()
    cluster[victim].start()
    assert poll(lambda: all(n.find("peer.alive", restarted_at, peer=victim) for n in survivors), 15)

    # And SIGTERM stops every node cleanly
    for n in cluster.values():
        assert n.terminate() == 0
        assert n.find("node.stopped")


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        ([], {}, "--id/NODE_ID is required"),
        (["--id", "n1", "--listen", "nope"], {}, "--listen/NODE_LISTEN"),
        (["--id", "n1"], {"NODE_PEERS": "n2"}, "--peer/NODE_PEERS: 'n2' is not id=host:port"),
        (["--id", "n1"], {"HEARTBEAT_INTERVAL": "-1"}, "--interval/HEARTBEAT_INTERVAL='-1'"),
        (["--id", "n1", "--suspect-after", "5", "--dead-after", "2"], {}, "must be <="),
        (["--id", "n1", "--peer", "n1=127.0.0.1:1"], {}, "own id"),
        (["--id", "n1"], {"ELECTION_ALGORITHM": "paxos"}, "--election/ELECTION_ALGORITHM='paxos'"),
        (["--id", "n1", "--election", "raft"], {"ELECTION_TIMEOUT": "soon"}, "ELECTION_TIMEOUT='soon'"),
        (
            ["--id", "n1", "--election", "bully", "--election-timeout", "1s", "--election-interval", "2s"],
            {},
            "must be < election_timeout",
        ),
    ],
)
def test_bad_configuration_is_one_line_and_exit_code_2(
    args: list[str], env: dict[str, str], needle: str
) -> None:
    r = subprocess.run(node_cmd(*args), env=child_env(**env), capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_settings_come_from_the_environment_and_flags_win() -> None:
    import argparse

    from transport.node_cli import register, resolve_settings

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="cmd"))
    env = {
        "NODE_ID": "n1",
        "NODE_LISTEN": "127.0.0.1:7001",
        "NODE_PEERS": "n2=127.0.0.1:7002, n3=127.0.0.1:7003",
        "CLUSTER_NAME": "prod",
        "DATA_DIR": "/tmp/x",
        "HEARTBEAT_INTERVAL": "1",
        "HEARTBEAT_SUSPECT_AFTER": "2",
        "HEARTBEAT_DEAD_AFTER": "3",
    }
    s = resolve_settings(parser.parse_args(["node", "--interval", "0.5"]), env)
    assert s.node_id == "n1" and s.listen == ("127.0.0.1", 7001) and s.cluster == "prod"
    assert s.peers == {"n2": ("127.0.0.1", 7002), "n3": ("127.0.0.1", 7003)}
    assert (s.heartbeat.interval, s.heartbeat.suspect_after, s.heartbeat.dead_after) == (0.5, 2.0, 3.0)
    assert str(s.data_dir) == "/tmp/x"


@pytest.mark.slow
def test_cluster_up_demo_finishes_by_itself(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "transport.cli", "cluster", "up", "--nodes", "3",
           "--interval", "0.3", "--suspect-after", "0.6", "--dead-after", "1.0",
           "--data-dir", str(tmp_path), "--demo"]  # fmt: skip
    r = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "demo | result: OK" in r.stdout
    assert r.stdout.count("peer.dead     ") == 2 and r.stdout.count("peer.alive    ") == 2
