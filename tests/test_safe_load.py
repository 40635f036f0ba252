"""Files cr-bench loads are data: a crafted model, reward-statistics or replay-buffer file
cannot run code, and is refused (or set aside) in one line where it cannot be read as data."""

from __future__ import annotations

import base64
import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cr_bench.agents.models import build_model, load_model
from cr_bench.agents.registry import resolve_config
from cr_bench.agents.run_state import TRUST_PICKLES, load_replay_buffer, load_reward_stats
from cr_bench.envs.make import make_vec_env
from cr_bench.errors import CrBenchError
from cr_bench.spec.run import RunConfig


class _Payload:
    """Unpickling this creates ``marker``: proof that a file ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _evil(marker: Path) -> str:
    return base64.b64encode(pickle.dumps(_Payload(marker))).decode()


def _saved(agent: str, tmp_path: Path) -> tuple[RunConfig, Path]:
    overrides = {"n_envs": 1, "env": {"backend": "gymnasium"}}
    config = resolve_config(agent, overrides, {"algo": {"learning_rate": "lin_3e-4"}} if agent == "ppo" else {})
    env = make_vec_env(config.env, 1, seed=0, vec_env="dummy")
    path = tmp_path / "model.zip"
    build_model(config, env).save(path)
    env.close()
    return config, path


def _rewrite_data(path: Path, change: Any) -> None:
    """Apply ``change`` to the zip's ``data`` JSON, keeping every other entry."""
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(entries["data"])
    change(data)
    entries["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)


@pytest.mark.parametrize("agent", ["ppo", "dqn"])
def test_a_crafted_model_file_runs_no_code(agent: str, tmp_path: Path) -> None:
    """Every pickled field of a saved model (policy class, kwargs, spaces, schedules, buffers'
    classes, and one SB3 does not know) replaced by a payload: the model loads from its config
    and no payload runs."""
    config, path = _saved(agent, tmp_path)
    marker = tmp_path / "ran"

    def poison(data: dict[str, Any]) -> None:
        for value in data.values():
            if isinstance(value, dict) and ":serialized:" in value:
                value[":serialized:"] = _evil(marker)
        data["anything"] = {":type:": "<class 'object'>", ":serialized:": _evil(marker)}

    _rewrite_data(path, poison)
    model = load_model(config, str(path))
    assert not marker.exists()
    assert model.observation_space.shape == model.policy.observation_space.shape
    assert model.lr_schedule(1.0) == pytest.approx(3e-4 if agent == "ppo" else config.algo["learning_rate"])  # rebuilt


def test_a_model_of_another_agent_or_shape_is_refused_in_one_line(tmp_path: Path) -> None:
    """The policy class is read from the file's JSON (no unpickling): another agent's model, or
    one whose observations do not fit the config, is a one-line error."""
    config, path = _saved("ppo", tmp_path)
    with pytest.raises(CrBenchError, match=r"was saved by agent ppo or ppo-v1, not dqn$"):
        load_model(resolve_config("dqn", {"n_envs": 1, "env": {"backend": "gymnasium"}}), str(path))
    other = resolve_config("ppo", {"n_envs": 1, "env": {"backend": "gymnasium", "obs_size": 64}})
    with pytest.raises(CrBenchError, match=r"does not fit its run's config: its observation_space is uint8"):
        load_model(other, str(path))

    def rename(data: dict[str, Any]) -> None:
        data["policy_kwargs"]["features_extractor_class"] = "<class 'os.system'>"

    _rewrite_data(path, rename)
    with pytest.raises(CrBenchError, match=re.escape("names <class 'os.system'>, which cr-bench does not load")):
        load_model(config, str(path))


def test_pickled_reward_statistics_are_read_only_when_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's reward statistics are .npz; a legacy .pkl is refused in one line (no code runs)
    unless CR_BENCH_TRUST_PICKLES=1, and the .npz round-trips the statistics."""
    from stable_baselines3.common.vec_env import VecNormalize

    config = resolve_config("ppo", {"n_envs": 2, "env": {"backend": "gymnasium"}})
    env = make_vec_env(config.env, 2, seed=0, vec_env="dummy")
    marker = tmp_path / "ran"
    (tmp_path / "reward_normalization.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    monkeypatch.delenv(TRUST_PICKLES, raising=False)
    with pytest.raises(CrBenchError, match=rf"is a pickle .* resume it with {TRUST_PICKLES}=1"):
        load_reward_stats(tmp_path / "reward_normalization.npz", env)
    assert not marker.exists()

    from cr_bench.agents.run_state import save_reward_stats

    normalizer = VecNormalize(env, norm_obs=False, norm_reward=True, gamma=0.9)
    normalizer.ret_rms.mean, normalizer.ret_rms.var, normalizer.ret_rms.count = np.array(3.0), np.array(4.0), 17.0
    save_reward_stats(normalizer, tmp_path / "reward_normalization.npz")
    loaded = load_reward_stats(tmp_path / "reward_normalization.npz", env)
    assert (float(loaded.ret_rms.var), loaded.ret_rms.count, loaded.gamma) == (4.0, 17.0, 0.9)
    assert not marker.exists()
    env.close()


def test_a_pickled_replay_buffer_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A legacy replay_buffer.pkl is set aside (the buffer refills) without running; a .npz
    buffer round-trips its transitions."""
    from cr_bench.agents.run_state import save_replay_buffer

    config = resolve_config("dqn", {"n_envs": 1, "env": {"backend": "gymnasium"}, "algo": {"buffer_size": 8}})
    env = make_vec_env(config.env, 1, seed=0, vec_env="dummy")
    model = build_model(config, env)
    marker = tmp_path / "ran"
    (tmp_path / "replay_buffer.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    monkeypatch.delenv(TRUST_PICKLES, raising=False)
    assert not load_replay_buffer(model.replay_buffer, tmp_path / "replay_buffer.npz")
    assert not marker.exists()
    buffer = model.replay_buffer
    buffer.rewards[:] = np.arange(8).reshape(8, 1)
    buffer.pos, buffer.full = 3, True
    save_replay_buffer(buffer, tmp_path / "replay_buffer.npz")
    fresh = build_model(config, env).replay_buffer
    assert load_replay_buffer(fresh, tmp_path / "replay_buffer.npz")
    assert fresh.rewards[:, 0].tolist() == list(range(8)) and (fresh.pos, fresh.full) == (3, True)
    env.close()
