"""What people read: statistics (:mod:`.stats`), tables (:mod:`.tables`), plots
(:mod:`.plots`), published models (:mod:`.publish`), a study's outputs
(:mod:`.tune_report`), the throughput table (:mod:`.throughput`) and results/README.md
(:mod:`.report`).
"""
