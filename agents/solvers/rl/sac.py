r"""Soft actor-critic (``"sac"``, Haarnoja et al. 2018, with automatic entropy tuning) on the TorchRL env: torchrl's
``Collector``, ``TensorDictReplayBuffer``, ``SACLoss`` (twin critics, no state-value network) and ``SoftUpdate``.

Networks (price taking as in the other RL solvers: :mod:`agents.solvers.rl.networks`, :mod:`agents.solvers.rl.noise`):

* a stochastic DeepSets actor shared by all agents, a tanh-squashed Gaussian
  (:class:`~agents.solvers.rl.noise.AgentTanhNormal`): :math:`a_i = m + h\tanh(z_i)`,
  :math:`z_i = \mu(s)_i + \sigma(s)_i\,\varepsilon_i`, with m, h the midpoint and half-width of the economy's action
  bounds (``action_bounds``: Krusell–Smith share [0, 1], so :math:`a = \mathrm{sigmoid}(2z)`; investment [−1, 1],
  where :math:`a \approx z` at u ≈ 0.03). ρ has two outputs: the mean :math:`\mu` (the deterministic actors' output
  mapped to the pre-image, so the initial mean action is theirs: the steady-state share, or zero investment) and
  :math:`\log\sigma = \log\sigma_0 + \log(r)\tanh(\cdot)` with :math:`\sigma_0` the exploration sd carried to the
  pre-image at the neutral action and r = ``sd_range``. Exploration noise is zero-sum over an economy's agents
  (``exploration="centered"``), both when collecting and inside the loss;
* twin per-agent critics :math:`Q^{(k)}_i = Q^{(k)}(s_i, a_i, \bar\phi)`, k = 1, 2 (seeds ``seed + 1``, ``seed + 2``),
  whose only action input is the agent's OWN action (:class:`~agents.solvers.rl.networks.StateActionValue`), and
  their Polyak-averaged targets :math:`Q'^{(k)}`.

One step (:meth:`SACSolver._step`): collect ``rollout_steps`` periods of the ``num_envs`` economies with actions
sampled from the actor into the replay buffer; after ``warmup`` periods, ``updates_per_step`` times, on
``batch_size`` replayed economy-transitions (× N agents; c the reward scale, β the discount, α the temperature):

.. math::

    y_i &= c\, r_i + \beta \big[\min_k Q'^{(k)}_i(s', a'_i) - \alpha \log\pi(a'_i \mid s')\big],
        \qquad a' \sim \pi(\cdot \mid s') \\
    L_Q &= \textstyle\sum_k \big(Q^{(k)}_i(s, a_i) - y_i\big)^2 \\
    L_\pi &= \alpha \log\pi(\tilde a_i \mid s) - \min_k Q^{(k)}_i(s, \tilde a_i),
        \qquad \tilde a_i = m + h\tanh(\mu(s)_i + \sigma(s)_i\varepsilon_i) \text{ (reparametrised, critics fixed)} \\
    L_\alpha &= -\log\alpha\,\big(\log\pi(\tilde a_i \mid s) + \bar H\big)

each averaged over the batch and the agents; one Adam step each for the critics, the actor and :math:`\log\alpha`;
then :math:`\theta' \leftarrow (1 - \tau)\theta' + \tau\theta` for the target critics. (Episodes are truncated,
never terminated: the target always bootstraps.)

**Target entropy** (:math:`\bar H`, per agent, in nats of the action in its own units): by default the entropy of a
Gaussian whose sd is the exploration sd σ* (``exploration_sd``; the economy's default: 0.2 δ x̄0 ≈ 0.009 for
investment, 10 % of the steady-state share ≈ 0.0065 for Krusell–Smith),
:math:`\bar H = \log(\sigma^*\sqrt{2\pi e})` (−3.3 and −3.6). The usual −dim(A) = −1 would ask for an sd of
≈ 0.1, larger than the actions themselves. With a critic locally quadratic in the own action,
:math:`Q \approx Q^* - \tfrac12\kappa (a - a^*)^2`, the actor's optimum has :math:`\sigma^2 = \alpha/\kappa`, so
the tuning settles at :math:`\alpha \approx \kappa\sigma^{*2}`: about 4e-4 for investment (κ = γ(1 − β) = 4.5 in
scaled units) and of order 1e-4 for Krusell–Smith — hence ``alpha_init`` = 1e-4 and a fast ``lr_alpha`` rather
than torchrl's α₀ = 1.

Price taking: :math:`L_\pi` of agent i depends on its own action only (each :math:`Q^{(k)}_i` sees no other
agent's action, :math:`\log\pi(a_i \mid s)` is agent i's marginal), so its gradient never runs through another
agent's action; zero-sum noise keeps the replayed aggregates (hence prices) at the mean policy's, exactly for the
investment economy up to the tanh's curvature (≈ 1e-3 relative at |a| ≈ 0.03) and approximately for the share
economies, whose sd depends on own wealth.

``solver.policy`` is the deterministic action :math:`m + h\tanh(\mu(s))`; ``solver.value`` is
:math:`Q^{(1)}_i(s, \text{that action})` in the economy's units; ``solver.critic`` / ``solver.critic2`` hold the
loss's trained twins (torchrl stacks their parameters into new tensors; copied back after every step).

Measured (``python -m train configs/{investment,ks}_sac.yaml run.budget=90``, one thread on the shared, heavily
loaded 2-core machine: 250–470 steps in 90 s):

* investment (N = 128): relative policy error vs LQ 50 % with ``lr_actor`` = 3e-4 (the mean action had gone half
  the way from 0 to the LQ policy), 28 % with 1e-3 (the config's), 20 % with 3e-3 and a 16-period warm-up, which
  overshoots (stationary mean capital 0.75 against LQ's 0.68); α settles at 3–6e-4 with the entropy at its target,
  as the docstring's κσ*² predicts. Like DDPG / TD3 it needs minutes, not 90 s;
* Krusell–Smith (N = 50): NOT solved. Ergodic K 24.8 (classical reference 39.4; the initial steady-state share
  gives 29.3), wealth Gini 0.03 (0.25), welfare loss 1.3 % of consumption; 24.1 with a 3× slower actor (1e-4). It
  under-saves as TD3 does (K 23.5 in the same 90 s), for the reason given in :mod:`.ddpg`: the critic's own-action
  slope must resolve a saving motive of ~1e-3 of Q's level. (α fell to 1e-5–7e-5, so the entropy's tanh Jacobian,
  which favours shares nearer 1/2, tilts the share by < 1e-3 × its level.)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import torch
from tensordict.nn import TensorDictModule
from torch import nn

from hetagents_env.economies.core import Economy
from hetagents_env.interfaces._facade import action_bounds

from ...config import ConfigError, interval
from ...networks import DeepSetsConfig
from ..registry import register_solver
from .base import adam
from .networks import StateActionValue, UnscaledValue, build_network, network_features
from .noise import AgentTanhNormal
from .off_policy import OffPolicyConfig, OffPolicySolverBase
from .scaling import Normalizer, Scaling
from .torchrl_adapters import TorchRLActor, load_twins, q_module, sync_twins

__all__ = ["SACConfig", "SACSolver"]


@dataclasses.dataclass(frozen=True)
class SACConfig(OffPolicyConfig):
    """Settings of SAC (the replay settings of :class:`~agents.solvers.rl.off_policy.OffPolicyConfig` plus these)."""

    tau: float = dataclasses.field(default=0.1, metadata=interval(0.0, 1.0, open_lo=True))
    """Polyak rate of the target critics (fast, as DDPG's: the own-action slope of Q is a slow TD fixed point)"""
    critic_form: Literal["mlp", "quadratic"] = "quadratic"
    """the critics' dependence on the own action (see :class:`~agents.solvers.rl.networks.StateActionValue`)"""
    alpha_init: float = dataclasses.field(default=1e-4, metadata=interval(0.0, open_lo=True))
    """initial temperature α (scaled reward units per nat; see the module docstring for its natural size)"""
    lr_alpha: float = dataclasses.field(default=1e-2, metadata=interval(0.0, open_lo=True))
    """Adam learning rate of log α (0.01: α can move by e per ~100 updates)"""
    target_entropy: float | None = None
    """target entropy per agent in nats of the action in its own units (None: log(exploration_sd · √(2πe)))"""
    sd_range: float = dataclasses.field(default=10.0, metadata=interval(1.0, open_lo=True))
    """the actor's pre-image sd stays within [σ0 / sd_range, σ0 · sd_range] (σ0: the initial one)"""

    def _validate(self) -> None:
        if self.exploration_sd is not None and not self.exploration_sd > 0:
            raise ConfigError(
                f"SACConfig.exploration_sd = {self.exploration_sd!r} must be > 0: it sets the actor's initial sd and "
                "the default target entropy (null: the economy's default)"
            )
        if self.target_entropy is not None and not math.isfinite(self.target_entropy):
            raise ConfigError(f"SACConfig.target_entropy = {self.target_entropy!r} must be finite (or null)")


class TanhGaussianActor(nn.Module):
    """``state -> (loc, scale)``, each (B, N): the pre-image Gaussian of every agent's action
    :math:`a_i = m + h\\tanh(z_i)`, :math:`z_i \\sim N(\\mathrm{loc}_i, \\mathrm{scale}_i^2)` (module docstring)."""

    def __init__(self, economy: Economy, scaling: Scaling, config: DeepSetsConfig, seed: int,
                 bounds: tuple[float, float], sd: float, sd_range: float) -> None:
        super().__init__()
        self.normalize = Normalizer(scaling, economy.dtype)
        self.net = build_network(economy, network_features(economy, config), config.replace(head="linear"), seed)
        low, high = bounds
        self.mid, self.half = 0.5 * (low + high), 0.5 * (high - low)
        if config.head == "sigmoid":  # low + (high − low)·sigmoid(y) = m + h·tanh(y / 2)
            self.z_shift, self.z_scale = 0.0, 0.5
        else:  # shift + scale·y ≈ m + h·z near the middle of the bounds
            self.z_shift = (scaling.action_shift - self.mid) / self.half
            self.z_scale = scaling.action_scale / self.half
        # the initial sd carried to the pre-image at the neutral action: σ_z = σ_a / (dA/dz)
        slope = self.half * (1.0 - ((economy.neutral_action() - self.mid) / self.half) ** 2)
        if not slope > 0:
            raise ConfigError(f"the neutral action {economy.neutral_action()} lies outside the bounds {bounds}")
        self.log_sd0, self.log_range = math.log(sd / slope), math.log(sd_range)
        # a second output of ρ for log σ: zero weights and bias, so σ = σ0 everywhere at the start; the mean keeps
        # the deterministic actors' initial output layer
        old = self.net.output_layer
        self.net.set_output_dim(2, seed=seed + 1)
        with torch.no_grad():
            new = self.net.output_layer
            new.weight[0].copy_(old.weight[0])
            new.weight[1].zero_()
            if new.bias is not None:
                new.bias.copy_(torch.stack([old.bias[0], torch.zeros_like(old.bias[0])]))

    def forward(self, state) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.net(self.normalize(state))
        loc = self.z_shift + self.z_scale * y[..., 0]
        scale = torch.exp(self.log_sd0 + self.log_range * torch.tanh(y[..., 1]))
        return loc, scale


class SquashedMeanPolicy(nn.Module):
    """``solver.policy``: the deterministic action :math:`m + h\\tanh(\\mathrm{loc})`, (B, N)."""

    def __init__(self, actor: TanhGaussianActor) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, state) -> torch.Tensor:
        loc, _ = self.actor(state)
        return self.actor.mid + self.actor.half * torch.tanh(loc)


