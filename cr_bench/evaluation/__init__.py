"""Scores on held-out tracks: episodes and their tables (:mod:`.episodes`), checkpoint
curves (:mod:`.curves`), re-checking a published evaluation (:mod:`.verify`), recording a
lap (:mod:`.recording`) and driving by keyboard (:mod:`.play`).
"""
