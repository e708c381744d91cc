r"""Twin-delayed deterministic actor-critic (``"td3"``, Fujimoto et al. 2018): the DDPG solver of :mod:`.ddpg`
(same collector, replay buffer, zero-sum exploration, scaling, networks and level initialisation) with torchrl's
``TD3Loss`` in place of ``DDPGLoss``:

* **twin critics** :math:`Q^{(1)}_i, Q^{(2)}_i` (two DeepSets critics, seeds ``seed + 1`` and ``seed + 2``) trained on
  the same target :math:`c\, r_i + \beta \min_k Q'^{(k)}_i(s', \tilde a_i')` (the clipped double-Q target against
  over-estimation);
* **target policy smoothing**: :math:`\tilde a_i' = \mathrm{clip}(\mu'(s')_i + \mathrm{clip}(\varepsilon_i, \pm
  c_\varepsilon), \text{action bounds})`, :math:`\varepsilon_i \sim N(0, \sigma_t^2)` i.i.d. over agents
  (``target_noise``, ``target_noise_clip``; drawn from the solver's own stream, seeded by ``seed + 3``). It
  perturbs only the own action fed to the per-agent target critic — the next state s' is the replayed one — so it
  cannot carry an agent's effect on the price (price taking holds);
* **delayed actor updates**: the actor (on :math:`-Q^{(1)}_i(s, \mu(s)_i)`, critics detached) and the Polyak updates
  of the target actor and target critics run once every ``policy_delay`` critic updates.

Price taking is that of DDPG: each :math:`Q^{(k)}_i` sees only agent i's own action (the population summary is
over states), so the actor loss of agent i has zero gradient w.r.t. every other agent's action (tested).

``solver.critic`` / ``solver.value`` are the first twin (kept in sync with the loss's trained parameters — torchrl
stacks the twins' parameters into new tensors, so the modules are updated after every step).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from hetagents_env.interfaces._facade import action_bounds

from ...config import interval
from ..registry import register_solver
from .ddpg import DDPGConfig, DDPGSolver
from .networks import StateActionValue
from .torchrl_adapters import load_twins, sync_twins

__all__ = ["TD3Config", "TD3Solver"]


@dataclasses.dataclass(frozen=True)
class TD3Config(DDPGConfig):
    """DDPG's settings plus TD3's three devices."""

    policy_delay: int = dataclasses.field(default=2, metadata=interval(1))
    """critic updates per actor (and target-network) update"""
    target_noise: float | None = dataclasses.field(default=None, metadata=interval(0.0))
    """sd of the target policy smoothing noise in action units (None: half the initial exploration sd)"""
    target_noise_clip: float = dataclasses.field(default=2.5, metadata=interval(0.0))
    """the smoothing noise is clipped to ± this many ``target_noise`` sds"""


@register_solver("td3")
class TD3Solver(DDPGSolver):
    """TD3 with torchrl's ``TD3Loss`` on top of :class:`~agents.solvers.rl.ddpg.DDPGSolver`; see the module
    docstring. ``steps`` counts collector steps (``rollout_steps`` periods, then ``updates_per_step`` critic
    updates)."""

    Config = TD3Config
    config: TD3Config
    _loss_names = ("value_loss", "actor_loss")
    _noise_state: torch.Tensor | None = None  # the smoothing noise's RNG state (set at the first critic step)

    def _make_loss(self):
        from torchrl.objectives import TD3Loss

        cfg, eco = self.config, self.economy
        self.critic2 = StateActionValue(eco, self.scaling, self.critic_config, cfg.seed + 2, form=cfg.critic_form)
        self.critic_modules = [self.critic_module, self._critic_module(self.critic2)]
        sd = cfg.target_noise if cfg.target_noise is not None else 0.5 * self.exploration_sd
        loss = TD3Loss(
            self.actor, self.critic_modules, bounds=action_bounds(eco), num_qvalue_nets=2, policy_noise=sd,
            noise_clip=cfg.target_noise_clip * sd, loss_function="l2", delay_actor=True, delay_qvalue=True,
        )
        loss.set_keys(action=("agents", "action"))
        return loss

    def _critic_params(self):
        return self.loss.qvalue_network_params

    def _critic_step(self, batch) -> torch.Tensor:
        """DDPG's critic step on the solver's own random stream: ``TD3Loss`` draws its smoothing noise with
        ``torch.randn_like`` (torch's global generator), so the step runs inside ``fork_rng`` with the stream's state
        — runs are reproducible from the seed and the caller's global RNG is left untouched."""
        device = self.economy.device
        cuda = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
        if self._noise_state is None:
            self._noise_state = torch.Generator(device=device).manual_seed(self.config.seed + 3).get_state()
        with torch.random.fork_rng(devices=cuda):
            if cuda:
                torch.cuda.set_rng_state(self._noise_state, cuda[0])
            else:
                torch.random.set_rng_state(self._noise_state)
            loss = super()._critic_step(batch)
            self._noise_state = torch.cuda.get_rng_state(cuda[0]) if cuda else torch.random.get_rng_state()
        return loss

    def _init_level(self, level: float) -> None:
        """Both twins start at ``level``: set in the modules, then copied into the loss's stacked parameters (no
        update has run yet, so the modules still hold the loss's values)."""
        for critic in (self.critic, self.critic2):
            critic.init_level(level)
        load_twins(self.loss.qvalue_network_params, self.critic_modules)

    def _sync_critic(self) -> None:
        """Copy the loss's trained twin parameters into ``self.critic`` / ``self.critic2`` (``solver.value``)."""
        sync_twins(self.loss.qvalue_network_params, self.critic_modules)

    def _update(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Critic every update; actor and target networks every ``policy_delay``-th (targets also during the
        critic warm-up)."""
        loss_value = self._critic_step(batch)
        if self.updates % self.config.policy_delay:
            return loss_value, None
        loss_actor = self._actor_step(batch) if self._actor_due() else None
        self.target_updater.step()
        return loss_value, loss_actor

    def _step(self) -> dict[str, Any]:
        metrics = super()._step()
        if "loss_value" in metrics:
            self._sync_critic()
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "noise_state": self._noise_state}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._noise_state = state_dict.get("noise_state")
        self._sync_critic()
