"""The replay plumbing of the off-policy solvers (DDPG, TD3, SAC): their shared settings (:class:`OffPolicyConfig`)
and base class (:class:`OffPolicySolverBase`: replay buffer, collector, warm-up, the critic's starting level, the LQ
metric and the checkpoint)."""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from tensordict import TensorDict

from ...config import interval
from .base import RLConfig, RLSolverBase
from .torchrl_adapters import make_collector, make_env, prepare_batch

__all__ = ["OffPolicyConfig", "OffPolicySolverBase"]


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
            from hetagents_env.interfaces.torchrl import obs_to_state

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
