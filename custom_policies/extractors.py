"""CNN feature extractors for CarRacing observations of shape ``(channels, height, width)``.

Inputs are uint8 frames; SB3's policy divides them by 255 before the extractor
(``normalize_images=True``), so observations stay uint8 in every buffer.
"""

from __future__ import annotations

import gymnasium as gym
import torch as th
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


def _flat_size(cnn: nn.Module, observation_space: gym.spaces.Box) -> int:
    """Size of ``cnn``'s flattened output, from a dummy forward pass."""
    with th.no_grad():
        sample = th.as_tensor(observation_space.sample()[None]).float()
        try:
            return int(cnn(sample).shape[1])
        except RuntimeError as error:
            raise ValueError(
                f"observation shape {observation_space.shape} is too small for this network: {error}"
            ) from None


class SixConvCNN(BaseFeaturesExtractor):
    """Seed 000's network: six ReLU convolutions (8-16-32-64-128-256 channels).

    On a 96x96 input the last convolution outputs 256x1x1. Inputs smaller than about
    88 pixels collapse to nothing, which raises ``ValueError``.

    :param observation_space: channel-first image space.
    :param features_dim: size of the linear layer after the convolutions.
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 256) -> None:
        super().__init__(observation_space, features_dim)
        channels = observation_space.shape[0]
        layers: list[nn.Module] = []
        # (out_channels, kernel, stride) of seed 000's cnn_base
        for out_channels, kernel, stride in [(8, 4, 2), (16, 3, 2), (32, 3, 2), (64, 3, 2), (128, 3, 1), (256, 3, 1)]:
            layers += [nn.Conv2d(channels, out_channels, kernel_size=kernel, stride=stride), nn.ReLU()]
            channels = out_channels
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        self.linear = nn.Sequential(nn.Linear(_flat_size(self.cnn, observation_space), features_dim), nn.ReLU())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.linear(self.cnn(observations))


class SmallCNN(BaseFeaturesExtractor):
    """Seed 002's DQN network: two convolutions with max pooling (6 and 12 channels).

    Cheap enough that the learner is not the bottleneck on CPU.

    :param observation_space: channel-first image space.
    :param features_dim: size of the linear layer after the convolutions (128 in seed 002).
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 128) -> None:
        super().__init__(observation_space, features_dim)
        self.cnn = nn.Sequential(
            nn.Conv2d(observation_space.shape[0], 6, kernel_size=7, stride=3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 12, kernel_size=4),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.linear = nn.Sequential(nn.Linear(_flat_size(self.cnn, observation_space), features_dim), nn.ReLU())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.linear(self.cnn(observations))
