r"""Shared pieces of the RL baselines: scaling, DeepSets actors and critics on economy states, their TorchRL
adapters, price-taking exploration noise, the exact value of a linear policy, and the solver base class.

Scaling (fixed economic scales, never statistics of the data; see :func:`default_scaling`)
-------------------------------------------------------------------------------------------
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

Price taking
------------
Each agent is a price taker: its learning signal may come through its own action only. Two devices enforce it:

1. **Own action only.** Critics are per agent: :math:`V_i = V(s_i, \bar\phi)` and
   :math:`Q_i = Q(s_i, a_i, \bar\phi)` where the population summary :math:`\bar\phi` is over STATES, never over
   actions. So :math:`\partial Q_i/\partial a_j = 0` for j ≠ i: the actor gradient of agent i runs only through its
   own action (tested). If instead the objective were the sum of all agents' rewards differentiated through all
   actions (or a critic saw everyone's actions), every agent would internalise how its investment lowers the price
   that all firms receive — the agents would collude through the price and learn the planner's solution, not
   the competitive equilibrium the economics (and the LQ benchmark) describe.
2. **Zero-sum ("centered") exploration noise** (``exploration="centered"``, default): the noise added to the N
   actions of an economy is drawn i.i.d. and then has its mean over the agents subtracted. The economy's aggregate
   (mean investment, hence mean capital, hence the price) then does not depend on the exploration noise at all, so
   the data never contain the 1/N effect of an agent's own deviation on the price. With independent noise
   (``exploration="independent"``) each agent's deviation moves the price by 1/N of its size and the learners
   converge to the Nash equilibrium of the N-player game, not the competitive one: for the investment economy at
   N = 128 that lowers investment by ≈ 1.3–1.9 % (the equilibrium with α1 → α1 (1 + 1/N)) — the whole of a 2 %
   error budget. Zero-sum noise is exact for the investment economy (actions enter the aggregate with equal weights)
   and approximate for Krusell–Smith (the share multiplies heterogeneous cash on hand).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModuleBase
from torch import distributions as D
from torch import nn

from hetagents_env.economies.core import Economy, Policy
from hetagents_env.economies.lq import linear_policy_value  # noqa: F401  (re-exported)

from ...config import Config, ConfigError, interval
from ...networks import DeepSets, DeepSetsConfig, Features, default_features
from ..base import Callback, Progress, Solver, check_budget, torch_dtype

__all__ = [
    "AgentNormal",
    "AgentTanhNormal",
    "CenteredGaussianNoise",
    "Normalizer",
    "OffPolicyConfig",
    "RLConfig",
    "RLPolicy",
    "Scaling",
    "StateActionValue",
    "StateValue",
    "default_scaling",
    "linear_policy_value",
    "monte_carlo_value",
]

ACTION_KEY = "action"  # the (normalised) own action in a critic's state TensorDict


# ---------------------------------------------------------------------------------------------- scaling
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


def _features(
    economy: Economy, config: DeepSetsConfig, extra_own: tuple[str, ...] = (), critic: bool = False
) -> Features:
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


def _build(economy: Economy, features: Features, config: DeepSetsConfig, seed: int) -> DeepSets:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DeepSets(features, config.replace(scale=()))
    return net.to(device=economy.device, dtype=economy.dtype)


# ---------------------------------------------------------------------------------------------- networks on states
class RLPolicy(nn.Module):
    """The deterministic policy ``state -> actions (B, N)``: ``action_shift + action_scale · net(normalised state)``
    (a sigmoid head gives a share directly). This is ``solver.policy`` (the mean action of a stochastic actor)."""

    def __init__(self, economy: Economy, scaling: Scaling, config: DeepSetsConfig, seed: int) -> None:
        super().__init__()
        self.normalize = Normalizer(scaling, economy.dtype)
        self.net = _build(economy, _features(economy, config), config, seed)
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
        self.net = _build(economy, _features(economy, config.replace(head="linear"), critic=True),
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
        self.net = _build(economy, _features(economy, cfg, extra_own=extra, critic=True), cfg, seed)
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


# ---------------------------------------------------------------------------------------------- TorchRL adapters
def obs_to_state(economy: Economy, population: torch.Tensor, aggregate: torch.Tensor) -> tuple[TensorDict, tuple]:
    """TorchRL entries ``population`` (..., N, d_a) and ``aggregate`` (..., d_z) -> a flat economy-state TensorDict
    (batch [M], keys ``economy.agent_features`` (M, N) and ``economy.aggregate_features`` (M,)) and the lead shape."""
    lead = population.shape[:-2]
    n = population.shape[-2]
    pop = population.reshape(-1, n, population.shape[-1])
    agg = aggregate.reshape(-1, aggregate.shape[-1])
    entries = {name: pop[..., j] for j, name in enumerate(economy.agent_features)}
    entries.update({name: agg[..., j] for j, name in enumerate(economy.aggregate_features)})
    return TensorDict(entries, batch_size=[pop.shape[0]], device=population.device), lead


class TorchRLActor(nn.Module):
    """``(population, aggregate) -> loc (..., N, 1)`` [and ``scale``]: a :class:`RLPolicy` on TorchRL entries (with
    the fixed ``sd`` as scale when given), or a stochastic actor whose forward returns ``(loc, scale)``, (B, N) each."""

    def __init__(self, economy: Economy, policy: nn.Module, sd: float | None = None) -> None:
        super().__init__()
        self.economy, self.policy = economy, policy
        self.sd = sd

    def forward(self, population: torch.Tensor, aggregate: torch.Tensor):
        state, lead = obs_to_state(self.economy, population, aggregate)
        out = self.policy(state)
        if isinstance(out, tuple):
            return tuple(o.reshape(*lead, -1, 1) for o in out)
        loc = out.reshape(*lead, -1, 1)
        if self.sd is None:
            return loc
        return loc, torch.full_like(loc, self.sd)


class TorchRLValue(nn.Module):
    """``(population, aggregate[, action]) -> (..., N, 1)``: a :class:`StateValue` / :class:`StateActionValue`."""

    def __init__(self, economy: Economy, critic: StateValue) -> None:
        super().__init__()
        self.economy, self.critic = economy, critic

    def forward(self, population: torch.Tensor, aggregate: torch.Tensor, action: torch.Tensor | None = None):
        state, lead = obs_to_state(self.economy, population, aggregate)
        if action is None:
            out = self.critic(state)
        else:
            out = self.critic(state, action.reshape(state.batch_size[0], -1))
        return out.reshape(*lead, -1, 1)


def make_env(economy: Economy, config: "RLConfig"):
    """The TorchRL env of ``config.num_envs`` economies, truncated (and reset) every ``config.horizon`` periods."""
    from hetagents_env.interfaces.torchrl import EconomyTorchRLEnv

    return EconomyTorchRLEnv(economy, config.num_envs, seed=config.seed, max_episode_steps=config.horizon,
                             check_actions=False)


def make_collector(env, policy, frames_per_batch: int):
    """A torchrl ``Collector`` yielding batches [B, T] of ``frames_per_batch`` = B·T economy-periods, forever."""
    with warnings.catch_warnings():  # torchrl 0.14 warns about its own deprecated weight updaters at import
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchrl.collectors import Collector

        return Collector(env, policy, frames_per_batch=frames_per_batch, total_frames=-1,
                         auto_register_policy_transforms=False)


def prepare_batch(data: TensorDict, reward_scale: float) -> tuple[TensorDict, float]:
    """A collector batch ready for the losses: the per-agent observation dropped (the networks read
    ``population``/``aggregate``), rewards multiplied by ``reward_scale``, and the shared ``done``/``terminated``
    flags (B, T, 1) broadcast to the agents as ``("next", "agents", "done"/"terminated")`` (B, T, N, 1). Returns the
    batch and the mean unscaled reward."""
    data = data.exclude(("agents", "observation"), ("next", "agents", "observation"))
    nxt = data["next"]
    reward = nxt["agents", "reward"]
    raw = float(reward.mean())
    nxt["agents", "reward"] = reward * reward_scale
    shape = reward.shape
    nxt["agents", "done"] = nxt["done"].unsqueeze(-2).expand(shape)
    nxt["agents", "terminated"] = nxt["terminated"].unsqueeze(-2).expand(shape)
    return data, raw


# ---------------------------------------------------------------------------------------------- exploration
def _agent_noise(shape, *, dtype, device, centered: bool, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise of ``shape`` (..., N, 1); ``centered``: minus its mean over the agents (dim −2)."""
    eps = torch.randn(shape, dtype=dtype, device=device, generator=generator)
    if centered and shape[-2] > 1:
        eps = eps - eps.mean(-2, keepdim=True)
    return eps


