"""Scenario files: a bad field gives one ScenarioError whose one line names it."""

from __future__ import annotations

from pathlib import Path

import pytest

import sim

GOOD = """
name = "x"
system = "heartbeat"
nodes = 5
duration = 60.0
[heartbeat]
interval = 1.0
suspect_after = 2.0
dead_after = 3.0
[network]
latency = { dist = "uniform", low = 0.001, high = 0.01 }
[[faults]]
at = 10.0
action = "crash"
node = "n2"
"""


def load(tmp_path: Path, text: str) -> sim.Scenario:
    p = tmp_path / "x.toml"
    p.write_text(text)
    return sim.load_scenario(p)


def test_good_scenario_parses(tmp_path: Path) -> None:
    sc = load(tmp_path, GOOD)
    assert sc.nodes == ("n1", "n2", "n3", "n4", "n5")
    assert sc.faults == (sim.Fault(10.0, "crash", node="n2"),)
    assert sc.network.latency == sim.Uniform(0.001, 0.01)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('node = "n2"', 'node = "n9"', "faults[0].node: unknown node 'n9' (nodes are n1..n5)"),
        ("at = 10.0", "at = 99.0", "faults[0].at: fault time 99.0 is outside the run (duration 60.0)"),
        ('action = "crash"', 'action = "explode"', "faults[0].action: unknown action 'explode'"),
        ('node = "n2"', "", "faults[0].node: missing required field for action 'crash'"),
        ('node = "n2"', 'node = "n2"\ncolour = 1', "faults[0].colour: unknown field"),
        ("duration = 60.0", 'duration = "long"', "duration: expected float, got str 'long'"),
        ('name = "x"', "", "name: missing required field"),
        ("nodes = 5", "nodes = 5\nextra = true", "extra: unknown field"),
        ('system = "heartbeat"', 'system = "paxos"', "system: unknown system 'paxos'"),
        ("interval = 1.0", "interval = -1.0", "heartbeat: heartbeat interval must be > 0"),
        ("interval = 1.0", "intervl = 1.0", "heartbeat.intervl: unknown field"),
        ('dist = "uniform"', 'dist = "zipf"', "network.latency.dist: unknown distribution 'zipf'"),
        ("low = 0.001, high = 0.01", "low = 0.1, high = 0.01", "network.latency.high: must be >= low"),
        ("[network]", "[network]\nloss = 1.5", "network.loss: must be <= 1.0, got 1.5"),
    ],
)
def test_bad_field_is_named(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD
    with pytest.raises(sim.ScenarioError) as info:
        load(tmp_path, GOOD.replace(old, new, 1))
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(str(tmp_path / "x.toml") + ": ")
    assert expected in msg


def test_partition_groups_are_checked(tmp_path: Path) -> None:
    text = GOOD.replace(
        'action = "crash"\nnode = "n2"', 'action = "partition"\ngroups = [["n1"], ["n1", "n7"]]'
    )
    with pytest.raises(sim.ScenarioError, match=r"faults\[0\]\.groups\[1\]: node 'n1' is in two groups"):
        load(tmp_path, text)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(sim.ScenarioError, match="invalid TOML"):
        load(tmp_path, "name = ")
    with pytest.raises(sim.ScenarioError, match="cannot read"):
        sim.load_scenario(tmp_path / "nope.toml")


def test_public_api_is_explicit() -> None:
    public = [n for n in dir(sim) if not n.startswith("_")]
    for name in ("Simulation", "run_scenario", "RunResult", "Fault", "ScenarioError", "check_heartbeat"):
        assert name in public
