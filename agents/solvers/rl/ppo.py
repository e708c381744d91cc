r"""PPO on the TorchRL env (``"ppo"``): torchrl's ``Collector``, ``GAE`` and ``ClipPPOLoss`` with shared DeepSets
actor and critic and per-agent rewards.

One step (:meth:`PPOSolver._step`):

1. **Collect** ``rollout_steps`` periods of the ``num_envs`` economies with a torchrl ``Collector`` on
   :class:`~hetagents_env.interfaces.torchrl.EconomyTorchRLEnv` (batch [B, T]; per-agent entries (B, T, N, ·)); economies
   are truncated and reset after ``horizon`` periods. Actions are :math:`a_i = \mu(s)_i + \sigma\varepsilon_i`
   with the zero-sum noise of :class:`~agents.solvers.rl.noise.AgentNormal` (price taking) and a fixed σ.
2. **Advantages** by torchrl's GAE (γ = β, λ = ``gae_lambda``) per agent, from the per-agent rewards (scaled by
   ``reward_scale``) and the per-agent critic :math:`V_i = V(s_i, \bar\phi)`; the shared done flags are broadcast
   to the agents; truncation bootstraps. Advantages are standardised over the batch.
3. **Update** ``epochs`` passes over the batch in minibatches of ``minibatch`` economy-periods (× N agents):
   torchrl's ``ClipPPOLoss`` — the clipped ratio objective of each agent's OWN action probability times its own
   advantage, plus the critic's squared error — with Adam (separate actor / critic learning rates).

Why it is the competitive equilibrium: agent i's score :math:`\nabla_\theta \log\pi(a_i|s)` multiplies its own
advantage only; with zero-sum exploration its deviation never moves the price, so the advantage contains only the
effect of its action on its own capital and payoff (see :mod:`agents.solvers.rl.noise`).

``solver.policy`` is the deterministic mean action μ(s); ``solver.value`` the critic in the economy's units.

What makes it work on the linear investment economy (N = 128: ≤ 2 % relative policy error vs LQ in about 3–5
minutes on the shared 2-core CPU, ≈ 1 % after 10; benchmarks/results/rl_baselines.md): the actor is a function of
the aggregate only, u = s_u · ρ(mean x̃) (a strong and correct inductive bias: with constant returns the optimal
investment does not depend on own capital); fixed scales (x̃ = (x − x̄0)/0.1x̄0, u in units of δ x̄0, rewards
× (1 − β)) and a critic started at the perpetuity of the first batch's mean reward; a FIXED exploration sd
(0.2 δ x̄0 ≈ 0.009, no entropy bonus: the objective is quadratic in the own action, so the noise costs no bias
and a learnt sd would only add variance); zero-sum noise (without it the target is the N-player Nash
equilibrium, 1.3–1.9 % away); 32 economies × 64 periods × 128 firms = 262,144 agent-samples per step, 4 epochs of
minibatches of 256 economy-periods; cosine learning-rate decay over the run (the gradient noise sets the floor).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from tensordict.nn import TensorDictModule
from torch import nn

from ...config import interval
from ..registry import register_solver
from .base import RLConfig, RLSolverBase, adam
from .networks import RLPolicy, StateValue, UnscaledValue
from .noise import AgentNormal
from .torchrl_adapters import TorchRLActor, TorchRLValue, make_collector, make_env, prepare_batch

__all__ = ["PPOConfig", "PPOSolver"]


@dataclasses.dataclass(frozen=True)
class PPOConfig(RLConfig):
    """Settings of PPO; defaults tuned on the linear investment economy (N = 128)."""

    rollout_steps: int = dataclasses.field(default=64, metadata=interval(1))
    """periods collected per step (the collector's batch is num_envs × rollout_steps economy-periods)"""
    epochs: int = dataclasses.field(default=4, metadata=interval(1))
    """passes over each collected batch"""
    minibatch: int = dataclasses.field(default=256, metadata=interval(1))
    """economy-periods per minibatch (each with N agents)"""
    clip_epsilon: float = dataclasses.field(default=0.2, metadata=interval(0.0, open_lo=True))
    gae_lambda: float = dataclasses.field(default=0.95, metadata=interval(0.0, 1.0))
    normalize_advantage: bool = True
    log_every: int = dataclasses.field(default=1, metadata=interval(1))


@register_solver("ppo")
class PPOSolver(RLSolverBase):
    """PPO with torchrl's Collector, GAE and ClipPPOLoss; see the module docstring. ``steps`` counts collect +
    update iterations."""

    Config = PPOConfig
    config: PPOConfig
    progress_metrics = ("loss_objective", "reward", "lq_rel_error")
    default_steps = 100

    def _setup(self) -> None:
        from torchrl.modules import ProbabilisticActor
        from torchrl.objectives import ClipPPOLoss, ValueEstimators

        cfg, eco = self.config, self.economy
        self.policy = RLPolicy(eco, self.scaling, self.actor_config, cfg.seed)
        self.critic = StateValue(eco, self.scaling, self.critic_config, cfg.seed + 1)
        self.value = UnscaledValue(self.critic, self.reward_scale)
        module = TensorDictModule(
            TorchRLActor(eco, self.policy, self.exploration_sd), in_keys=["population", "aggregate"],
            out_keys=[("agents", "loc"), ("agents", "scale")],
        )
        self.actor = ProbabilisticActor(
            module, in_keys=[("agents", "loc"), ("agents", "scale")], out_keys=[("agents", "action")],
            distribution_class=AgentNormal,
            distribution_kwargs={"centered": cfg.exploration == "centered", "generator": self.rng},
            return_log_prob=True, log_prob_key=("agents", "action_log_prob"),
        )
        self.critic_module = TorchRLValue(eco, self.critic)
        critic_td = TensorDictModule(self.critic_module, in_keys=["population", "aggregate"],
                                     out_keys=[("agents", "state_value")])
        self.loss = ClipPPOLoss(self.actor, critic_td, clip_epsilon=cfg.clip_epsilon, entropy_bonus=False,
                                normalize_advantage=False, loss_critic_type="l2")
        self.loss.set_keys(reward=("agents", "reward"), action=("agents", "action"),
                           value=("agents", "state_value"), sample_log_prob=("agents", "action_log_prob"),
                           done=("agents", "done"), terminated=("agents", "terminated"))
        self.loss.make_value_estimator(ValueEstimators.GAE, gamma=self.gamma, lmbda=cfg.gae_lambda)
        self.actor_optimizer = adam(self.policy.parameters(), cfg.lr_actor)
        self.critic_optimizer = adam(self.critic.parameters(), cfg.lr_critic)
        self.env = make_env(eco, cfg)
        self.collector = make_collector(self.env, self.actor, cfg.num_envs * cfg.rollout_steps)
        self._batches = iter(self.collector)
        self._level_set = False

    def _optimizers(self):
        cfg = self.config
        return [(self.actor_optimizer, cfg.lr_actor), (self.critic_optimizer, cfg.lr_critic)]

    def _step(self) -> dict[str, Any]:
        cfg, eco = self.config, self.economy
        data = next(self._batches)
        data, raw_reward = prepare_batch(data, self.reward_scale)
        if not self._level_set:  # the critic starts at the perpetuity of the first batch's mean (scaled) reward
            self.critic.init_level(float(data["next", "agents", "reward"].mean()) / (1 - self.gamma))
            self._level_set = True
        with torch.no_grad():
            self.loss.value_estimator(data, params=self.loss.critic_network_params,
                                      target_params=self.loss.target_critic_network_params)
            if cfg.normalize_advantage:
                adv = data["advantage"]
                data["advantage"] = (adv - adv.mean()) / adv.std().clamp_min(1e-12)
        flat = data.reshape(-1)
        rows = flat.batch_size[0]
        sums: dict[str, float] = {"loss_objective": 0.0, "loss_critic": 0.0, "clip_fraction": 0.0, "kl_approx": 0.0}
        count = 0
        for _ in range(cfg.epochs):
            perm = torch.randperm(rows, generator=self.rng, device=eco.device)
            for idx in perm.split(cfg.minibatch):
                out = self.loss(flat[idx])
                self.actor_optimizer.zero_grad(set_to_none=True)
                self.critic_optimizer.zero_grad(set_to_none=True)
                (out["loss_objective"] + out["loss_critic"]).backward()
                if cfg.grad_clip is not None:
                    nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.grad_clip)
                    nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.grad_clip)
                self.actor_optimizer.step()
                self.critic_optimizer.step()
                for key in sums:
                    sums[key] += float(out[key].detach())
                count += 1
        self.agent_steps += rows * eco.n_agents
        metrics = {k: v / count for k, v in sums.items()}
        metrics["reward"] = raw_reward
        from hetagents_env.interfaces.torchrl import obs_to_state

        states, _ = obs_to_state(eco, data["population"][:, -1], data["aggregate"][:, -1])
        lq = self._lq_rel_error(states)
        if lq is not None:
            metrics["lq_rel_error"] = lq
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd.update(critic=self.critic.state_dict(), actor_optimizer=self.actor_optimizer.state_dict(),
                  critic_optimizer=self.critic_optimizer.state_dict(), step=self.step,
                  agent_steps=self.agent_steps, rng=self.rng.get_state(), level_set=self._level_set)
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.critic.load_state_dict(state_dict["critic"])
        self.actor_optimizer.load_state_dict(copy.deepcopy(state_dict["actor_optimizer"]))
        self.critic_optimizer.load_state_dict(copy.deepcopy(state_dict["critic_optimizer"]))
        self.step, self.agent_steps = int(state_dict["step"]), int(state_dict["agent_steps"])
        self.rng.set_state(state_dict["rng"])
        self._level_set = bool(state_dict.get("level_set", True))
