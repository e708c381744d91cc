r"""The judge: the same accuracy metrics for every solver, on common random numbers.

``evaluate(policy, economy, ...)`` (or ``evaluate_solver(solver, ...)``, which reads only the Solver interface):

1. simulate ``trajectories`` test paths of ``horizon`` periods (``horizon + 1`` states each, published: 32 or 256
   paths × 64 states) with the policy, from ONE initial state (the judge's own draw from ``seed``, the solver's
   ``initial_state``, or any state given) and shocks drawn from ``seed`` — the same for every solver;
2. Euler residuals ε at every test state with ``economy.euler_residual`` (investment economy: 7-node
   Gauss–Hermite and the judge's own fixed standardised idiosyncratic draw); the MSE, mean |ε|, and per period t
   the mean and the 2.5 / 97.5 % percentiles over paths and agents (the papers' figures);
3. investment economy with ν = 1: the policy error against the exact LQ solution at the same states,
   mean |u − u_ref| and mean |u − u_ref| / |u_ref|, u_ref = H0 + H1 mean(X);
4. summary statistics of the economies' aggregates along the test paths (mean, sd, mean in the last period);
5. Krusell–Smith economy: the Den Haan statistic (:func:`agents.aggregate_law.den_haan_of_policy`) — the solver's
   own aggregate law of motion (``alm``) iterated on its own along long simulated panels of the policy, or, for
   solvers without one, an ALM fitted by OLS on those panels, so that every solver is scored by it;
6. Krusell–Smith, on request (``bellman=True`` or a :class:`~agents.bellman.BellmanConfig` mapping; it is costly at
   the published sizes): the Bellman error of the policy and a value function (the solver's, or one fitted by
   DeepHAM's regression), see :mod:`agents.bellman`;
7. the solver's training wall time (and CPU time) and the policy's parameter count, passed through.

The result is an :class:`EvaluationResult`, a dataclass that round-trips through JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any, Literal

import torch
from tensordict import TensorDict
from torch import nn

from hetagents_env.economies.core import Economy, Policy

from .aggregate_law import den_haan_of_policy
from .networks import count_parameters
from .residuals import batched_residual, residual_options

__all__ = ["EvaluationResult", "evaluate", "evaluate_solver", "lq_errors", "simulate_paths"]


@dataclasses.dataclass
class EvaluationResult:
    """Everything the judge measured. ``to_json()`` / ``from_json()`` round-trip (non-finite floats -> null)."""

    economy: str
    n_agents: int
    params: dict[str, Any]
    seed: int
    trajectories: int
    horizon: int
    euler_mse: float
    """mean of ε² over all test states and agents"""
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
    """Krusell–Smith, if requested: :class:`agents.bellman.BellmanResult` as a dict ("optimality", "expectation", …)"""
    den_haan: dict[str, Any] | None = None
    """Krusell–Smith: the Den Haan statistic ("mean_pct", "max_pct"), the ALM used ("alm", "alm_source": "solver"
    or "fitted"), its R² on the simulated panels, the mean K, and the simulation sizes"""
    solver: str | None = None
    wall_time: float | None = None
    """training wall time of the solver, seconds"""
    cpu_time: float | None = None
    """CPU seconds of the solver's process during training"""
    n_params: int | None = None
    train_metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    eval_time: float = 0.0

    @property
    def bellman_error(self) -> float | None:
        """The Bellman error (optimality form), if it was measured."""
        return None if self.bellman is None else self.bellman["optimality"]

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))

    def to_json(self, path: str | os.PathLike | None = None, *, indent: int | None = 2) -> str:
        """JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
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
        state = economy.rollout(policy, state, burn_in, generator)[:, -1]
    return economy.rollout(policy, state, horizon, generator)


@torch.no_grad()
def lq_errors(policy: Policy, economy: Economy, states: TensorDict, *, chunk: int = 4096) -> dict[str, float] | None:
    """Policy error against the exact LQ solution at ``states`` (flat batch), or None if there is none (ν ≠ 1 or
    an economy without an LQ solution): mean |u − u_ref|, mean |u − u_ref| / |u_ref|, max |u − u_ref|."""
    if not hasattr(economy, "lq_policy") or getattr(economy.params, "nu", 1.0) != 1.0:
        return None
    s = states.batch_size[0]
    abs_sum = rel_sum = 0.0
    abs_max = 0.0
    for i in range(0, s, chunk):
        part = states[i : i + chunk]
        u, ref = policy(part), economy.lq_policy(part)
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
) -> EvaluationResult:
    """Judge ``policy`` on ``economy``; see the module docstring.

    ``den_haan``: compute the Den Haan statistic (default: for the Krusell–Smith economy) on
    ``den_haan_economies`` panels of ``den_haan_periods`` periods after ``den_haan_burn_in``, with ``alm`` (the
    solver's (2, 2) law of motion) or, if None, one fitted by OLS on the same panels. ``bellman``: measure the
    Bellman error (True: the published protocol; a mapping: :class:`~agents.bellman.BellmanConfig` fields) with
    ``value`` (None: a value fitted by DeepHAM's regression).

    Common random numbers: the idiosyncratic draw of the residual, the initial state (if not given) and the path
    shocks come from three generators seeded from ``seed``, independently of each other and of the policy.
    """
    start = time.perf_counter()
    was_training = isinstance(policy, nn.Module) and policy.training
    if isinstance(policy, nn.Module):
        policy.eval()
    try:
        options = residual_options(economy, generator=economy.generator(seed), nodes=nodes)
        if initial_state is None:
            initial_state = economy.initial_state(1, economy.generator(seed + 1))
        paths = simulate_paths(
            policy, economy, trajectories=trajectories, horizon=horizon, initial_state=initial_state,
            generator=economy.generator(seed + 2), burn_in=burn_in,
        )
        states = paths.reshape(-1)
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
        lq = lq_errors(policy, economy, states)
        aggregates = {}
        for name, series in economy.aggregates(states).items():
            series = series.double().reshape(trajectories, horizon + 1)
            aggregates[name] = {
                "mean": float(series.mean()), "sd": float(series.std(correction=0)), "final_mean": float(series[:, -1].mean())
            }
        if n_params is None and isinstance(policy, nn.Module):
            n_params = count_parameters(policy)
        bellman_result = None
        if bellman:
            bellman_result = _bellman(policy, value, economy, None if bellman is True else bellman)
        dh = None
        if den_haan if den_haan is not None else economy.env_id == "KrusellSmith-v0":
            dh = den_haan_of_policy(
                policy, economy, alm=alm, economies=den_haan_economies, periods=den_haan_periods,
                burn_in=den_haan_burn_in, seed=seed + 3,
            )
    finally:
        if was_training:
            policy.train()
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
    )


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
        from .solvers.deepham import fit_value

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


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    return value
