"""The RL networks and batches as TorchRL sees them: actors and critics on the TorchRL env's ``population`` /
``aggregate`` entries (:class:`TorchRLActor`, :class:`TorchRLValue`, :func:`q_module`), the env and collector the
solvers run (:func:`make_env`, :func:`make_collector`), a collector batch made ready for torchrl's losses
(:func:`prepare_batch`), and the copies between critic modules and a loss's stacked twin parameters
(:func:`load_twins`, :func:`sync_twins`).

torchrl (slow to import) and the TorchRL facade are imported on first use, as by the rest of the library.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch
from tensordict import TensorDict
from torch import nn

from hetagents_env.economies.core import Economy

from .networks import StateActionValue, StateValue

if TYPE_CHECKING:
    from .base import RLConfig

__all__ = [
    "TorchRLActor", "TorchRLValue", "load_twins", "make_collector", "make_env", "prepare_batch", "q_module",
    "sync_twins",
]


def _obs_to_state(economy: Economy, population: torch.Tensor, aggregate: torch.Tensor) -> tuple[TensorDict, tuple]:
    """:func:`hetagents_env.interfaces.torchrl.obs_to_state` (imported on first use)."""
    from hetagents_env.interfaces.torchrl import obs_to_state

    return obs_to_state(economy, population, aggregate)


class TorchRLActor(nn.Module):
    """``(population, aggregate) -> loc (..., N, 1)`` [and ``scale``]: a :class:`~.networks.RLPolicy` on TorchRL
    entries (with the fixed ``sd`` as scale when given), or a stochastic actor whose forward returns
    ``(loc, scale)``, (B, N) each."""

    def __init__(self, economy: Economy, policy: nn.Module, sd: float | None = None) -> None:
        super().__init__()
        self.economy, self.policy = economy, policy
        self.sd = sd

    def forward(self, population: torch.Tensor, aggregate: torch.Tensor):
        state, lead = _obs_to_state(self.economy, population, aggregate)
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
        state, lead = _obs_to_state(self.economy, population, aggregate)
        if action is None:
            out = self.critic(state)
        else:
            out = self.critic(state, action.reshape(state.batch_size[0], -1))
        return out.reshape(*lead, -1, 1)


def q_module(economy: Economy, critic: StateActionValue):
    """A critic as torchrl's losses see it: (population, aggregate, own action) -> per-agent Q, a TensorDictModule
    writing ``("agents", "state_action_value")`` (..., N, 1)."""
    from tensordict.nn import TensorDictModule

    return TensorDictModule(
        TorchRLValue(economy, critic), in_keys=["population", "aggregate", ("agents", "action")],
        out_keys=[("agents", "state_action_value")],
    )


def make_env(economy: Economy, config: RLConfig):
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
