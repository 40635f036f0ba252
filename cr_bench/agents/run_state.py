"""A run's training state besides its model, kept as data: the reward-normalization statistics
and an off-policy agent's replay buffer, as ``.npz`` arrays read with ``allow_pickle=False``.

SB3 saves both as pickles, which run whatever code they hold when loaded; a run folder may
come from someone else. Run folders written before this module hold
``reward_normalization.pkl`` and ``replay_buffer.pkl``: they are read only when the
environment variable :data:`TRUST_PICKLES` is ``1`` (for runs you made yourself), and the
next checkpoint writes the ``.npz`` files.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from cr_bench.errors import CrBenchError
from cr_bench.io import atomic_path

TRUST_PICKLES = "CR_BENCH_TRUST_PICKLES"
"""Environment variable: ``1`` lets a resume read a pre-npz run's pickles (they can run code)."""
_REWARD_FIELDS = ("mean", "var", "count", "returns", "gamma", "epsilon", "clip_reward")
_BUFFER_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def trusts_pickles() -> bool:
    """Whether the user said, through :data:`TRUST_PICKLES`, that this machine's old pickles are theirs."""
    return os.environ.get(TRUST_PICKLES) == "1"


def legacy(path: Path) -> Path:
    """The pickle a run wrote before this module, in place of the ``.npz`` at ``path``."""
    return path.with_suffix(".pkl")


def save_reward_stats(normalizer: VecNormalize, path: Path) -> None:
    """The reward statistics of ``normalizer`` (reward-only normalization) as ``path`` (.npz), atomically."""
    rms = normalizer.ret_rms
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(
            handle,
            mean=rms.mean,
            var=rms.var,
            count=np.float64(rms.count),
            returns=normalizer.returns,
            gamma=np.float64(normalizer.gamma),
            epsilon=np.float64(normalizer.epsilon),
            clip_reward=np.float64(normalizer.clip_reward),
        )


def load_reward_stats(path: Path, env: VecEnv) -> VecNormalize:
    """A reward-only VecNormalize on ``env`` that continues the statistics saved at ``path``
    (or, with :data:`TRUST_PICKLES`, its legacy pickle).

    :raises CrBenchError: for an unreadable file, or a legacy pickle without trust.
    """
    if not path.is_file() and legacy(path).is_file():
        return _load_legacy_reward_stats(legacy(path), env)
    try:
        with np.load(path, allow_pickle=False) as saved:
            fields = {name: saved[name] for name in _REWARD_FIELDS}
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise CrBenchError(f"cannot read {path}: {error}".splitlines()[0]) from None
    normalizer = VecNormalize(
        env,
        norm_obs=False,
        norm_reward=True,
        gamma=float(fields["gamma"]),
        epsilon=float(fields["epsilon"]),
        clip_reward=float(fields["clip_reward"]),
    )
    normalizer.ret_rms.mean = np.asarray(fields["mean"], dtype=np.float64)
    normalizer.ret_rms.var = np.asarray(fields["var"], dtype=np.float64)
    normalizer.ret_rms.count = float(fields["count"])
    if fields["returns"].shape == normalizer.returns.shape:
        normalizer.returns = np.asarray(fields["returns"], dtype=np.float64)
    return normalizer


def _load_legacy_reward_stats(path: Path, env: VecEnv) -> VecNormalize:
    if not trusts_pickles():
        raise CrBenchError(
            f"{path} is a pickle (written before cr-bench kept it as data), which can run code when read; "
            f"if you made this run, resume it with {TRUST_PICKLES}=1 (the next checkpoint writes {path.stem}.npz)"
        )
    try:
        return VecNormalize.load(str(path), env)
    except Exception as error:  # a truncated or foreign pickle: any unpickling error
        raise CrBenchError(f"cannot read {path}: {error}".splitlines()[0]) from None


def save_replay_buffer(buffer: ReplayBuffer, path: Path) -> None:
    """``buffer``'s transitions and position as ``path`` (.npz), atomically."""
    arrays = {name: getattr(buffer, name) for name in _BUFFER_FIELDS if getattr(buffer, name, None) is not None}
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, pos=np.int64(buffer.pos), full=np.bool_(buffer.full), **arrays)


def load_replay_buffer(buffer: ReplayBuffer, path: Path) -> bool:
    """Fill ``buffer`` from ``path`` (or, with :data:`TRUST_PICKLES`, its legacy pickle); whether
    it was filled. An unreadable file, or one whose arrays do not fit, leaves it empty (the
    training refills it), saying why."""
    if not path.is_file() and legacy(path).is_file():
        if not trusts_pickles():
            print(f"cr-bench: {legacy(path)} is a pickle (it can run code) and is not read; set "
                  f"{TRUST_PICKLES}=1 to read it if you made this run", file=sys.stderr)  # fmt: skip
            return False
        import pickle

        with legacy(path).open("rb") as handle:
            saved_buffer = pickle.load(handle)
        buffer.__dict__.update({name: getattr(saved_buffer, name) for name in (*_BUFFER_FIELDS, "pos", "full")})
        return True
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
    except (OSError, ValueError, EOFError) as error:
        print(f"cr-bench: cannot read {path} ({error}); refilling the buffer".splitlines()[0], file=sys.stderr)
        return False
    for name in _BUFFER_FIELDS:
        current = getattr(buffer, name, None)
        if current is not None and (name not in arrays or arrays[name].shape != current.shape):
            print(f"cr-bench: {path} does not fit this model's buffer ({name}); refilling it", file=sys.stderr)
            return False
    for name in _BUFFER_FIELDS:
        if getattr(buffer, name, None) is not None:
            setattr(buffer, name, arrays[name])
    buffer.pos, buffer.full = int(arrays["pos"]), bool(arrays["full"])
    return True