class AgentNormal(D.Independent):
    """Per-agent Gaussian actions for PPO: ``Independent(Normal(loc, scale), 1)`` on ``(..., N, 1)``.

    ``centered=True``: samples use zero-sum noise over the agents of each economy (dim −2), so exploration never
    moves the economy's aggregate (price taking; module docstring). ``log_prob`` is the per-agent Gaussian one (the
    marginal of a centered draw has variance (1 − 1/N)·scale², a factor absorbed by the learning rate)."""

    arg_constraints: dict = {}

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, centered: bool = True,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(D.Normal(loc, scale, validate_args=False), 1, validate_args=False)
        self.centered, self.generator = centered, generator

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        loc, scale = self.base_dist.loc, self.base_dist.scale
        shape = torch.Size(sample_shape) + loc.shape
        eps = _agent_noise(shape, dtype=loc.dtype, device=loc.device, centered=self.centered, generator=self.generator)
        return loc + scale * eps

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.base_dist.loc


class AgentTanhNormal(D.Distribution):
    r"""Per-agent bounded actions for SAC: :math:`a_i = m + h \tanh(z_i)`, :math:`z_i = \mathrm{loc}_i +
    \mathrm{scale}_i\, \varepsilon_i`, on ``(..., N, 1)`` with bounds ``low`` < ``high`` (m, h: their midpoint and
    half-width).

    ``centered=True``: the ε of one economy are zero-sum over its agents (dim −2), as :class:`AgentNormal`'s; the
    aggregate is then exactly the policy's when the scale is common to the agents and the tanh is linear over the
    noise's range (the investment economy: ``scale`` depends on the aggregate only, and |a| ≈ 0.03 inside [−1, 1]),
    approximately otherwise. ``log_prob`` is the per-agent one in action units, from the pre-image z:
    :math:`\log N(z; \mathrm{loc}, \mathrm{scale}) - \log h - \log(1 - \tanh^2 z)` with
    :math:`\log(1 - \tanh^2 z) = 2(\log 2 - z - \mathrm{softplus}(-2z))` (finite even where tanh saturates);
    ``rsample_and_log_prob`` scores the very pre-image it drew (torchrl's losses call it)."""

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, low: float = -1.0, high: float = 1.0,
                 centered: bool = True, generator: torch.Generator | None = None) -> None:
        if not high > low:
            raise ValueError(f"AgentTanhNormal needs low < high, got ({low}, {high})")
        self.loc, self.scale = loc, scale
        self.low, self.high = float(low), float(high)
        self.mid, self.half = 0.5 * (self.low + self.high), 0.5 * (self.high - self.low)
        self.centered, self.generator = centered, generator
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    @property
    def support(self):
        return D.constraints.interval(self.low, self.high)

    def _squash(self, z: torch.Tensor) -> torch.Tensor:
        return self.mid + self.half * torch.tanh(z)

    def _log_prob_pre_image(self, z: torch.Tensor) -> torch.Tensor:
        log_normal = D.Normal(self.loc, self.scale, validate_args=False).log_prob(z)
        log_det = math.log(self.half) + 2.0 * (math.log(2.0) - z - nn.functional.softplus(-2.0 * z))
        return (log_normal - log_det).sum(-1)

    def _pre_image(self, sample_shape) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.loc.shape
        eps = _agent_noise(shape, dtype=self.loc.dtype, device=self.loc.device, centered=self.centered,
                           generator=self.generator)
        return self.loc + self.scale * eps

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self._squash(self._pre_image(sample_shape))

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def rsample_and_log_prob(self, sample_shape=torch.Size()) -> tuple[torch.Tensor, torch.Tensor]:
        z = self._pre_image(sample_shape)
        return self._squash(z), self._log_prob_pre_image(z)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        tiny = torch.finfo(value.dtype).eps
        y = ((value - self.mid) / self.half).clamp(-1.0 + tiny, 1.0 - tiny)
        return self._log_prob_pre_image(torch.atanh(y))

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self._squash(self.loc)


