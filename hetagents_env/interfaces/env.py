"""A stateful, Gymnasium-style batched environment over one :class:`~hetagents_env.economies.core.Economy`.

``obs, info = env.reset(seed=...)`` then ``obs, reward, terminated, truncated, info = env.step(action)``, all torch
tensors on the economy's device: ``obs`` is ``economy.observe(state)`` (a TensorDict), ``reward`` is per agent
``(B, N)``, ``terminated``/``truncated`` are ``(B,)`` booleans. The economies never terminate; a finite
``max_episode_steps`` truncates. There is no automatic reset: reset all economies, or only some with
``reset(options={"reset_mask": mask})``.

All randomness comes from the env's own ``torch.Generator`` (``env.rng``); torch's global RNG is never touched.

Copies (``pickle``, ``copy.deepcopy``, ``cloudpickle``, so every multiprocess vector env) work, and draw
independent shocks: a copy keeps the state and step counters but its generator is re-seeded with a fresh stream
derived from the original's seed and a copy counter (reproducible when the original was seeded; see
:mod:`~hetagents_env.interfaces._copies`). ``reset(seed=...)`` on a copy seeds it as usual. To replay the
original's stream instead, copy the generator state: ``clone.rng.set_state(env.rng.get_state())``. A pickle from
another ``hetagents_env.__version__`` refuses to load (``pickle.UnpicklingError`` naming both versions).

The step's hot path is :class:`FusedStep`: the period's shocks are drawn into a buffer allocated once (no shock
arrays per step; the draws are exactly those of ``economy.sample_shocks``), then ``transition_and_reward`` runs
eagerly or ``torch.compile``-d (inductor fuses the elementwise maths into one pass over memory). The state and the
reward are fresh tensors every step (observations are views of the state, so updating it in place would change
observations the caller still holds); the economy's pure, differentiable ``transition`` is untouched.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from tensordict import TensorDict

from ..economies import Economy
from ..economies.params import check_count
from . import _copies


class FusedStep:
    """One period of ``num_envs`` economies: ``(next_state, reward) = step(state, action, generator)``.

    Shocks go into a preallocated buffer (``economy.shock_buffer``) via ``sample_shocks(..., out=)``, then the
    economy's own ``transition_and_reward`` runs, through ``torch.compile`` when ``compile=True``. Same generator
    state -> the same next state and reward as ``economy.step`` (bit for bit eagerly; compiled to rounding). When
    gradients are being recorded for the action, fresh shock tensors are drawn instead (a reused buffer must not be
    overwritten while autograd may hold it).
    """

    def __init__(self, economy: Economy, num_envs: int, *, compile: bool = False) -> None:
        self.economy = economy
        self.num_envs = check_count("num_envs", num_envs)
        self.shocks = economy.shock_buffer(self.num_envs)
        self.compiled = bool(compile)
        self.transition_and_reward = (
            torch.compile(economy.transition_and_reward, dynamic=False) if compile else economy.transition_and_reward
        )

    def __call__(
        self, state: TensorDict, action: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[TensorDict, torch.Tensor]:
        if torch.is_grad_enabled() and action.requires_grad:
            shocks = self.economy.sample_shocks(state, generator)
        else:
            shocks = self.economy.sample_shocks(state, generator, out=self.shocks)
        return self.transition_and_reward(state, action, shocks)

    # the shock buffer's entries are views of one draw, a relation pickle does not keep, and a compiled function does
    # not pickle: both are rebuilt from the economy
    def __getstate__(self) -> dict[str, Any]:
        return {"economy": self.economy, "num_envs": self.num_envs, "compiled": self.compiled}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["economy"], state["num_envs"], compile=state["compiled"])


class EconomyEnv:
    """``num_envs`` copies of ``economy`` stepped together.

    Args:
        economy: the economy (its ``n_agents``, device and dtype apply).
        num_envs: number of economies ``B`` (≥ 1).
        seed: seed used by the first ``reset()`` that is given none.
        max_episode_steps: truncate after this many steps (``None``: never).
        check_actions: validate every action (shape, dtype, device, finiteness); turn off in hot loops.
        compile: run the economy's ``transition_and_reward`` through ``torch.compile`` (fuses the elementwise maths
            into one pass; pays off for large B·N after a one-off compilation of a few seconds). Either way the
            shocks are drawn into a preallocated buffer (:class:`FusedStep`).

    Copies (pickle, deepcopy, cloudpickle) step correctly and draw shocks independent of the original: the copy's
    generator gets a fresh stream derived from the original's seed and a copy counter, reproducible when seeded
    (see the module docstring).
    """

    def __init__(
        self,
        economy: Economy,
        num_envs: int = 1,
        *,
        seed: int | None = None,
        max_episode_steps: int | None = None,
        check_actions: bool = True,
        compile: bool = False,
    ) -> None:
        self.economy = economy
        self.num_envs = check_count("num_envs", num_envs)
        self.max_episode_steps = None if max_episode_steps is None else check_count("max_episode_steps", max_episode_steps)
        self.check_actions = check_actions
        self._step = FusedStep(economy, self.num_envs, compile=compile)
        self.rng = economy.generator(seed)
        self._seed_pending = seed is None  # first reset without a seed keeps the non-deterministic seed
        self._state: TensorDict | None = None
        self.elapsed_steps = torch.zeros(self.num_envs, dtype=torch.long, device=economy.device)
        self._copy_count = 0  # copies taken so far: copy n's seed is derived from (seed, n)
        self._pid = os.getpid()

    # ------------------------------------------------------------------ properties
    @property
    def n_agents(self) -> int:
        return self.economy.n_agents

    @property
    def device(self) -> torch.device:
        return self.economy.device

    @property
    def dtype(self) -> torch.dtype:
        return self.economy.dtype

    @property
    def state(self) -> TensorDict:
        """The current state (batch ``[num_envs]``); raises ``RuntimeError`` before the first ``reset``."""
        if self._state is None:
            raise RuntimeError("the environment has no state yet: call reset() before step() or state")
        return self._state

    @state.setter
    def state(self, value: TensorDict) -> None:
        if tuple(value.batch_size) != (self.num_envs,):
            raise ValueError(f"state must have batch_size [{self.num_envs}], got {list(value.batch_size)}")
        self._state = value

    # ------------------------------------------------------------------ API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset every economy, or only those where ``options["reset_mask"]`` (``(num_envs,)`` bool) is True."""
        if seed is not None:
            self.rng.manual_seed(int(seed))
        mask = None if options is None else options.get("reset_mask")
        fresh = self.economy.initial_state(self.num_envs, self.rng)
        if mask is None or self._state is None:
            self._state = fresh
            self.elapsed_steps.zero_()
        else:
            mask = torch.as_tensor(mask, dtype=torch.bool, device=self.device)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {tuple(mask.shape)}")
            self._state = torch.where(mask, fresh, self._state)
            self.elapsed_steps.masked_fill_(mask, 0)
        return self.economy.observe(self._state), self._info()

    def step(self, action: torch.Tensor):
        """Advance every economy one period; returns ``(obs, reward, terminated, truncated, info)``."""
        state = self.state
        if self.check_actions:
            self.economy.check_action(action, self.num_envs)
        next_state, reward = self._step(state, action, self.rng)
        self._state = next_state
        self.elapsed_steps += 1
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = self.elapsed_steps >= self.max_episode_steps
        return self.economy.observe(next_state), reward, terminated, truncated, self._info()

    def _info(self) -> dict[str, Any]:
        return {"elapsed_steps": self.elapsed_steps.clone()}

    # ------------------------------------------------------------------ copies
    def __reduce_ex__(self, protocol):
        # _copies.restore checks the version before pickle loads the state (the economy) below
        return _copies.restore, (type(self), _copies.package_version()), self.__getstate__()

    def __getstate__(self) -> dict[str, Any]:
        self._copy_count += 1
        state = {key: value for key, value in self.__dict__.items() if key != "rng"}
        # the copy's generator is stored as its new seed (see _copies.copy_seed)
        state["rng"] = _copies.copy_seed(self.rng.initial_seed(), self._copy_count, self._pid)
        state["_copy_count"] = 0
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.rng = self.economy.generator(state["rng"])
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"EconomyEnv({self.economy!r}, num_envs={self.num_envs}, max_episode_steps={self.max_episode_steps})"
