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
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from hetagents_env.economies.core import Economy, Policy

from .policy_check import CheckedPolicy
from .reference import DEFAULT_MIXING_PERIODS, Reference, ReferenceProtocol
from .reference_cache import digest
from .reference_metrics import (
    consumption_equivalent, in_float64, lifetime_values, simulate_stationary, stationary_stats, unit_free_errors,
    wasserstein,
)

__all__ = ["score_against_reference"]


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
        sample = simulate_stationary(
            pol, eco, reference.stationary_start, burn_in=int(proto.stationary_burn_in),
            periods=int(proto.stationary_periods), thin=int(proto.stationary_thin), seed=reference.seed + 3,
            keep_states=proto.test_states, checked=checked,
        )
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


def _burn_in_rule(economy: Economy, proto: ReferenceProtocol) -> str:
    """Where the stationary burn-in comes from, in words."""
    if economy.mixing_periods is not None and proto.stationary_burn_in == economy.mixing_periods:
        return "the economy's mixing_periods"
    if economy.mixing_periods is None and proto.stationary_burn_in == DEFAULT_MIXING_PERIODS:
        return f"the judge's default mixing periods ({DEFAULT_MIXING_PERIODS}; the economy states none)"
    return "set by the reference protocol"
