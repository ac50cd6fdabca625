"""The job engine's swarm in CI: 200 seeds of random faults per store, zero violations.

Each seed draws its own mix of loss, duplication, reordering, partitions, one-way blocks,
crashes and restarts (of engine nodes, the memory store's node and the client's node), pauses,
clock skew and jumps for the scenario's 15 s, then a quiet phase long enough for the liveness
checker; the job checkers (:mod:`sim.checkers_jobs`) judge every seed. A failing seed prints
the command that replays it (``troupe sim run ... --swarm``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim import swarm

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SEEDS = range(1, 201)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["jobs-swarm-memory.toml", "jobs-swarm-raft.toml"])
def test_two_hundred_seeds_of_random_faults_break_no_promise(scenario: str) -> None:
    result = swarm(SCENARIOS / scenario, SEEDS, faults="default", jobs=2)
    failing = {o.seed: [str(v) for v in o.violations[:2]] for o in result.outcomes if o.violations}
    assert len(result.outcomes) == len(SEEDS)
    assert failing == {}, "\n".join(f"seed {s}: {v} | {result.replay_command(s)}" for s, v in failing.items())
