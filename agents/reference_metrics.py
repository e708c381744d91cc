r"""The judge's reference-based metrics: a policy scored against an economy's reference solution.

Everything here works on float64 copies of the economy (``economy.with_dtype(torch.float64)``) and on policies
that take float64 states (:func:`in_float64` adapts a policy of another dtype). It reads the economy only through
its interface: ``transition``, ``sample_shocks``, ``reward``, ``euler_residual``, ``endogenous_key``,
``feature_bounds``, ``discount``, and, where an economy provides them (:meth:`~hetagents_env.Economy.provides`),
``consumption_of`` (consumption statistics) and ``crra_gamma`` (consumption equivalents).

Definitions (``w`` the endogenous state ``state[economy.endogenous_key]``: wealth / capital / assets):

* **Unit-free Euler-equation error** of household i at a state (economies whose ``euler_residual`` takes
  ``form="relative"``): with :math:`g_i = 1 - c_i / c^{EE}_i` (``c_EE`` the consumption the Euler equation asks for
  given next period's choices of the same policy),

  .. math:: \mathrm{err}_i = |g_i| \ \text{if}\ w'_i - \underline w > \tau,\qquad
            \mathrm{err}_i = \max(0, -g_i) \ \text{otherwise (at the borrowing limit the inequality may hold strictly)}

  with :math:`\underline w` the lower bound of ``w`` (``feature_bounds``), τ = ``constraint_tol`` × the mean of
  :math:`w - \underline w` over the reference's ergodic set. Reported: mean, p99, max over households and states,
  their log10, the mean of log10 (errors floored at 1e-16), the share of constrained households and the signed
  mean of g over the unconstrained ones (> 0: they save too much, < 0: too little). MMV's Table 1 reports
  100·|c − c_EE|/c_EE: the same number in %. And the mean error split by where it comes from, with
  :math:`e_{si} = \pm\mathrm{err}_{si}` (the sign of :math:`g_{si}`) at state s and
  :math:`\bar e_s = \frac1N\sum_i e_{si}`: ``aggregate_mean`` :math:`= \mathrm{mean}_s |\bar e_s|` (the part every
  household of a state shares: the aggregate law, prices) and ``individual_mean``
  :math:`= \mathrm{mean}_{s,i} |e_{si} - \bar e_s|` (the part that differs across households: the individual
  policy's shape); ``mean`` ≤ their sum.
* Economies with an exact policy (the linear investment economy): the **relative policy error**
  :math:`|u - u^{ref}| / |u^{ref}|`, same statistics.
* **Stationary distribution** of a policy: ``economies`` economies started from the reference's ergodic
  cross-section, ``burn_in`` periods dropped, then ``periods`` periods recorded; every ``thin``-th period's
  cross-sections are pooled. K = mean over agents of w (per economy and period): mean and sd over economies and
  recorded periods; wealth (and consumption) Gini of the POOLED sample (all economies, agents, thinned periods);
  wealth percentiles p10/p50/p90/p99 of the pooled sample; Wasserstein-1 distance between the pooled wealth
  samples of the policy and of the reference (``scipy.stats.wasserstein_distance``, in units of w).
* **Welfare** (see :func:`lifetime_values`, :func:`consumption_equivalent`).
* **Paths on common shocks** (figures): :func:`draw_common_shocks` draws ``periods`` shocks once from one seed and
  :func:`simulate_on_shocks` replays them for any policy from the same start, so that every policy faces the same
  aggregate and idiosyncratic draws (the same exogenous states: e.g. the same path of
  ``state[economy.aggregate_state_key]``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.stats
import torch
from tensordict import TensorDict

from hetagents_env.economies.core import Economy, Policy

from .policy_check import CheckedPolicy
from .residuals import batched_residual

__all__ = [
    "consumption_equivalent", "draw_common_shocks", "error_stats", "gini", "in_float64", "lifetime_values",
    "simulate_on_shocks", "simulate_stationary", "stationary_stats", "unit_free_error_values", "unit_free_errors",
    "wasserstein", "welfare_horizon",
]

#: errors below this are floored before log10
LOG_FLOOR = 1e-16


# ---------------------------------------------------------------------------------------------- helpers
def in_float64(policy: Policy, dtype: torch.dtype) -> Policy:
    """``policy`` as a function of float64 states returning float64 actions (its own dtype inside)."""
    if dtype == torch.float64:
        return policy

    def call(state: TensorDict) -> torch.Tensor:
        cast = state.apply(lambda t: t.to(dtype) if t.is_floating_point() else t)
        return policy(cast).to(torch.float64)

    return call


def _stage(checked: CheckedPolicy | None, stage: str, period: int | None = None) -> None:
    if checked is not None:
        checked.at(stage, period)


def gini(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Gini coefficient of a sample, G = 2 Σ_i i v_(i) / (n Σ v) − (n + 1)/n with v sorted ascending, or, with
    ``weights``, of the discrete distribution with atoms ``values``: 1 − Σ_i m_i (L_{i−1} + L_i) (L the Lorenz
    curve; the two agree for equal weights). The one Gini of numpy samples and histograms in the package."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if weights is None:
        v = np.sort(v)
        n = v.size
        total = v.sum()
        if n < 2 or total == 0:
            return 0.0
        return float(2.0 * (np.arange(1, n + 1) * v).sum() / (n * total) - (n + 1.0) / n)
    m = np.asarray(weights, dtype=np.float64).ravel()
    order = np.argsort(v, kind="stable")
    v, m = v[order], m[order] / m.sum()
    wealth = np.cumsum(m * v)
    L = wealth / wealth[-1]
    return float(1.0 - np.sum(m * (L + np.concatenate([[0.0], L[:-1]]))))


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """Wasserstein-1 distance of two 1-D samples (units of the samples)."""
    return float(scipy.stats.wasserstein_distance(np.asarray(a).ravel(), np.asarray(b).ravel()))


def error_stats(err: torch.Tensor) -> dict[str, float]:
    """mean, p99, max of a tensor of non-negative errors, their log10 and the mean of log10 (floored at 1e-16)."""
    e = err.double().reshape(-1).cpu().numpy()
    mean, p99, mx = float(e.mean()), float(np.percentile(e, 99)), float(e.max())
    log = lambda x: math.log10(max(x, LOG_FLOOR))  # noqa: E731
    return {"mean": mean, "p99": p99, "max": mx, "log10_mean": log(mean), "log10_p99": log(p99),
            "log10_max": log(mx), "mean_log10": float(np.log10(np.maximum(e, LOG_FLOOR)).mean()), "count": int(e.size)}


def _consumption(economy: Economy, state: TensorDict, action: torch.Tensor) -> torch.Tensor | None:
    """Consumption (B, N) where the economy has consumers (``consumption_of``), else None."""
    return economy.consumption_of(state, action) if economy.provides("consumption_of") else None


def supports_relative_euler(economy: Economy) -> bool:
    """Whether the economy defines the unit-free Euler gap 1 − c/c_EE (``relative_euler_error``)."""
    return economy.provides("relative_euler_error")


# ---------------------------------------------------------------------------------------------- Euler errors
@torch.no_grad()
def unit_free_error_values(
    policy: Policy,
    economy: Economy,
    states: TensorDict,
    *,
    exact: Policy | None = None,
    wealth_scale: float = 1.0,
    constraint_tol: float = 1e-3,
    checked: CheckedPolicy | None = None,
    stage: str = "Euler errors",
) -> dict[str, Any] | None:
    """The per-household errors behind :func:`unit_free_errors`, at ``states`` (flat batch [S], float64).

    Returns ``{"kind": "relative_euler" | "relative_policy_error", "errors": (S, N) float64, "gap": g (S, N) or
    None, "constrained": (S, N) bool or None}``, or None when the economy has neither a unit-free Euler error nor
    an ``exact`` policy (see the module docstring for the definitions)."""
    _stage(checked, stage)
    if supports_relative_euler(economy):
        gap = batched_residual(economy, policy, states, residual=economy.relative_euler_error).double()
        _stage(checked, stage)
        action = policy(states)
        key = economy.endogenous_key
        low = economy.feature_bounds(key)[0]
        shocks = economy.sample_shocks(states, economy.generator(0))
        w_next = economy.transition(states, action, shocks)[key].double()
        if math.isfinite(low):
            constrained = (w_next - low) <= constraint_tol * wealth_scale
        else:
            constrained = torch.zeros_like(gap, dtype=torch.bool)
        err = torch.where(constrained, (-gap).clamp_min(0.0), gap.abs())
        return {"kind": "relative_euler", "errors": err, "gap": gap, "constrained": constrained}
    if exact is not None:
        u, ref = policy(states).double(), exact(states).double()
        return {"kind": "relative_policy_error", "errors": (u - ref).abs() / ref.abs(), "gap": None,
                "constrained": None}
    return None


@torch.no_grad()
def unit_free_errors(
    policy: Policy,
    economy: Economy,
    states: TensorDict,
    *,
    exact: Policy | None = None,
    wealth_scale: float = 1.0,
    constraint_tol: float = 1e-3,
    checked: CheckedPolicy | None = None,
    stage: str = "Euler errors",
) -> dict[str, Any] | None:
    """Unit-free accuracy of ``policy`` at ``states`` (flat batch, float64); see the module docstring.

    Relative Euler-equation errors where the economy supports ``form="relative"``; else, with an ``exact`` policy,
    the relative policy error; else None. (Statistics of :func:`unit_free_error_values`.)"""
    values = unit_free_error_values(policy, economy, states, exact=exact, wealth_scale=wealth_scale,
                                    constraint_tol=constraint_tol, checked=checked, stage=stage)
    if values is None:
        return None
    stats = error_stats(values["errors"])
    if values["kind"] == "relative_euler":
        gap, constrained = values["gap"], values["constrained"]
        signed = torch.copysign(values["errors"], gap)  # e_si (S, N)
        common = signed.mean(-1, keepdim=True)  # ē_s
        stats.update(kind="relative_euler", constrained_share=float(constrained.double().mean()),
                     signed_mean_unconstrained=float(gap[~constrained].mean()) if bool((~constrained).any()) else 0.0,
                     aggregate_mean=float(common.abs().mean()), individual_mean=float((signed - common).abs().mean()))
    else:
        stats.update(kind=values["kind"])
    return stats


# ---------------------------------------------------------------------------------------------- stationary distribution
@torch.no_grad()
def simulate_stationary(
    policy: Policy,
    economy: Economy,
    start: TensorDict,
    *,
    burn_in: int,
    periods: int,
    thin: int,
    seed: int,
    keep_states: int = 0,
    checked: CheckedPolicy | None = None,
) -> dict[str, Any]:
    """Simulate ``policy`` from ``start`` (batch [M], float64): ``burn_in`` periods dropped, ``periods`` recorded.

    Returns "K" (M, periods) (mean of w over agents), "wealth" (pooled w of every ``thin``-th recorded period),
    "consumption" (pooled likewise, or None), and "states" (``keep_states`` economy-states spread over the recorded
    periods, for Euler errors on the policy's own ergodic set). Shocks from ``seed`` (common random numbers)."""
    gen = economy.generator(seed)
    key = economy.endogenous_key
    state = start.clone()
    K, wealth, cons, kept = [], [], [], []
    m = start.batch_size[0]
    n_times = -(-keep_states // m) if keep_states else 0  # recorded periods whose cross-sections are kept
    keep_at = set(np.linspace(0, periods - 1, n_times).round().astype(int).tolist()) if n_times else set()
    for t in range(burn_in + periods):
        _stage(checked, "stationary simulation", t)
        action = policy(state)
        if t >= burn_in:
            r = t - burn_in
            K.append(state[key].mean(-1))
            if r % thin == 0:
                wealth.append(state[key].reshape(-1))
                c = _consumption(economy, state, action)
                if c is not None:
                    cons.append(c.reshape(-1))
            if r in keep_at:
                kept.append(state.clone())
        state = economy.transition(state, action, economy.sample_shocks(state, gen))
    states = torch.cat(kept)[:keep_states] if kept else None
    return {
        "K": torch.stack(K, 1).double(),
        "wealth": torch.cat(wealth).double(),
        "consumption": torch.cat(cons).double() if cons else None,
        "states": states,
    }


def stationary_stats(sample: dict[str, Any]) -> dict[str, Any]:
    """Statistics of a :func:`simulate_stationary` sample (see the module docstring)."""
    K = sample["K"].cpu().numpy()
    w = sample["wealth"].cpu().numpy()
    p10, p50, p90, p99 = np.percentile(w, [10, 50, 90, 99]).tolist()
    out = {"K_mean": float(K.mean()), "K_sd": float(K.std()), "wealth_gini": gini(w),
           "wealth_p10": p10, "wealth_p50": p50, "wealth_p90": p90, "wealth_p99": p99,
           "consumption_gini": None, "samples": int(w.size)}
    if sample.get("consumption") is not None:
        out["consumption_gini"] = gini(sample["consumption"].cpu().numpy())
    return out


# ---------------------------------------------------------------------------------------------- common shocks
@torch.no_grad()
def draw_common_shocks(economy: Economy, start: TensorDict, *, periods: int, seed: int) -> list[TensorDict]:
    """``periods`` one-period shock draws for the economies of ``start`` (batch [M]), in order, from
    ``economy.generator(seed)``. They are drawn once, before any policy runs, so replaying them
    (:func:`simulate_on_shocks`) gives every policy the same aggregate and idiosyncratic draws."""
    gen = economy.generator(seed)
    return [economy.sample_shocks(start, gen).clone() for _ in range(int(periods))]


@torch.no_grad()
def simulate_on_shocks(
    policy: Policy,
    economy: Economy,
    start: TensorDict,
    shocks: list[TensorDict],
    *,
    checked: CheckedPolicy | None = None,
    stage: str = "paths on common shocks",
) -> dict[str, Any]:
    """Simulate ``policy`` from ``start`` (batch [M], the economy's dtype) with the given shocks (one per period).

    Returns "K" (M, T + 1) float64, the mean of the endogenous state over agents (aggregate capital / wealth);
    "aggregate_state" (M, T + 1), the economy's discrete aggregate state ``state[economy.aggregate_state_key]``,
    or None when it has none; "key": the endogenous key; "aggregate_state_key"."""
    key, z_key = economy.endogenous_key, economy.aggregate_state_key
    state = start.clone()
    K, Z = [state[key].double().mean(-1)], [state[z_key].clone()] if z_key is not None else None
    for t, shock in enumerate(shocks):
        _stage(checked, stage, t)
        state = economy.transition(state, policy(state), shock)
        K.append(state[key].double().mean(-1))
        if Z is not None:
            Z.append(state[z_key].clone())
    return {"K": torch.stack(K, 1), "aggregate_state": torch.stack(Z, 1) if Z is not None else None, "key": key,
            "aggregate_state_key": z_key}


# ---------------------------------------------------------------------------------------------- welfare
def welfare_horizon(beta: float, tail: float = 1e-4) -> int:
    """The smallest T with β^T ≤ ``tail``."""
    return max(1, math.ceil(math.log(tail) / math.log(beta)))


@torch.no_grad()
def lifetime_values(
    reference: Policy,
    economy: Economy,
    start: TensorDict,
    *,
    horizon: int,
    seed: int,
    deviator: Policy | None = None,
    terminal_value: Callable[[TensorDict], torch.Tensor] | None = None,
    checked: CheckedPolicy | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Lifetime payoffs of agent 0 of each economy in ``start`` (batch [M]) with and without deviating: two (M,)
    float64 tensors ``(V_dev, V_base)``.

    Two economies run side by side from each start state on the same shocks (drawn from ``seed``):

    * the baseline: every agent follows ``reference``;
    * the deviation: agent 0 follows ``deviator`` (None: the reference), evaluated on the whole state of its
      economy (it sees its economy as one agent in it). **Prices follow the reference equilibrium**: after every
      period the other agents' endogenous state w is set to the baseline's, rescaled so that the mean over agents
      equals the baseline's — :math:`w'_j = \underline w + (w'^{base}_j - \underline w)(1 - \Delta / S)` with
      :math:`\Delta = w'_0 - w'^{base}_0`, :math:`S = \sum_{j \ge 1} (w'^{base}_j - \underline w)` (w shifted by
      Δ/(N − 1) when unbounded below) — so the aggregate path, and with it every price, is the baseline's: the
      deviator's own 1/N effect on prices is removed (it is first order in the deviation and would swamp the
      second-order loss of a near-optimal policy).

    .. math:: V_0 = \sum_{t<T} \beta^t r_{0,t} \;+\; \beta^T\, V^{ref}_0(s_T)\ \text{(if ``terminal_value``)}
    """
    gen = economy.generator(seed)
    beta = economy.discount
    key = economy.endogenous_key
    low = economy.feature_bounds(key)[0]
    base, dev = start.clone(), start.clone()
    m, n = start.batch_size[0], economy.n_agents
    v_base = torch.zeros(m, dtype=torch.float64, device=economy.device)
    v_dev = torch.zeros_like(v_base)
    for t in range(horizon):
        a_base = reference(base)
        if deviator is None:
            a_dev = a_base
        else:
            _stage(checked, "welfare simulation", t)
            a_dev = torch.cat([deviator(dev)[:, :1], a_base[:, 1:]], dim=1)
        shocks = economy.sample_shocks(base, gen)
        base, r_base = economy.transition_and_reward(base, a_base, shocks)
        dev, r_dev = economy.transition_and_reward(dev, a_dev, shocks)
        v_base += beta**t * r_base[:, 0].double()
        v_dev += beta**t * r_dev[:, 0].double()
        if n > 1:
            w_base, w_dev = base[key], dev[key]
            delta = (w_dev[:, :1] - w_base[:, :1])
            if math.isfinite(low):
                slack = w_base[:, 1:] - low
                others = low + slack * (1.0 - delta / slack.sum(-1, keepdim=True))
            else:
                others = w_base[:, 1:] - delta / (n - 1)
            dev[key] = torch.cat([w_dev[:, :1], others], dim=1)
    if terminal_value is not None:
        v_base += beta**horizon * terminal_value(base)[:, 0].double()
        v_dev += beta**horizon * terminal_value(dev)[:, 0].double()
    return v_dev, v_base


def consumption_equivalent(
    economy: Economy, v_sol: torch.Tensor, v_ref: torch.Tensor, *, horizon: int, terminal_value: bool
) -> tuple[torch.Tensor, str, str]:
    r"""Per-agent welfare loss of following the solver's policy instead of the reference's, as a fraction.

    Interface read: an economy whose per-period payoff is a CRRA utility of consumption says so by providing
    ``crra_gamma`` (the CRRA coefficient γ). Then λ is the consumption-equivalent loss: the
    fraction of consumption in every period and state of the reference's path that the agent would give up to be
    as well off as under the solver's policy, :math:`V^{sol} = V^{ref}[(1-\lambda)c]`:

    * γ = 1 (log): :math:`\lambda = 1 - \exp\big((V^{sol} - V^{ref}) / A\big)`,
      :math:`A = \sum_{t<T}\beta^t` (+ :math:`\beta^T/(1-\beta)` with a terminal value; then A = 1/(1−β) and
      λ = 1 − exp((1−β)(V^sol − V^ref)));
    * γ ≠ 1: :math:`\lambda = 1 - (V^{sol} / V^{ref})^{1/(1-\gamma)}`.

    Otherwise (no CRRA utility: the investment economy's profits) the relative value loss
    :math:`\lambda = (V^{ref} - V^{sol}) / |V^{ref}|`. Sign: **λ > 0: the solver's policy is worse**.

    Returns (λ (M,), kind, a one-line definition)."""
    gamma = economy.crra_gamma
    if gamma is not None:
        beta = economy.discount
        if float(gamma) == 1.0:
            annuity = (1.0 - beta**horizon) / (1.0 - beta) + (beta**horizon / (1.0 - beta) if terminal_value else 0.0)
            lam = 1.0 - torch.exp((v_sol - v_ref) / annuity)
            return lam, "consumption_equivalent", "lambda = 1 - exp((V_sol - V_ref) / sum_t beta^t) (log utility)"
        lam = 1.0 - (v_sol / v_ref).pow(1.0 / (1.0 - float(gamma)))
        return lam, "consumption_equivalent", f"lambda = 1 - (V_sol / V_ref)^(1/(1-gamma)), gamma = {float(gamma):g}"
    lam = (v_ref - v_sol) / v_ref.abs()
    return lam, "relative_value_loss", "lambda = (V_ref - V_sol) / |V_ref| (no CRRA utility: value, not consumption)"
