"""Each Bully checker catches a deliberately broken Bully (and stays silent on the real one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sim
from actors import Actor, Context
from actors.elections import NAME
from actors.elections import bully as b
from sim.checkers_bully import check_bully

SCENARIOS = Path(__file__).parents[2] / "scenarios"


class NeverYields(b.Bully):
    """Broken: a coordinator ignores every other Coordinator, so a lower one never steps down."""

    def _on_coordinator(self, ctx: Context, sender: str, msg: b.Coordinator) -> None:
        if self.role != b.COORDINATOR:
            super()._on_coordinator(ctx, sender, msg)


class NoTakeover(b.Bully):
    """Broken: a (re)starting node never elects and follows whoever claims to lead."""

    def _on_join_timeout(self, ctx: Context, sender: str, msg: b.JoinTimeout) -> None:
        pass

    def _on_coordinator(self, ctx: Context, sender: str, msg: b.Coordinator) -> None:
        if msg.leader != self.me and msg.epoch >= self.epoch:
            self._adopt(ctx, msg.leader, msg.epoch)


class OwnCounterEpochs(b.Bully):
    """Broken: a new coordinator numbers its leaderships with its own counter, not max seen + 1."""

    def __init__(self, nodes: tuple[str, ...], config: b.BullyConfig):
        super().__init__(nodes, config)
        self.mine = 0

    def _become_coordinator(self, ctx: Context) -> None:
        self.max_epoch, self.mine = self.mine, self.mine + 1
        super()._become_coordinator(ctx)


def run_with(cls: type[b.Bully], scenario: str, seed: int = 1) -> list[sim.Violation]:
    sc = sim.load_scenario(SCENARIOS / scenario)
    cfg: b.BullyConfig = sc.params

    def build(node: str) -> dict[str, Actor]:
        return {NAME: cls(sc.nodes, cfg)}

    s = sim.Simulation(build, sc.nodes, seed=seed, network=sc.network, clocks=sc.clocks)
    for f in sc.faults:
        s.schedule(f)
    return check_bully(s.run(sc.duration), cfg)


def checkers(violations: list[Any]) -> set[str]:
    return {v.checker for v in violations}


def test_the_real_bully_is_clean_with_the_same_harness() -> None:
    for scenario in ("bully-partition.toml", "bully-leader-crash.toml"):
        assert run_with(b.Bully, scenario) == []


def test_lower_coordinator_that_never_yields_breaks_convergence_and_uniqueness() -> None:
    # Given a partition whose minority elects n3, When it heals, Expect n3 to stay coordinator
    # next to n5: caught as two coordinators and a node naming the wrong leader.
    found = checkers(run_with(NeverYields, "bully-partition.toml"))
    assert {"bully.one_coordinator", "bully.convergence"} <= found
    assert "bully.rank" not in found


def test_recovering_higher_node_that_does_not_take_over_is_caught() -> None:
    # Given n5 crashed and n3 leading, When n5 restarts and just follows n3, Expect the rank
    # checker (n5 names a node it outranks) and convergence (n5 is not leading) to fire.
    violations = run_with(NoTakeover, "bully-leader-crash.toml")
    found = checkers(violations)
    assert {"bully.rank", "bully.convergence"} <= found
    assert any(v.node == "n5" and v.checker == "bully.rank" for v in violations)


def test_epoch_reuse_is_caught() -> None:
    # Given n5 leading with epoch 1, When it crashes and n4 takes over with its own counter (1),
    # Expect the epochs checker to see a coordinator take an epoch it had already seen.
    found = checkers(run_with(OwnCounterEpochs, "bully-leader-crash.toml"))
    assert "bully.epochs" in found


def test_view_flapping_after_convergence_is_caught() -> None:
    # Given followers that give up on the leader far too early (timeout below the heartbeat
    # period, which the config would reject), Expect views to keep changing: bully.stable.
    sc = sim.load_scenario(SCENARIOS / "bully-leader-crash.toml")
    cfg: b.BullyConfig = sc.params
    impatient = object.__new__(b.BullyConfig)
    for name in (
        "election_timeout",
        "interval",
        "priorities",
        "seeds",
        "answer_timeout",
        "coordinator_timeout",
    ):
        object.__setattr__(impatient, name, getattr(cfg, name))
    object.__setattr__(impatient, "election_timeout", cfg.interval / 2)

    def build(node: str) -> dict[str, Actor]:
        return {NAME: b.Bully(sc.nodes, impatient)}

    s = sim.Simulation(build, sc.nodes, seed=1, network=sc.network)
    found = checkers(check_bully(s.run(10.0), cfg))
    assert "bully.stable" in found
