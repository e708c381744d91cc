r"""The RL solvers' DeepSets networks on economy states: the actor (:class:`RLPolicy`), the per-agent critics
(:class:`StateValue`, :class:`StateActionValue`) and ``solver.value`` (:class:`UnscaledValue`), each reading the
state through the fixed scales of :mod:`.scaling`.

Price taking, own action only: each agent is a price taker, so its learning signal may come through its own action
only. Critics are per agent: :math:`V_i = V(s_i, \bar\phi)` and :math:`Q_i = Q(s_i, a_i, \bar\phi)` where the
population summary :math:`\bar\phi` is over STATES, never over actions. So :math:`\partial Q_i/\partial a_j = 0` for
j ≠ i: the actor gradient of agent i runs only through its own action (tested). If instead the objective were the sum
of all agents' rewards differentiated through all actions (or a critic saw everyone's actions), every agent would
internalise how its investment lowers the price that all firms receive — the agents would collude through the price
and learn the planner's solution, not the competitive equilibrium the economics (and the LQ benchmark) describe.
The other half of price taking is the exploration noise (:mod:`.noise`).
"""

from __future__ import annotations

from typing import Literal

import torch
from tensordict import TensorDict
from torch import nn

from hetagents_env.economies.core import Economy

from ...config import ConfigError
from ...networks import DeepSets, DeepSetsConfig, Features, default_features
from .scaling import Normalizer, Scaling

__all__ = ["RLPolicy", "StateActionValue", "StateValue", "UnscaledValue", "build_network", "network_features"]

ACTION_KEY = "action"  # the (normalised) own action in a critic's state TensorDict


def network_features(
    economy: Economy, config: DeepSetsConfig, extra_own: tuple[str, ...] = (), critic: bool = False
) -> Features:
    """The state entries a network reads: the economy's defaults unless ``config`` names them, plus ``extra_own``
    own inputs; a ``critic`` always has own features (the set features when there are none)."""
    base = default_features(economy)
    own = base.own if config.own_features is None else config.own_features
    if critic and not own:  # a value depends on what the agent owns even when its optimal action does not
        own = base.set
    return Features(
        set=base.set if config.set_features is None else config.set_features,
        own=tuple(own) + tuple(extra_own),
        aggregate=base.aggregate if config.aggregate_features is None else config.aggregate_features,
        scale=(),
    )


