"""Simulation of the bully election: scenario parameters, blueprint and checkers (registered
in :data:`sim.systems.SYSTEMS` under ``"bully"``). Filled in by the bully work."""
