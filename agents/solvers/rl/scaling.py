r"""Fixed scales of the RL solvers' observations, actions and rewards: :class:`Scaling`, the economy's defaults
(:func:`default_scaling`, with the default actor and critic architectures) and the observation :class:`Normalizer`.

The scales are fixed economic constants, never statistics of the data:

* **Observations.** Investment economy: :math:`\tilde x = (x - \bar x_0)/0.1` with :math:`\bar x_0`
  the mean of the initial capital draw (``x0_mean``), so the aggregate moves in about [−1.5, 0] along the judge's
  paths (0.9 → 0.77). Krusell–Smith: :math:`\tilde k = k/k_{ss}`; e and z ∈ {0, 1} unchanged. Both are the
  economy's own ``centred_features()``.
* **Actions.** Investment: :math:`u = s_u\, y` with :math:`s_u = \delta \bar x_0` (replacement investment at the
  initial capital, 0.045 at the baseline), so the network's output y is O(1) while u ≈ 0.02–0.03. Krusell–Smith:
  a sigmoid head whose initial output is the steady-state consumption share (k' = k at k_ss; as the Euler solver).
  Critics see the action as :math:`(a - a_0)/s_a` (investment: a/s_u; Krusell–Smith: a/share_ss − 1). The scales
  are the economy's ``action_scale`` and ``neutral_action()``; the choice between the two cases is the economy's
  ``action_head``.
* **Rewards.** Multiplied by ``reward_scale`` = 1 − β by default, so a value is an average per-period payoff
  (≈ 0.15 investment, ≈ 1.1 Krusell–Smith) instead of a discounted sum (≈ 3 and ≈ 110). The solvers' ``value``
  modules divide it back out: they return values in the economy's own units.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from tensordict import TensorDict
from torch import nn

from hetagents_env.economies.core import Economy

from ...networks import DeepSetsConfig

__all__ = ["Normalizer", "Scaling", "default_scaling"]


@dataclasses.dataclass(frozen=True)
class Scaling:
    """Fixed affine scales of one economy (see the module docstring)."""

    obs_shift: tuple[tuple[str, float], ...] = ()
    """state entry -> subtracted constant"""
    obs_scale: tuple[tuple[str, float], ...] = ()
    """state entry -> divisor (after the shift)"""
    action_shift: float = 0.0
    """the actor's action = action_shift + action_scale · network output (linear heads)"""
    action_scale: float = 1.0
    critic_action_shift: float = 0.0
    """a critic sees (a − critic_action_shift) / critic_action_scale"""
    critic_action_scale: float = 1.0
    exploration_sd: float = 0.1
    """default exploration noise sd of the stochastic (PPO) policy, in action units"""
    exploration_sd_deterministic: float = 0.1
    """default exploration noise sd of the deterministic (DDPG) actor, in action units (larger: the critic learns
    the own-action slope from how targets co-vary with the noise, so the signal grows with the noise)"""
    actor: DeepSetsConfig = DeepSetsConfig()
    critic: DeepSetsConfig = DeepSetsConfig()


def default_scaling(economy: Economy) -> Scaling:
    """Fixed economic scales and default networks for ``economy``, from its own description (see the module
    docstring): observations centred and scaled by ``economy.centred_features()``; a share action (sigmoid head)
    starts at the neutral share and is explored with noise 0.1 × its scale; an unbounded action is the network's
    output times ``economy.action_scale``, explored with 0.2 (stochastic) / 0.45 (deterministic) × that scale."""
    features = economy.centred_features()
    critic = DeepSetsConfig(phi="identity", rho_widths=(64, 64), activation="tanh", hidden_bias=True, scale=())
    obs = dict(obs_shift=features.shift, obs_scale=features.scale)
    scale = float(economy.action_scale)
    if economy.action_head == "sigmoid":
        share = float(economy.neutral_action())
        actor = DeepSetsConfig(
            phi="identity", rho_widths=(64, 64), activation="tanh", hidden_bias=True, head="sigmoid", scale=(),
            output_bias_init=math.log(share / (1.0 - share)),
        )
        return Scaling(
            **obs, critic_action_shift=share, critic_action_scale=scale, exploration_sd=0.1 * scale,
            exploration_sd_deterministic=0.1 * scale, actor=actor, critic=critic,
        )
    actor = DeepSetsConfig(
        phi="identity", rho_widths=(32, 32), activation="tanh", hidden_bias=True, bias_init="zeros", scale=()
    )
    return Scaling(
        **obs, action_scale=scale, critic_action_scale=scale, exploration_sd=0.2 * scale,
        exploration_sd_deterministic=0.45 * scale, actor=actor, critic=critic,
    )


class Normalizer(nn.Module):
    """``state -> state`` with entries ``(value − shift) / scale`` (others passed through), in ``dtype``."""

    def __init__(self, scaling: Scaling, dtype: torch.dtype) -> None:
        super().__init__()
        self.shift, self.scale, self.dtype = dict(scaling.obs_shift), dict(scaling.obs_scale), dtype

    def forward(self, state: TensorDict) -> TensorDict:
        out = {}
        for key, value in state.items():
            value = value.to(self.dtype) if value.dtype != self.dtype else value
            if key in self.shift:
                value = value - self.shift[key]
            if key in self.scale:
                value = value / self.scale[key]
            out[key] = value
        return TensorDict(out, batch_size=state.batch_size, device=state.device)

