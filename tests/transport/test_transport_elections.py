"""Elections on real ``troupe node`` processes over loopback TCP: kill the leader with SIGKILL,
see the survivors agree on a new one, restart it and see it rejoin; add a node and remove one
at run time. Every process is killed in a ``finally`` whatever happens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from transport.cluster import free_ports
from transport.testing import NodeProc, node_cmd, poll

TIMEOUT, INTERVAL = "1s", "150ms"


class Cluster:
    def __init__(self, algorithm: str, tmp: Path):
        self.algorithm = algorithm
        self.tmp = tmp
        self.ports: dict[str, int] = {}
        self.nodes: dict[str, NodeProc] = {}

    def add(self, node_id: str, peers: list[str], join: bool = False) -> NodeProc:
        if node_id not in self.ports:
            self.ports[node_id] = free_ports(1)[0]
        argv = node_cmd(
            "--id", node_id, "--listen", f"127.0.0.1:{self.ports[node_id]}", "--cluster", "e",
            "--data-dir", str(self.tmp), "--interval", "0.5", "--suspect-after", "1", "--dead-after", "2",
            "--election", self.algorithm, "--election-timeout", TIMEOUT, "--election-interval", INTERVAL,
            "--log-json", "--leave-on-stop",
        )  # fmt: skip
        for p in peers:
            argv += ["--peer", f"{p}=127.0.0.1:{self.ports[p]}"]
        if join:
            argv.append("--join")
        node = self.nodes[node_id] = NodeProc(node_id, argv, self.tmp)
        node.start()
        return node

    def start_three(self) -> list[str]:
        """Start n1, n2 and n3, each knowing the other two; returns their ids."""
        ids = ["n1", "n2", "n3"]
        self.ports.update(zip(ids, free_ports(3), strict=True))
        for nid in ids:
            self.add(nid, [p for p in ids if p != nid])
        return ids

    def leader_of(self, node_id: str, since: float = 0.0) -> str | None:
        seen = self.nodes[node_id].find("leader.changed", since)
        return seen[-1]["leader"] if seen else None

    def agreed(self, members: list[str], since: float = 0.0) -> str | None:
        """The leader every one of ``members`` names (and is one of them), else None."""
        views = {self.leader_of(m, since) for m in members}
        if len(views) == 1:
            (leader,) = views
            if leader in members:
                return leader
        return None

    def dump(self) -> str:
        return "\n".join(f"{n.node_id}: {line}" for n in self.nodes.values() for line in n.lines[-15:])


@pytest.fixture(params=["bully", "raft", "gossip"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(request.param, tmp_path)
    try:
        yield c
    finally:
        for n in c.nodes.values():
            n.kill()


@pytest.mark.slow
def test_leader_killed_survivors_agree_then_it_rejoins(cluster: Cluster) -> None:
    ids = cluster.start_three()
    # Given three nodes that agree on a leader
    assert poll(lambda: cluster.agreed(ids) is not None, 30), cluster.dump()
    leader = cluster.agreed(ids)
    assert leader is not None
    survivors = [n for n in ids if n != leader]

    # When the leader is SIGKILLed
    killed_at = time.time()
    cluster.nodes[leader].kill()

    # Expect the survivors to agree on a new leader among themselves
    assert poll(lambda: cluster.agreed(survivors, killed_at) is not None, 30), cluster.dump()
    new_leader = cluster.agreed(survivors, killed_at)
    assert new_leader in survivors

    # When it restarts, Expect all three to agree again
    restarted_at = time.time()
    cluster.nodes[leader].start()
    assert poll(lambda: cluster.agreed(ids) is not None and cluster.leader_of(leader, restarted_at), 30), (
        cluster.dump()
    )


@pytest.mark.slow
def test_a_node_joins_and_another_leaves_at_run_time(cluster: Cluster) -> None:
    ids = cluster.start_three()
    assert poll(lambda: cluster.agreed(ids) is not None, 30), cluster.dump()

    # When n4 joins through the running nodes
    cluster.add("n4", ids, join=True)
    everyone = [*ids, "n4"]
    # Expect all four to agree on a leader
    assert poll(lambda: cluster.agreed(everyone) is not None, 30), cluster.dump()

    # When a node that is not the leader leaves gracefully (SIGTERM)
    leader = cluster.agreed(everyone)
    leaving = next(n for n in ["n4", "n1", "n2", "n3"] if n != leader)
    left_at = time.time()
    assert cluster.nodes[leaving].terminate() == 0
    rest = [n for n in everyone if n != leaving]
    # Expect the others to keep (or re-agree on) one leader among themselves
    time.sleep(2.0)
    assert poll(lambda: cluster.agreed(rest) is not None, 30), cluster.dump()
    assert all(cluster.leader_of(n, left_at) != leaving for n in rest)
    if cluster.algorithm == "raft":
        # the membership itself changed: every remaining node applied a config without it
        def removed(n: str) -> bool:
            configs = cluster.nodes[n].find("raft.config", left_at)
            return bool(configs) and sorted(configs[-1]["voters"]) == sorted(rest)

        assert poll(lambda: all(removed(n) for n in rest), 15), cluster.dump()
    if cluster.algorithm == "gossip":
        assert poll(lambda: all(cluster.nodes[n].find("member.left", member=leaving) for n in rest), 15)
