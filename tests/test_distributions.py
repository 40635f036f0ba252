"""BetaDistribution, BetaCnnPolicy with PPO, and the CNN feature extractors."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO
from torch.distributions import Beta

from custom_policies import BetaCnnPolicy, BetaDistribution, NatureCNN, SixConvCNN, SmallCNN

LOW = np.array([-1.0, 0.0, 0.0], dtype=np.float32)
HIGH = np.array([1.0, 1.0, 1.0], dtype=np.float32)
LOG_SCALE = math.log(2.0)  # sum of log(high - low) over the three dimensions


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread: faster for these tiny networks on a shared 2-core machine."""
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)


def car_action_space() -> gym.spaces.Box:
    """CarRacing-v3's continuous ``[steer, gas, brake]`` space."""
    return gym.spaces.Box(LOW, HIGH, dtype=np.float32)


def concentrations(batch: int = 5, seed: int = 0) -> tuple[th.Tensor, th.Tensor]:
    """Random alpha, beta > 1 of shape (batch, 3)."""
    gen = th.Generator().manual_seed(seed)
    return 1.0 + 4.0 * th.rand(batch, 3, generator=gen), 1.0 + 4.0 * th.rand(batch, 3, generator=gen)


def beta_dist(alpha: th.Tensor, beta: th.Tensor) -> BetaDistribution:
    """A BetaDistribution over the CarRacing Box with the given concentrations."""
    return BetaDistribution(3, LOW, HIGH).proba_distribution(alpha, beta)


