"""Typed config loading: defaults, YAML overrides, rejection of unknown keys and bad types."""

from __future__ import annotations

from pathlib import Path

import pytest

from cr_bench.agents.registry import AGENTS, resolve_config
from cr_bench.errors import CrBenchError
from cr_bench.spec.loader import from_dict, read_yaml, to_dict
from cr_bench.spec.run import EnvConfig, RunConfig, envpool_available


def test_round_trip_through_dict() -> None:
    """A RunConfig rebuilt from its dict equals the original."""
    config = resolve_config("dqn")
    assert from_dict(RunConfig, to_dict(config)) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"frame_stak": 4}, "unknown key(s) frame_stak"),
        ({"frame_stack": "four"}, "env.frame_stack: 'four' is not a valid int"),
        ({"grayscale": 1}, "is not a valid bool"),
        ({"shaping": {"grass": 0.1}}, "env.shaping: unknown key(s) grass"),
        ({"discrete_actions": 3}, "env.discrete_actions"),
    ],
)
def test_rejects_bad_env_keys(data: dict, message: str) -> None:
    """Unknown keys and wrong types name the offending key."""
    with pytest.raises(CrBenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_dict(EnvConfig, data, "env")


def test_yaml_float_budget_is_an_int() -> None:
    """YAML reads 1e6 as a float; integral floats are accepted for int fields."""
    assert from_dict(RunConfig, {"frames": 1e6}).frames == 1_000_000
    with pytest.raises(CrBenchError):
        from_dict(RunConfig, {"frames": 1.5})


def test_agent_defaults_come_from_the_seeds() -> None:
    """ppo-v1 (and its former name ppo-beta) follows seed 000; dqn follows the Nature DQN
    settings on the env's 5 actions."""
    v1 = resolve_config("ppo-beta")
    assert v1.agent == "ppo-v1" and (v1.env.action_repeat, v1.env.frame_stack, v1.env.obs_size) == (8, 4, 96)
    assert v1.env.shaping.grass_penalty == 0.05 and v1.env.shaping.no_progress_window == 100
    assert v1.policy.features_extractor == "six_conv" and v1.algo["learning_rate"] == 1e-3
    dqn = resolve_config("dqn")
    assert (dqn.env.action_repeat, dqn.env.frame_stack, dqn.env.discrete_actions) == (2, 4, "gymnasium")
    assert dqn.algo["gamma"] == 0.99 and dqn.env.shaping == resolve_config("ppo-gaussian").env.shaping  # none


def test_overrides_merge_in_order() -> None:
    """Later overrides win; untouched nested keys keep the agent's defaults."""
    config = resolve_config("ppo-beta", {"env": {"frame_stack": 2}, "algo": {"n_steps": 64}}, {"algo": {"n_steps": 32}})
    assert config.env.frame_stack == 2 and config.env.action_repeat == 8
    assert config.algo["n_steps"] == 32 and config.algo["n_epochs"] == 4


@pytest.mark.parametrize(
    ("agent", "override", "message"),
    [
        ("ppo", {"algo": {"learning_rat": 1e-3}}, "algo: unknown key"),
        ("ppo", {"algo": {"policy_kwargs": {}}}, "algo: unknown key"),
        ("dqn", {"env": {"discrete_actions": None}}, "needs env.discrete_actions"),
        ("ppo-beta", {"env": {"discrete_actions": "seed002"}}, "acts continuously"),
        ("ppo", {"frames": 0}, "frames must be between 1 and"),
        ("ppo", {"seed": -1}, "seed must be >= 0"),
        ("ppo", {"policy": {"features_extractor": "resnet"}}, "unknown 'resnet'"),
        ("ppo", {"agent": "dqn"}, "names agent 'dqn'"),
        ("ppo", {"env": {"discrete_actions": "nine"}}, "unknown set 'nine'"),
        ("ppo", {"vec_env": "bogus"}, "config.vec_env: unknown 'bogus'; known: auto, dummy, subproc"),
        ("ppo", {"env": {"backend": "mujoco"}}, "config.env.backend: unknown 'mujoco'"),
        ("ppo", {"eval": {"backend": "auto"}}, "config.eval.backend: unknown 'auto'; known: gymnasium, envpool"),
        ("ppo", {"device": "tpu"}, "config.device: unknown 'tpu'; known: auto, cpu, cuda"),
        ("ppo", {"policy": {"precision": "fp16"}}, "config.policy.precision: unknown 'fp16'; known: fp32, bf16"),
    ],
)
def test_resolve_rejects_invalid_runs(agent: str, override: dict, message: str) -> None:
    """Cross-field checks give a CrBenchError naming the problem."""
    with pytest.raises(CrBenchError, match=message):
        resolve_config(agent, override)


def test_unknown_agent_lists_known_ones() -> None:
    with pytest.raises(CrBenchError, match="known agents: " + ", ".join(AGENTS)):
        resolve_config("a2c")


@pytest.mark.parametrize(
    ("text", "message"),
    [("a: [1, 2", "malformed YAML"), ("- 1\n- 2\n", "expected a mapping"), ("a: {b: c}: d", "malformed YAML")],
)
def test_read_yaml_errors_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CrBenchError, match=message) as info:
        read_yaml(path)
    assert "\n" not in str(info.value)


def test_read_yaml_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CrBenchError, match="config file not found"):
        read_yaml(tmp_path / "nope.yaml")


def test_yaml_reads_exponents_without_a_dot(tmp_path: Path) -> None:
    """1e6 and 3e-4 are numbers (YAML 1.2), in files and in --set values."""
    from cr_bench.cli import _override

    path = tmp_path / "run.yaml"
    path.write_text("frames: 1e6\nalgo: {learning_rate: 3e-4}\n")
    data = read_yaml(path)
    assert data == {"frames": 1e6, "algo": {"learning_rate": 3e-4}}
    assert resolve_config("ppo", data).frames == 1_000_000
    assert _override("algo.ent_coef=1e-3") == {"algo": {"ent_coef": 1e-3}}
    assert _override("env.backend=gymnasium") == {"env": {"backend": "gymnasium"}}


def test_auto_backend_never_runs_another_env_on_envpool() -> None:
    """`backend: auto` picks a simulator that can run env.id: EnvPool has only CarRacing-v3, so
    any other id trains on gymnasium; asking for envpool with it is refused in one line."""
    config = resolve_config("ppo", {"env": {"id": "tests.fake_env:TinyCarRacing-v0"}})
    assert config.env.backend == "gymnasium"
    if envpool_available():
        with pytest.raises(CrBenchError, match="envpool backend runs CarRacing-v3 only"):
            resolve_config("ppo", {"env": {"id": "tests.fake_env:TinyCarRacing-v0", "backend": "envpool"}})