@register_solver("sac")
class SACSolver(OffPolicySolverBase):
    """SAC with torchrl's Collector, replay buffer, SACLoss and SoftUpdate; see the module docstring. ``steps``
    counts collector steps (``rollout_steps`` periods, then ``updates_per_step`` updates)."""

    Config = SACConfig
    config: SACConfig
    progress_metrics = ("loss_qvalue", "reward", "lq_rel_error")
    default_steps = 3000
    _checkpointed_optimizers = ("actor_optimizer", "critic_optimizer", "alpha_optimizer")

    def _setup(self) -> None:
        from torchrl.modules import ProbabilisticActor
        from torchrl.objectives import SACLoss, SoftUpdate, ValueEstimators

        cfg, eco = self.config, self.economy
        bounds = action_bounds(eco)
        # networks: the stochastic actor (and its mean as solver.policy), twin own-action critics
        self.actor_net = TanhGaussianActor(eco, self.scaling, self.actor_config, cfg.seed, bounds,
                                           self.exploration_sd, cfg.sd_range)
        self.policy = SquashedMeanPolicy(self.actor_net)
        self.critic = StateActionValue(eco, self.scaling, self.critic_config, cfg.seed + 1, form=cfg.critic_form)
        self.critic2 = StateActionValue(eco, self.scaling, self.critic_config, cfg.seed + 2, form=cfg.critic_form)
        self.critic_modules = [q_module(eco, self.critic), q_module(eco, self.critic2)]
        self.value = UnscaledValue(self.critic, self.reward_scale, self.policy)
        # the actor on TorchRL entries: (loc, scale) -> a bounded action, zero-sum noise drawn from self.rng
        params = TensorDictModule(TorchRLActor(eco, self.actor_net), in_keys=["population", "aggregate"],
                                  out_keys=[("agents", "loc"), ("agents", "scale")])
        self.actor = ProbabilisticActor(
            params, in_keys=[("agents", "loc"), ("agents", "scale")], out_keys=[("agents", "action")],
            distribution_class=AgentTanhNormal,
            distribution_kwargs={"low": bounds[0], "high": bounds[1], "centered": cfg.exploration == "centered",
                                 "generator": self.rng},
        )
        # the loss: soft clipped double-Q targets, reparametrised actor loss, temperature loss
        self.target_entropy = (cfg.target_entropy if cfg.target_entropy is not None
                               else math.log(self.exploration_sd * math.sqrt(2 * math.pi * math.e)))
        self.loss = SACLoss(self.actor, self.critic_modules, num_qvalue_nets=2, loss_function="l2",
                            alpha_init=cfg.alpha_init, target_entropy=self.target_entropy, delay_qvalue=True)
        self.loss.set_keys(state_action_value=("agents", "state_action_value"), reward=("agents", "reward"),
                           done=("agents", "done"), terminated=("agents", "terminated"),
                           value=("agents", "state_value"))
        self.loss.make_value_estimator(ValueEstimators.TD0, gamma=self.gamma)
        self.target_updater = SoftUpdate(self.loss, tau=cfg.tau)
        self.actor_optimizer = adam(self.actor_net.parameters(), cfg.lr_actor)
        self.critic_optimizer = adam(self.loss.qvalue_network_params.values(True, True), cfg.lr_critic)
        self.alpha_optimizer = adam([self.loss.log_alpha], cfg.lr_alpha)
        # the replay buffer and the collector running the stochastic actor
        self._start_replay(self.actor)

    def _init_level(self, level: float) -> None:
        """Both twins start at ``level`` (scaled units), in the modules and in the loss's stacked parameters."""
        for critic in (self.critic, self.critic2):
            critic.init_level(level)
        load_twins(self.loss.qvalue_network_params, self.critic_modules)

    def _optimizers(self):
        cfg = self.config
        return [(self.actor_optimizer, cfg.lr_actor), (self.critic_optimizer, cfg.lr_critic),
                (self.alpha_optimizer, cfg.lr_alpha)]

    def _update(self, batch) -> dict[str, torch.Tensor]:
        """One update on a replayed ``batch``: the three losses of one ``SACLoss`` call (disjoint graphs: the
        target is computed without gradient, the actor loss sees detached critics, the temperature loss a detached
        log-probability), one backward, one step of each optimizer, then the target critics."""
        cfg = self.config
        out = self.loss(batch)
        optimizers = (self.actor_optimizer, self.critic_optimizer, self.alpha_optimizer)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        (out["loss_qvalue"] + out["loss_actor"] + out["loss_alpha"]).backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(list(self.loss.qvalue_network_params.values(True, True)), cfg.grad_clip)
            nn.utils.clip_grad_norm_(self.actor_net.parameters(), cfg.grad_clip)
        for opt in optimizers:
            opt.step()
        self.target_updater.step()
        return out.detach()

    def _step(self) -> dict[str, Any]:
        cfg = self.config
        data, metrics = self._collect()
        if not self._learning_started():  # the first time: both critics start at the mean reward's perpetuity
            return metrics
        for _ in range(cfg.updates_per_step):
            out = self._update(self.buffer.sample())
            self.updates += 1
        sync_twins(self.loss.qvalue_network_params, self.critic_modules)
        metrics.update(loss_qvalue=float(out["loss_qvalue"]), loss_actor=float(out["loss_actor"]),
                       loss_alpha=float(out["loss_alpha"]), alpha=float(out["alpha"]),
                       entropy=float(out["entropy"]), updates=self.updates)
        self._add_lq_metric(data, metrics)
        return metrics

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        sync_twins(self.loss.qvalue_network_params, self.critic_modules)
