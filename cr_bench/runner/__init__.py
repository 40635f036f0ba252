"""Running many trainings: comparisons (:mod:`.compare`), tuning studies (:mod:`.tuning`
over :mod:`.study`, and :mod:`.pruner_replay`), the Ray executor (:mod:`.ray_executor`),
and the throughput bench (:mod:`.bench`); each runs its work as tasks (:mod:`.task`) through
one executor (:mod:`.executor`: local processes, or Ray through :mod:`.ray_executor`).
"""
