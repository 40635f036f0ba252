"""The LSTM pass of sb3-contrib's recurrent policies, one call per training sequence.

sb3-contrib's ``RecurrentActorCriticPolicy._process_sequence`` runs the LSTM over a whole batch
of sequences in one call only when no episode starts in it; otherwise it steps the LSTM one
time step at a time, resetting the states where an episode starts. Its rollout buffer cuts
sequences at episode starts (and at the minibatch's edges), so in training an episode can only
start at a sequence's first step, yet any minibatch with such a sequence takes the
step-by-step path: every minibatch of a run's first rollout, and those of later rollouts that
hold an episode's start.
"""

from __future__ import annotations

import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from torch import nn


def process_sequence(
    features: th.Tensor, lstm_states: tuple[th.Tensor, th.Tensor], episode_starts: th.Tensor, lstm: nn.LSTM
) -> tuple[th.Tensor, th.Tensor]:  # sb3-contrib's annotation (its second item is the state pair)
    """sb3-contrib's ``_process_sequence``, same arguments and results: when episodes start only
    at the sequences' first step, their states are reset first (sb3-contrib's step-by-step path
    multiplies them by ``1 - episode_start`` there, and by 1 at every later step) and each
    sequence runs in one LSTM call. The same arithmetic, up to float rounding in the LSTM's
    kernels. Any other batch takes sb3-contrib's own path.
    """
    n_seq = lstm_states[0].shape[1]
    starts = episode_starts.reshape((n_seq, -1))
    if th.any(starts[:, 1:]):
        return RecurrentActorCriticPolicy._process_sequence(features, lstm_states, episode_starts, lstm)
    keep = (1.0 - starts[:, 0]).view(1, n_seq, 1)
    reset = (keep * lstm_states[0], keep * lstm_states[1])
    return RecurrentActorCriticPolicy._process_sequence(features, reset, th.zeros_like(episode_starts), lstm)