class FakeImageEnv(gym.Env):
    """Random stacked 96x96 frames and CarRacing's action space; 16-step episodes.

    The reward is ``-|steer|``, so learning has a signal without any simulation.
    """

    def __init__(self) -> None:
        super().__init__()
        self.observation_space = gym.spaces.Box(0, 255, (4, 96, 96), np.uint8)
        self.action_space = car_action_space()
        self.t = 0

    def _obs(self) -> np.ndarray:
        return self.np_random.integers(0, 256, (4, 96, 96), dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        assert self.action_space.contains(np.asarray(action, np.float32)), action
        self.t += 1
        return self._obs(), -abs(float(action[0])), False, self.t >= 16, {}


def observations(n: int, seed: int = 0) -> np.ndarray:
    """A batch of ``n`` random (4, 96, 96) uint8 observations."""
    return np.random.default_rng(seed).integers(0, 256, (n, 4, 96, 96), dtype=np.uint8)


def make_ppo(**kwargs: Any) -> PPO:
    """PPO with BetaCnnPolicy on FakeImageEnv, with tiny rollouts."""
    return PPO(BetaCnnPolicy, FakeImageEnv(), n_steps=32, batch_size=32, n_epochs=1, device="cpu", seed=0, **kwargs)


# --- BetaDistribution ------------------------------------------------------------------


def test_log_prob_is_beta_density_with_jacobian() -> None:
    """log_prob(a) = sum_i log Beta(u_i) - sum_i log(high_i - low_i), with u = (a - low) / (high - low)."""
    alpha, beta = concentrations()
    unit = th.rand(5, 3, generator=th.Generator().manual_seed(1)) * 0.98 + 0.01
    actions = th.as_tensor(LOW) + th.as_tensor(HIGH - LOW) * unit
    expected = Beta(alpha, beta).log_prob(unit).sum(dim=1) - LOG_SCALE
    log_prob = beta_dist(alpha, beta).log_prob(actions)
    assert log_prob.shape == (5,)
    th.testing.assert_close(log_prob, expected, rtol=1e-5, atol=1e-5)


def test_entropy_is_beta_entropy_plus_log_scale() -> None:
    """entropy = sum_i H(Beta_i) + sum_i log(high_i - low_i)."""
    alpha, beta = concentrations()
    entropy = beta_dist(alpha, beta).entropy()
    assert entropy.shape == (5,)
    th.testing.assert_close(entropy, Beta(alpha, beta).entropy().sum(dim=1) + LOG_SCALE)


def test_log_prob_finite_at_bounds() -> None:
    """Actions exactly on the Box bounds have a finite log density."""
    alpha, beta = concentrations(batch=2)
    actions = th.as_tensor(np.stack([LOW, HIGH]))
    assert th.isfinite(beta_dist(alpha, beta).log_prob(actions)).all()


def test_samples_inside_bounds_and_steer_both_ways() -> None:
    """Samples lie in the Box; steering takes negative and positive values (the whole [-1, 1])."""
    th.manual_seed(0)
    alpha, beta = th.full((2000, 3), 2.0), th.full((2000, 3), 2.0)
    samples = beta_dist(alpha, beta).sample()
    assert samples.shape == (2000, 3)
    assert (samples >= th.as_tensor(LOW)).all() and (samples <= th.as_tensor(HIGH)).all()
    steer = samples[:, 0]
    assert (steer < -0.5).any() and (steer > 0.5).any()
    assert (samples[:, 1:] > 0.5).any() and (samples[:, 1:] < 0.5).any()


def test_sample_mean_matches_scaled_beta_mean() -> None:
    """The empirical mean of samples is close to low + (high - low) * alpha / (alpha + beta)."""
    th.manual_seed(0)
    alpha = th.tensor([[2.0, 5.0, 1.5]]).expand(4000, 3)
    beta = th.tensor([[6.0, 1.5, 1.5]]).expand(4000, 3)
    mean = beta_dist(alpha, beta).sample().mean(dim=0)
    expected = th.as_tensor(LOW) + th.as_tensor(HIGH - LOW) * th.tensor([0.25, 5.0 / 6.5, 0.5])
    th.testing.assert_close(mean, expected, atol=0.03, rtol=0)


def test_mode_is_mean_of_scaled_beta() -> None:
    """mode() (the deterministic action) is low + (high - low) * alpha / (alpha + beta)."""
    alpha, beta = concentrations()
    expected = th.as_tensor(LOW) + th.as_tensor(HIGH - LOW) * alpha / (alpha + beta)
    th.testing.assert_close(beta_dist(alpha, beta).mode(), expected)


def test_symmetric_concentrations_give_centred_mode() -> None:
    """Equal concentrations put the deterministic steering at 0 and gas/brake at 0.5."""
    mode = beta_dist(th.full((1, 3), 3.0), th.full((1, 3), 3.0)).mode()
    th.testing.assert_close(mode, th.tensor([[0.0, 0.5, 0.5]]))


def test_proba_distribution_net_outputs_concentrations_above_one() -> None:
    """The head maps a latent to (alpha, beta), each (batch, action_dim) and > 1."""
    th.manual_seed(0)
    net = BetaDistribution(3, LOW, HIGH).proba_distribution_net(latent_dim=16)
    alpha, beta = net(th.randn(64, 16) * 3.0)
    assert alpha.shape == beta.shape == (64, 3)
    assert (alpha > 1.0).all() and (beta > 1.0).all()
    alpha, beta = net(th.randn(8, 16) * 1e4)  # saturated pre-activations still give >= 1
    assert (alpha >= 1.0).all() and (beta >= 1.0).all()


def test_actions_from_params_consistent() -> None:
    """Deterministic actions_from_params is the mode; log_prob_from_params scores its own actions."""
    alpha, beta = concentrations()
    dist = BetaDistribution(3, LOW, HIGH)
    th.testing.assert_close(dist.actions_from_params(alpha, beta, deterministic=True), beta_dist(alpha, beta).mode())
    th.manual_seed(3)
    sampled = dist.actions_from_params(alpha, beta)
    th.manual_seed(3)
    actions, log_prob = dist.log_prob_from_params(alpha, beta)
    th.testing.assert_close(actions, sampled)
    th.testing.assert_close(log_prob, beta_dist(alpha, beta).log_prob(actions))
    assert not th.equal(actions, dist.mode())


def test_log_prob_gradient_reaches_head_parameters() -> None:
    """Gradients of log_prob and entropy flow back into the concentration head."""
    th.manual_seed(0)
    dist = BetaDistribution(3, LOW, HIGH)
    net = dist.proba_distribution_net(latent_dim=8)
    alpha, beta = net(th.randn(4, 8))
    dist.proba_distribution(alpha, beta)
    actions = th.tensor([[-0.5, 0.2, 0.7]]).expand(4, 3)
    (dist.log_prob(actions).sum() + dist.entropy().sum()).backward()
    for parameter in net.parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (np.array([-1.0, 0.0]), np.ones(2)),  # wrong shape
        (np.array([1.0, 0.0, 0.0]), np.ones(3)),  # high == low
        (np.array([-np.inf, 0.0, 0.0]), np.ones(3)),  # unbounded
    ],
)
def test_invalid_bounds_raise(low: np.ndarray, high: np.ndarray) -> None:
    """Bounds of the wrong shape, empty or infinite intervals raise ValueError."""
    with pytest.raises(ValueError):
        BetaDistribution(3, low, high)


