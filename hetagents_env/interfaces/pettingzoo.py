"""PettingZoo facade: one economy as a :class:`pettingzoo.ParallelEnv`, a thin shell over
:class:`~hetagents_env.interfaces.env.EconomyEnv` with ``num_envs=1`` (no economics here).

Agents are ``"<agent_name>_<i>"`` for ``i < N`` (``"firm_0"``, … for the investment economy, ``"household_0"``, …
for Krusell-Smith), ordered as the core's agent dimension. Every agent shares ONE observation space object and ONE
action space object (per env instance):

* observation of agent i: ``Box((d_a + d_z,))`` - its own state (``economy.agent_features``) then the public
  aggregates (``economy.aggregate_features``); names in :attr:`EconomyParallelEnv.observation_features`;
* action of agent i: ``Box(low, high, (1,))`` in economic units (Krusell-Smith consumption share in ``[0, 1]``;
  investment in ``[-action_bound, action_bound]``, default ``[-1, 1]``); advertised, not enforced;
* reward of agent i: its own period payoff (a float); infos are empty dicts;
* :meth:`~EconomyParallelEnv.state`: the whole economy, ``Box((N * d_a + d_z,))``: the population's states
  ``(N, d_a)`` flattened row-major, then the aggregates.

The economies never terminate; with ``max_episode_steps`` every agent is truncated at once at the horizon and
``agents`` becomes empty. ``render_mode="rgb_array"``: ``render()`` returns the economy's frame (see
:mod:`~hetagents_env.interfaces.render`); ``"human"`` shows it at every reset and step. Copies (pickle, deepcopy,
cloudpickle, e.g. SuperSuit's ``concat_vec_envs_v1``) draw independent shocks (see
:class:`~hetagents_env.interfaces.env.EconomyEnv`). Building the per-agent dicts is O(N) Python per step
(PettingZoo's API is per agent).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

from . import _facade
from .options import EnvOptions, takes_options
from .render import RENDER_FPS, RENDER_MODES, Renderer, check_render_mode
from ..economies import Economy

__all__ = ["EconomyParallelEnv"]


class EconomyParallelEnv(ParallelEnv):
    """One economy of ``N`` agents as a PettingZoo parallel env (see the module docstring).

    Args:
        economy: an environment id (``"Investment-v0"``, also ``"hetagents/..."``) or an Economy instance.
        render_mode: ``None`` (default), ``"rgb_array"`` or ``"human"``.
        options, **kwargs: the :class:`~hetagents_env.interfaces.options.EnvOptions`, as one object and/or as
            keywords (see :meth:`~hetagents_env.interfaces.options.EnvOptions.from_kwargs`); ``max_episode_steps``
            truncates all agents at once.

    Attributes:
        core: the :class:`~hetagents_env.interfaces.env.EconomyEnv` (``num_envs=1``); ``core.economy`` has the pure functions.
        options: the :class:`~hetagents_env.interfaces.options.EnvOptions` it was built with.
    """

    metadata: dict[str, Any] = {
        "name": "hetagents", "render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS, "is_parallelizable": True,
    }

    @takes_options
    def __init__(
        self,
        economy: str | Economy = "Investment-v0",
        *,
        render_mode: str | None = None,
        options: EnvOptions | None = None,
        **kwargs,
    ) -> None:
        self.render_mode = check_render_mode(render_mode)
        self.options = options = EnvOptions.from_kwargs(options, **kwargs)
        self.core = _facade.build_core(economy, 1, options)
        self.economy = economy = self.core.economy
        self.metadata = {**type(self).metadata, "name": f"hetagents_{economy.env_id.replace('-', '_').lower()}"}
        self._renderer = None if render_mode is None else Renderer(self.core, render_mode)
        self.possible_agents = [f"{economy.agent_name}_{i}" for i in range(economy.n_agents)]
        self.agents: list[str] = []
        self._known = frozenset(self.possible_agents)
        self.observation_features = _facade.agent_observation_features(economy)

        dtype_np = _facade.numpy_dtype(economy.dtype)
        obs_lo, obs_hi = (b.astype(dtype_np) for b in _facade.feature_bounds(economy, self.observation_features))
        self._observation_space = spaces.Box(obs_lo, obs_hi, dtype=dtype_np)
        low, high = _facade.action_bounds(economy, options.action_bound)
        self._action_space = spaces.Box(low, high, shape=(1,), dtype=dtype_np)
        # the dict forms some tools read; every value is the same shared object
        self.observation_spaces = dict.fromkeys(self.possible_agents, self._observation_space)
        self.action_spaces = dict.fromkeys(self.possible_agents, self._action_space)
        a_lo, a_hi = _facade.feature_bounds(economy, economy.agent_features)
        z_lo, z_hi = _facade.feature_bounds(economy, economy.aggregate_features)
        n = economy.n_agents
        self.state_space = spaces.Box(
            np.concatenate([np.tile(a_lo, n), z_lo]).astype(dtype_np),
            np.concatenate([np.tile(a_hi, n), z_hi]).astype(dtype_np),
            dtype=dtype_np,
        )

    @property
    def max_episode_steps(self) -> int | None:
        return self.core.max_episode_steps

    # ------------------------------------------------------------------ spaces (one object per group)
    def observation_space(self, agent: str) -> spaces.Box:
        self._check_agent(agent)
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Box:
        self._check_agent(agent)
        return self._action_space

    def _check_agent(self, agent: str) -> None:
        if agent not in self._known:
            first, last = self.possible_agents[0], self.possible_agents[-1]
            raise KeyError(f"unknown agent {agent!r}; agents are {first!r} … {last!r}")

    # ------------------------------------------------------------------ API
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        """Draw a new economy; returns ``(observations, infos)`` keyed by agent. ``options`` are ignored."""
        obs, _ = self.core.reset(seed=seed)
        self.agents = list(self.possible_agents)
        if self._renderer is not None:
            self._renderer.record(new_period=False)
        return self._observations(obs), {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, Any]):
        """One period: ``actions`` maps EVERY live agent to its action (shape ``(1,)`` or a number).

        Returns ``(observations, rewards, terminations, truncations, infos)`` keyed by agent. A missing or unknown
        agent, a wrong shape or a NaN/inf action raises ``ValueError``; stepping a finished economy
        ``RuntimeError``.
        """
        if not self.agents:
            raise RuntimeError("the episode is over (or never started): call reset() before step()")
        action = self._action_tensor(actions)
        obs, reward, terminated, truncated, _ = self.core.step(action)
        agents = self.agents
        rewards = dict(zip(agents, reward[0].tolist()))
        terminations = dict.fromkeys(agents, bool(terminated[0]))
        truncations = dict.fromkeys(agents, bool(truncated[0]))
        observations = self._observations(obs)
        infos = {agent: {} for agent in agents}
        if terminated[0] or truncated[0]:
            self.agents = []
        if self._renderer is not None:
            self._renderer.record(new_period=True)
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The whole economy ``(N * d_a + d_z,)``: the population ``(N, d_a)`` row-major, then the aggregates."""
        obs = self.economy.observe(self.core.state)
        return _facade.to_numpy(torch.cat([obs["agents"][0].reshape(-1), obs["aggregate"][0]]))

    def render(self):
        """``rgb_array``: the economy's ``(H, W, 3)`` uint8 frame; otherwise ``None``."""
        return self._renderer.frames()[0] if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()

    # ------------------------------------------------------------------ conversion
    def _observations(self, obs) -> dict[str, np.ndarray]:
        per_agent = _facade.to_numpy(_facade.agent_observation(obs)[0])  # (N, d_a + d_z)
        return dict(zip(self.agents, per_agent))

    def _action_tensor(self, actions: dict[str, Any]) -> torch.Tensor:
        """The actions of all agents, in agent order, as a ``(1, N)`` tensor for the core."""
        if not isinstance(actions, dict):
            raise ValueError(f"actions must be a dict mapping agent names to actions, got {type(actions).__name__}")
        if len(actions) != len(self.agents) or any(agent not in actions for agent in self.agents):
            missing = [agent for agent in self.agents if agent not in actions]
            unknown = sorted(set(actions) - self._known)
            raise ValueError(
                f"actions must contain exactly one action per live agent ({len(self.agents)}); "
                f"missing: {_some(missing)}; unknown: {_some(unknown)}"
            )
        values = [actions[agent] for agent in self.agents]
        if isinstance(values[0], torch.Tensor):
            values = [torch.as_tensor(v).detach().cpu().numpy() for v in values]
        try:
            array = np.asarray(values, dtype=_facade.numpy_dtype(self.economy.dtype))
        except (TypeError, ValueError) as err:
            raise ValueError(f"every action must be a real number or an array of shape (1,): {err}") from None
        if array.shape not in ((len(values),), (len(values), 1)):
            raise ValueError(
                f"every action must be a real number or an array of shape (1,); the stacked actions have shape "
                f"{array.shape}, expected ({len(values)}, 1)"
            )
        return torch.as_tensor(array.reshape(1, -1), device=self.economy.device)

    def __repr__(self) -> str:
        return f"EconomyParallelEnv({self.metadata['name']}, n_agents={len(self.possible_agents)})"


def _some(names: list[str], limit: int = 3) -> str:
    """At most ``limit`` names, for error messages."""
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(map(repr, names[:limit])) + more
