"""SB3 and sb3-contrib algorithms as cr-bench trains them: SB3's own loops, whose schedules
follow environment frames and whose rollouts may use fewer torch threads than their learner.

Each class declares the attributes a run sets (:meth:`FrameProgress.configure`). Levers that
change SB3's loop, measured by ``cr-bench bench`` and off by default, are in
:mod:`cr_bench.agents.levers`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch as th
from sb3_contrib import QRDQN, RecurrentPPO
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.type_aliases import RolloutBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from custom_policies.recurrent import process_sequence

if TYPE_CHECKING:
    from cr_bench.spec.run import RunConfig


class FrameProgress:
    """Mixin for SB3 algorithms: schedules follow environment frames, not agent steps.

    SB3 computes ``progress_remaining`` from agent steps; cr-bench budgets are frames,
    which differ with action repeat and reset no-ops. The training callback keeps
    ``frames_done`` up to date; both attributes are saved with the model, so a resumed
    run continues its schedules where they were.
    """

    frame_budget: int | None = None
    """The run's budget in env frames (None: SB3's schedule over agent steps)."""
    frames_done: int = 0
    """Env frames trained so far (the training callback counts them)."""

    def configure(self, config: RunConfig) -> None:
        """Take the run's settings that are not SB3 arguments (subclasses add theirs)."""
        self.frame_budget = config.frames

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
    """Torch threads of the rollout (0: the learner's)."""

    def configure(self, config: RunConfig) -> None:
        super().configure(config)  # type: ignore[misc]
        self.rollout_threads = config.rollout_threads

    @contextlib.contextmanager
    def rollout_torch_threads(self) -> Iterator[None]:
        """Run the block on the rollout's torch threads."""
        learner = th.get_num_threads()
        threads = min(self.rollout_threads or learner, learner)
        th.set_num_threads(threads)
        try:
            yield
        finally:
            th.set_num_threads(learner)

    def collect_rollouts(self, *args: Any, **kwargs: Any) -> Any:
        with self.rollout_torch_threads():
            return super().collect_rollouts(*args, **kwargs)  # type: ignore[misc]


class ChannelsLastRolloutBuffer(RolloutBuffer):
    """SB3's RolloutBuffer for image observations that a channels-last network reads: the
    observations are laid out channels-last once per rollout, as the learner starts, and
    each minibatch is a ``(batch, C, H, W)`` tensor in ``torch.channels_last`` memory format.

    SB3's buffer hands out channel-first minibatches, which the network relays out (a slow
    strided copy of uint8 pixels) in every minibatch of every epoch. The same values, in
    the order the network reads them.
    """

    def get(self, batch_size: int | None = None) -> Any:
        if not self.generator_ready:
            # (steps, envs, C, H, W) -> (envs, steps, H, W, C) in one copy; SB3's flattening
            # below swaps steps and envs back, which this layout turns into a view.
            by_env = np.ascontiguousarray(self.observations.transpose(1, 0, 3, 4, 2))
            self.observations = by_env.swapaxes(0, 1)
        yield from super().get(batch_size)

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> RolloutBufferSamples:
        samples = super()._get_samples(batch_inds, env)
        return samples._replace(observations=samples.observations.permute(0, 3, 1, 2))


class FramePPO(RolloutThreads, FrameProgress, PPO):
    """PPO with frame-based schedules and its rollouts on their own torch threads. A
    channels-last CNN on images gets a :class:`ChannelsLastRolloutBuffer`."""

    def _setup_model(self) -> None:
        extractor = self.policy_kwargs.get("features_extractor_kwargs", {})
        if (
            self.rollout_buffer_class is None
            and extractor.get("channels_last")
            and is_image_space(self.observation_space)
        ):
            self.rollout_buffer_class = ChannelsLastRolloutBuffer
        super()._setup_model()


class FusedAdam:
    """Mixin for DQN's family: the policy's Adam steps in torch's fused kernel.

    These agents take a gradient step every few transitions, and torch's default Adam on a CPU
    runs a dozen tensor ops per parameter tensor from Python; ``fused=True`` is the same
    update in one kernel. The optimizer keeps the parameters and settings the library gave it
    (QR-DQN's eps of 0.01 / batch size). A saved model's optimizer state loads into it, and
    its saved settings (fused or not) come with it.
    """

    policy: Any

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        optimizer = self.policy.optimizer
        if type(optimizer) is th.optim.Adam:
            settings = [
                {k: v for k, v in group.items() if k not in ("fused", "foreach")} for group in optimizer.param_groups
            ]
            defaults = {k: v for k, v in optimizer.defaults.items() if k not in ("fused", "foreach")}
            self.policy.optimizer = th.optim.Adam(settings, **defaults, fused=True)


class FrameDQN(FusedAdam, FrameProgress, DQN):
    """DQN with frame-based schedules and a fused Adam."""


class FrameRecurrentPPO(RolloutThreads, FrameProgress, RecurrentPPO):
    """sb3-contrib RecurrentPPO with frame-based schedules, its LSTM run over each training
    sequence in one call (:func:`custom_policies.recurrent.process_sequence`)."""

    def _setup_model(self) -> None:
        super()._setup_model()
        # An instance attribute: the policy's class, and so what a saved model names, stays sb3-contrib's.
        self.policy._process_sequence = process_sequence  # type: ignore[assignment]


class FrameQRDQN(FusedAdam, FrameProgress, QRDQN):
    """sb3-contrib QR-DQN with frame-based schedules and a fused Adam."""
