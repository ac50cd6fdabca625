"""Simulation of the gossip election: scenario parameters, blueprint and checkers (registered
in :data:`sim.systems.SYSTEMS` under ``"gossip"``). Filled in by the gossip work."""
