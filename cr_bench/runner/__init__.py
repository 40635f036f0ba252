"""Running many trainings: comparisons (:mod:`.compare`), tuning studies (:mod:`.tuning`
over :mod:`.study`, and :mod:`.pruner_replay`), the Ray executor (:mod:`.ray_executor`),
the throughput bench (:mod:`.bench`) and worker lifelines (:mod:`.lifeline`).
"""
