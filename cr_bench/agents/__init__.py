"""Agents: the registry of agents and their defaults (:mod:`.registry`), the SB3 algorithms
as cr-bench runs them (:mod:`.algorithms`), building and loading models (:mod:`.models`),
training (:mod:`.training`) and the run folders it writes (:mod:`.rundir`).

The policies themselves are in the user-facing package ``custom_policies``.
"""
