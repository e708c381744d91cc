"""Shared plumbing of the library facades (:mod:`.gymnasium`, :mod:`.pettingzoo`, :mod:`.torchrl`).

No economics here: only how the core's tensors are presented (bounds, layouts, numpy conversion) and how the
facades build their core :class:`~hetagents_env.interfaces.env.EconomyEnv` from their
:class:`~hetagents_env.interfaces.options.EnvOptions`. Imports nothing heavier than numpy and torch.

Layouts shared by the facades (``d_a = len(economy.agent_features)``, ``d_z = len(economy.aggregate_features)``):

* population: ``(B, N, d_a)``, each agent's own state, ``economy.agent_features`` on the last dim;
* aggregate: ``(B, d_z)``, the public aggregate state, ``economy.aggregate_features``;
* per-agent observation: ``(B, N, d_a + d_z)``, own state then the aggregate, names
  :func:`agent_observation_features`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tensordict import TensorDict

from ..economies import Economy, make_economy
from .env import EconomyEnv
from .options import EnvOptions, check_action_bound

#: default half-width of the action box when the economy's action is unbounded (investment: units of the good)
DEFAULT_ACTION_BOUND = 1.0


def build_core(economy: str | Economy, num_envs: int, options: EnvOptions) -> EconomyEnv:
    """The core batched env a facade delegates to; ``economy`` is an id or an :class:`Economy` instance (whose size,
    device, dtype and parameters are fixed: ``options`` must not set them)."""
    if isinstance(economy, Economy):
        given = {"n_agents": options.n_agents, "device": options.device, "dtype": options.dtype}
        clash = sorted(k for k, v in given.items() if v is not None) + sorted(options.params)
        if clash:
            raise ValueError(
                f"economy is already an Economy instance; do not also pass {', '.join(clash)} "
                "(they are fixed by the instance)"
            )
    else:
        economy = make_economy(economy, **options.economy_kwargs())
    return EconomyEnv(economy, num_envs, **options.env_kwargs())


def action_bounds(economy: Economy, action_bound: float | None = None) -> tuple[float, float]:
    """Bounds ``(low, high)`` of one agent's action in the facades' spaces.

    Finite economic bounds are kept (Krusell-Smith share: ``[0, 1]``); an unbounded side becomes
    ``∓action_bound`` (default :data:`DEFAULT_ACTION_BOUND`; the investment economy: investment in
    ``[-1, 1]`` units of the good, far beyond any equilibrium investment ≈ 0.03). The spaces only advertise the
    range (for sampling and squashing): actions outside it are passed to the economy unchanged.
    """
    bound = check_action_bound(action_bound)
    bound = DEFAULT_ACTION_BOUND if bound is None else bound
    low = economy.action_low if math.isfinite(economy.action_low) else -float(bound)
    high = economy.action_high if math.isfinite(economy.action_high) else float(bound)
    return float(low), float(high)


def feature_bounds(economy: Economy, names) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` float64 arrays of the given feature names, as the economy states them
    (``economy.feature_bounds``; unknown names: ``(-inf, inf)``)."""
    pairs = [economy.feature_bounds(name) for name in names]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def agent_observation_features(economy: Economy) -> tuple[str, ...]:
    """Names along the last dim of the per-agent observation: own features, then the aggregate ones."""
    return tuple(economy.agent_features) + tuple(economy.aggregate_features)


def agent_observation(obs: TensorDict) -> torch.Tensor:
    """Per-agent observation ``(B, N, d_a + d_z)``: own state ``obs["agents"]`` (B, N, d_a) concatenated with the
    aggregate ``obs["aggregate"]`` (B, d_z) broadcast to every agent."""
    own, aggregate = obs["agents"], obs["aggregate"]
    return torch.cat([own, aggregate.unsqueeze(-2).expand(*own.shape[:-1], aggregate.shape[-1])], dim=-1)


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The numpy dtype of a floating torch dtype."""
    return torch.empty((), dtype=dtype).numpy().dtype


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A fresh numpy array (never sharing memory with the env's tensors) of ``tensor``."""
    return tensor.detach().cpu().numpy().copy()


def action_tensor(action, economy: Economy) -> torch.Tensor:
    """``action`` as a tensor for the core: torch tensors pass through untouched (the core checks their dtype and
    device); numpy arrays, lists and numbers are converted to the economy's dtype and device."""
    if isinstance(action, torch.Tensor):
        return action
    try:
        array = np.asarray(action, dtype=numpy_dtype(economy.dtype))
    except (TypeError, ValueError) as err:
        raise ValueError(f"action must be an array of real numbers, got {type(action).__name__}: {err}") from None
    return torch.as_tensor(array, device=economy.device)


def reset_mask_tensor(mask, num_envs: int, device: torch.device) -> torch.Tensor:
    """Validate ``options["reset_mask"]``: a boolean ``(num_envs,)`` numpy array or tensor -> bool tensor."""
    if isinstance(mask, torch.Tensor):
        is_bool = mask.dtype == torch.bool
    else:
        mask = np.asarray(mask)
        is_bool = mask.dtype == np.bool_
    if not is_bool:
        raise ValueError(f"reset_mask must be a boolean array, got dtype {mask.dtype}")
    if tuple(mask.shape) != (num_envs,):
        raise ValueError(f"reset_mask must have shape ({num_envs},), got {tuple(mask.shape)}")
    return torch.as_tensor(mask, device=device)
