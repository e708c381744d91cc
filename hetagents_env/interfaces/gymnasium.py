"""Gymnasium facade: a :class:`gymnasium.vector.VectorEnv` of ``num_envs`` economies and a single-economy
:class:`gymnasium.Env`, both thin shells over :class:`~hetagents_env.interfaces.env.EconomyEnv` (no economics here).

Registered at ``import hetagents_env`` as ``hetagents/<id>`` for every registered economy (also those registered
later)::

    envs = gymnasium.make_vec("hetagents/Investment-v0", num_envs=8, n_agents=16)   # EconomyVectorEnv
    env = gymnasium.make("hetagents/KrusellSmith-v0", n_agents=16)                   # EconomyGymEnv (wrapped)

Spaces (``N`` agents, ``d_a = len(agent_features)``, ``d_z = len(aggregate_features)``, dtype of the economy):

* single observation: ``Dict({"agents": Box(N, d_a), "aggregate": Box(d_z)})`` - the population's states and the
  public aggregates (``economy.agent_features`` / ``economy.aggregate_features`` name the last dims); the vector
  observation stacks them: ``"agents"`` ``(num_envs, N, d_a)``, ``"aggregate"`` ``(num_envs, d_z)``.
* single action: ``Box(low, high, (N,))``, one action per agent in economic units. Krusell-Smith: the consumption
  share in ``[0, 1]``; investment economy: investment in ``[-action_bound, action_bound]`` (default ``[-1, 1]``
  units of the good). The box is advertised, not enforced: the economy receives the action as given.
* reward: the mean agent reward of each economy ``(num_envs,)``; the per-agent rewards ``(num_envs, N)`` are in
  ``info["agent_rewards"]``, the step counter in ``info["elapsed_steps"]``.

Autoreset (``autoreset_mode``): ``NEXT_STEP`` by default, Gymnasium's own default (what libraries written for
Gymnasium expect): economies that finished are reset by the next ``step``, which returns reward 0 for them and
ignores their action. ``SAME_STEP`` resets them inside ``step`` and returns the last observation in
``info["final_obs"]`` (object array, ``None`` where not finished; ``info["final_info"]`` likewise). ``DISABLED``
never resets by itself - reset finished economies with ``reset(options={"reset_mask": mask})``; TorchRL's
``GymWrapper`` needs ``DISABLED`` (or ``SAME_STEP``) and refuses ``NEXT_STEP``.

Rendering (``render_mode``, see :mod:`~hetagents_env.interfaces.render`): ``"rgb_array"`` - ``render()`` returns one
frame per economy (a lazy sequence: a frame is drawn when read), the cross-section histogram of
``economy.endogenous_key`` and its mean's path since the last reset; ``"human"`` shows economy 0 in a window.

Copies (pickle, deepcopy, cloudpickle, e.g. ``AsyncVectorEnv`` workers) step correctly and draw shocks independent
of the original: see :class:`~hetagents_env.interfaces.env.EconomyEnv`.

Arrays are numpy by default; ``return_torch=True`` returns torch tensors on the economy's device instead. Actions
may be numpy (cast to the economy's dtype) or torch tensors (checked as they are by the core).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from . import _facade
from .options import EnvOptions, takes_options
from .render import RENDER_FPS, RENDER_MODES, Renderer, check_render_mode
from ..economies import Economy
from ..economies.registry import NAMESPACE, list_envs, on_register

__all__ = ["EconomyGymEnv", "EconomyVectorEnv", "parse_autoreset_mode", "register_env", "register_envs"]


def parse_autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    """An :class:`AutoresetMode` from itself, its value (``"SameStep"``) or its name (``"same_step"``)."""
    if isinstance(mode, AutoresetMode):
        return mode
    if isinstance(mode, str):
        for member in AutoresetMode:
            if mode in (member.value, member.name) or mode.upper() == member.name:
                return member
    allowed = ", ".join(f"AutoresetMode.{m.name}" for m in AutoresetMode)
    raise ValueError(f"autoreset_mode must be one of {allowed} (or their names/values), got {mode!r}")


def _single_spaces(economy: Economy, action_bound: float | None) -> tuple[spaces.Dict, spaces.Box]:
    """(single observation space, single action space) of one economy."""
    n, dtype = economy.n_agents, _facade.numpy_dtype(economy.dtype)
    a_lo, a_hi = (b.astype(dtype) for b in _facade.feature_bounds(economy, economy.agent_features))
    z_lo, z_hi = (b.astype(dtype) for b in _facade.feature_bounds(economy, economy.aggregate_features))
    d_a = a_lo.size
    observation = spaces.Dict(
        {
            "agents": spaces.Box(np.broadcast_to(a_lo, (n, d_a)), np.broadcast_to(a_hi, (n, d_a)), dtype=dtype),
            "aggregate": spaces.Box(z_lo, z_hi, dtype=dtype),
        }
    )
    low, high = _facade.action_bounds(economy, action_bound)
    return observation, spaces.Box(low, high, shape=(n,), dtype=dtype)


class EconomyVectorEnv(gymnasium.vector.VectorEnv):
    """``num_envs`` economies as one Gymnasium vector env (see the module docstring for spaces and modes).

    Args:
        economy: an environment id (``"Investment-v0"``, also with the ``"hetagents/"`` prefix) or an
            :class:`~hetagents_env.economies.core.Economy` instance.
        num_envs: number of economies ``B``.
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (default, as Gymnasium), ``SAME_STEP`` or ``DISABLED`` (or their
            names); TorchRL's ``GymWrapper`` needs ``DISABLED``.
        render_mode: ``None`` (default), ``"rgb_array"`` or ``"human"``.
        return_torch: return torch tensors on the economy's device instead of numpy arrays.
        options, **kwargs: the :class:`~hetagents_env.interfaces.options.EnvOptions`, as one object and/or as
            keywords (see :meth:`~hetagents_env.interfaces.options.EnvOptions.from_kwargs`). With an Economy
            instance, its size, device, dtype and parameters are fixed: do not set them.

    Attributes:
        core: the :class:`~hetagents_env.interfaces.env.EconomyEnv` doing the work; ``core.economy`` has the pure functions.
        options: the :class:`~hetagents_env.interfaces.options.EnvOptions` it was built with.
    """

    metadata: dict[str, Any] = {
        "render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS, "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    @takes_options
    def __init__(
        self,
        economy: str | Economy = "Investment-v0",
        num_envs: int = 1,
        *,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        return_torch: bool = False,
        options: EnvOptions | None = None,
        **kwargs,
    ) -> None:
        self.options = options = EnvOptions.from_kwargs(options, **kwargs)
        self.core = _facade.build_core(economy, num_envs, options)
        self.economy = self.core.economy
        self.num_envs = self.core.num_envs
        self.n_agents = self.economy.n_agents
        self.return_torch = bool(return_torch)
        self.autoreset_mode = parse_autoreset_mode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.render_mode = check_render_mode(render_mode)
        self._renderer = None if render_mode is None else Renderer(self.core, render_mode)
        self.single_observation_space, self.single_action_space = _single_spaces(self.economy, options.action_bound)
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, self.num_envs)
        # NEXT_STEP: economies that finished at the previous step and are reset by the next one; whether any did
        self._autoreset = torch.zeros(self.num_envs, dtype=torch.bool, device=self.economy.device)
        self._autoreset_pending = False

    @property
    def max_episode_steps(self) -> int | None:
        return self.core.max_episode_steps

    # ------------------------------------------------------------------ API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset every economy, or only those where ``options["reset_mask"]`` (bool, ``(num_envs,)``) is True.

        Returns ``(obs, info)``: ``obs["agents"]`` ``(num_envs, N, d_a)``, ``obs["aggregate"]``
        ``(num_envs, d_z)``; ``info["elapsed_steps"]`` ``(num_envs,)``. Economies outside the mask keep their state;
        an all-False mask (without a seed) changes nothing, not even the random stream.
        """
        super().reset(seed=seed)
        mask = None if options is None else options.get("reset_mask")
        if mask is not None:
            mask = _facade.reset_mask_tensor(mask, self.num_envs, self.economy.device)
            if seed is None and not bool(mask.any()):
                info = {"elapsed_steps": self.core.elapsed_steps}
                return self._obs(self.economy.observe(self.core.state)), self._arrays(info)
            self._autoreset &= ~mask
            options = {"reset_mask": mask}
        else:
            self._autoreset.zero_()
            options = None
        self._autoreset_pending = bool(self._autoreset.any()) if mask is not None else False
        obs, info = self.core.reset(seed=seed, options=options)
        if self._renderer is not None:
            self._renderer.record(new_period=False)
        return self._obs(obs), self._arrays(info)

    def step(self, actions):
        """One period for every economy: ``actions`` ``(num_envs, N)``.

        Returns ``(obs, reward (num_envs,), terminated (num_envs,), truncated (num_envs,), info)`` with
        ``info["agent_rewards"]`` ``(num_envs, N)`` and ``info["elapsed_steps"]`` ``(num_envs,)``.
        Bad actions (shape, NaN/inf, a tensor of the wrong dtype or device) raise the core's ``ValueError``.
        """
        action = _facade.action_tensor(actions, self.economy)
        obs, reward, terminated, truncated, info = self.core.step(action)
        extra: dict[str, Any] = {}
        if self._autoreset_pending:  # NEXT_STEP, and some economies finished at the previous step
            restart = self._autoreset
            obs, info = self.core.reset(options={"reset_mask": restart})
            reward = reward.masked_fill(restart.unsqueeze(-1), 0.0)
            terminated, truncated = terminated & ~restart, truncated & ~restart
        done = terminated | truncated
        if self.autoreset_mode is AutoresetMode.SAME_STEP and bool(done.any()):
            extra = self._final(obs, reward, info, done)
            obs, info = self.core.reset(options={"reset_mask": done})
        # the core never terminates: without a horizon nothing finishes, and NEXT_STEP costs nothing per step
        if self.autoreset_mode is AutoresetMode.NEXT_STEP and self.core.max_episode_steps is not None:
            self._autoreset = done
            self._autoreset_pending = bool(done.any())
        if self._renderer is not None:
            self._renderer.record(new_period=True)
        info = self._arrays({**info, "agent_rewards": reward})
        return (
            self._obs(obs),
            self._array(reward.mean(-1)),
            self._array(terminated),
            self._array(truncated),
            {**info, **extra},
        )

    def render(self):
        """``rgb_array``: one ``(H, W, 3)`` uint8 frame per economy (a sequence drawn lazily); otherwise ``None``
        (``human`` draws economy 0 at every reset and step)."""
        if self.render_mode == "rgb_array":
            return self._renderer.frames()
        return None

    def close_extras(self, **kwargs) -> None:
        if self._renderer is not None:
            self._renderer.close()

    # ------------------------------------------------------------------ conversion
    def _array(self, tensor: torch.Tensor):
        return tensor.clone() if self.return_torch else _facade.to_numpy(tensor)

    def _arrays(self, info: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {key: self._array(value) for key, value in info.items()}

    def _obs(self, obs) -> dict[str, Any]:
        return {"agents": self._array(obs["agents"]), "aggregate": self._array(obs["aggregate"])}

    def _final(self, obs, reward, info, done: torch.Tensor) -> dict[str, Any]:
        """Gymnasium's SAME_STEP entries: object arrays of the finished economies' last obs and info."""
        last_obs, last_info = self._obs(obs), self._arrays({**info, "agent_rewards": reward})
        final_obs = np.full(self.num_envs, None, dtype=object)
        final_info = np.full(self.num_envs, None, dtype=object)
        for i in torch.nonzero(done).flatten().tolist():  # only the economies that finished this step
            final_obs[i] = {key: value[i] for key, value in last_obs.items()}
            final_info[i] = {key: value[i] for key, value in last_info.items()}
        mask = _facade.to_numpy(done)
        return {"final_obs": final_obs, "_final_obs": mask, "final_info": final_info, "_final_info": mask.copy()}

    def __repr__(self) -> str:
        name = self.spec.id if self.spec is not None else type(self.economy).__name__
        return f"EconomyVectorEnv({name}, num_envs={self.num_envs}, n_agents={self.n_agents})"


class EconomyGymEnv(gymnasium.Env):
    """One economy as a plain :class:`gymnasium.Env` (numpy in/out), e.g. for ``check_env`` and single-env tools.

    Observation ``{"agents": (N, d_a), "aggregate": (d_z,)}``, action ``(N,)``, reward the mean agent reward
    (a float), ``info["agent_rewards"]`` ``(N,)``. Arguments as :class:`EconomyVectorEnv` (``render_mode``,
    ``options`` and/or its keywords; no ``num_envs``, ``autoreset_mode`` or ``return_torch``: a single Env never
    resets by itself); a horizon comes from ``max_episode_steps`` here or from ``gymnasium.make``'s TimeLimit.
    ``render_mode="rgb_array"``: ``render()`` returns the economy's frame.
    """

    metadata: dict[str, Any] = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}

    @takes_options
    def __init__(
        self,
        economy: str | Economy = "Investment-v0",
        *,
        render_mode: str | None = None,
        options: EnvOptions | None = None,
        **kwargs,
    ) -> None:
        self.vector = EconomyVectorEnv(
            economy, 1, autoreset_mode=AutoresetMode.DISABLED, render_mode=render_mode, options=options, **kwargs
        )
        self.core, self.economy, self.options = self.vector.core, self.vector.economy, self.vector.options
        self.n_agents = self.economy.n_agents
        self.render_mode = render_mode
        self.observation_space = self.vector.single_observation_space
        self.action_space = self.vector.single_action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, info = self.vector.reset(seed=seed, options=options)
        return _first(obs), _first(info)

    def step(self, action):
        action = _facade.action_tensor(action, self.economy)
        if tuple(action.shape) != (self.n_agents,):
            raise ValueError(f"action must have shape ({self.n_agents},) (n_agents,), got {tuple(action.shape)}")
        obs, reward, terminated, truncated, info = self.vector.step(action.unsqueeze(0))
        return _first(obs), float(reward[0]), bool(terminated[0]), bool(truncated[0]), _first(info)

    def render(self):
        """``rgb_array``: the economy's ``(H, W, 3)`` uint8 frame; otherwise ``None``."""
        frames = self.vector.render()
        return None if frames is None else frames[0]

    def close(self) -> None:
        self.vector.close()

    def __repr__(self) -> str:
        return f"EconomyGymEnv({type(self.economy).__name__}, n_agents={self.n_agents})"


def _first(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    """Entry 0 of every batched array (the single economy's values)."""
    return {key: value[0] for key, value in batch.items()}


def register_envs() -> None:
    """Register ``hetagents/<id>`` with Gymnasium for every economy, now and whenever one is registered later
    (idempotent)."""
    for env_id in list_envs():
        register_env(env_id)
    if register_env not in on_register:
        on_register.append(register_env)


def register_env(env_id: str) -> None:
    """Register the Gymnasium id ``hetagents/<env_id>`` (single-economy and vector entry points)."""
    full_id = NAMESPACE + env_id
    if full_id in gymnasium.registry:
        return
    gymnasium.register(
        id=full_id,
        entry_point=f"{__name__}:EconomyGymEnv",
        vector_entry_point=f"{__name__}:EconomyVectorEnv",
        kwargs={"economy": env_id},
    )
