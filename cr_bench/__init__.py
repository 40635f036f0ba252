"""cr-bench: train, evaluate and compare Stable-Baselines3 agents on CarRacing-v3."""

__version__ = "0.1.0"
