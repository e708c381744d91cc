r"""The Bellman-error judge of the household economies (DeepHAM's accuracy metric), for any policy and value.

Defined for economies that describe their households' problem (cash on hand, the consumption clip, utility and
the successor states' probabilities: Krusell–Smith, Aiyagari); written below with Krusell–Smith's log utility and
its (Z', e') successors — any other household economy uses its own u(c) and its n_z · n_e successors.

For a household i at a state s drawn from long simulations of the policy,

.. math::
    \varepsilon^{opt}_i(s) = \Big| V_i(s) - \max_{c \in \mathcal C_i} \big\{ \log c + \beta\, E\, V_i(s'(c)) \big\}\Big|,
    \qquad
    \varepsilon^{exp}_i(s) = \Big| V_i(s) - \log c_i^\pi - \beta\, E\, V_i(s'(c_i^\pi)) \Big|,

reported as means over all sampled states and households (``optimality`` and ``expectation``). The protocol
(:class:`BellmanConfig`; defaults = the published one):

1. **States.** ``economies`` (64) economies of the judged economy's N households start from its initial state,
   run ``burn_in`` (6,000) periods under the policy, then ``periods`` (2,000) more; ``samples`` (100) of those
   periods, drawn at random once (the same for every economy), are kept: 64 × N × 100 household-states. Along the
   way: the ergodic mean/sd of K and the total discounted utility :math:`\sum_{t<T} \beta^t \log c_t` (averaged over
   economies and households; published ≈ 104.3 over T = 2,000).
2. **Choices.** The policy's c, and an ``grid_points`` (11)-point grid from
   :math:`c - \min(0.95 c, 5)` to :math:`c + \min(k' - 10^{-6}, 5)` (the published grid), clipped to the
   economy's feasible set :math:`[f, x - f]`.
3. **Next state.** The other households follow the policy. Household i's deviation changes its own k' and, by
   1/N of the change, K' and every moment: :math:`\bar\phi' = \bar\phi'_\pi + (\phi(k'_i(c)) - \phi(k'_{i,\pi}))/N`.
4. **Expectation.** Over Z' by ``z_draws`` (100) Monte Carlo draws from P(Z'|Z), drawn per sampled economy-state
   and shared by its households (``z_draws=0``: the exact two-point expectation); over the household's own e'
   exactly, with :math:`P(e' \mid Z, Z', e_i)`. The value's population summary must depend on capital only (true
   for the 1st moment, DeepHAM's moments of k and the classical solution's K), so V(s') depends on a draw only
   through Z': the draws are grouped by Z' (identical numbers, 2 evaluations instead of 100).

The value function is used through a small interface (``features(state)`` (B, N, L): per-household φ whose mean
over households is the summary, and ``head(state, summary)`` (B, N)): :class:`~agents.solvers.deepham.ValueEnsemble`
has it, and adapters cover :class:`~agents.networks.DeepSets` critics and the classical solver's ``GridValue``
(V(k, e; K, z): φ(k) = k). A solver without a value function gets one fitted by DeepHAM's regression
(:func:`agents.solvers.deepham.fit_value`).

Caveat (measured here, see ``benchmarks/results/deepham_ks.md``): the error is measured on the policy's OWN
ergodic set, with a value fitted to the policy. A policy that never visits the hard states is not penalised there:
the untrained DeepHAM policy (a constant consumption share, the deterministic steady state's) scores ≈ 0.010 on
the published protocol — below the published DeepHAM 0.015 — while its wealth distribution is degenerate (Gini
≈ 0.03 instead of ≈ 0.25) and its Euler-equation errors are ≈ 13× the classical solution's. Report the Bellman
error together with Euler errors and distribution statistics.

Cost: O(states × N × grid × 4) value evaluations, in chunks of ``chunk`` economy-states; nothing loops over
households or grid points in Python.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any

import torch
from tensordict import TensorDict
from torch import nn

from hetagents_env.economies.core import Economy, Policy

from .config import Config, ConfigError, interval

__all__ = [
    "BellmanConfig", "BellmanResult", "as_set_value", "bellman_error", "bellman_error_solver", "published_bellman",
]

#: DeepHAM (Han, Yang & E), N = 50: Bellman error (optimality) and its sd over seeds
published_bellman = {
    "ks_algorithm": {"bellman_error": 0.0253, "std": 0.0002, "rerun_by_authors": 0.049},
    "deepham_1st_moment": {"bellman_error": 0.0184, "std": 0.004, "rerun_by_authors": 0.019},
    "deepham_1gm": {"bellman_error": 0.0153, "alt": 0.0151, "std": 0.0006},
    "deepham_2gm": {"bellman_error": 0.0152, "std": 0.0011},
    "ergodic_mean_k": (39.3, 39.4),
    "total_utility": 104.3,
}


@dataclasses.dataclass(frozen=True)
class BellmanConfig(Config):
    """Sizes of the Bellman-error protocol; defaults are the published ones."""

    economies: int = dataclasses.field(default=64, metadata=interval(1))
    burn_in: int = dataclasses.field(default=6000, metadata=interval(0))
    periods: int = dataclasses.field(default=2000, metadata=interval(1))
    samples: int = dataclasses.field(default=100, metadata=interval(1))
    """random periods (of ``periods``) at which every economy's households are judged"""
    z_draws: int = dataclasses.field(default=100, metadata=interval(0))
    """Monte Carlo draws of Z' per sampled state (0: the exact expectation)"""
    grid_points: int = dataclasses.field(default=11, metadata=interval(2))
    grid_down: float = dataclasses.field(default=0.95, metadata=interval(0.0, 1.0))
    """lowest grid point c − min(grid_down · c, grid_span)"""
    grid_span: float = dataclasses.field(default=5.0, metadata=interval(0.0, open_lo=True))
    """highest grid point c + min(k' − 1e-6, grid_span)"""
    seed: int = 0
    chunk: int = dataclasses.field(default=64, metadata=interval(1))
    """economy-states per evaluation chunk (memory ∝ chunk × N × grid_points × 4)"""

    def _validate(self) -> None:
        if self.samples > self.periods:
            raise ConfigError(f"BellmanConfig.samples = {self.samples} must not exceed periods = {self.periods}")


