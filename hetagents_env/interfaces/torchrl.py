"""TorchRL facade: ``num_envs`` economies as a native :class:`torchrl.envs.EnvBase` with ``batch_size=[num_envs]``,
a thin shell over :class:`~hetagents_env.interfaces.env.EconomyEnv` (no economics here, no other facade in between).

Keys (``B = num_envs``, ``N`` agents, ``d_a``/``d_z`` agent/aggregate features), all in the economy's dtype/device:

* ``("agents", "observation")`` ``(B, N, d_a + d_z)``: own state then the public aggregates (as in PettingZoo);
* ``("agents", "action")`` ``(B, N, 1)``: bounded (Krusell-Smith share ``[0, 1]``; investment
  ``[-action_bound, action_bound]``, default ``[-1, 1]`` units of the good; advertised, not enforced);
* ``("agents", "reward")`` ``(B, N, 1)``: each agent's period payoff;
* ``"population"`` ``(B, N, d_a)`` and ``"aggregate"`` ``(B, d_z)`` at the root (the whole economy, e.g. for
  DeepSets critics);
* ``"done"``, ``"terminated"``, ``"truncated"`` ``(B, 1)`` at the root, shared by all agents of an economy.

Resets: ``env.reset()`` resets all economies; a ``"_reset"`` ``(B, 1)`` entry resets only those marked (what
TorchRL's rollouts and collectors do after a ``max_episode_steps`` truncation). Seeding: ``env.set_seed(seed)``.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from . import _facade
from .options import EnvOptions, takes_options
from ..economies import Economy

__all__ = ["EconomyTorchRLEnv", "obs_to_state"]


class EconomyTorchRLEnv(EnvBase):
    """A TorchRL env of ``num_envs`` economies (see the module docstring for keys and shapes).

    Args:
        economy: an environment id (``"Investment-v0"``, also ``"hetagents/..."``) or an Economy instance.
        num_envs: number of economies ``B`` (the env's batch size).
        options, **kwargs: the :class:`~hetagents_env.interfaces.options.EnvOptions`, as one object and/or as
            keywords (see :meth:`~hetagents_env.interfaces.options.EnvOptions.from_kwargs`); ``seed`` seeds the
            first reset when :meth:`set_seed` is not called. The keyword ``compile=`` is taken by TorchRL's
            ``EnvBase`` itself (``EnvBase.compile``); ``options=EnvOptions(compile=True)`` compiles the core's step.

    Attributes:
        core: the :class:`~hetagents_env.interfaces.env.EconomyEnv`; ``core.economy`` has the pure functions.
        options: the :class:`~hetagents_env.interfaces.options.EnvOptions` it was built with.
    """

    @takes_options
    def __init__(
        self,
        economy: str | Economy = "Investment-v0",
        num_envs: int = 1,
        *,
        options: EnvOptions | None = None,
        **kwargs,
    ) -> None:
        options = EnvOptions.from_kwargs(options, **kwargs)
        core = _facade.build_core(economy, num_envs, options)
        super().__init__(device=core.device, batch_size=torch.Size([core.num_envs]))
        self.core = core
        self.economy = core.economy
        self.options = options
        self._make_specs(options.action_bound)

    @property
    def max_episode_steps(self) -> int | None:
        return self.core.max_episode_steps

    def _make_specs(self, action_bound: float | None) -> None:
        econ, device = self.economy, self.core.device
        b, n, dtype = self.core.num_envs, econ.n_agents, econ.dtype
        d_a, d_z = len(econ.agent_features), len(econ.aggregate_features)
        low, high = _facade.action_bounds(econ, action_bound)
        self.observation_spec = Composite(
            agents=Composite(
                observation=Unbounded(shape=(b, n, d_a + d_z), dtype=dtype, device=device),
                shape=(b, n), device=device,
            ),
            population=Unbounded(shape=(b, n, d_a), dtype=dtype, device=device),
            aggregate=Unbounded(shape=(b, d_z), dtype=dtype, device=device),
            shape=(b,), device=device,
        )
        self.action_spec = Composite(
            agents=Composite(
                action=Bounded(low=low, high=high, shape=(b, n, 1), dtype=dtype, device=device),
                shape=(b, n), device=device,
            ),
            shape=(b,), device=device,
        )
        self.reward_spec = Composite(
            agents=Composite(
                reward=Unbounded(shape=(b, n, 1), dtype=dtype, device=device), shape=(b, n), device=device
            ),
            shape=(b,), device=device,
        )
        flag = Categorical(n=2, shape=(b, 1), dtype=torch.bool, device=device)
        self.done_spec = Composite(
            done=flag, terminated=flag.clone(), truncated=flag.clone(), shape=(b,), device=device
        )

    # ------------------------------------------------------------------ EnvBase hooks
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        mask = None if tensordict is None else tensordict.get("_reset", None)
        options = None
        if mask is not None and not bool(mask.all()):
            options = {"reset_mask": mask.reshape(self.core.num_envs)}
        obs, _ = self.core.reset(options=options)
        flags = torch.zeros(self.core.num_envs, dtype=torch.bool, device=self.core.device)
        return self._output(obs, None, flags, flags)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get(("agents", "action"))
        if action.ndim == 3 and action.shape[-1] == 1:
            action = action.squeeze(-1)
        obs, reward, terminated, truncated, _ = self.core.step(action)
        return self._output(obs, reward, terminated, truncated)

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            self.core.rng.seed()
        else:
            self.core.rng.manual_seed(int(seed))

    def _output(self, obs, reward, terminated: torch.Tensor, truncated: torch.Tensor) -> TensorDict:
        """The output tensordict (batch ``[B]``) from the core's observation TensorDict and flags ``(B,)``."""
        b, n = self.core.num_envs, self.economy.n_agents
        agents = {"observation": _facade.agent_observation(obs)}
        if reward is not None:
            agents["reward"] = reward.unsqueeze(-1)
        return TensorDict(
            {
                "agents": TensorDict(agents, batch_size=[b, n], device=self.core.device),
                "population": obs["agents"].clone(),
                "aggregate": obs["aggregate"],
                "done": (terminated | truncated).unsqueeze(-1),
                "terminated": terminated.unsqueeze(-1).clone(),
                "truncated": truncated.unsqueeze(-1).clone(),
            },
            batch_size=[b],
            device=self.core.device,
        )

    def __repr__(self) -> str:
        return (
            f"EconomyTorchRLEnv({type(self.economy).__name__}, num_envs={self.core.num_envs}, "
            f"n_agents={self.economy.n_agents})"
        )


def obs_to_state(economy: Economy, population: torch.Tensor, aggregate: torch.Tensor) -> tuple[TensorDict, tuple]:
    """The economy state behind the env's ``population`` (..., N, d_a) and ``aggregate`` (..., d_z) entries, any
    leading dims (e.g. a collector's [B, T]) flattened: a TensorDict of batch [M] with keys
    ``economy.agent_features`` (M, N) and ``economy.aggregate_features`` (M,), and the leading shape."""
    lead = population.shape[:-2]
    n = population.shape[-2]
    pop = population.reshape(-1, n, population.shape[-1])
    agg = aggregate.reshape(-1, aggregate.shape[-1])
    entries = {name: pop[..., j] for j, name in enumerate(economy.agent_features)}
    entries.update({name: agg[..., j] for j, name in enumerate(economy.aggregate_features)})
    return TensorDict(entries, batch_size=[pop.shape[0]], device=population.device), lead
