r"""The judge: the same accuracy metrics for every solver, on common random numbers.

``evaluate(policy, economy, ...)`` (or ``evaluate_solver(solver, ...)``, which reads only the Solver interface):

0. **Reference first** (the ``reference`` field; :mod:`agents.reference_judge`): where the economy has a
   reference solution (an exact policy, or a reference solver solved once and cached: :mod:`agents.reference`),
   the policy is scored AGAINST it — unit-free Euler-equation errors on common test states drawn from the
   reference's ergodic set and on the policy's own ergodic set, its stationary distribution (K, Ginis, wealth
   percentiles, Wasserstein-1 distance to the reference's), and the consumption-equivalent welfare loss of
   following it instead of the reference. ``reference="auto"`` (default): scored when the reference is exact or
   already cached, else skipped with the reason; ``True``: solved (once) if needed; ``False``: skipped; or a
   :class:`~agents.reference.Reference`.

The numbers below are **self-consistency measures** (:data:`SELF_CONSISTENCY`): they check a policy against
itself (its own paths, its own value, its own law of motion), and a wrong policy can score well on them.

1. simulate ``trajectories`` test paths of ``horizon`` periods (``horizon + 1`` states each, published: 32 or 256
   paths × 64 states) with the policy, from ONE initial state (the judge's own draw from ``seed``, the solver's
   ``initial_state``, or any state given) and shocks drawn from ``seed`` — the same for every solver;
2. Euler residuals ε at every test state with ``economy.euler_residual`` (investment economy: 7-node
   Gauss–Hermite and the judge's own fixed standardised idiosyncratic draw); the MSE, mean |ε|, and per period t
   the mean and the 2.5 / 97.5 % percentiles over paths and agents (the papers' figures);
3. investment economy with ν = 1: the policy error against the exact LQ solution at the same states,
   mean |u − u_ref| and mean |u − u_ref| / |u_ref|, u_ref = H0 + H1 mean(X);
4. summary statistics of the economies' aggregates along the test paths (mean, sd, mean in the last period);
5. economies with two aggregate states (Krusell–Smith; Aiyagari with aggregate risk): the Den Haan statistic
   (:func:`agents.aggregate_law.den_haan_of_policy`) — the solver's
   own aggregate law of motion (``alm``) iterated on its own along long simulated panels of the policy, or, for
   solvers without one, an ALM fitted by OLS on those panels, so that every solver is scored by it;
6. household economies (Krusell–Smith, Aiyagari), on request (``bellman=True`` or a :class:`~agents.bellman.BellmanConfig` mapping; it is costly at
   the published sizes): the Bellman error of the policy and a value function (the solver's, or one fitted by
   DeepHAM's regression), see :mod:`agents.bellman`;
7. the solver's training wall time (and CPU time) and the policy's parameter count, passed through.

Every call of the judged policy is checked (:class:`~agents.policy_check.CheckedPolicy`): a wrong shape, NaN/inf
or a value outside the action bounds raises :class:`~agents.policy_check.InvalidPolicyOutput` naming the kind, the
judge's stage, the economy index, the agent and the period — it is never averaged into a number.

The result is an :class:`EvaluationResult`, a dataclass that round-trips through JSON (strict JSON: non-finite
numbers as null, :mod:`agents.jsonable`) and renders its own report — :meth:`~EvaluationResult.scalars` (the
headline numbers), :meth:`~EvaluationResult.table_rows` and :meth:`~EvaluationResult.to_markdown` — the same for a
run (``judge.md``, W&B), a comparison and a benchmark.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from tensordict import TensorDict
from torch import nn

from hetagents_env.economies.core import Economy, Policy

from .aggregate_law import den_haan_of_policy
from .jsonable import dumps, json_value
from .networks import count_parameters
from .policy_check import CheckedPolicy, InvalidPolicyOutput
from .reference import Reference, ReferenceUnavailable, reference_for
from .reference_judge import score_against_reference
from .residuals import batched_residual, residual_options

__all__ = ["REFERENCE_SCALARS", "SELF_CONSISTENCY", "EvaluationResult", "InvalidPolicyOutput", "evaluate",
           "evaluate_solver", "format_value", "lq_errors", "simulate_paths"]

#: the result's fields that measure a policy's consistency with itself (secondary: a wrong policy can score well)
SELF_CONSISTENCY = ("euler_mse", "euler_mean_abs", "euler_by_period", "den_haan", "bellman")

#: the reference section's numbers among the headline scalars (:meth:`EvaluationResult.scalars`: W&B summary,
#: summary.json)
REFERENCE_SCALARS = (
    "errors_test.mean", "errors_test.p99", "errors_test.max", "errors_test.log10_mean", "errors_own.mean",
    "errors_own.p99", "errors_own.max", "stationary.wasserstein", "stationary.wasserstein_noise",
    "stationary.policy.K_mean", "stationary.policy.K_sd", "stationary.policy.wealth_gini",
    "stationary.policy.consumption_gini", "stationary.reference.K_mean", "stationary.reference.wealth_gini",
    "welfare.mean_pct", "welfare.se_pct",
)


@dataclasses.dataclass
class EvaluationResult:
    """Everything the judge measured. ``to_json()`` / ``from_json()`` round-trip (non-finite floats -> null);
    ``scalars()``, ``table_rows()`` and ``to_markdown()`` are its report."""

    economy: str
    n_agents: int
    params: dict[str, Any]
    seed: int
    trajectories: int
    horizon: int
    euler_mse: float
    """mean of ε² over all test states and agents (self-consistency: the policy's own paths)"""
    euler_mean_abs: float
    """mean of |ε|"""
    euler_by_period: dict[str, list[float]]
    """per period t: "t", "mean", "lo", "hi" (percentile band of ε over paths and agents), "mse" """
    band: tuple[float, float] = (2.5, 97.5)
    lq_abs_error: float | None = None
    """mean |u − u_ref| over test states and agents (investment economy, ν = 1)"""
    lq_rel_error: float | None = None
    """mean |u − u_ref| / |u_ref|"""
    lq_max_abs_error: float | None = None
    aggregates: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    """per aggregate statistic: "mean" and "sd" over all test states, "final_mean" over paths at t = horizon"""
    bellman: dict[str, Any] | None = None
    """(self-consistency) Krusell–Smith, if requested: :class:`agents.bellman.BellmanResult` as a dict
    ("optimality", "expectation", …)"""
    den_haan: dict[str, Any] | None = None
    """(self-consistency) Krusell–Smith: the Den Haan statistic ("mean_pct", "max_pct"), the ALM used ("alm",
    "alm_source": "solver" or "fitted"), its R² on the simulated panels, the mean K, and the simulation sizes"""
    solver: str | None = None
    wall_time: float | None = None
    """training wall time of the solver, seconds"""
    cpu_time: float | None = None
    """CPU seconds of the solver's process during training"""
    n_params: int | None = None
    train_metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    eval_time: float = 0.0
    reference: dict[str, Any] | None = None
    """the reference-based metrics (:func:`agents.reference_judge.score_against_reference`) with
    ``"status": "scored"``, or ``{"status": "skipped", "reason": ...}``; None: not asked (``reference=False``)"""

    @property
    def bellman_error(self) -> float | None:
        """The Bellman error (optimality form), if it was measured."""
        return None if self.bellman is None else self.bellman["optimality"]

    def reference_metric(self, path: str) -> Any:
        """A number of the reference section by dotted path (e.g. ``"welfare.mean_pct"``,
        ``"errors_test.mean"``, ``"stationary.wasserstein"``); None if absent or not scored."""
        data: Any = self.reference if self.reference and self.reference.get("status") == "scored" else None
        for part in path.split("."):
            data = data.get(part) if isinstance(data, Mapping) else None
        return data

    # ------------------------------------------------------------------------------------------ the report
    def scalars(self) -> dict[str, Any]:
        """The headline numbers: every top-level number of the result (but the seed), the aggregates' statistics
        (``aggregates.<name>.<stat>``) and the reference section's numbers of :data:`REFERENCE_SCALARS`
        (``reference.<path>``, e.g. ``reference.welfare.mean_pct``). Non-finite numbers are None."""
        data = self.to_dict()
        out: dict[str, Any] = {}
        for key, value in data.items():
            if _is_number(value) and key != "seed":
                out[key] = value
        for name, stats in (data.get("aggregates") or {}).items():
            for stat, value in stats.items():
                out[f"aggregates.{name}.{stat}"] = value
        if (data.get("reference") or {}).get("status") == "scored":
            for path in REFERENCE_SCALARS:
                value = self.reference_metric(path)
                if _is_number(value):
                    out[f"reference.{path}"] = value
        return out

    def table_rows(self) -> list[tuple[str, str]]:
        """(metric, formatted value) rows: the reference-based metrics first, then the self-consistency measures
        (marked: a wrong policy can score well on them), then the rest of :meth:`scalars` and the aggregates."""
        fmt = format_value
        rows = self._reference_rows()
        rows += [("Euler residual MSE, own paths (self-consistency)", fmt(self.euler_mse)),
                 ("mean abs. Euler residual, own paths (self-consistency)", fmt(self.euler_mean_abs))]
        if self.bellman is not None:
            rows.append(("Bellman error (self-consistency)", fmt(self.bellman_error)))
        if self.den_haan is not None:
            rows.append(("Den Haan statistic, mean / max % (self-consistency)",
                         f"{fmt(self.den_haan.get('mean_pct'))} / {fmt(self.den_haan.get('max_pct'))}"))
        if self.lq_abs_error is not None:
            rows += [("policy error vs LQ, mean abs.", fmt(self.lq_abs_error)),
                     ("policy error vs LQ, relative", f"{100 * self.lq_rel_error:.3g} %"),
                     ("policy error vs LQ, max abs.", fmt(self.lq_max_abs_error))]
        labels = {"wall_time": "training wall time (s)", "n_params": "parameters", "eval_time": "judge time (s)"}
        shown = ("euler_mse", "euler_mean_abs", "lq_abs_error", "lq_rel_error", "lq_max_abs_error", "n_agents",
                 "trajectories", "horizon")
        for key, value in self.scalars().items():
            if key.startswith(("aggregates.", "reference.")) or key in shown:
                continue
            rows.append((labels.get(key, key), fmt(value)))
        for name, stats in self.aggregates.items():
            rows.append((f"{name} on the test paths: mean (sd)", f"{fmt(stats['mean'])} ({fmt(stats['sd'])})"))
        return rows

    def to_markdown(self) -> str:
        """A heading line (solver, economy, N, test paths, seed) and :meth:`table_rows` as a markdown table."""
        head = (f"Judge: {self.solver} on {self.economy}, N = {self.n_agents}, {self.trajectories} test paths × "
                f"{self.horizon + 1} states, seed {self.seed}\n\n")
        lines = ["| metric | value |", "|---|---|"] + [f"| {m} | {v} |" for m, v in self.table_rows()]
        return head + "\n".join(lines) + "\n"

    def _reference_rows(self) -> list[tuple[str, str]]:
        """The reference section as (metric, value) rows: first in the table, the judge's primary metrics."""
        ref, m, fmt = self.reference, self.reference_metric, format_value
        if ref is None:
            return []
        if ref.get("status") != "scored":
            return [("reference metrics", f"skipped: {ref.get('reason')}")]
        origin = "exact" if ref.get("source") == "exact" else (
            f"{ref.get('source')}, {'cached' if ref.get('cached') else 'solved now'}"
            + (f" (solve {ref['solve_time']:.3g} s)" if isinstance(ref.get("solve_time"), (int, float)) else "")
            + (f", converged = {ref.get('converged')}" if ref.get("converged") is not None else ""))
        rows = [("reference", origin)]
        for where, label in (("errors_test", "common test states"), ("errors_own", "own ergodic set")):
            err = m(where)
            if err:
                what = "unit-free Euler error abs(1 - c/c_EE)" if err.get("kind") == "relative_euler" else \
                    "relative policy error abs(u - u_ref)/abs(u_ref)"
                rows.append((f"{what}, {label}: mean / p99 / max", f"{fmt(err['mean'])} / {fmt(err['p99'])} / "
                             f"{fmt(err['max'])} (log10 mean {err['log10_mean']:.2f})"))
        welfare = m("welfare")
        if welfare:
            name = "welfare loss, consumption equivalent" if welfare["kind"] == "consumption_equivalent" else \
                "welfare loss, relative value"
            se = f" ± {welfare['se_pct']:.2g}" if welfare.get("se_pct") is not None else ""
            rows.append((f"{name} (%, > 0: worse than the reference)", f"{welfare['mean_pct']:.4g}{se}"))
        stat = m("stationary")
        if stat:
            pol, ref_stat = stat["policy"], stat["reference"]
            rows.append(("Wasserstein-1 of wealth to the reference (noise level)",
                         f"{fmt(stat['wasserstein'])} ({fmt(stat['wasserstein_noise'])})"))
            pairs = [("K mean", "K_mean"), ("K sd", "K_sd"), ("wealth Gini", "wealth_gini"),
                     ("consumption Gini", "consumption_gini"), ("wealth p10", "wealth_p10"),
                     ("wealth p50", "wealth_p50"), ("wealth p90", "wealth_p90"), ("wealth p99", "wealth_p99")]
            for label, key in pairs:
                if pol.get(key) is not None:
                    rows.append((f"stationary {label}: policy / reference", f"{fmt(pol[key])} / {fmt(ref_stat[key])}"))
            rows.append(("stationary simulation", f"{stat['economies']} economies from the reference's ergodic set "
                         f"(reached in {ref.get('ergodic_burn_in')} periods from the initial state), burn-in "
                         f"{stat['burn_in']} periods ({stat.get('burn_in_rule')}), {stat['periods']} recorded"))
        return rows

    # ------------------------------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The fields as strict-JSON-ready data (:func:`agents.jsonable.json_value`: non-finite numbers -> None)."""
        return json_value(dataclasses.asdict(self))

    def to_json(self, path: str | os.PathLike | None = None, *, indent: int | None = 2) -> str:
        """JSON text; also written to ``path`` when given."""
        text = dumps(self.to_dict(), indent=indent)
        if path is not None:
            with open(path, "w") as f:
                f.write(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EvaluationResult":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown EvaluationResult field(s): {', '.join(unknown)}")
        data = dict(data)
        if "band" in data:
            data["band"] = tuple(data["band"])
        return cls(**data)

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike) -> "EvaluationResult":
        """From JSON text or a file path."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            with open(text_or_path) as f:
                text = f.read()
        return cls.from_dict(json.loads(text))


# ---------------------------------------------------------------------------------------------- the judge
@torch.no_grad()
def simulate_paths(
    policy: Policy,
    economy: Economy,
    *,
    trajectories: int,
    horizon: int,
    initial_state: TensorDict,
    generator: torch.Generator,
    burn_in: int = 0,
) -> TensorDict:
    """Test paths, batch [trajectories, horizon + 1], all starting from ``initial_state`` (batch 1 or
    ``trajectories``), after ``burn_in`` discarded periods."""
    b = initial_state.batch_size[0]
    if b == 1:
        state = initial_state.expand(trajectories).clone()
    elif b == trajectories:
        state = initial_state.clone()
    else:
        raise ValueError(f"initial_state must have batch size 1 or {trajectories}, got {b}")
    if burn_in:
        state = _rollout(policy, economy, state, burn_in, generator, stage="burn-in of the test paths")[:, -1]
    return _rollout(policy, economy, state, horizon, generator, stage="test paths")


def _rollout(policy: Policy, economy: Economy, state: TensorDict, steps: int, generator: torch.Generator, *,
             stage: str) -> TensorDict:
    """``economy.rollout`` (the same draws), telling a :class:`CheckedPolicy` the stage and period of each call."""
    states = [state]
    for t in range(steps):
        if isinstance(policy, CheckedPolicy):
            policy.at(stage, t)
        state = economy.transition(state, policy(state), economy.sample_shocks(state, generator))
        states.append(state)
    return torch.stack(states, dim=1)


@torch.no_grad()
def lq_errors(policy: Policy, economy: Economy, states: TensorDict, *, chunk: int = 4096) -> dict[str, float] | None:
    """Policy error against the economy's exact policy (``economy.exact_policy()``: the LQ solution of the linear
    investment economy) at ``states`` (flat batch), or None if there is none: mean |u − u_ref|,
    mean |u − u_ref| / |u_ref|, max |u − u_ref|."""
    exact = economy.exact_policy()
    if exact is None:
        return None
    s = states.batch_size[0]
    abs_sum = rel_sum = 0.0
    abs_max = 0.0
    for i in range(0, s, chunk):
        part = states[i : i + chunk]
        u, ref = policy(part), exact(part)
        err = (u - ref).abs().double()
        abs_sum += float(err.sum())
        rel_sum += float((err / ref.abs().double()).sum())
        abs_max = max(abs_max, float(err.max()))
    count = s * economy.n_agents
    return {"abs": abs_sum / count, "rel": rel_sum / count, "max_abs": abs_max}


@torch.no_grad()
def evaluate(
    policy: Policy,
    economy: Economy,
    *,
    trajectories: int = 32,
    horizon: int = 63,
    seed: int = 2024,
    initial_state: TensorDict | None = None,
    burn_in: int = 0,
    nodes: int = 7,
    band: tuple[float, float] = (2.5, 97.5),
    wall_time: float | None = None,
    cpu_time: float | None = None,
    n_params: int | None = None,
    solver: str | None = None,
    train_metrics: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    alm: Any = None,
    den_haan: bool | None = None,
    den_haan_economies: int = 4,
    den_haan_periods: int = 1000,
    den_haan_burn_in: int = 500,
    bellman: bool | Mapping[str, Any] | None = None,
    value: Any = None,
    reference: bool | Literal["auto"] | Reference | None = "auto",
    reference_cache: str | os.PathLike | None = None,
    reference_config: Mapping[str, Any] | None = None,
    welfare: bool = True,
    log: Callable[[str], Any] | None = None,
) -> EvaluationResult:
    """Judge ``policy`` on ``economy``; see the module docstring.

    ``den_haan``: compute the Den Haan statistic (default: for economies with two aggregate states) on
    ``den_haan_economies`` panels of ``den_haan_periods`` periods after ``den_haan_burn_in``, with ``alm`` (the
    solver's (2, 2) law of motion) or, if None, one fitted by OLS on the same panels. ``bellman``: measure the
    Bellman error (True: the published protocol; a mapping: :class:`~agents.bellman.BellmanConfig` fields) with
    ``value`` (None: a value fitted by DeepHAM's regression).

    ``reference``: ``"auto"`` (default; None means the same): score against the economy's reference when it is
    exact or cached (in ``reference_cache``, default ``$HETAGENTS_CACHE`` or ``~/.cache/hetagents/references``),
    else skip it and say why; ``True``: solve the reference first if it is not cached (``log`` is told, default:
    a line on stderr), with ``reference_config`` (default: the reference solver's ``reference_config``);
    ``False``: no reference section; a :class:`~agents.reference.Reference`: that one. ``welfare=False`` skips the
    welfare simulation.

    Common random numbers: the idiosyncratic draw of the residual, the initial state (if not given) and the path
    shocks come from three generators seeded from ``seed``, independently of each other and of the policy; the
    reference section's from the reference's key (the same for every solver and seed).
    """
    start = time.perf_counter()
    was_training = isinstance(policy, nn.Module) and policy.training
    if isinstance(policy, nn.Module):
        policy.eval()
    raw_policy, policy = policy, CheckedPolicy(policy, economy)
    try:
        ref_section = _reference_section(raw_policy, economy, reference, reference_cache, reference_config, welfare,
                                         log)
        options = residual_options(economy, generator=economy.generator(seed), nodes=nodes)
        if initial_state is None:
            initial_state = economy.initial_state(1, economy.generator(seed + 1))
        paths = simulate_paths(
            policy, economy, trajectories=trajectories, horizon=horizon, initial_state=initial_state,
            generator=economy.generator(seed + 2), burn_in=burn_in,
        )
        states = paths.reshape(-1)
        policy.at("Euler residuals on the test paths")
        eps = batched_residual(economy, policy, states, options).double()  # (S, N)
        eps = eps.reshape(trajectories, horizon + 1, -1).transpose(0, 1).reshape(horizon + 1, -1)  # (T+1, paths·N)
        lo_hi = _percentiles(eps, (band[0], band[1]))  # (2, T+1)
        by_period = {
            "t": list(range(horizon + 1)),
            "mean": eps.mean(1).tolist(),
            "lo": lo_hi[0].tolist(),
            "hi": lo_hi[1].tolist(),
            "mse": eps.square().mean(1).tolist(),
        }
        policy.at("policy error against the exact policy")
        lq = lq_errors(policy, economy, states)
        aggregates = {}
        for name, series in economy.aggregates(states).items():
            series = series.double().reshape(trajectories, horizon + 1)
            aggregates[name] = {
                "mean": float(series.mean()), "sd": float(series.std(correction=0)), "final_mean": float(series[:, -1].mean())
            }
        if n_params is None and isinstance(raw_policy, nn.Module):
            n_params = count_parameters(raw_policy)
        bellman_result = None
        if bellman:
            policy.at("Bellman error")
            bellman_result = _bellman(policy, value, economy, None if bellman is True else bellman)
        dh = None
        if den_haan if den_haan is not None else economy.aggregate_states == 2:
            policy.at("Den Haan simulation")
            dh = den_haan_of_policy(
                policy, economy, alm=alm, economies=den_haan_economies, periods=den_haan_periods,
                burn_in=den_haan_burn_in, seed=seed + 3,
            )
    finally:
        if was_training:
            raw_policy.train()
    return EvaluationResult(
        economy=economy.env_id,
        n_agents=economy.n_agents,
        params=economy.params.to_dict(),
        seed=seed,
        trajectories=trajectories,
        horizon=horizon,
        euler_mse=float(eps.square().mean()),
        euler_mean_abs=float(eps.abs().mean()),
        euler_by_period=by_period,
        band=tuple(band),
        lq_abs_error=None if lq is None else lq["abs"],
        lq_rel_error=None if lq is None else lq["rel"],
        lq_max_abs_error=None if lq is None else lq["max_abs"],
        aggregates=aggregates,
        den_haan=dh,
        bellman=bellman_result,
        solver=solver,
        wall_time=wall_time,
        cpu_time=cpu_time,
        n_params=n_params,
        train_metrics=dict(train_metrics or {}),
        config=dict(config or {}),
        eval_time=time.perf_counter() - start,
        reference=ref_section,
    )


def _reference_section(
    policy: Policy, economy: Economy, reference: Any, cache_dir: Any, config: Mapping[str, Any] | None, welfare: bool,
    log: Callable[[str], Any] | None,
) -> dict[str, Any] | None:
    """The ``reference`` field: the scored section, a skipped one with its reason, or None (``reference=False``)."""
    if reference is False:
        return None
    if not isinstance(reference, Reference):
        if reference not in (None, "auto", True):
            raise ValueError(f"reference must be 'auto', True, False or a Reference, got {reference!r}")
        solve = reference is True
        try:
            found = reference_for(economy, cache_dir=cache_dir, config=config, solve=solve, log=log or _stderr)
        except ReferenceUnavailable as err:
            return {"status": "skipped", "reason": str(err)}
        except Exception as err:  # noqa: BLE001 - a failed reference solve must not hide the rest of the judge
            reason = f"the reference could not be computed: {type(err).__name__}: {err}"
            warnings.warn(reason, RuntimeWarning, stacklevel=3)
            return {"status": "skipped", "reason": reason}
        if found is None:
            return {"status": "skipped", "reason": f"{economy.env_id} (these parameters) has no reference solution"}
        reference = found
    judged = (economy.env_id, economy.n_agents, economy.params)
    if (reference.economy.env_id, reference.economy.n_agents, reference.economy.params) != judged:
        raise ValueError(f"the reference is for {reference.economy.env_id}, N = {reference.economy.n_agents}, "
                         f"{reference.economy.params}; the judged economy is {economy.env_id}, N = {economy.n_agents}, "
                         f"{economy.params}")
    return {"status": "scored", **score_against_reference(policy, economy, reference, welfare=welfare)}


def _stderr(line: str) -> None:
    print(f"judge: {line}", file=sys.stderr, flush=True)


def evaluate_solver(
    solver, *, initial_state: TensorDict | Literal["judge", "solver"] = "judge", **kwargs: Any
) -> EvaluationResult:
    """``evaluate(solver.policy, solver.economy, ...)`` with the solver's wall time, name, metrics and config.

    ``initial_state="judge"`` (default): the judge's own draw (common to all solvers); ``"solver"``: the solver's
    ``initial_state`` (the published protocol: test paths start from the run's X_0); or a state.
    """
    if isinstance(initial_state, str):
        if initial_state not in ("judge", "solver"):
            raise ValueError(f"initial_state must be 'judge', 'solver' or a TensorDict, got {initial_state!r}")
        initial_state = getattr(solver, "initial_state", None) if initial_state == "solver" else None
    return evaluate(
        solver.policy, solver.economy, initial_state=initial_state, wall_time=solver.wall_time,
        alm=kwargs.pop("alm", getattr(solver, "alm", None)), value=kwargs.pop("value", getattr(solver, "value", None)),
        cpu_time=getattr(solver, "cpu_time", None),
        solver=solver.name, train_metrics=solver.metrics, config=solver.config.to_dict(), **kwargs,
    )


def _bellman(policy: Policy, value: Any, economy: Economy, config: Mapping[str, Any] | None) -> dict[str, Any]:
    from .bellman import _float64, bellman_error  # deferred: the Bellman judge pulls in the DeepHAM regression

    if value is None:
        from .value import fit_value

        value, _ = fit_value(_float64(economy), policy)
    return bellman_error(policy, value, economy, config).to_dict()


def _percentiles(x: torch.Tensor, percents: tuple[float, ...]) -> torch.Tensor:
    """Percentiles along dim 1 with linear interpolation (like ``torch.quantile``, without its size limit)."""
    v = x.sort(dim=1).values
    n = v.shape[1]
    rows = []
    for pct in percents:
        pos = pct / 100 * (n - 1)
        lo, frac = int(math.floor(pos)), pos - math.floor(pos)
        hi = min(lo + 1, n - 1)
        rows.append(v[:, lo] + frac * (v[:, hi] - v[:, lo]))
    return torch.stack(rows)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_value(value: Any) -> str:
    """A number as the judge's table shows it: ``—`` for None, thousands separators for ints, 4 significant digits
    (scientific notation outside [1e-3, 1e5))."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if 1e-3 <= abs(value) < 1e5 or value == 0 else f"{value:.3e}"
    return str(value)