@dataclasses.dataclass
class BellmanResult:
    """Mean Bellman errors (``optimality``, ``expectation``) with standard errors over economies, and the
    ergodic statistics of the simulation."""

    optimality: float
    expectation: float
    optimality_se: float
    expectation_se: float
    n_states: int
    mean_K: float
    sd_K: float
    total_utility: float
    seconds: float
    config: dict[str, Any]
    optimality_quantiles: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------- value adapters
class _SetValue:
    """V_i = head(own state, Z, summary), summary = mean over households of features(k)."""

    def features(self, state: TensorDict) -> torch.Tensor:  # (B, N, L)
        raise NotImplementedError

    def head(self, state: TensorDict, summary: torch.Tensor) -> torch.Tensor:  # (B, N)
        raise NotImplementedError


class _Direct(_SetValue):
    def __init__(self, value) -> None:
        self.value = value

    def features(self, state):
        return self.value.features(state)

    def head(self, state, summary):
        return self.value.head(state, summary)


class _DeepSetsValue(_SetValue):
    """A :class:`~agents.networks.DeepSets` critic (linear head)."""

    def __init__(self, net) -> None:
        self.net = net

    def features(self, state):
        return self.net.agent_features(state)

    def head(self, state, summary):
        return self.net.forward_with_summary(state, summary)


class _GridValue(_SetValue):
    """The classical solution's V(k, e; K, z) on its grid: φ(k) = k, summary = K."""

    def __init__(self, value) -> None:
        self.value = value

    def features(self, state):
        return state["k"].to(self.value.table.dtype).unsqueeze(-1)

    def head(self, state, summary):
        v = self.value
        k = state["k"].to(v.table.dtype)
        return v.grid.panel(v.table, k, state["e"].to(k.dtype), summary[..., 0].to(k.dtype), state["z"])


def as_set_value(value) -> _SetValue:
    """The judge's view of a value function (see the module docstring); raises ``ValueError`` for one it cannot
    evaluate at a household's deviation."""
    from .networks import DeepSets
    from .value import ValueEnsemble

    if isinstance(value, ValueEnsemble):
        if tuple(value.inputs.set) != ("k",):
            raise ValueError(f"the value's population summary must depend on capital only, got {value.inputs.set}")
        return _Direct(value)
    if isinstance(value, DeepSets):
        if tuple(value.features.set) != ("k",):
            raise ValueError(f"the value's population summary must depend on capital only, got {value.features.set}")
        return _DeepSetsValue(value)
    if hasattr(value, "grid") and hasattr(value, "table") and hasattr(value.grid, "panel"):
        return _GridValue(value)
    if callable(getattr(value, "features", None)) and callable(getattr(value, "head", None)):
        return _Direct(value)
    raise ValueError(
        f"cannot evaluate a {type(value).__name__} at a household's deviation: the Bellman judge needs a "
        "ValueEnsemble, a DeepSets critic, a GridValue, or an object with features(state) and head(state, summary)"
    )


# ---------------------------------------------------------------------------------------------- the judge
#: what the judge reads from the economy (the household economies' structure)
_NEEDS = ("cash_on_hand", "consumption", "clip_consumption", "utility", "prob_z", "prob_e_next", "cdf_z")


