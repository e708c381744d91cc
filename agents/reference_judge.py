"""The judge's reference section: one policy scored against an economy's :class:`~agents.reference.Reference`.

:func:`score_against_reference` returns a JSON-ready dict (the ``reference`` field of
:class:`~agents.evaluate.EvaluationResult`):

* ``errors_test``: unit-free accuracy at the reference's common test states (the same for every solver and every
  run): relative Euler-equation errors |1 − c/c_EE| (constrained agents: max(0, −(1 − c/c_EE))) or, for an exact
  reference, the relative policy error |u − u_ref|/|u_ref|; mean, p99, max, their log10, the mean of log10;
* ``errors_own``: the same on the policy's own ergodic set (cross-sections of its stationary simulation);
* ``stationary``: the policy's stationary distribution (simulated from the reference's ergodic cross-section for
  ``burn_in`` periods, stated, then ``periods`` recorded) — mean and sd of K, wealth and consumption Gini, wealth
  percentiles — beside the reference's under the same protocol and shocks, the Wasserstein-1 distance between the
  two pooled wealth samples, and ``wasserstein_noise``: the reference's distance to itself under other shocks (the
  simulation's noise level);
* ``welfare``: the loss λ (in %) of agents that follow the policy instead of the reference while everyone else
  follows the reference and prices follow the reference equilibrium exactly (the deviator's own effect on the
  aggregates is compensated: :func:`agents.reference_metrics.lifetime_values`), one agent in each of
  ``welfare_economies`` economies drawn from the reference's ergodic set; mean and standard error over them;
  positive: the policy is worse. Definition in
  :func:`agents.reference_metrics.consumption_equivalent` (and in the result's ``definition``).

All of it is computed in float64 on common random numbers derived from the reference's key; the policy is called
through :class:`~agents.policy_check.CheckedPolicy` (a bad output raises
:class:`~agents.policy_check.InvalidPolicyOutput` saying what and where).

:func:`comparison_samples` returns the raw samples behind these numbers, in memory (figures; not for JSON): the
policy's pooled stationary sample of w and the reference's (the very samples the Wasserstein distance compares),
the per-household unit-free errors at the common test states (policy and reference), and aggregate K paths of the
policy and of the reference on common shocks — the same start (the reference's ergodic cross-section) and the
same shock draws for every policy, seeded from the judge's eval seed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from hetagents_env.economies.core import Economy, Policy

from .policy_check import CheckedPolicy
from .reference import DEFAULT_MIXING_PERIODS, Reference, ReferenceProtocol
from .reference_cache import digest
from .reference_metrics import (
    consumption_equivalent, draw_common_shocks, in_float64, lifetime_values, simulate_on_shocks, simulate_stationary,
    stationary_stats, unit_free_error_values, unit_free_errors, wasserstein,
)

__all__ = [
    "COMMON_SHOCKS_SEED_OFFSET", "ComparisonSamples", "comparison_samples", "headline_metrics", "score_against_reference",
]

#: the paths on common shocks draw from ``economy.generator(eval seed + this)`` (the judge's own streams use the
#: eval seed + 0 … 3)
COMMON_SHOCKS_SEED_OFFSET = 4


@torch.no_grad()
def score_against_reference(
    policy: Policy, economy: Economy, reference: Reference, *, welfare: bool = True, stationary: bool = True
) -> dict[str, Any]:
    """Score ``policy`` (a policy of ``economy``, in its dtype) against ``reference``; see the module docstring."""
    start = time.perf_counter()
    eco, proto = reference.economy, reference.protocol
    checked = CheckedPolicy(policy, economy)
    pol = in_float64(checked, economy.dtype)
    meta = reference.metadata
    out: dict[str, Any] = {
        "source": reference.source, "key": reference.key, "cached": meta.get("cached"), "path": meta.get("path"),
        "solve_time": meta.get("solve_time"), "converged": meta.get("converged"),
        "ergodic_burn_in": proto.pool_burn_in, "ergodic_convergence": meta.get("convergence"),
        "protocol": proto.to_dict(), "mixing_periods": economy.mixing_periods,
        "test_states_digest": digest(dict(reference.test_states.items())),
    }
    errors = dict(exact=reference.exact, wealth_scale=reference.wealth_scale, constraint_tol=proto.constraint_tol,
                  checked=checked)
    out["errors_test"] = unit_free_errors(pol, eco, reference.test_states, stage="Euler errors at the common test "
                                          "states", **errors)
    if stationary:
        sample = _stationary_sample(pol, reference, checked)
        out["errors_own"] = unit_free_errors(pol, eco, sample["states"], stage="Euler errors on the policy's own "
                                             "ergodic set", **errors)
        ref_wealth = reference.stationary["wealth"].numpy()
        out["stationary"] = {
            "policy": stationary_stats(sample),
            "reference": stationary_stats(reference.stationary),
            "wasserstein": wasserstein(sample["wealth"].cpu().numpy(), ref_wealth),
            "wasserstein_noise": wasserstein(reference.stationary_noise["wealth"].numpy(), ref_wealth),
            "economies": reference.stationary_start.batch_size[0], "burn_in": int(proto.stationary_burn_in),
            "periods": int(proto.stationary_periods), "thin": int(proto.stationary_thin),
            "start": "the reference's ergodic cross-section", "burn_in_rule": _burn_in_rule(economy, proto),
        }
    if welfare:
        horizon, terminal = reference.welfare_horizon, reference.value is not None
        checked.at("welfare simulation")
        v_sol, v_ref = lifetime_values(reference.policy, eco, reference.welfare_start, horizon=horizon,
                                       seed=reference.seed + 5, deviator=pol, terminal_value=reference.value,
                                       checked=checked)
        lam, kind, definition = consumption_equivalent(eco, v_sol, v_ref, horizon=horizon, terminal_value=terminal)
        m = lam.numel()
        out["welfare"] = {
            "kind": kind, "definition": definition, "sign": "positive: the policy is worse than the reference",
            "mean_pct": 100.0 * float(lam.mean()),
            "se_pct": 100.0 * float(lam.std()) / math.sqrt(m) if m > 1 else None,
            "households": m, "horizon": horizon, "terminal_value": terminal,
            "value_policy": float(v_sol.mean()), "value_reference": float(v_ref.mean()),
        }
    out["time"] = time.perf_counter() - start
    return out


def _stationary_sample(pol: Policy, reference: Reference, checked: CheckedPolicy | None) -> dict[str, Any]:
    """The policy's stationary sample under the judge's protocol (the one :func:`score_against_reference` scores)."""
    proto = reference.protocol
    return simulate_stationary(
        pol, reference.economy, reference.stationary_start, burn_in=int(proto.stationary_burn_in),
        periods=int(proto.stationary_periods), thin=int(proto.stationary_thin), seed=reference.seed + 3,
        keep_states=proto.test_states, checked=checked,
    )


@dataclasses.dataclass
class ComparisonSamples:
    """Raw samples behind the judge's reference section for one policy (NumPy, float64; in memory, not JSON).

    ``*_reference`` fields hold the reference's samples under the same protocol and draws."""

    key: str
    """the endogenous state ``w`` (``economy.endogenous_key``: wealth / capital)"""
    agent_name: str
    reference_source: str
    """the reference: "exact" or the reference solver's name"""
    wealth: np.ndarray | None
    """the policy's pooled stationary sample of w (what ``stationary.wasserstein`` compares); None if not asked"""
    wealth_reference: np.ndarray
    error_kind: str | None
    """"relative_euler" (|1 − c/c_EE|), "relative_policy_error" (|u − u_ref|/|u_ref|), or None: the economy has
    neither (no error samples)"""
    errors_test: np.ndarray | None
    """(S, N) per-household unit-free errors at the common test states"""
    errors_test_reference: np.ndarray | None
    test_states_digest: str
    """digest of the common test states (the same for every policy)"""
    K_paths: np.ndarray
    """(M, T + 1): mean of w over agents on common shocks, from the reference's ergodic cross-section"""
    K_paths_reference: np.ndarray
    aggregate_state: np.ndarray | None
    """(M, T + 1): ``state[aggregate_state_key]`` along those paths (exogenous: the same for every policy); None
    when the economy has no discrete aggregate state"""
    aggregate_state_key: str | None
    aggregate_states: int
    """number of discrete aggregate states (``economy.aggregate_states``)"""
    shocks_seed: int
    """the seed the common shocks were drawn from (eval seed + :data:`COMMON_SHOCKS_SEED_OFFSET`)"""

    def summary(self, quantiles: int = 21) -> dict[str, Any]:
        """A small JSON-ready summary: quantiles of w (policy, reference), of log10 errors, and the K paths' means."""
        q = np.linspace(0.0, 1.0, quantiles)

        def qs(x):
            return None if x is None else [float(v) for v in np.quantile(np.asarray(x).ravel(), q)]

        def log_qs(x):
            return None if x is None else qs(np.log10(np.maximum(np.asarray(x, dtype=float), 1e-16)))

        return {
            "quantile_levels": [float(v) for v in q], "key": self.key,
            "wealth_quantiles": qs(self.wealth), "wealth_quantiles_reference": qs(self.wealth_reference),
            "error_kind": self.error_kind, "log10_error_quantiles": log_qs(self.errors_test),
            "log10_error_quantiles_reference": log_qs(self.errors_test_reference),
            "test_states_digest": self.test_states_digest, "shocks_seed": self.shocks_seed,
            "K_path_mean": float(self.K_paths.mean()), "K_path_final": float(self.K_paths[:, -1].mean()),
            "K_path_reference_mean": float(self.K_paths_reference.mean()),
            "K_path_periods": int(self.K_paths.shape[1] - 1), "K_path_economies": int(self.K_paths.shape[0]),
        }


