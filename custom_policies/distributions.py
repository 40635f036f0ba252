"""A Beta action distribution implementing SB3's ``Distribution`` interface."""

from __future__ import annotations

import math

import numpy as np
import torch as th
from stable_baselines3.common.distributions import Distribution, sum_independent_dims
from torch import nn
from torch.distributions import Beta

# Keeps samples strictly inside (0, 1): a float32 Beta sample can round to 0 or 1,
# where the log density is infinite.
_EPS = 1e-6


class BetaConcentrationNet(nn.Module):
    """Maps a latent vector to Beta concentrations ``alpha, beta = softplus(x) + 1``.

    Adding 1 keeps both concentrations above 1, so the density is unimodal and zero at
    the bounds (the ``+ 1`` of seed 000 and of Chou et al. 2017).
    """

    def __init__(self, latent_dim: int, action_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(latent_dim, 2 * action_dim)

    def forward(self, latent: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        alpha, beta = nn.functional.softplus(self.linear(latent)).chunk(2, dim=-1)
        return alpha + 1.0, beta + 1.0

    @th.no_grad()
    def start_at(self, unit_mean: th.Tensor) -> None:
        """Set the biases so that a near-zero latent gives Beta means ``unit_mean`` (in (0, 1)).

        The concentrations sum to that of a zero output (``2 + 2 softplus(0)``), raised where
        a mean near 0 or 1 needs it to keep both above 1.
        """
        unit_mean = unit_mean.clamp(0.02, 0.98)
        total = th.clamp(1.25 / th.minimum(unit_mean, 1 - unit_mean), min=2 + 2 * math.log(2.0))
        excess = th.cat([unit_mean * total, (1 - unit_mean) * total]) - 1.0  # softplus outputs wanted
        self.linear.bias.copy_(th.log(th.expm1(excess)))


class BetaDistribution(Distribution):
    """Independent Beta distributions, one per action dimension, rescaled to a Box.

    A Beta sample ``x`` lies in [0, 1]; the action is ``low + (high - low) * x`` so the
    whole Box is reachable (CarRacing's steering spans [-1, 1]; SB3 clips actions to the
    space, so an unscaled sample would never steer left). Log densities include the
    Jacobian of that affine map, so they are densities over actions.

    :param action_dim: number of action dimensions.
    :param low: lower bounds of the Box, shape ``(action_dim,)``.
    :param high: upper bounds of the Box, shape ``(action_dim,)``.

    >>> import numpy as np, torch as th
    >>> dist = BetaDistribution(3, np.array([-1.0, 0, 0]), np.ones(3))
    >>> _ = dist.proba_distribution(th.ones(2, 3), th.ones(2, 3))
    >>> dist.mode()[0, 0].item()
    0.0
    """

    def __init__(self, action_dim: int, low: np.ndarray, high: np.ndarray) -> None:
        super().__init__()
        low = np.asarray(low, dtype=np.float32).reshape(-1)
        high = np.asarray(high, dtype=np.float32).reshape(-1)
        if low.shape != (action_dim,) or high.shape != (action_dim,):
            raise ValueError(f"bounds must have shape ({action_dim},), got {low.shape} and {high.shape}")
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
            raise ValueError(f"Beta actions need finite bounds with high > low, got low={low}, high={high}")
        self.action_dim = action_dim
        self.low = th.as_tensor(low)
        self.scale = th.as_tensor(high - low)
        self.distribution: Beta

    def proba_distribution_net(self, latent_dim: int) -> nn.Module:  # type: ignore[override]
        """Create the layer that outputs ``(alpha, beta)`` from the policy latent."""
        return BetaConcentrationNet(latent_dim, self.action_dim)

    def proba_distribution(self, alpha: th.Tensor, beta: th.Tensor) -> BetaDistribution:  # type: ignore[override]
        """Set the concentrations, each of shape ``(batch, action_dim)``."""
        self.distribution = Beta(alpha, beta)
        return self

    def to_unit(self, actions: th.Tensor) -> th.Tensor:
        """Map actions in the Box to [0, 1] (unclamped)."""
        return (actions - self.low.to(actions.device)) / self.scale.to(actions.device)

    def _to_unit(self, actions: th.Tensor) -> th.Tensor:
        low, scale = self.low.to(actions.device), self.scale.to(actions.device)
        return ((actions - low) / scale).clamp(_EPS, 1.0 - _EPS)

    def _from_unit(self, unit: th.Tensor) -> th.Tensor:
        return self.low.to(unit.device) + self.scale.to(unit.device) * unit

    def _log_scale(self) -> th.Tensor:
        return th.log(self.scale).sum()

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        """Log density of ``actions`` (shape ``(batch, action_dim)``), summed over dims."""
        unit = self._to_unit(actions)
        return sum_independent_dims(self.distribution.log_prob(unit)) - self._log_scale().to(unit.device)

    def entropy(self) -> th.Tensor:
        """Differential entropy of the rescaled distribution, shape ``(batch,)``."""
        entropy = sum_independent_dims(self.distribution.entropy())
        return entropy + self._log_scale().to(entropy.device)

    def sample(self) -> th.Tensor:
        return self._from_unit(self.distribution.rsample().clamp(_EPS, 1.0 - _EPS))

    def mode(self) -> th.Tensor:
        """The deterministic action: the distribution's mean (not its mode)."""
        return self._from_unit(self.distribution.mean)

    def actions_from_params(  # type: ignore[override]
        self, alpha: th.Tensor, beta: th.Tensor, deterministic: bool = False
    ) -> th.Tensor:
        self.proba_distribution(alpha, beta)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(  # type: ignore[override]
        self, alpha: th.Tensor, beta: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor]:
        actions = self.actions_from_params(alpha, beta)
        return actions, self.log_prob(actions)