def _float64(economy: Economy) -> Economy:
    return economy.with_dtype(torch.float64)


@torch.no_grad()
def simulate_states(policy: Policy, economy: Economy, config: BellmanConfig) -> tuple[TensorDict, dict[str, float]]:
    """Step 1: the judged states, flat [samples · economies] (period-major), and the ergodic statistics."""
    eco, beta = economy, economy.discount
    gen = eco.generator(config.seed)
    pick = torch.randperm(config.periods, generator=torch.Generator().manual_seed(config.seed + 1))[: config.samples]
    keep = torch.zeros(config.periods, dtype=torch.bool)
    keep[pick] = True
    state = eco.initial_state(config.economies, gen)
    for _ in range(config.burn_in):
        state = eco.transition(state, policy(state), eco.sample_shocks(state, gen))
    kept, K_sum, K_sq, utility = [], 0.0, 0.0, 0.0
    for t in range(config.periods):
        if keep[t]:
            kept.append(state)
        K = state["k"].mean(-1)
        K_sum, K_sq = K_sum + K.sum(), K_sq + K.square().sum()
        state, reward = eco.transition_and_reward(state, policy(state), eco.sample_shocks(state, gen))
        utility = utility + beta**t * reward.mean()
    n = config.periods * config.economies
    mean_K = float(K_sum / n)
    sd_K = math.sqrt(max(float(K_sq / n) - mean_K**2, 0.0))
    stats = {"mean_K": mean_K, "sd_K": sd_K, "total_utility": float(utility)}
    return torch.stack(kept, 0).reshape(-1), stats


@torch.no_grad()
def bellman_error(
    policy: Policy,
    value,
    economy: Economy,
    config: BellmanConfig | Mapping[str, Any] | None = None,
    **overrides: Any,
) -> BellmanResult:
    """Judge ``policy`` (state -> consumption share, (B, N)) and ``value`` (see :func:`as_set_value`) on the
    Krusell–Smith ``economy``; see the module docstring. ``overrides`` replace fields of ``config``."""
    config = BellmanConfig.build(config).replace(**overrides) if overrides else BellmanConfig.build(config)
    missing = [name for name in _NEEDS if not economy.provides(name)]
    if missing:
        raise ValueError(f"the Bellman judge needs a household economy; {economy.env_id} lacks {', '.join(missing)}")
    start = time.perf_counter()
    was_training = [m.training for m in (policy, value) if isinstance(m, nn.Module)]
    for m in (policy, value):
        if isinstance(m, nn.Module):
            m.eval()
    eco = _float64(economy)
    pol = lambda s: policy(s).to(eco.dtype)  # noqa: E731
    V = as_set_value(value)
    states, stats = simulate_states(pol, eco, config)
    gen = torch.Generator(device=eco.device).manual_seed(config.seed + 2)
    opt, exp = [], []
    for i in range(0, states.batch_size[0], config.chunk):
        o, e = _chunk_errors(states[i : i + config.chunk], pol, V, eco, config, gen)
        opt.append(o)
        exp.append(e)
    opt_err, exp_err = torch.cat(opt), torch.cat(exp)  # (S, N), S period-major: [samples, economies]
    def se(err: torch.Tensor) -> float:  # standard error over economies
        if config.economies < 2:
            return float("nan")
        per_economy = err.reshape(config.samples, config.economies, -1).mean((0, 2))
        return float(per_economy.std() / math.sqrt(config.economies))

    q = torch.quantile(opt_err.flatten()[: 1 << 24].double(), torch.tensor([0.5, 0.9, 0.99], dtype=torch.float64))
    for m, flag in zip([m for m in (policy, value) if isinstance(m, nn.Module)], was_training):
        m.train(flag)
    return BellmanResult(
        optimality=float(opt_err.mean()), expectation=float(exp_err.mean()), optimality_se=se(opt_err),
        expectation_se=se(exp_err), n_states=int(opt_err.numel()), seconds=time.perf_counter() - start,
        config=config.to_dict(), optimality_quantiles={"p50": float(q[0]), "p90": float(q[1]), "p99": float(q[2])},
        **stats,
    )


