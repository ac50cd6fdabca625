"""The swarm in CI: 200 seeds of random faults per election algorithm, zero violations.

Each seed draws its own mix of loss, duplication, reordering, partitions, one-way blocks,
crashes, restarts, pauses, clock skew and jumps for the scenario's duration, then a quiet
phase in which the algorithm must recover; the algorithm's checkers judge every seed.
A failing seed prints the command that replays it (``troupe sim run ... --swarm``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim import swarm

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SEEDS = range(1, 201)


@pytest.mark.slow
@pytest.mark.parametrize(
    "scenario", ["bully-partition.toml", "gossip-partition.toml", "raft-partition-majority.toml"]
)
def test_two_hundred_seeds_of_random_faults_break_no_promise(scenario: str) -> None:
    result = swarm(SCENARIOS / scenario, SEEDS, faults="default", jobs=2)
    failing = {o.seed: [str(v) for v in o.violations[:2]] for o in result.outcomes if o.violations}
    assert len(result.outcomes) == len(SEEDS)
    assert failing == {}, "\n".join(f"seed {s}: {v} | {result.replay_command(s)}" for s, v in failing.items())
