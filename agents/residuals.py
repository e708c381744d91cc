"""Evaluating an economy's Euler residual on many states: the options each economy takes, and chunking.

The maths lives in the economies (``economy.euler_residual(policy, state, **options)``); this module only decides
the options (the investment economy's quadrature and fixed idiosyncratic draw) and evaluates large state sets in
memory-bounded chunks. Shared by the Euler solver and the judge so both compute the same quantity.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict

from hetagents_env.economies.core import Economy, Policy

__all__ = ["residual_options", "batched_residual"]


def residual_options(
    economy: Economy,
    *,
    generator: torch.Generator | None = None,
    nodes: int = 7,
    standardize: bool = True,
) -> dict[str, Any]:
    """Keyword options of ``economy.euler_residual`` for the published method: the economy's own
    ``residual_options`` (investment: ``nodes``-point Gauss–Hermite over the aggregate shock and ONE idiosyncratic
    draw ŵ ∈ R^N from ``generator``, standardised unless ``standardize=False``; household economies: none, their
    expectation is exact)."""
    return economy.residual_options(generator=generator, nodes=nodes, standardize=standardize)


def successors_per_state(economy: Economy, options: dict[str, Any]) -> int:
    """How many states the policy sees per residual (the state and its successors), for chunk sizing."""
    return 1 + economy.expectation_nodes(**{k: v for k, v in options.items() if k != "form"})


def batched_residual(
    economy: Economy,
    policy: Policy,
    states: TensorDict,
    options: dict[str, Any] | None = None,
    *,
    max_rows: int = 1 << 18,
    residual=None,
) -> torch.Tensor:
    """``residual(policy, states, **options)`` (default ``economy.euler_residual``; e.g. the unit-free
    ``economy.relative_euler_error``) over a flat batch of states, in chunks of at most ``max_rows`` agent-rows
    (states × successors × N) each; returns (S, N). Gradients flow if enabled."""
    options = options or {}
    residual = economy.euler_residual if residual is None else residual
    s = states.batch_size[0]
    chunk = max(1, max_rows // (economy.n_agents * successors_per_state(economy, options)))
    if s <= chunk:
        return residual(policy, states, **options)
    return torch.cat([residual(policy, states[i : i + chunk], **options) for i in range(0, s, chunk)], dim=0)
