"""SB3 policy extensions used by cr-bench.

Kept as its own package so that a saved model loads wherever cr-bench is installed:
``PPO.load("model.zip")`` only needs ``custom_policies`` importable.
"""

from custom_policies.distributions import BetaDistribution
from custom_policies.extractors import NatureCNN, SixConvCNN, SmallCNN
from custom_policies.policies import BetaCnnPolicy

__all__ = ["BetaCnnPolicy", "BetaDistribution", "NatureCNN", "SixConvCNN", "SmallCNN"]