def build_network(economy: Economy, features: Features, config: DeepSetsConfig, seed: int) -> DeepSets:
    """A DeepSets network on ``features`` (unscaled: inputs come normalised), initialised from ``seed`` without
    touching the global RNG, on the economy's device and dtype."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DeepSets(features, config.replace(scale=()))
    return net.to(device=economy.device, dtype=economy.dtype)


class RLPolicy(nn.Module):
    """The deterministic policy ``state -> actions (B, N)``: ``action_shift + action_scale · net(normalised state)``
    (a sigmoid head gives a share directly). This is ``solver.policy`` (the mean action of a stochastic actor)."""

    def __init__(self, economy: Economy, scaling: Scaling, config: DeepSetsConfig, seed: int) -> None:
        super().__init__()
        self.normalize = Normalizer(scaling, economy.dtype)
        self.net = build_network(economy, network_features(economy, config), config, seed)
        self.action_shift, self.action_scale = scaling.action_shift, scaling.action_scale
        self.linear = config.head == "linear"

    def forward(self, state: TensorDict) -> torch.Tensor:
        y = self.net(self.normalize(state))
        return self.action_shift + self.action_scale * y if self.linear else y


class StateValue(nn.Module):
    """A per-agent value :math:`V_i = V(s_i, Z, \\bar\\phi)` in SCALED reward units, ``state -> (B, N)``."""

    def __init__(self, economy: Economy, scaling: Scaling, config: DeepSetsConfig, seed: int) -> None:
        super().__init__()
        self.normalize = Normalizer(scaling, economy.dtype)
        self.net = build_network(economy, network_features(economy, config.replace(head="linear"), critic=True),
                                 config.replace(head="linear"), seed)

    def forward(self, state: TensorDict) -> torch.Tensor:
        return self.net(self.normalize(state))

    def init_level(self, level: float) -> None:
        """Set the output bias so that the initial prediction is about ``level`` (scaled units)."""
        with torch.no_grad():
            last = self.net.output_layer
            if last.bias is not None:
                last.bias.fill_(level)


class StateActionValue(StateValue):
    """A per-agent :math:`Q_i = Q(s_i, a_i, Z, \\bar\\phi)` in scaled reward units, ``(state, action) -> (B, N)``.

    The population summary :math:`\\bar\\phi` is over states only and the only action input is the agent's OWN
    action, so :math:`\\partial Q_i / \\partial a_j = 0` for j ≠ i (price taking; see the module docstring).

    ``form="mlp"``: the normalised own action :math:`d_i = (a_i - a_0)/s_a` is one more own input of ρ.
    ``form="quadratic"``: ρ has three outputs and :math:`Q_i = V(s_i) + L(s_i)\\, d_i - \\tfrac12
    \\mathrm{softplus}(P(s_i))\\, d_i^2`, a concave local quadratic in the own action (as NAF, Gu et al. 2016).
    The actor's gradient :math:`\\partial Q/\\partial a = (L - \\mathrm{softplus}(P)\\, d)/s_a` is then an explicit
    output, learnt from how targets co-vary with the exploration noise, and the state-dependent level V — by far
    the largest part of Q — cannot blur it (a generic MLP must resolve action effects ~1e-4 of Q's level)."""

    def __init__(self, economy: Economy, scaling: Scaling, config: DeepSetsConfig, seed: int,
                 form: Literal["mlp", "quadratic"] = "mlp") -> None:
        nn.Module.__init__(self)
        self.normalize = Normalizer(scaling, economy.dtype)
        self.form = form
        cfg = config.replace(head="linear")
        extra = (ACTION_KEY,) if form == "mlp" else ()
        self.net = build_network(economy, network_features(economy, cfg, extra_own=extra, critic=True), cfg, seed)
        if form == "quadratic":  # three outputs (V, L, P) from the same trunk; a small initial curvature
            self.net.set_output_dim(3, seed=seed + 1, bias=(0.0, 0.0, -5.0))  # softplus(−5) ≈ 0.007
        elif form != "mlp":
            raise ConfigError(f"critic form must be 'mlp' or 'quadratic', got {form!r}")
        self.a_shift, self.a_scale = scaling.critic_action_shift, scaling.critic_action_scale

    def init_level(self, level: float) -> None:
        with torch.no_grad():
            last = self.net.output_layer
            if last.bias is not None:
                last.bias[0] = level

    def combine(self, out: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Q from ρ's output ``out`` ((B, N) or (B, N, 3)) and the normalised own action ``d`` (B, N)."""
        if self.form == "mlp":
            return out
        v, slope, curv = out.unbind(-1)
        return v + slope * d - 0.5 * nn.functional.softplus(curv) * d * d

    def forward(self, state: TensorDict, action: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        norm = self.normalize(state)
        d = (action - self.a_shift) / self.a_scale
        if self.form == "mlp":
            norm[ACTION_KEY] = d
        return self.combine(self.net(norm), d)


class UnscaledValue(nn.Module):
    """``solver.value``: a scaled critic divided by the reward scale (the economy's own units), ``state -> (B, N)``;
    for a Q critic, :math:`V_i(s) = Q_i(s, \\pi(s)_i)`.

    It also exposes ``features(state)`` / ``head(state, summary)`` for the Bellman judge (:mod:`agents.bellman`):
    the per-agent φ whose mean is the population summary, and the value given a summary."""

    def __init__(self, critic: StateValue, reward_scale: float, policy: RLPolicy | None = None) -> None:
        super().__init__()
        self.critic, self.reward_scale = critic, reward_scale
        self.policy = policy  # set for a Q critic: V(s) = Q(s, π(s))

    def forward(self, state: TensorDict) -> torch.Tensor:
        if isinstance(self.critic, StateActionValue):
            return self.critic(state, self.policy(state)) / self.reward_scale
        return self.critic(state) / self.reward_scale

    def features(self, state: TensorDict) -> torch.Tensor:
        return self.critic.net.agent_features(self.critic.normalize(state))

    def head(self, state: TensorDict, summary: torch.Tensor) -> torch.Tensor:
        critic = self.critic
        net, norm = critic.net, critic.normalize(state)
        d = None
        if isinstance(critic, StateActionValue):
            d = (self.policy(state) - critic.a_shift) / critic.a_scale
            if critic.form == "mlp":
                norm[ACTION_KEY] = d
        out = net.forward_with_summary(norm, summary)
        if d is not None:
            out = critic.combine(out, d)
        return out / self.reward_scale

