"""Stable-Baselines3 adapter: ``num_envs`` economies as one SB3 :class:`~stable_baselines3.common.vec_env.VecEnv`,
all stepped in one batched call (SB3 cannot consume a Gymnasium ``VectorEnv``; its own ``DummyVecEnv`` /
``SubprocVecEnv`` would step the economies one by one).

Importing this module imports stable-baselines3 (``pip install stable-baselines3``); ``import hetagents_env`` does
not. Each SB3 "env" is one economy, seen as the single-economy Gymnasium env sees it: observation
``{"agents": (N, d_a), "aggregate": (d_z,)}`` (use ``"MultiInputPolicy"``), action ``(N,)``, reward the mean agent
reward. SB3's conventions: finished economies are reset inside ``step`` and their last observation is in
``infos[i]["terminal_observation"]`` (with ``"TimeLimit.truncated"``)::

    from stable_baselines3 import PPO
    from hetagents_env.interfaces.sb3 import EconomySB3VecEnv

    venv = EconomySB3VecEnv("KrusellSmith-v0", num_envs=16, n_agents=32, max_episode_steps=50, seed=0)
    PPO("MultiInputPolicy", venv, n_steps=64).learn(10_000)

One random stream drives all economies: ``venv.seed(s)`` seeds the next reset with ``s`` (SB3's per-env
``s + i`` offsets do not apply). ``get_attr``/``env_method`` reach the shared
:class:`~hetagents_env.interfaces.gymnasium.EconomyVectorEnv` (``venv.venv``) once and repeat the answer per economy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv

from .gymnasium import EconomyVectorEnv

__all__ = ["EconomySB3VecEnv"]


class EconomySB3VecEnv(VecEnv):
    """``num_envs`` economies as one SB3 ``VecEnv`` (see the module docstring).

    Args:
        economy: an environment id (``"KrusellSmith-v0"``) or an Economy instance.
        num_envs: number of economies (SB3's ``n_envs``).
        render_mode: ``None``, ``"rgb_array"`` (``render()`` tiles one frame per economy) or ``"human"``.
        **kwargs: as :class:`~hetagents_env.interfaces.gymnasium.EconomyVectorEnv`: ``options=`` and/or the
            keywords of :class:`~hetagents_env.interfaces.options.EnvOptions` (``n_agents``, ``seed``, the economy's
            parameters, ...), ``return_torch``.

    Attributes:
        venv: the Gymnasium vector facade doing the work (autoreset ``SAME_STEP``); ``venv.core`` is the core env.
    """

    def __init__(self, economy="Investment-v0", num_envs: int = 1, *, render_mode: str | None = None, **kwargs) -> None:
        # set before VecEnv.__init__, which reads render_mode through get_attr
        self.venv = EconomyVectorEnv(
            economy, num_envs, autoreset_mode=AutoresetMode.SAME_STEP, render_mode=render_mode, **kwargs
        )
        self.economy, self.core = self.venv.economy, self.venv.core
        self._actions: np.ndarray | None = None
        super().__init__(self.venv.num_envs, self.venv.single_observation_space, self.venv.single_action_space)

    def reset(self) -> dict[str, np.ndarray]:
        seed, options = self._seeds[0], self._options[0] or None
        obs, _ = self.venv.reset(seed=seed, options=options)
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.venv.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):  # only the economies that finished (none without a horizon)
            infos[i] = {
                "terminal_observation": info["final_obs"][i],
                "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
            }
        return obs, reward.astype(np.float32, copy=False), dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> list[np.ndarray | None]:
        frames = self.venv.render()
        return [None] * self.num_envs if frames is None else list(frames)

    # ------------------------------------------------------------------ the shared env behind every index
    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        value = getattr(self.venv, attr_name)  # AttributeError when absent (SB3's has_attr relies on it)
        return [value] * len(list(self._get_indices(indices)))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        if sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError("the economies share one env: set_attr can only set an attribute for all of them")
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result] * len(list(self._get_indices(indices)))

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))

    def __repr__(self) -> str:
        return f"EconomySB3VecEnv({self.economy.env_id}, num_envs={self.num_envs}, n_agents={self.economy.n_agents})"
