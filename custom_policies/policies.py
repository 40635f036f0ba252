"""Actor-critic CNN policy with a Beta action distribution."""

from __future__ import annotations

from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticCnnPolicy, BaseModel
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule

from custom_policies.distributions import BetaConcentrationNet, BetaDistribution
from custom_policies.extractors import FastForward


class PixelInput(BaseModel):
    """Mixin listed after an SB3 policy class: image observations reach a
    :class:`~custom_policies.extractors.FastForward` extractor as uint8, unconverted.

    SB3 converts them first (to float32, divided by 255, then relaid out by the extractor:
    three passes over four bytes a pixel); the extractor does it in one pass, in its own
    layout and dtype. The same arithmetic, pixels divided by 255 (in bf16 the quotient is
    rounded to bf16 once, not via float32). Other extractors (or one
    built with ``pixel_input=False``) and observations take SB3's path.
    """

    def extract_features(self, obs: PyTorchObs, features_extractor: BaseFeaturesExtractor) -> th.Tensor:
        if (
            isinstance(features_extractor, FastForward)
            and features_extractor.pixel_input
            and self.normalize_images
            and isinstance(obs, th.Tensor)
            and obs.dtype == th.uint8
            and is_image_space(self.observation_space)
        ):
            return features_extractor(obs)
        return super().extract_features(obs, features_extractor)


# ActorCriticPolicy.extract_features comes first and calls PixelInput's (BaseModel's signature).
class BetaCnnPolicy(ActorCriticCnnPolicy, PixelInput):  # type: ignore[misc]
    """``ActorCriticCnnPolicy`` whose actions follow a Beta distribution over the Box.

    Bounded actions without clipping: every sample lies inside the action space, and
    the deterministic action is the distribution's mean. Takes the same arguments as
    ``ActorCriticCnnPolicy``; ``use_sde`` and ``squash_output`` are not supported.

    :param initial_action_mean: the mean action of the untrained policy, one value per
        action dimension inside the Box (None: the Box's centre). CarRacing's centre
        presses gas and brake by half each, which parks the car; a start with gas and
        little brake drives from the first rollout.

    >>> from stable_baselines3 import PPO
    >>> model = PPO(BetaCnnPolicy, "CarRacing-v3")  # doctest: +SKIP
    """

    action_dist: BetaDistribution  # type: ignore[assignment]

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        *args: Any,
        initial_action_mean: list[float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(action_space, gym.spaces.Box):
            raise ValueError(f"BetaCnnPolicy needs a Box action space, got {action_space}")
        if kwargs.get("use_sde") or kwargs.get("squash_output"):
            raise ValueError("BetaCnnPolicy does not support use_sde or squash_output")
        if initial_action_mean is not None:
            mean = np.asarray(initial_action_mean, dtype=np.float64)
            if (
                mean.shape != action_space.shape
                or np.any(mean <= action_space.low)
                or np.any(mean >= action_space.high)
            ):
                raise ValueError(
                    f"initial_action_mean must lie strictly inside {action_space}, got {initial_action_mean}"
                )
        self.initial_action_mean = initial_action_mean
        super().__init__(observation_space, action_space, *args, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        # The parent builds a Gaussian head; swap it for the Beta head, then rebuild the
        # optimizer so it holds the new parameters and not the Gaussian's log_std.
        super()._build(lr_schedule)
        assert isinstance(self.action_space, gym.spaces.Box)
        self.action_dist = BetaDistribution(
            int(np.prod(self.action_space.shape)), self.action_space.low, self.action_space.high
        )
        self.action_net = self.action_dist.proba_distribution_net(self.mlp_extractor.latent_dim_pi)
        del self.log_std
        if self.ortho_init:
            self.action_net.apply(partial(self.init_weights, gain=0.01))
        if self.initial_action_mean is not None:
            mean = th.as_tensor(self.initial_action_mean, dtype=th.float32)
            assert isinstance(self.action_net, BetaConcentrationNet)
            self.action_net.start_at(self.action_dist.to_unit(mean))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "initial_action_mean": self.initial_action_mean}

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor) -> Distribution:
        alpha, beta = self.action_net(latent_pi)
        return self.action_dist.proba_distribution(alpha, beta)
