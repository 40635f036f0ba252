"""What a person sees while a command runs: one progress bar per process (none in worker
processes, whose parent shows the bar), log lines printed above it, and, before a long job
starts, how long it should take (frames over this machine's frames/s measured by
``cr-bench bench``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from cr_bench.results.throughput import (
    DEFAULT_TABLE,
    PIPELINE,
    RAW,
    REFERENCE,
    TRAIN,
    measured_fps,
    measured_work,
    parallel_ratio,
)
from cr_bench.spec.run import RunConfig

_show_bars = True


def bar(total: int, unit: str, initial: int = 0, **kwargs: Any) -> tqdm:
    """A tqdm bar on a terminal (none when output goes to a file, or in a :func:`quiet` process)."""
    return tqdm(total=total, initial=initial, unit=unit, disable=None if _show_bars else True, **kwargs)


def say(line: str) -> None:
    """Print a line above any open bar, so the two never share a line."""
    tqdm.write(line)


def log_line(shown: tqdm | None, line: str) -> None:
    """Print ``line`` where no bar shows the progress (output to a file: a background run's
    log), unless this process is :func:`quiet`."""
    if _show_bars and (shown is None or shown.disable):
        say(line)


def quiet() -> None:
    """No bars in this process: a worker's parent shows the progress for all its workers."""
    global _show_bars
    _show_bars = False


@contextmanager
def library_logs_above_bars() -> Iterator[None]:
    """Optuna's log lines go through tqdm, above the bars, instead of through them."""
    with logging_redirect_tqdm(loggers=[logging.getLogger("optuna")]):
        yield


def training_fps(config: RunConfig, table: Path = DEFAULT_TABLE) -> float | None:
    """Expected training frames/s of ``config`` on this machine, from the measured table.

    On EnvPool, PPO's family is scaled from the default ``ppo``'s measured row (``bench``
    trains today's default and records its work per frame beside it): a frame costs the
    pipeline's time per frame (its measured row) plus the agent's work, which grows with agent
    steps per frame (``1 / action_repeat``), passes over each sample (one forward to act,
    ``n_epochs`` forward-and-backward passes of about three forwards each to learn) and
    pixels (``obs_size**2``):

        seconds/frame = 1/pipeline + (1/train - 1/pipeline) * work(config) / work(default)

    So a config at action repeat 4 with 7 epochs costs about twice the default's frame at
    repeat 8 with 4. DQN's family is priced the same way, by its work in the same unit
    (:func:`agent_work`): a model, which leaves out what the unit does not count (an LSTM,
    QR-DQN's quantile loss, the replay's sampling). On gymnasium, where the env dominates
    whatever the agent, the rl-zoo3 reference's row is used.
    """
    if config.env.backend != "envpool":
        return measured_fps(REFERENCE, "gymnasium", table)
    train, pipeline = measured_fps(TRAIN, "envpool", table), measured_fps(PIPELINE, "envpool", table)
    if train is None:
        return None
    if pipeline is None or pipeline <= train:
        return train
    from cr_bench.agents.registry import resolve_config

    # The table says what its row trained; one written before it did trained ppo-v1, the default then.
    measured = measured_work(table) or agent_work(resolve_config("ppo-v1"))
    ratio = agent_work(config) / measured
    return 1.0 / (1.0 / pipeline + (1.0 / train - 1.0 / pipeline) * ratio)


def shared_fps(config: RunConfig, workers: int, table: Path = DEFAULT_TABLE) -> float | None:
    """Expected frames/s of each of ``workers`` trainings of ``config`` running at once on this
    machine: :func:`training_fps` (one training alone), shared.

    ``cr-bench bench`` times two trainings at once: together they train ``ratio`` times the
    frames/s of one alone (1.20x on 2 cores), so each trains ``ratio / 2`` of it. More workers
    are taken to share the same total, which holds where two already fill the cores (the
    2-core machines this project runs on) and underrates a bigger machine. Without that
    measurement each of ``workers`` gets ``1 / workers``.
    """
    fps = training_fps(config, table)
    if fps is None or workers <= 1:
        return fps
    return fps * (parallel_ratio(table) or 1.0) / workers


def sharing_text(workers: int, table: Path = DEFAULT_TABLE) -> str:
    """Where :func:`shared_fps`'s sharing comes from, for an estimate's reader."""
    ratio = parallel_ratio(table)
    if workers <= 1:
        return "1 worker"
    if ratio is None:
        return f"{workers} workers, each at 1/{workers} of one training alone (2 at once not measured)"
    return (
        f"{workers} workers, each at {ratio / workers:.2f}x one training alone "
        f"({DEFAULT_TABLE}: 2 trainings at once train {ratio:.2f}x one)"
    )