@torch.no_grad()
def comparison_samples(
    policy: Policy,
    economy: Economy,
    reference: Reference,
    *,
    seed: int,
    periods: int | None = None,
    economies: int = 1,
    stationary: bool = True,
) -> ComparisonSamples:
    """The samples behind :func:`score_against_reference` for figures, and K paths on common shocks.

    * ``wealth`` / ``wealth_reference``: the pooled stationary samples of w that ``stationary.wasserstein``
      compares (the same simulation, seeds and protocol; ``stationary=False`` skips the policy's);
    * ``errors_test`` / ``errors_test_reference``: the per-household errors whose statistics are ``errors_test``;
    * ``K_paths`` / ``K_paths_reference``: ``economies`` economies started from the first ``economies``
      cross-sections of the reference's ``stationary_start`` (its ergodic set), ``periods`` periods (default: the
      protocol's stationary burn-in + recorded periods) on shocks drawn once from
      ``economy.generator(seed + COMMON_SHOCKS_SEED_OFFSET)`` (``seed``: the judge's eval seed) and replayed for
      the policy and the reference: identical draws for every policy, hence identical exogenous (aggregate-state)
      paths.

    Works through the Economy interface only; the policy is called in eval mode and checked like the judge's."""
    eco, proto = reference.economy, reference.protocol
    was_training = isinstance(policy, nn.Module) and policy.training
    if isinstance(policy, nn.Module):
        policy.eval()
    try:
        checked = CheckedPolicy(policy, economy)
        pol = in_float64(checked, economy.dtype)
        errors = dict(exact=reference.exact, wealth_scale=reference.wealth_scale, constraint_tol=proto.constraint_tol)
        mine = unit_free_error_values(pol, eco, reference.test_states, stage="Euler errors at the common test "
                                      "states", checked=checked, **errors)
        theirs = unit_free_error_values(reference.policy, eco, reference.test_states, **errors)
        wealth = None
        if stationary:
            wealth = _stationary_sample(pol, reference, checked)["wealth"].cpu().numpy()
        m = max(1, min(int(economies), reference.stationary_start.batch_size[0]))
        start = reference.stationary_start[:m]
        length = int(periods) if periods is not None else int(proto.stationary_burn_in) + int(proto.stationary_periods)
        shocks_seed = int(seed) + COMMON_SHOCKS_SEED_OFFSET
        shocks = draw_common_shocks(eco, start, periods=length, seed=shocks_seed)
        path = simulate_on_shocks(pol, eco, start, shocks, checked=checked)
        ref_path = simulate_on_shocks(reference.policy, eco, start, shocks)
    finally:
        if was_training:
            policy.train()

    def arr(values):
        return None if values is None else values["errors"].cpu().numpy()

    z = path["aggregate_state"]
    return ComparisonSamples(
        key=eco.endogenous_key, agent_name=eco.agent_name, reference_source=reference.source, wealth=wealth,
        wealth_reference=reference.stationary["wealth"].double().cpu().numpy(),
        error_kind=None if mine is None else mine["kind"], errors_test=arr(mine), errors_test_reference=arr(theirs),
        test_states_digest=digest(dict(reference.test_states.items())),
        K_paths=path["K"].cpu().numpy(), K_paths_reference=ref_path["K"].cpu().numpy(),
        aggregate_state=None if z is None else z.cpu().numpy(), aggregate_state_key=path["aggregate_state_key"],
        aggregate_states=int(eco.aggregate_states), shocks_seed=shocks_seed,
    )


