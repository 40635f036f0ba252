"""CNN feature extractors for CarRacing observations of shape ``(channels, height, width)``.

Inputs are uint8 frames, which stay uint8 in every buffer. SB3's policy divides them by
255 before the extractor (``normalize_images=True``); a policy with
:class:`~custom_policies.policies.PixelInput` hands them over as uint8 and the extractor
divides them itself.

Every extractor here takes two speed options (``cr-bench bench`` measures both):

- ``channels_last``: convolutions in NHWC layout, which oneDNN runs faster on CPUs
  (the same arithmetic in another order; a model keeps its weights either way);
- ``precision="bf16"``: the convolutions and the linear layer under bf16 autocast (fast on
  CPUs with ``avx512_bf16`` or AMX, and on GPUs). Features return as float32, so the
  heads, the action distribution and the losses stay in float32;
- ``pixel_input``: take uint8 pixels from a policy with
  :class:`~custom_policies.policies.PixelInput` and scale them here, in one pass.
"""

from __future__ import annotations

from typing import Literal, get_args

import gymnasium as gym
import torch as th
from stable_baselines3.common import torch_layers
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)


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


class FastForward(nn.Module):
    """Mixin for extractors made of ``self.cnn`` then ``self.linear``: the speed options.

    Subclasses call :meth:`set_speed` at the end of ``__init__``.
    """

    cnn: nn.Sequential
    linear: nn.Sequential
    precision: Precision = "fp32"
    channels_last: bool = False
    pixel_input: bool = True

    def set_speed(self, precision: Precision, channels_last: bool, pixel_input: bool = True) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision, self.channels_last, self.pixel_input = precision, channels_last, pixel_input

    def forward(self, observations: th.Tensor) -> th.Tensor:
        if self.channels_last:
            # Converted here, not in __init__: SB3's orthogonal init views weights as
            # contiguous, and a checkpoint may load into the module before its first call.
            kernels = [weight for weight in self.cnn.parameters() if weight.dim() == 4]
            if not kernels[0].is_contiguous(memory_format=th.channels_last):
                for weight in kernels:
                    weight.data = weight.data.contiguous(memory_format=th.channels_last)
            observations = observations.contiguous(memory_format=th.channels_last)
        if observations.dtype == th.uint8:
            # Raw pixels (:class:`~custom_policies.policies.PixelInput`): relaid out above as
            # uint8, a quarter of the bytes, then scaled in one pass in the CNN's own dtype.
            dtype = th.bfloat16 if self.precision == "bf16" else th.float32
            observations = observations.to(dtype).div_(255.0)
        with th.autocast(observations.device.type, dtype=th.bfloat16, enabled=self.precision == "bf16"):
            features = self.linear(self.cnn(observations))
        return features.float()


class SixConvCNN(FastForward, BaseFeaturesExtractor):
    """Seed 000's network: six ReLU convolutions (8-16-32-64-128-256 channels).

    On a 96x96 input the last convolution outputs 256x1x1. Inputs smaller than about
    88 pixels collapse to nothing, which raises ``ValueError``.

    :param observation_space: channel-first image space.
    :param features_dim: size of the linear layer after the convolutions.
    :param precision: ``fp32`` or ``bf16`` (autocast), see the module docstring.
    :param channels_last: run the convolutions in NHWC layout.
    :param pixel_input: take uint8 pixels from the policy (see the module docstring).
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        features_dim: int = 256,
        precision: Precision = "fp32",
        channels_last: bool = False,
        pixel_input: bool = True,
    ) -> None:
        super().__init__(observation_space, features_dim)
        channels = observation_space.shape[0]
        layers: list[nn.Module] = []
        # (out_channels, kernel, stride) of seed 000's cnn_base
        for out_channels, kernel, stride in [(8, 4, 2), (16, 3, 2), (32, 3, 2), (64, 3, 2), (128, 3, 1), (256, 3, 1)]:
            layers += [nn.Conv2d(channels, out_channels, kernel_size=kernel, stride=stride), nn.ReLU()]
            channels = out_channels
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        self.linear = nn.Sequential(nn.Linear(_flat_size(self.cnn, observation_space), features_dim), nn.ReLU())
        self.set_speed(precision, channels_last, pixel_input)


class SmallCNN(FastForward, BaseFeaturesExtractor):
    """Seed 002's DQN network: two convolutions with max pooling (6 and 12 channels).

    Cheap enough that the learner is not the bottleneck on CPU.

    :param observation_space: channel-first image space.
    :param features_dim: size of the linear layer after the convolutions (128 in seed 002).
    :param precision: ``fp32`` or ``bf16`` (autocast), see the module docstring.
    :param channels_last: run the convolutions in NHWC layout.
    :param pixel_input: take uint8 pixels from the policy (see the module docstring).
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        features_dim: int = 128,
        precision: Precision = "fp32",
        channels_last: bool = False,
        pixel_input: bool = True,
    ) -> None:
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
        self.set_speed(precision, channels_last, pixel_input)


class NatureCNN(FastForward, torch_layers.NatureCNN):
    """SB3's ``NatureCNN`` (Mnih et al. 2015), same layers and weights, with the speed options.

    :param observation_space: channel-first image space.
    :param features_dim: size of the linear layer after the convolutions.
    :param normalized_image: as in SB3.
    :param precision: ``fp32`` or ``bf16`` (autocast), see the module docstring.
    :param channels_last: run the convolutions in NHWC layout.
    :param pixel_input: take uint8 pixels from the policy (see the module docstring).
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        features_dim: int = 512,
        normalized_image: bool = False,
        precision: Precision = "fp32",
        channels_last: bool = False,
        pixel_input: bool = True,
    ) -> None:
        super().__init__(observation_space, features_dim, normalized_image)
        self.set_speed(precision, channels_last, pixel_input)
