"""The CarRacing-v3 env pipeline: one wrapper per behaviour (:mod:`.wrappers`), composed on
gymnasium by :mod:`.make`, or applied to a batch on EnvPool (:mod:`.envpool_backend`); and
the policies that do not learn, shown in every comparison (:mod:`.baselines`).
"""
