"""Same scenario and seed give the same trace hash; different seeds give different ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import sim

SCENARIOS = Path(__file__).parents[2] / "scenarios"
LOSSY = sim.load_scenario(SCENARIOS / "heartbeat-loss-skew.toml")
SHORT = dataclasses.replace(LOSSY, duration=15.0, faults=())

faults = st.lists(
    st.one_of(
        st.builds(
            lambda at, n: sim.Fault(at, "crash", node=n), st.floats(0, 14), st.sampled_from(SHORT.nodes)
        ),
        st.builds(
            lambda at, n: sim.Fault(at, "restart", node=n), st.floats(0, 14), st.sampled_from(SHORT.nodes)
        ),
        st.builds(
            lambda at, n: sim.Fault(at, "pause", node=n), st.floats(0, 14), st.sampled_from(SHORT.nodes)
        ),
        st.builds(
            lambda at, n: sim.Fault(at, "resume", node=n), st.floats(0, 14), st.sampled_from(SHORT.nodes)
        ),
        st.builds(lambda at: sim.Fault(at, "partition", groups=(("n1", "n2"),)), st.floats(0, 14)),
        st.builds(lambda at: sim.Fault(at, "heal"), st.floats(0, 14)),
        st.builds(lambda at, v: sim.Fault(at, "set_loss", value=v), st.floats(0, 14), st.floats(0, 1)),
    ),
    max_size=6,
).map(lambda fs: tuple(sorted(fs, key=lambda f: f.at)))


@given(seed=st.integers(0, 2**63), fault_list=faults, loss=st.floats(0, 0.5))
def test_same_seed_same_hash(seed: int, fault_list: tuple[sim.Fault, ...], loss: float) -> None:
    net = dataclasses.replace(SHORT.network, loss=loss)
    sc = dataclasses.replace(SHORT, faults=fault_list, network=net)
    first = sim.run_scenario(sc, seed)
    second = sim.run_scenario(sc, seed)
    assert first.trace_sha256 == second.trace_sha256
    assert first.events == second.events


@given(seed=st.integers(0, 2**62))
def test_different_seeds_give_different_traces(seed: int) -> None:
    assert sim.run_scenario(SHORT, seed).trace_sha256 != sim.run_scenario(SHORT, seed + 1).trace_sha256


def test_self_check_reports_identical_hashes() -> None:
    report = sim.check_determinism(SCENARIOS / "heartbeat-partition.toml", 5)
    assert report.identical and report.first_difference is None


def test_trace_file_hash_equals_trace_sha256(tmp_path: Path) -> None:
    import hashlib

    res = sim.run_scenario(SCENARIOS / "heartbeat-crash-restart.toml", 2)
    res.trace.write(tmp_path / "t.msgpack")
    assert hashlib.sha256((tmp_path / "t.msgpack").read_bytes()).hexdigest() == res.trace_sha256
    res.trace.write(tmp_path / "t.jsonl")
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert len(lines) == res.events


def test_codec_checks_do_not_change_the_trace() -> None:
    path = SCENARIOS / "heartbeat-loss-skew.toml"
    assert (
        sim.run_scenario(path, 3, codec_checks=False).trace_sha256
        == sim.run_scenario(path, 3, codec_checks=True).trace_sha256
    )
