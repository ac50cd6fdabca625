"""Simulation of the raft election: scenario parameters, blueprint and checkers (registered
in :data:`sim.systems.SYSTEMS` under ``"raft"``). Filled in by the raft work."""