def _on_policy(config: RunConfig) -> bool:
    from cr_bench.agents.algorithms import RolloutThreads
    from cr_bench.agents.registry import get_agent

    return issubclass(get_agent(config.agent).algorithm, RolloutThreads)


COST_PARAMS = ("action_repeat", "n_epochs", "obs_size", "train_freq", "gradient_steps", "batch_size")
"""The config values :func:`agent_work` prices that a tuning study searches."""


def agent_work(config: RunConfig) -> float:
    """The agent's work per env frame, in forward passes over a 96-pixel sample (see :func:`training_fps`).

    Per agent step (one every ``action_repeat`` frames), both families act with one forward.
    PPO's family learns from each sample in ``n_epochs`` forward-and-backward passes of about
    three forwards each. DQN's family (a replay) does ``gradient_steps`` every ``train_freq``
    steps of its ``n_envs`` envs (-1: one per transition collected), each a forward and
    backward on ``batch_size`` samples plus the target net's forward: four forwards a sample.

    >>> from cr_bench.agents.registry import resolve_config
    >>> agent_work(resolve_config("ppo", {"env": {"action_repeat": 4}, "algo": {"n_epochs": 7}}))
    5.5
    >>> agent_work(resolve_config("dqn", {"env": {"obs_size": 96}}))  # (1 + 4 x 32 x 1 / (2 x 2)) / 2
    16.5
    """
    pixels = (config.env.obs_size / 96) ** 2
    if _on_policy(config):
        epochs = int(config.algo.get("n_epochs", 10))  # SB3 PPO's default
        return (1 + 3 * epochs) / config.env.action_repeat * pixels
    from cr_bench.envs.wrappers import MAX_EPISODE_FRAMES

    # SB3's defaults: train_freq 4 (or (4, "step"); an episode is at most MAX_EPISODE_FRAMES),
    # gradient_steps 1, batch_size 32 (QR-DQN's too).
    freq = config.algo.get("train_freq", 4)
    if isinstance(freq, list | tuple):
        episode = str(freq[1]).startswith("episode")
        freq = int(freq[0]) * (MAX_EPISODE_FRAMES // config.env.action_repeat if episode else 1)
    steps = int(config.algo.get("gradient_steps", 1))
    per_transition = 1.0 if steps < 0 else steps / (int(freq) * config.n_envs)
    return (1 + 4 * int(config.algo.get("batch_size", 32)) * per_transition) / config.env.action_repeat * pixels


def evaluation_fps(backend: str, workers: int, table: Path = DEFAULT_TABLE, *, action_repeat: int) -> float | None:
    """Measured frames/s of an evaluation at ``action_repeat``: EnvPool's pipeline rate, or
    gymnasium's on each worker's core.

    On gymnasium a frame costs its physics plus, when drawn, its drawing, and only the last
    frame of a repeat is drawn: the raw row draws every frame, the pipeline row (ppo's, at its
    action repeat R) one in R, so their difference is (1 - 1/R) drawings. A table from before
    frames went undrawn gives no difference: its pipeline rate, whatever the repeat.
    """
    if backend == "envpool":
        return measured_fps(PIPELINE, "envpool", table)
    raw, pipeline = measured_fps(RAW, "gymnasium", table), measured_fps(PIPELINE, "gymnasium", table)
    if pipeline is None:
        return None
    from cr_bench.agents.registry import resolve_config

    measured_repeat = resolve_config("ppo").env.action_repeat
    seconds = 1.0 / pipeline
    if raw is not None and measured_repeat > 1:
        drawing = max(0.0, (1.0 / raw - seconds) * measured_repeat / (measured_repeat - 1))
        seconds += drawing * (1.0 / action_repeat - 1.0 / measured_repeat)
    return max(1, min(workers, os.cpu_count() or 1)) / seconds


def duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.4 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


TABLE_SOURCE = f"from {DEFAULT_TABLE}: cr-bench bench remeasures"
"""Where an estimate's speed comes from when no run has measured it."""


def estimate(frames: int, fps: float | None, bound: str = "about", source: str = "") -> str:
    """How long ``frames`` take at ``fps``, saying where the speed comes from: ``source``, else
    the bench's table.

    >>> estimate(1_000_000, 910.0)
    'about 18 min (1,000,000 frames at 910 frames/s, from results/throughput.csv: cr-bench bench remeasures)'
    >>> estimate(5000, None)
    '5,000 frames (speed not measured on this machine yet: cr-bench bench measures it)'
    """
    if not fps:
        return f"{frames:,} frames (speed not measured on this machine yet: cr-bench bench measures it)"
    source = source or TABLE_SOURCE
    return f"{bound} {duration(frames / fps)} ({frames:,} frames at {fps:,.0f} frames/s, {source})"