class CenteredGaussianNoise(TensorDictModuleBase):
    """Exploration for the deterministic actor: adds ``sd · noise`` to ``("agents", "action")`` (..., N, 1), the
    noise zero-sum over the agents when ``centered`` (price taking). ``sd`` is an attribute the solver anneals."""

    def __init__(self, sd: float, *, centered: bool = True, generator: torch.Generator | None = None,
                 key=("agents", "action")) -> None:
        super().__init__()
        self.in_keys, self.out_keys = [key], [key]
        self.sd, self.centered, self.generator, self.key = float(sd), centered, generator, key

    def forward(self, tensordict):
        a = tensordict.get(self.key)
        eps = _agent_noise(a.shape, dtype=a.dtype, device=a.device, centered=self.centered, generator=self.generator)
        tensordict.set(self.key, a + self.sd * eps)
        return tensordict


# ---------------------------------------------------------------------------------------------- the known value
@torch.no_grad()
def monte_carlo_value(economy: Economy, policy: Policy, state: TensorDict, *, periods: int, samples: int,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Monte Carlo value of every agent at ``state`` (batch [B]) under ``policy``: the mean over ``samples``
    independent paths of :math:`\\sum_{t<T} \\beta^t r_t` (truncated at T = ``periods``), and its standard error;
    both (B, N) in float64."""
    b = state.batch_size[0]
    s = state.expand(samples, b).reshape(-1).clone() if samples > 1 else state.clone()
    beta, total = economy.discount, 0.0
    for t in range(periods):
        s, r = economy.step(s, policy(s), generator)
        total = total + beta**t * r.double()
    total = total.reshape(samples, b, -1)
    se = total.std(0) / math.sqrt(samples) if samples > 1 else torch.zeros_like(total[0])
    return total.mean(0), se


# ---------------------------------------------------------------------------------------------- solver base
@dataclasses.dataclass(frozen=True)
class RLConfig(Config):
    """Settings shared by the RL solvers (each solver adds its own)."""

    seed: int = 0
    """seed of the networks, the environment, the exploration noise and the minibatches"""
    dtype: Literal["float32", "float64"] = "float32"
    """dtype of the networks (the economy's dtype must match: pass an economy built with it)"""
    num_envs: int = dataclasses.field(default=32, metadata=interval(1))
    """economies B simulated side by side (each with N agents)"""
    horizon: int = dataclasses.field(default=64, metadata=interval(1))
    """episode length: economies are reset to the initial distribution after this many periods (the judge's
    paths are 64 states long); the value is bootstrapped at the cut (a truncation, not a terminal state)"""
    actor: DeepSetsConfig | None = None
    """the actor's architecture (None: the economy's default, see ``default_scaling``)"""
    critic: DeepSetsConfig | None = None
    """the critic's architecture (None: the economy's default)"""
    exploration: Literal["centered", "independent"] = "centered"
    """exploration noise: zero-sum over each economy's agents (price taking) or i.i.d. (N-player Nash)"""
    exploration_sd: float | None = dataclasses.field(default=None, metadata=interval(0.0))
    """sd of the exploration noise in action units (None: the economy's default)"""
    reward_scale: float | None = dataclasses.field(default=None, metadata=interval(0.0, open_lo=True))
    """rewards are multiplied by this before learning (None: 1 − β)"""
    lr_actor: float = dataclasses.field(default=3e-4, metadata=interval(0.0, open_lo=True))
    lr_critic: float = dataclasses.field(default=1e-3, metadata=interval(0.0, open_lo=True))
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    """"cosine": from lr down to lr · lr_min_factor over the run (the run's length = ``steps``, ``budget`` or
    ``total_agent_steps``, whichever is given — the largest fraction done counts)"""
    lr_min_factor: float = dataclasses.field(default=0.05, metadata=interval(0.0, 1.0))
    grad_clip: float | None = dataclasses.field(default=1.0, metadata=interval(0.0, open_lo=True))
    total_agent_steps: int = dataclasses.field(default=0, metadata=interval(0))
    """stop after this many environment agent-steps (economies × agents × periods; 0: no limit)"""
    log_every: int = dataclasses.field(default=10, metadata=interval(1))
    """log metrics every this many steps"""


class RLSolverBase(Solver):
    """Plumbing shared by the RL solvers: scaling, generators, the run-length bookkeeping and the learning-rate
    schedule. Subclasses implement ``_setup`` and ``_step`` (one unit of ``steps``)."""

    config: RLConfig
    default_steps: int = 100
    deterministic_actor: bool = False

    def __init__(self, economy: Economy, config: RLConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(economy, config)
        cfg = self.config
        if torch_dtype(cfg.dtype) != economy.dtype:
            raise ConfigError(
                f"{type(cfg).__name__}.dtype = {cfg.dtype!r} but the economy is {economy.dtype}: build the economy "
                "with the same dtype"
            )
        self._start_clock()
        self.scaling = default_scaling(economy)
        self.actor_config = cfg.actor if cfg.actor is not None else self.scaling.actor
        self.critic_config = cfg.critic if cfg.critic is not None else self.scaling.critic
        self.exploration_sd = cfg.exploration_sd if cfg.exploration_sd is not None else (
            self.scaling.exploration_sd_deterministic if self.deterministic_actor else self.scaling.exploration_sd
        )
        self.reward_scale = cfg.reward_scale if cfg.reward_scale is not None else 1.0 - economy.discount
        self.gamma = economy.discount
        self.rng = economy.generator(cfg.seed)  # exploration noise, minibatches
        self.step = 0
        self.agent_steps = 0
        self._plan: tuple[int | None, float | None] = (None, None)
        self._run_start = (0, 0.0, 0)
        self._setup()
        self._stop_clock()

    @classmethod
    def default_config(cls, economy: Economy) -> RLConfig:
        """Episodes as long as the economy's ``mixing_periods`` where it states one (Krusell–Smith: 1,000 periods:
        households' wealth needs hundreds of periods to spread from the common initial k toward the ergodic
        distribution); otherwise the config's defaults."""
        if economy.mixing_periods is not None:
            return cls.Config(horizon=int(economy.mixing_periods))
        return cls.Config()

    # ------------------------------------------------------------------ subclass hooks
    def _setup(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _step(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _optimizers(self) -> list[tuple[torch.optim.Optimizer, float]]:
        """(optimizer, base learning rate) pairs the schedule drives."""
        return []

    # ------------------------------------------------------------------ schedule
    def fraction_done(self) -> float:
        """Fraction of the current run done: the largest of steps, seconds and agent-steps fractions (0 when the
        run has no announced length)."""
        steps, budget = self._plan
        step0, time0, agent0 = self._run_start
        fractions = [0.0]
        if steps:
            fractions.append((self.step - step0) / steps)
        if budget:
            fractions.append((self._elapsed() - time0) / budget)
        if self.config.total_agent_steps:
            fractions.append(self.agent_steps / self.config.total_agent_steps)
        return min(max(fractions), 1.0)

    def lr_factor(self) -> float:
        cfg = self.config
        if cfg.lr_schedule == "constant":
            return 1.0
        f = self.fraction_done()
        return cfg.lr_min_factor + (1 - cfg.lr_min_factor) * 0.5 * (1 + math.cos(math.pi * f))

    def _apply_lr(self) -> float:
        factor = self.lr_factor()
        for opt, base in self._optimizers():
            for group in opt.param_groups:
                group["lr"] = base * factor
        return factor

    # ------------------------------------------------------------------ training loop
    def train(
        self,
        steps: int | None = None,
        *,
        budget: float | None = None,
        callback: Callback | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Run ``steps`` more steps and/or ``budget`` more seconds, or until ``total_agent_steps`` (neither given
        and no agent-step limit: ``default_steps``). Returns the final metrics."""
        steps, budget = check_budget(steps, budget)
        cfg = self.config
        if steps is None and budget is None and not cfg.total_agent_steps:
            steps = self.default_steps
        self._start_clock()
        self._plan, self._run_start = self._continued_plan(steps, budget)
        deadline = None if budget is None else time.perf_counter() + budget
        done = 0
        metrics: dict[str, Any] = dict(self.metrics)
        while True:
            if steps is not None and done >= steps:
                break
            if deadline is not None and time.perf_counter() >= deadline:
                break
            if cfg.total_agent_steps and self.agent_steps >= cfg.total_agent_steps:
                break
            lr_factor = self._apply_lr()
            out = self._step()
            self.step += 1
            done += 1
            if progress is not None:
                progress(done, steps)
            if self.step % cfg.log_every == 0 or (steps is not None and done >= steps):
                metrics = {"step": self.step, "agent_steps": self.agent_steps, "lr_factor": lr_factor, **out,
                           "wall_time": self._elapsed()}
                if not all(math.isfinite(v) for v in out.values() if isinstance(v, float)):
                    metrics["diverged"] = True
                    self._log(metrics, callback)
                    break
                if self._log(metrics, callback):
                    break
        self._stop_clock()
        final = {"step": self.step, "agent_steps": self.agent_steps, **{k: v for k, v in metrics.items()
                                                                         if k not in ("step", "agent_steps")}}
        final["wall_time"] = self.wall_time
        self.metrics = final
        return final

    def _continued_plan(self, steps: int | None, budget: float | None):
        """(plan, start) of a ``train`` call: the checkpointed run's when the call asks for exactly what remained of
        it (a resumed run: the learning-rate schedule goes on where it stopped), else a new run starting now."""
        saved, self._saved_plan = self._saved_plan, None
        if saved is not None:
            (old_steps, old_budget), start = saved
            remaining = None if old_steps is None else old_steps - (self.step - start[0])
            if steps == remaining and (budget is None) == (old_budget is None):
                return (old_steps, old_budget), start
        return (steps, budget), (self.step, self._elapsed(), self.agent_steps)

    _saved_plan = None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        (steps, budget), (step0, time0, agent0) = self._plan, self._run_start
        plan = {"steps": steps, "budget": budget, "start_step": step0, "start_time": time0, "start_agent_steps": agent0}
        return {**super().state_dict(), "plan": plan, **self._rollout_state()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        plan = state_dict.get("plan")
        self._saved_plan = None if plan is None else (
            (plan["steps"], plan["budget"]), (plan["start_step"], plan["start_time"], plan["start_agent_steps"]))
        self._load_rollout_state(state_dict)

    def _rollout_state(self) -> dict[str, Any]:
        """Where the collector's economies are (states, episode clocks, shock stream, the collector's next input) and
        the replay buffer, for solvers that have them: without them a resumed run restarts its episodes and forgets
        its replay. (torchrl's own ``Collector.state_dict`` leaves the next input out.)"""
        out: dict[str, Any] = {}
        collector = getattr(self, "collector", None)
        if collector is not None:
            core = self.env.core
            out["rollout"] = {"state": core.state.clone().to_dict(), "elapsed_steps": core.elapsed_steps.clone(),
                              "rng": core.rng.get_state(), "carrier": collector._carrier.clone().to_dict(),
                              "frames": collector._frames, "iter": collector._iter}
            if collector.track_traj_ids:
                out["rollout"]["traj_pool"] = collector._traj_pool.state_dict()
        buffer = getattr(self, "buffer", None)
        if buffer is not None:
            out["replay"] = buffer.state_dict()
        return out

    def _load_rollout_state(self, state_dict: Mapping[str, Any]) -> None:
        rollout, replay = state_dict.get("rollout"), state_dict.get("replay")
        if rollout is not None and getattr(self, "collector", None) is not None:
            core, collector = self.env.core, self.collector
            _set_leaves(core.state, rollout["state"])
            core.elapsed_steps.copy_(rollout["elapsed_steps"])
            core.rng.set_state(rollout["rng"])
            _set_leaves(collector._carrier, rollout["carrier"])
            collector._frames, collector._iter = int(rollout["frames"]), int(rollout["iter"])
            if "traj_pool" in rollout and collector.track_traj_ids:
                collector._traj_pool.load_state_dict(rollout["traj_pool"])
        if replay is not None and getattr(self, "buffer", None) is not None:
            self.buffer.load_state_dict(replay)

    # ------------------------------------------------------------------ helpers
    def _lq_rel_error(self, states: TensorDict) -> float | None:
        """Mean |u − u*| / |u*| of the current policy at ``states`` against the economy's exact policy u* (the LQ
        policy of the linear investment economy), else None."""
        exact = self.economy.exact_policy()
        if exact is None:
            return None
        with torch.no_grad():
            u, ref = self.policy(states), exact(states)
            return float(((u - ref).abs() / ref.abs()).mean())


def _set_leaves(td: TensorDict, values: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> None:
    """Set every leaf of the nested mapping ``values`` into ``td`` (its sub-tensordicts keep their batch sizes)."""
    for key, value in values.items():
        if isinstance(value, Mapping):
            _set_leaves(td, value, (*prefix, key))
        else:
            td.set((*prefix, key), value)


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam (foreach kernels) over the trainable tensors of ``params``."""
    return torch.optim.Adam([p for p in params if p.requires_grad], lr=lr, foreach=True)


# ---------------------------------------------------------------------------------------------- off-policy plumbing
@dataclasses.dataclass(frozen=True)
class OffPolicyConfig(RLConfig):
    """Settings of the replay-based solvers (DDPG, TD3, SAC; each adds its own)."""

    rollout_steps: int = dataclasses.field(default=1, metadata=interval(1))
    """periods collected per step"""
    warmup: int = dataclasses.field(default=64, metadata=interval(0))
    """periods collected (with the initial actor plus noise) before learning starts"""
    buffer_size: int = dataclasses.field(default=16384, metadata=interval(1))
    """replay capacity in economy-transitions (each with N agents)"""
    batch_size: int = dataclasses.field(default=128, metadata=interval(1))
    """economy-transitions per update (× N agents)"""
    updates_per_step: int = dataclasses.field(default=1, metadata=interval(1))
    log_every: int = dataclasses.field(default=100, metadata=interval(1))


def q_module(economy: Economy, critic: StateActionValue):
    """A critic as torchrl's losses see it: (population, aggregate, own action) -> per-agent Q, a TensorDictModule
    writing ``("agents", "state_action_value")`` (..., N, 1)."""
    from tensordict.nn import TensorDictModule

    return TensorDictModule(
        TorchRLValue(economy, critic), in_keys=["population", "aggregate", ("agents", "action")],
        out_keys=[("agents", "state_action_value")],
    )


def load_twins(stacked: TensorDict, modules) -> None:
    """Copy the parameters of the critic ``modules`` into a loss's ``stacked`` twin parameters (torchrl stacks the
    twins of TD3 / SAC into new tensors when the loss is built)."""
    with torch.no_grad():
        fresh = TensorDict.from_modules(*modules, as_module=True)
        stacked.data.update_(fresh.data)


def sync_twins(stacked: TensorDict, modules) -> None:
    """The reverse of :func:`load_twins`: the loss's trained twin parameters into the critic ``modules``."""
    with torch.no_grad():
        for k, module in enumerate(modules):
            TensorDict.from_module(module).data.update_(stacked[k].data)


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params, grad_clip: float | None
                   ) -> torch.Tensor:
    """Zero the gradients, backpropagate ``loss``, clip the gradient norm of ``params`` (unless ``grad_clip`` is
    None), step; returns the detached loss."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return loss.detach()


class OffPolicySolverBase(RLSolverBase):
    """Replay plumbing shared by DDPG, TD3 and SAC: the replay buffer and the collector feeding it, the warm-up and
    the critic's starting level, the LQ metric and the checkpoint. A subclass builds ``policy``, ``critic``,
    ``loss`` (with a ``target_updater``) and its optimizers in ``_setup``, then calls :meth:`_start_replay`."""

    config: OffPolicyConfig
    #: optimizers saved in a checkpoint (attribute names)
    _checkpointed_optimizers: tuple[str, ...] = ("actor_optimizer", "critic_optimizer")

    def _start_replay(self, collector_policy) -> None:
        """The replay buffer, the env of ``num_envs`` economies, a collector running ``collector_policy`` on it,
        and the counters."""
        from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer

        cfg, eco = self.config, self.economy
        self.buffer = TensorDictReplayBuffer(
            storage=LazyTensorStorage(cfg.buffer_size, device=eco.device), batch_size=cfg.batch_size,
            generator=torch.Generator().manual_seed(cfg.seed + 7),
        )
        self.env = make_env(eco, cfg)
        self.collector = make_collector(self.env, collector_policy, cfg.num_envs * cfg.rollout_steps)
        self._batches = iter(self.collector)
        self.periods = 0
        self.updates = 0
        self._level_set = False

    def _init_level(self, level: float) -> None:
        """Start the critic at ``level`` (scaled units); :meth:`_learning_started` then re-initialises the targets."""
        self.critic.init_level(level)

    def _collect(self) -> tuple[TensorDict, dict[str, Any]]:
        """Collect ``rollout_steps`` periods of the ``num_envs`` economies into the replay buffer; returns the batch
        [B, T] and the metrics ``{"reward": mean unscaled reward}``."""
        cfg = self.config
        data = next(self._batches)
        data, raw_reward = prepare_batch(data, self.reward_scale)
        self.buffer.extend(data.reshape(-1))
        self.periods += cfg.rollout_steps
        self.agent_steps += cfg.num_envs * cfg.rollout_steps * self.economy.n_agents
        return data, {"reward": raw_reward}

    def _learning_started(self) -> bool:
        """Whether the warm-up (``warmup`` periods) is over. The first time it is, the critic starts at the
        perpetuity of the mean (scaled) reward in the buffer and the target networks are re-initialised."""
        if self.periods < self.config.warmup:
            return False
        if not self._level_set:
            level = float(self.buffer[: len(self.buffer)]["next", "agents", "reward"].mean()) / (1 - self.gamma)
            self._init_level(level)
            with warnings.catch_warnings():  # "Updated already initialized": re-initialised on purpose
                warnings.simplefilter("ignore", UserWarning)
                self.target_updater.init_()
            self._level_set = True
        return True

    def _add_lq_metric(self, data: TensorDict, metrics: dict[str, Any]) -> None:
        """Every ``log_every`` steps: the LQ policy error at the batch's last states (economies with an exact
        policy only)."""
        if (self.step + 1) % self.config.log_every == 0:
            states, _ = obs_to_state(self.economy, data["population"][:, -1], data["aggregate"][:, -1])
            lq = self._lq_rel_error(states)
            if lq is not None:
                metrics["lq_rel_error"] = lq

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd.update(critic=self.critic.state_dict(), loss=self.loss.state_dict())
        sd.update({name: getattr(self, name).state_dict() for name in self._checkpointed_optimizers})
        sd.update(step=self.step, periods=self.periods, updates=self.updates, agent_steps=self.agent_steps,
                  rng=self.rng.get_state(), level_set=self._level_set)
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.critic.load_state_dict(state_dict["critic"])
        self.loss.load_state_dict(state_dict["loss"])
        for name in self._checkpointed_optimizers:
            getattr(self, name).load_state_dict(copy.deepcopy(state_dict[name]))
        self.step, self.periods = int(state_dict["step"]), int(state_dict["periods"])
        self.updates, self.agent_steps = int(state_dict["updates"]), int(state_dict["agent_steps"])
        self.rng.set_state(state_dict["rng"])
        self._level_set = bool(state_dict.get("level_set", True))
