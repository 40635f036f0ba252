"""SB3 and sb3-contrib algorithms whose schedules follow environment frames and whose
rollouts may use fewer torch threads than their learner."""

from __future__ import annotations

from typing import Any

import torch as th
from sb3_contrib import QRDQN, RecurrentPPO
from stable_baselines3 import DQN, PPO


class FrameProgress:
    """Mixin for SB3 algorithms: schedules follow environment frames, not agent steps.

    SB3 computes ``progress_remaining`` from agent steps; cr-bench budgets are frames,
    which differ with action repeat and reset no-ops. The training callback keeps
    ``frames_done`` up to date; both attributes are saved with the model, so a resumed
    run continues its schedules where they were.
    """

    frame_budget: int | None = None
    frames_done: int = 0

    def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
        if self.frame_budget:
            self._current_progress_remaining = max(0.0, 1.0 - self.frames_done / self.frame_budget)
        else:
            super()._update_current_progress_remaining(num_timesteps, total_timesteps)  # type: ignore[misc]


class RolloutThreads:
    """Mixin for on-policy SB3 algorithms: collect rollouts on ``rollout_threads`` torch threads.

    Collecting runs the policy on one small batch per step, where a second thread mostly
    waits for the first; the learner's large batches use them all. 0 keeps the learner's
    threads, and the rollout never uses more than the learner. Not on DQN's family: it
    collects a few steps between gradient steps, and each switch of threads has a cost.
    """

    rollout_threads: int = 0

    def collect_rollouts(self, *args: Any, **kwargs: Any) -> Any:
        learner = th.get_num_threads()
        threads = min(self.rollout_threads or learner, learner)
        if threads == learner:
            return super().collect_rollouts(*args, **kwargs)  # type: ignore[misc]
        th.set_num_threads(threads)
        try:
            return super().collect_rollouts(*args, **kwargs)  # type: ignore[misc]
        finally:
            th.set_num_threads(learner)


class FramePPO(FrameProgress, RolloutThreads, PPO):
    """PPO with frame-based schedules."""


class FrameDQN(FrameProgress, DQN):
    """DQN with frame-based schedules."""


class FrameRecurrentPPO(FrameProgress, RolloutThreads, RecurrentPPO):
    """sb3-contrib RecurrentPPO with frame-based schedules."""


class FrameQRDQN(FrameProgress, QRDQN):
    """sb3-contrib QR-DQN with frame-based schedules."""
