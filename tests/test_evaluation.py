"""Evaluation on gymnasium in worker processes: every track once, in track order, and each
episode the same whichever worker played it (tiny env, no Box2D)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import torch as th

from cr_bench.agents.models import build_model
from cr_bench.agents.registry import resolve_config
from cr_bench.envs.baselines import RandomPolicy
from cr_bench.envs.make import make_vec_env
from cr_bench.errors import CrBenchError
from cr_bench.evaluation.episodes import EpisodeResult, evaluate
from cr_bench.spec.run import EnvConfig, EvalConfig
from tests.fake_env import TINY_ENV_ID, TinyCarRacing

TINY = EnvConfig(id=TINY_ENV_ID, action_repeat=8)
ACTIONS = TinyCarRacing().action_space


def _tracks(episodes: int, n_envs: int, deterministic: bool = True) -> EvalConfig:
    """``episodes`` tracks from seed 1,000,000 on gymnasium, ``n_envs`` at once."""
    return EvalConfig(episodes=episodes, track_seed_start=1_000_000, n_envs=n_envs, deterministic=deterministic)


def _returns(results: list[EpisodeResult]) -> list[tuple[int, float, int, int]]:
    return [(r.track_seed, r.true_return, r.length, r.steps) for r in results]


def test_workers_give_the_episodes_one_process_gives() -> None:
    """A stochastic policy on 5 tracks: 1, 2 or 3 workers play the same episodes, returned in track
    order, each reported once as it finishes."""
    seen: list[int] = []
    alone = evaluate(RandomPolicy(ACTIONS, 0), TINY, _tracks(5, n_envs=1))
    shared = evaluate(RandomPolicy(ACTIONS, 0), TINY, _tracks(5, n_envs=2), lambda r: seen.append(r.track_seed))
    assert [r.track_seed for r in alone] == list(range(1_000_000, 1_000_005))
    assert _returns(shared) == _returns(alone)
    assert _returns(evaluate(RandomPolicy(ACTIONS, 0), TINY, _tracks(5, n_envs=3))) == _returns(alone)
    assert sorted(seen) == list(range(1_000_000, 1_000_005))
    assert len({r.true_return for r in alone}) == 5  # the tracks and draws differ: a real check


def test_a_stochastic_model_draws_per_track() -> None:
    """An SB3 model acting stochastically: its episode on a track is the same alone and in a worker
    (the worker gets a copy of the policy and seeds torch with the track)."""
    config = resolve_config(
        "ppo", {"n_envs": 1, "vec_env": "dummy", "env": {"id": TINY_ENV_ID, "backend": "gymnasium"}}
    )
    venv = make_vec_env(config.env, 1, seed=0)
    model = build_model(config, venv)
    venv.close()
    alone = evaluate(model, config.env, _tracks(3, n_envs=1, deterministic=False))
    shared = evaluate(model, config.env, _tracks(3, n_envs=2, deterministic=False))
    assert [r.track_seed for r in shared] == [r.track_seed for r in alone]
    assert _returns(shared) == _returns(alone)  # one torch thread on both sides: the same arithmetic


def test_evaluating_leaves_the_callers_random_state_and_threads() -> None:
    """Validation inside a training plays in-process: the training's torch draws and thread count
    are the same before and after."""
    threads = th.get_num_threads()
    th.set_num_threads(2)  # a training's two learner threads; the episodes play on one
    try:
        th.manual_seed(7)
        expected = th.rand(3)
        th.manual_seed(7)
        evaluate(RandomPolicy(ACTIONS, 0), TINY, _tracks(2, n_envs=1, deterministic=False))
        assert th.equal(th.rand(3), expected)
        assert th.get_num_threads() == 2
    finally:
        th.set_num_threads(threads)


class _DiesInWorker:
    """A policy that kills the process it runs in on its first action (in the parent it is never called)."""

    def predict(self, observation: np.ndarray, *args: Any, **kwargs: Any) -> tuple[np.ndarray, None]:
        os._exit(3)


def test_a_dead_worker_is_a_one_line_error() -> None:
    with pytest.raises(CrBenchError, match="an evaluation worker died"):
        evaluate(_DiesInWorker(), TINY, _tracks(2, n_envs=2))


@pytest.mark.parametrize("agent", ["ppo-gaussian", "recurrent-ppo"])
def test_a_gsde_model_loaded_from_its_file_plays_in_workers(agent: str, tmp_path: Any) -> None:
    """rl-zoo3's recipes explore with gSDE: loading draws a noise matrix with gradients (SB3's
    ``reset_noise``), which cannot be pickled to a worker. It plays there, as it does alone, and
    the caller's noise keeps its values."""
    from cr_bench.agents.models import load_model

    config = resolve_config(
        agent, {"n_envs": 1, "vec_env": "dummy", "env": {"id": TINY_ENV_ID, "backend": "gymnasium"}}
    )
    venv = make_vec_env(config.env, 1, seed=0)
    build_model(config, venv).save(tmp_path / "model.zip")
    venv.close()
    model = load_model(config, str(tmp_path / "model.zip"), device="cpu")
    noise = model.policy.action_dist.exploration_mat.detach().clone()
    assert model.policy.action_dist.exploration_mat.requires_grad  # what SB3's load leaves
    alone = evaluate(model, config.env, _tracks(3, n_envs=1))
    shared = evaluate(model, config.env, _tracks(3, n_envs=2))
    assert _returns(shared) == _returns(alone)
    assert th.equal(model.policy.action_dist.exploration_mat, noise)