def _burn_in_rule(economy: Economy, proto: ReferenceProtocol) -> str:
    """Where the stationary burn-in comes from, in words."""
    if economy.mixing_periods is not None and proto.stationary_burn_in == economy.mixing_periods:
        return "the economy's mixing_periods"
    if economy.mixing_periods is None and proto.stationary_burn_in == DEFAULT_MIXING_PERIODS:
        return f"the judge's default mixing periods ({DEFAULT_MIXING_PERIODS}; the economy states none)"
    return "set by the reference protocol"


def headline_metrics(section: dict[str, Any] | None) -> dict[str, Any]:
    """The numbers of one reference section (:func:`score_against_reference`'s dict) that tables show: mean and p99
    unit-free error on the common states (its kind, the mean's aggregate and individual parts), mean error on the
    own set, stationary K and wealth Gini of the policy and of the reference, W1 and its noise level, welfare loss
    and its standard error."""
    section = section or {}
    stationary = section.get("stationary") or {}
    pol, ref = stationary.get("policy", {}), stationary.get("reference", {})
    test, welfare = section.get("errors_test") or {}, section.get("welfare") or {}
    return {
        "euler_test_mean": test.get("mean"), "euler_test_p99": test.get("p99"), "euler_test_kind": test.get("kind"),
        "euler_test_aggregate": test.get("aggregate_mean"), "euler_test_individual": test.get("individual_mean"),
        "euler_own_mean": (section.get("errors_own") or {}).get("mean"),
        "K_mean": pol.get("K_mean"), "K_reference": ref.get("K_mean"),
        "wealth_gini": pol.get("wealth_gini"), "wealth_gini_reference": ref.get("wealth_gini"),
        "consumption_gini": pol.get("consumption_gini"),
        "wasserstein": stationary.get("wasserstein"), "wasserstein_noise": stationary.get("wasserstein_noise"),
        "welfare_pct": welfare.get("mean_pct"), "welfare_se_pct": welfare.get("se_pct"),
        "welfare_kind": welfare.get("kind"),
    }