# --- BetaCnnPolicy with PPO ------------------------------------------------------------


def test_policy_builds_without_gaussian_parameters() -> None:
    """The policy uses BetaDistribution and has no log_std parameter."""
    policy = make_ppo().policy
    assert isinstance(policy.action_dist, BetaDistribution)
    assert not hasattr(policy, "log_std")
    assert not any("log_std" in name for name, _ in policy.named_parameters())


def test_optimizer_holds_every_parameter() -> None:
    """Every policy parameter, including the Beta head, is in the optimizer; nothing else is."""
    policy = make_ppo().policy
    in_optimizer = {id(p) for group in policy.optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in policy.parameters()}
    assert all(id(p) in in_optimizer for p in policy.action_net.parameters())


def test_deterministic_predict_is_distribution_mean() -> None:
    """predict(deterministic=True) returns the scaled Beta mean, inside the action space."""
    model = make_ppo()
    obs = observations(6)
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (6, 3)
    with th.no_grad():
        dist = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0])
        concentration1 = dist.distribution.concentration1
        concentration0 = dist.distribution.concentration0
    expected = LOW + (HIGH - LOW) * (concentration1 / (concentration1 + concentration0)).numpy()
    np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-6)
    assert all(model.action_space.contains(a) for a in actions)


def test_stochastic_predict_steers_left_and_right() -> None:
    """Sampled actions stay in bounds and reach negative (and positive) steering."""
    model = make_ppo()
    th.manual_seed(0)
    actions, _ = model.predict(observations(64), deterministic=False)
    assert all(model.action_space.contains(a) for a in actions)
    assert (actions[:, 0] < 0).any() and (actions[:, 0] > 0).any()


def test_ppo_learns_and_updates_beta_head() -> None:
    """A short PPO run trains: it completes and changes the Beta head's weights."""
    model = make_ppo()
    before = [p.detach().clone() for p in model.policy.action_net.parameters()]
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    after = list(model.policy.action_net.parameters())
    assert any(not th.equal(b, a) for b, a in zip(before, after, strict=True))
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


def test_save_load_round_trip(tmp_path: Path) -> None:
    """A saved model loads as BetaCnnPolicy and predicts the same deterministic actions."""
    model = make_ppo()
    model.learn(total_timesteps=32)
    obs = observations(4, seed=5)
    expected, _ = model.predict(obs, deterministic=True)
    path = tmp_path / "model.zip"
    model.save(path)
    loaded = PPO.load(path, device="cpu")
    assert isinstance(loaded.policy, BetaCnnPolicy)
    assert not hasattr(loaded.policy, "log_std")
    actions, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actions, expected)


def test_policy_rejects_discrete_actions_and_sde() -> None:
    """BetaCnnPolicy needs a Box action space and does not support gSDE."""
    space = gym.spaces.Box(0, 255, (4, 96, 96), np.uint8)
    with pytest.raises(ValueError):
        BetaCnnPolicy(space, gym.spaces.Discrete(5), lr_schedule=lambda _: 3e-4)
    with pytest.raises(ValueError):
        BetaCnnPolicy(space, car_action_space(), lr_schedule=lambda _: 3e-4, use_sde=True)


# --- feature extractors ----------------------------------------------------------------


@pytest.mark.parametrize(("channels", "features_dim"), [(4, 256), (1, 64)])
def test_six_conv_cnn_on_96x96(channels: int, features_dim: int) -> None:
    """SixConvCNN maps a (N, C, 96, 96) batch to (N, features_dim)."""
    extractor = SixConvCNN(gym.spaces.Box(0, 255, (channels, 96, 96), np.uint8), features_dim=features_dim)
    assert extractor.features_dim == features_dim
    features = extractor(th.rand(2, channels, 96, 96))
    assert features.shape == (2, features_dim)


def test_six_conv_cnn_rejects_small_input() -> None:
    """A 64x64 input is too small for six convolutions: ValueError, not a torch error."""
    with pytest.raises(ValueError, match="too small"):
        SixConvCNN(gym.spaces.Box(0, 255, (4, 64, 64), np.uint8))


@pytest.mark.parametrize("channels", [1, 3])
def test_small_cnn_on_84x84(channels: int) -> None:
    """SmallCNN maps a (N, C, 84, 84) batch to (N, 128)."""
    extractor = SmallCNN(gym.spaces.Box(0, 255, (channels, 84, 84), np.uint8))
    features = extractor(th.rand(3, channels, 84, 84))
    assert features.shape == (3, 128)


