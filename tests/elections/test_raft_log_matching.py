"""Raft §5.3 Log Matching, checked over the durable logs every node holds at the end of a run."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

from sim import run_scenario
from sim.checkers_raft import durable_log, log_matching

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "raft-partition-minority.toml"


def test_real_runs_keep_log_matching_and_a_forged_divergence_is_caught() -> None:
    # Given a real run with crashes of replicated proposals
    result = run_scenario(SCENARIO, seed=3)
    assert result.violations == []
    logs = {n: durable_log(result.durable[n]["election"]) for n in result.nodes}
    assert all(len(log) > 5 for log in logs.values())
    assert log_matching(result) == []
    # When one node's older entry is replaced by another term while a later one still agrees
    forged = dataclasses.replace(result, durable=copy.deepcopy(result.durable))
    node = result.nodes[0]
    state = forged.durable[node]["election"]
    indices = sorted(durable_log(state))
    early = indices[len(indices) // 2]
    entry = list(state[f"log/{early}"])
    entry[0] = entry[0] + 100
    state[f"log/{early}"] = entry
    # Expect the checker to name the divergence
    found = log_matching(forged)
    assert found and all(v.checker == "raft.log_matching" for v in found)
    assert f"differ at index {early}" in found[0].description