def _chunk_errors(state: TensorDict, policy: Policy, V: _SetValue, eco: Economy, config: BellmanConfig,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimality and expectation errors (C, N) of the C economy-states in ``state``."""
    beta, n, G = eco.discount, eco.n_agents, config.grid_points
    z, e = state["z"], state["e"]
    c_count = z.shape[0]
    # --- the policy's choice and the value now
    cash = eco.cash_on_hand(state)
    c = eco.consumption(cash, policy(state))
    k_next = cash - c
    v_now = V.head(state, V.features(state).mean(1)).to(eco.dtype)  # (C, N)
    # --- next period's population under the policy, and its summary
    nxt = TensorDict({"k": k_next, "e": e, "z": z}, batch_size=[c_count])
    f_pol = V.features(nxt)  # (C, N, L)
    s_pol = f_pol.mean(1)  # (C, L)
    # --- the consumption grid (column G: the policy's own choice, for the expectation error)
    g = torch.linspace(0.0, 1.0, G, dtype=eco.dtype, device=eco.device)
    lo = c - torch.minimum(config.grid_down * c, torch.full_like(c, config.grid_span))
    hi = c + torch.minimum(k_next - eco.borrowing_limit - 1e-6, torch.full_like(c, config.grid_span))
    grid = lo.unsqueeze(-1) + (hi - lo).unsqueeze(-1) * g  # (C, N, G)
    grid = eco.clip_consumption(grid, cash.unsqueeze(-1))  # the economy's own feasible set
    grid = torch.cat([grid, c.unsqueeze(-1)], dim=-1)  # (C, N, G + 1)
    k_dev = cash.unsqueeze(-1) - grid  # household i's own k' for each choice
    dev = TensorDict(
        {"k": k_dev.reshape(c_count, -1), "e": e.repeat_interleave(G + 1, 1), "z": z}, batch_size=[c_count]
    )
    f_dev = V.features(dev).reshape(c_count, n, G + 1, -1)  # (C, N, G+1, L)
    summary = s_pol[:, None, None, :] + (f_dev - f_pol.unsqueeze(2)) / n  # the deviation moves the moments by 1/N
    # --- V at the S = n_z · n_e successors (z', e') of every (state, household, choice): rows of single households
    n_z, n_e = eco.n_z, eco.n_e
    S, rows = n_z * n_e, c_count * n * (G + 1)
    zs = torch.arange(n_z, device=eco.device).repeat_interleave(n_e)
    es = torch.arange(n_e, device=eco.device).repeat(n_z).to(eco.dtype)
    row_state = TensorDict(
        {"k": k_dev.reshape(1, rows, 1).expand(S, rows, 1).reshape(S * rows, 1),
         "e": es[:, None, None].expand(S, rows, 1).reshape(S * rows, 1),
         "z": zs[:, None].expand(S, rows).reshape(S * rows)},
        batch_size=[S * rows],
    )
    row_summary = summary.reshape(1, rows, -1).expand(S, rows, -1).reshape(S * rows, -1)
    v_next = V.head(row_state, row_summary).to(eco.dtype).reshape(S, c_count, n, G + 1)
    # --- probabilities: z' by Monte Carlo draws (or exactly), own e' exactly
    if config.z_draws and n_z > 1:
        u = torch.rand(c_count, config.z_draws, generator=gen, dtype=eco.dtype, device=eco.device)
        below = (u.unsqueeze(-1) < eco.cdf_z[z].unsqueeze(1)).to(eco.dtype).mean(1)  # (C, n_z − 1): P̂(z' ≤ j)
        cum = torch.cat([below, torch.ones_like(below[:, :1])], -1)
        w_z = torch.diff(cum, dim=-1, prepend=torch.zeros_like(cum[:, :1])).T  # (n_z, C)
    else:
        w_z = eco.prob_z[z].T  # (n_z, C)
    z_next = torch.arange(n_z, device=eco.device).view(n_z, 1, 1)
    p_e = eco.prob_e_next[z[None, :, None], z_next, e.long()[None]]  # P(e' | z, z', e_i): (n_z, C, N, n_e)
    p_e = p_e.permute(0, 3, 1, 2).reshape(S, c_count, n)  # order z' outer, e' inner, as the successors
    weight = w_z.repeat_interleave(n_e, 0)[:, :, None] * p_e  # (S, C, N)
    target = eco.utility(grid) + beta * (weight.unsqueeze(-1) * v_next).sum(0)  # (C, N, G + 1)
    optimality = (v_now - target[..., :G].max(-1).values).abs()
    expectation = (v_now - target[..., G]).abs()
    return optimality, expectation


def bellman_error_solver(
    solver,
    config: BellmanConfig | Mapping[str, Any] | None = None,
    *,
    value_config: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> BellmanResult:
    """:func:`bellman_error` of ``solver.policy`` and ``solver.value``; a solver without a value gets one fitted by
    DeepHAM's regression (:func:`agents.solvers.deepham.fit_value`, settings ``value_config``)."""
    value = getattr(solver, "value", None)
    if value is None:
        from .value import fit_value

        value, _ = fit_value(_float64(solver.economy), solver.policy, value_config)
    return bellman_error(solver.policy, value, solver.economy, config, **overrides)
