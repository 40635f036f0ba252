"""SB3 and sb3-contrib algorithms whose schedules follow environment frames."""

from __future__ import annotations

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


class FramePPO(FrameProgress, PPO):
    """PPO with frame-based schedules."""


class FrameDQN(FrameProgress, DQN):
    """DQN with frame-based schedules."""


class FrameRecurrentPPO(FrameProgress, RecurrentPPO):
    """sb3-contrib RecurrentPPO with frame-based schedules."""


class FrameQRDQN(FrameProgress, QRDQN):
    """sb3-contrib QR-DQN with frame-based schedules."""