def test_extractors_plug_into_beta_policy() -> None:
    """BetaCnnPolicy accepts SmallCNN as its features extractor."""
    model = make_ppo(policy_kwargs={"features_extractor_class": SmallCNN})
    assert isinstance(model.policy.features_extractor, SmallCNN)
    actions, _ = model.predict(observations(2), deterministic=True)
    assert actions.shape == (2, 3)


# --- speed options of the extractors -----------------------------------------------------

SPACE_96 = gym.spaces.Box(0, 255, (4, 96, 96), np.uint8)


@pytest.mark.parametrize("extractor_class", [SixConvCNN, SmallCNN, NatureCNN])
def test_channels_last_computes_the_same_features(extractor_class: type) -> None:
    """The NHWC layout changes the order of the arithmetic, not the result; the weights move
    to channels-last on the first call."""
    th.manual_seed(0)
    plain = extractor_class(SPACE_96, channels_last=False)
    fast = extractor_class(SPACE_96, channels_last=True)
    fast.load_state_dict(plain.state_dict())
    batch = th.rand(3, 4, 96, 96)
    expected, features = plain(batch), fast(batch)
    assert next(fast.cnn.parameters()).is_contiguous(memory_format=th.channels_last)
    assert features.dtype == th.float32
    assert th.allclose(features, expected, atol=1e-5)


@pytest.mark.parametrize("extractor_class", [SixConvCNN, SmallCNN, NatureCNN])
def test_bf16_autocast_returns_float32_features_close_to_fp32(extractor_class: type) -> None:
    """bf16 keeps about 3 significant digits: features come back as float32, near the fp32 ones."""
    th.manual_seed(0)
    plain = extractor_class(SPACE_96)
    fast = extractor_class(SPACE_96, precision="bf16")
    fast.load_state_dict(plain.state_dict())
    batch = th.rand(3, 4, 96, 96)
    expected, features = plain(batch), fast(batch)
    assert features.dtype == th.float32
    assert not th.equal(features, expected)  # bf16 really ran
    assert th.allclose(features, expected, atol=0.05 * expected.abs().max().item())


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        SixConvCNN(SPACE_96, precision="fp16")  # type: ignore[arg-type]


def test_fast_policy_trains_saves_and_loads(tmp_path: Path) -> None:
    """With both options on, SB3 initialises (orthogonal init on contiguous weights), trains one
    update, and a saved model loads and acts as it did before saving."""
    kwargs = {"precision": "bf16", "channels_last": True}
    model = make_ppo(policy_kwargs={"features_extractor_class": SmallCNN, "features_extractor_kwargs": kwargs})
    model.learn(32)
    obs = observations(4)
    before, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    assert loaded.policy.features_extractor.precision == "bf16"
    after, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_allclose(after, before, atol=1e-6)


@pytest.mark.parametrize("speed", [{"channels_last": True}, {"channels_last": False}, {"precision": "bf16"}])
def test_pixel_input_scales_inside_the_extractor_with_the_same_result(speed: dict[str, Any]) -> None:
    """BetaCnnPolicy (PixelInput) hands uint8 pixels to the extractor, which divides them by
    255 itself: the same log-probabilities and values as SB3's float conversion."""
    kwargs: dict[str, Any] = {"features_extractor_class": SmallCNN}
    fast = make_ppo(policy_kwargs={**kwargs, "features_extractor_kwargs": speed}).policy
    plain = make_ppo(policy_kwargs={**kwargs, "features_extractor_kwargs": {**speed, "pixel_input": False}}).policy
    plain.load_state_dict(fast.state_dict())
    seen: dict[str, th.dtype] = {}
    for name, policy in (("fast", fast), ("plain", plain)):
        policy.features_extractor.register_forward_pre_hook(
            lambda _, args, name=name: seen.update({name: args[0].dtype})
        )
    obs = th.as_tensor(observations(5))
    actions = th.full((5, 3), 0.5)
    values, log_prob, entropy = fast.evaluate_actions(obs, actions)
    expected = plain.evaluate_actions(obs, actions)
    assert seen == {"fast": th.uint8, "plain": th.float32}
    tolerance = 1e-5 if "precision" not in speed else 1e-2
    for got, want in zip((values, log_prob, entropy), expected, strict=True):
        assert th.allclose(got, want, atol=tolerance), (got, want)
