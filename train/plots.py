"""The papers' figures for any run, drawn with matplotlib's object API on the Agg canvas (no display, no pyplot).

Per run (:func:`run_figures`):

* ``euler_residuals.png`` — the Euler residual's mean and 2.5 / 97.5 % band over t along the judge's test paths,
  and its per-period MSE (Kahou et al.'s figures);
* ``policy_vs_lq.png`` — the policy along test paths against the exact LQ policy (investment economy, ν = 1);
* ``aggregate_paths.png`` — aggregate capital (and the other aggregates) along the test paths;
* ``wealth_distribution.png`` — the cross-section of capital at the end of the test paths (Krusell–Smith);
* ``phi_basis.png`` — the learned generalized-moment basis φ(k) of a DeepSets φ-MLP (DeepHAM's interpretation
  figure; any module with a ``phi`` sub-module mapping (B, N, F) -> (B, L) by a mean over agents);
* ``learning_curves.png`` — the solver's loss-like metrics over training steps.

For comparisons (:mod:`train.compare`): :func:`overlay_euler_residuals`, :func:`overlay_learning_curves`,
:func:`overlay_paths`. Against an economy's reference (``benchmarks/solver_comparison.py``, from
:func:`agents.reference_judge.comparison_samples`): :func:`stationary_distribution_figure` (each solver's stationary
distribution of w over the reference's), :func:`euler_error_distribution_figure` (log10 unit-free errors on the
common test states), :func:`common_shock_paths_figure` (aggregate K of every solver and the reference on the same
shocks).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

__all__ = [
    "aggregate_paths_figure",
    "capital_key",
    "common_shock_paths_figure",
    "euler_error_distribution_figure",
    "euler_residuals_figure",
    "learning_curves_figure",
    "loss_keys",
    "overlay_euler_residuals",
    "overlay_learning_curves",
    "overlay_paths",
    "phi_basis",
    "phi_basis_figure",
    "policy_vs_lq_figure",
    "run_figures",
    "stationary_distribution_figure",
    "test_paths",
    "wealth_distribution_figure",
]

_LOSSY = re.compile(r"(loss|objective|mse|change|error|residual)", re.IGNORECASE)
DPI = 110


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _auto_scale(ax, arrays: Sequence[Any]) -> None:
    """Log (positive data) or symlog y-axis when the series span more than two orders of magnitude, so that one
    exploding series does not flatten the others."""
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays]) if arrays else np.array([])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    mags = np.abs(values[values != 0])
    if mags.size == 0 or mags.max() / max(np.median(mags), 1e-300) < 100:
        return
    if (values > 0).all():
        ax.set_yscale("log")
    else:
        ax.set_yscale("symlog", linthresh=float(np.median(mags)))


def capital_key(aggregates: Sequence[str]) -> str | None:
    """The aggregate that is 'capital' in an economy's ``aggregates()`` (K, mean_x, ...)."""
    for key in ("K", "mean_k", "mean_x"):
        if key in aggregates:
            return key
    return next(iter(aggregates), None)


def loss_keys(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """Loss-like numeric metrics of a history (loss, objective, MSE, change, error, residual), first-seen order."""
    keys: dict[str, None] = {}
    for record in history:
        for key, value in record.items():
            if _LOSSY.search(key) and isinstance(value, (int, float)) and not isinstance(value, bool):
                keys.setdefault(key)
    return list(keys)


def _x_of(history: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, str]:
    for key in ("step", "iteration", "epoch"):
        if history and all(key in r for r in history):
            return np.array([r[key] for r in history], dtype=float), key
    return np.arange(1, len(history) + 1, dtype=float), "logging point"


# ---------------------------------------------------------------------------------------------- test paths
@torch.no_grad()
def test_paths(solver, *, trajectories: int = 8, horizon: int = 63, seed: int = 2024, burn_in: int = 0,
               initial_state: str = "judge"):
    """Test paths of ``solver.policy`` (batch [trajectories, horizon + 1]) on the judge's conventions: the initial
    state from ``seed + 1`` (or the solver's own), the shocks from ``seed + 2``."""
    from agents.evaluate import simulate_paths

    economy = solver.economy
    start = getattr(solver, "initial_state", None) if initial_state == "solver" else None
    if start is None:
        start = economy.initial_state(1, economy.generator(seed + 1))
    policy = solver.policy
    was_training = isinstance(policy, nn.Module) and policy.training
    if isinstance(policy, nn.Module):
        policy.eval()
    try:
        return simulate_paths(policy, economy, trajectories=trajectories, horizon=horizon, initial_state=start,
                              generator=economy.generator(seed + 2), burn_in=burn_in)
    finally:
        if was_training:
            policy.train()


# ---------------------------------------------------------------------------------------------- single runs
def euler_residuals_figure(result, path: str | os.PathLike, title: str | None = None) -> Path:
    """Mean Euler residual and its percentile band over t (left), per-period MSE (right) from an EvaluationResult."""
    by = result.euler_by_period
    t = np.asarray(by["t"])
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    lo, hi = result.band
    ax.fill_between(t, by["lo"], by["hi"], alpha=0.3, label=f"{lo:g}–{hi:g} %")
    ax.plot(t, by["mean"], lw=1.8, label="mean")
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set(xlabel="t", ylabel="Euler residual ε", title="residual along test paths")
    ax.legend(frameon=False)
    mse = np.asarray(by["mse"], dtype=float)
    ax2.semilogy(t, np.where(mse > 0, mse, np.nan), lw=1.5)
    ax2.set(xlabel="t", ylabel="mean ε²", title=f"MSE per period (overall {result.euler_mse:.2e})")
    fig.suptitle(title or f"{result.solver or 'policy'} on {result.economy} (N = {result.n_agents}, "
                 f"{result.trajectories} test paths)")
    return _save(fig, path)


@torch.no_grad()
def policy_vs_lq_figure(paths, policy, economy, path: str | os.PathLike, n_paths: int = 4) -> Path | None:
    """The policy's mean action along ``n_paths`` test paths against the economy's exact policy (the LQ solution;
    None: no exact policy)."""
    exact = economy.exact_policy()
    if exact is None:
        return None
    n = min(n_paths, paths.batch_size[0])
    sub = paths[:n]
    flat = sub.reshape(-1)
    u = policy(flat).double().mean(-1).reshape(n, -1).cpu().numpy()
    ref = exact(flat).double().mean(-1).reshape(n, -1).cpu().numpy()
    t = np.arange(u.shape[1])
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    for i in range(n):
        line = ax.plot(t, u[i], lw=1.6, label="learned" if i == 0 else None)[0]
        ax.plot(t, ref[i], ls="--", color=line.get_color(), lw=1.0, label="LQ (exact)" if i == 0 else None)
        ax2.semilogy(t, np.abs(u[i] - ref[i]) + 1e-16, color=line.get_color(), lw=1.2)
    ax.set(xlabel="t", ylabel="u(X_t)", title=f"policy along {n} test paths")
    ax.legend(frameon=False)
    ax2.set(xlabel="t", ylabel="|u − u_LQ|", title="error against the LQ policy")
    return _save(fig, path)


@torch.no_grad()
def aggregate_paths_figure(paths, economy, path: str | os.PathLike, max_panels: int = 4, n_paths: int = 8) -> Path:
    """Aggregates (capital first) along the test paths: thin lines per path, the mean over paths thick."""
    aggs = {k: v.double().cpu().numpy() for k, v in economy.aggregates(paths.reshape(-1)).items()}
    b = paths.batch_size[0]
    aggs = {k: v.reshape(b, -1) for k, v in aggs.items()}
    first = capital_key(list(aggs))
    keys = [first] + [k for k in aggs if k != first and k != "z"]
    keys = keys[:max_panels]
    fig = Figure(figsize=(3.6 * len(keys), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(keys)))
    for ax, key in zip(axes, keys):
        v = aggs[key]
        t = np.arange(v.shape[1])
        for i in range(min(n_paths, b)):
            ax.plot(t, v[i], lw=0.7, alpha=0.5)
        ax.plot(t, v.mean(0), color="k", lw=2.0, label="mean over paths")
        ax.set(xlabel="t", title=key)
    axes[0].legend(frameon=False)
    fig.suptitle(f"{economy.env_id}: aggregates along {b} test paths")
    return _save(fig, path)


@torch.no_grad()
def wealth_distribution_figure(paths, economy, path: str | os.PathLike) -> Path | None:
    """Histogram of the economy's endogenous per-agent state (capital, wealth) at the last test period, stacked by
    the idiosyncratic state where the economy has a discrete one (``n_e`` states named ``idiosyncratic_name``)."""
    state = paths[:, -1]
    key = economy.endogenous_key
    k = state[key].double().cpu().numpy().ravel()
    fig = Figure(figsize=(6, 3.8), layout="constrained")
    ax = fig.subplots()
    lo = min(0.0, float(k.min()))
    bins = np.linspace(lo, np.quantile(k, 0.995) * 1.05 + 1e-12, 50)
    n_e = getattr(economy, "n_e", 0)
    if "e" in state.keys() and 1 < n_e <= 10:
        e = state["e"].cpu().numpy().ravel().astype(int)
        name = getattr(economy, "idiosyncratic_name", "e")
        ax.hist([k[e == j] for j in range(n_e)], bins=bins, stacked=True, label=[f"{name} {j}" for j in range(n_e)],
                alpha=0.8)
        ax.legend(frameon=False, fontsize=7)
    else:
        ax.hist(k, bins=bins)
    gini = _gini(k)
    ax.axvline(k.mean(), color="k", lw=1.0, ls="--")
    ax.set(xlabel=f"individual {key}", ylabel=economy.agent_name + "s",
           title=f"{key} at t = {paths.batch_size[1] - 1}: mean {k.mean():.2f}, Gini {gini:.3f}")
    return _save(fig, path)


def _gini(x: np.ndarray) -> float:
    from agents.reference_metrics import gini

    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, None)
    return gini(x) if x.size and x.sum() > 0 else float("nan")


def learning_curves_figure(history: Sequence[Mapping[str, Any]], path: str | os.PathLike,
                           title: str | None = None) -> Path | None:
    """Each loss-like metric of the history over steps (log scale where positive)."""
    keys = loss_keys(history)
    if not history or not keys:
        return None
    x, xlabel = _x_of(history)
    fig = Figure(figsize=(6.4, 4), layout="constrained")
    ax = fig.subplots()
    positive = True
    for key in keys:
        y = np.array([float(r.get(key, np.nan)) for r in history])
        finite = np.isfinite(y)
        positive &= bool(np.all(y[finite] > 0)) if finite.any() else True
        ax.plot(x, y, lw=1.5, label=key, marker="." if len(x) < 30 else None)
    if positive:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, title=title or "learning curves")
    ax.legend(frameon=False)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------- φ basis
@torch.no_grad()
def phi_basis(phi: nn.Module, grid: torch.Tensor) -> torch.Tensor:
    """φ evaluated at each point of ``grid`` (M,) or (M, F): one economy of ONE agent per point, so the DeepSets
    mean over agents is φ itself. Works for any φ mapping (B, N, F) -> (B, L). Returns (M, L)."""
    x = grid if grid.dim() == 2 else grid.unsqueeze(-1)
    return phi(x.unsqueeze(1))


def _find_phi(policy: nn.Module) -> tuple[nn.Module, str, float] | None:
    """(φ module, its input key, the key's scale) of a DeepSets policy with a learned φ on one set feature."""
    phi = getattr(policy, "phi", None)
    features = getattr(policy, "features", None)
    if not isinstance(phi, nn.Module) or not any(True for _ in phi.parameters()) or features is None:
        return None
    if len(features.set) != 1:
        return None
    key = features.set[0]
    return phi, key, float(dict(features.scale).get(key, 1.0))


@torch.no_grad()
def phi_basis_figure(phi: nn.Module, values: torch.Tensor, path: str | os.PathLike, *, scale: float = 1.0,
                     xlabel: str = "k", title: str | None = None) -> Path:
    """φ_l over the range of ``values`` (raw units; φ sees values / scale), each basis function in its own colour,
    with the histogram of ``values`` underneath."""
    flat = values.detach().double().cpu().reshape(-1).numpy()
    lo, hi = np.quantile(flat, [0.005, 0.995])
    pad = 0.05 * (hi - lo + 1e-12)
    param = next(phi.parameters())
    grid = torch.linspace(lo - pad, hi + pad, 200, dtype=param.dtype, device=param.device)
    basis = phi_basis(phi, grid / scale).double().cpu().numpy()  # (M, L)
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    g = grid.double().cpu().numpy()
    for l in range(basis.shape[1]):
        ax.plot(g, basis[:, l], lw=1.8, label=f"φ_{l + 1}")
    ax.set(xlabel=xlabel, ylabel="φ(·)", title=title or "learned generalized-moment basis φ")
    ax.legend(frameon=False)
    hist_ax = ax.twinx()
    hist_ax.hist(flat, bins=40, range=(float(g[0]), float(g[-1])), alpha=0.15, color="gray")
    hist_ax.set_yticks([])
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------- all of a run
def run_figures(solver, result, history: Sequence[Mapping[str, Any]], directory: str | os.PathLike,
                eval_kwargs: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Every figure that applies to this run, as ``{name: path}`` (PNG files in ``directory``)."""
    directory = Path(directory)
    kw = dict(eval_kwargs or {})
    out: dict[str, Path | None] = {}
    if result is not None:
        out["euler_residuals"] = euler_residuals_figure(result, directory / "euler_residuals.png")
    paths = test_paths(
        solver, trajectories=min(int(kw.get("trajectories", 8)), 16), horizon=int(kw.get("horizon", 63)),
        seed=int(kw.get("seed", 2024)), burn_in=int(kw.get("burn_in", 0)),
        initial_state=str(kw.get("initial_state", "judge")),
    )
    economy, policy = solver.economy, solver.policy
    out["policy_vs_lq"] = policy_vs_lq_figure(paths, policy, economy, directory / "policy_vs_lq.png")
    out["aggregate_paths"] = aggregate_paths_figure(paths, economy, directory / "aggregate_paths.png")
    out["wealth_distribution"] = wealth_distribution_figure(paths, economy, directory / "wealth_distribution.png")
    found = _find_phi(policy) if isinstance(policy, nn.Module) else None
    if found is not None:
        phi, key, scale = found
        out["phi_basis"] = phi_basis_figure(phi, paths[key], directory / "phi_basis.png", scale=scale, xlabel=key)
    out["learning_curves"] = learning_curves_figure(history, directory / "learning_curves.png")
    return {k: v for k, v in out.items() if v is not None}


# ---------------------------------------------------------------------------------------------- overlays
def overlay_euler_residuals(results: Mapping[str, Any], path: str | os.PathLike, title: str | None = None) -> Path:
    """Mean Euler residual (band shaded) and per-period MSE of several EvaluationResults."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    for label, result in results.items():
        by = result.euler_by_period
        t = np.asarray(by["t"])
        line = ax.plot(t, by["mean"], lw=1.6, label=label)[0]
        ax.fill_between(t, by["lo"], by["hi"], alpha=0.15, color=line.get_color())
        mse = np.asarray(by["mse"], dtype=float)
        ax2.semilogy(t, np.where(mse > 0, mse, np.nan), lw=1.4, color=line.get_color(), label=label)
    ax.axhline(0.0, color="k", lw=0.6)
    _auto_scale(ax, [r.euler_by_period["mean"] for r in results.values()])
    ax.set(xlabel="t", ylabel="Euler residual ε", title="mean and percentile band")
    ax2.set(xlabel="t", ylabel="mean ε²", title="MSE per period")
    ax.legend(frameon=False, fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def overlay_learning_curves(
    histories: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike
) -> Path | None:
    """The first loss-like metric of each history, over steps."""
    fig = Figure(figsize=(6.4, 4), layout="constrained")
    ax = fig.subplots()
    drawn = 0
    for label, history in histories.items():
        keys = loss_keys(history)
        if not keys:
            continue
        x, xlabel = _x_of(history)
        y = np.array([float(r.get(keys[0], np.nan)) for r in history])
        ax.plot(x, np.where(y > 0, y, np.nan), lw=1.4, label=f"{label}: {keys[0]}")
        ax.set_xlabel(xlabel)
        drawn += 1
    if not drawn:
        return None
    ax.set_yscale("log")
    ax.set(title="learning curves")
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def overlay_paths(series: Mapping[str, np.ndarray], path: str | os.PathLike, ylabel: str, title: str) -> Path:
    """Several (T,) series over t, e.g. the mean aggregate capital path of each solver on common shocks."""
    fig = Figure(figsize=(6.4, 4), layout="constrained")
    ax = fig.subplots()
    for label, y in series.items():
        ax.plot(np.arange(len(y)), y, lw=1.5, label=label)
    _auto_scale(ax, list(series.values()))
    ax.set(xlabel="t", ylabel=ylabel, title=title)
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------- against a reference
REFERENCE_STYLE = dict(color="0.2", lw=2.2)
#: error values at or below this count as exactly zero (an agent at its borrowing limit whose Euler inequality holds)
ZERO_ERROR = 1e-16


def _grid(n: int, width: float = 3.4, height: float = 2.8, max_cols: int = 3) -> tuple[int, int, tuple[float, float]]:
    cols = min(max(n, 1), max_cols)
    rows = -(-max(n, 1) // cols)
    return rows, cols, (width * cols, height * rows)


def stationary_distribution_figure(
    samples: Mapping[str, np.ndarray], reference: np.ndarray, path: str | os.PathLike, *, key: str = "k",
    agent_name: str = "household", reference_label: str = "reference", title: str | None = None,
    bins: int = 60,
) -> Path:
    """Each solver's stationary distribution of the endogenous state w (pooled sample) overlaid on the
    reference's: small multiples, one panel per solver, density on common bins from min(0, w) to the 99.5th
    percentile of all samples; mean and Gini of both in each panel's legend."""
    ref = np.asarray(reference, dtype=float).ravel()
    arrays = {label: np.asarray(v, dtype=float).ravel() for label, v in samples.items() if v is not None}
    pooled = np.concatenate([ref, *arrays.values()])
    lo = min(0.0, float(np.quantile(pooled, 0.001)))
    hi = float(np.quantile(pooled, 0.995))
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    rows, cols, size = _grid(len(arrays))
    fig = Figure(figsize=size, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True)).ravel()
    for i, (ax, (label, w)) in enumerate(zip(axes, arrays.items())):
        ax.hist(np.clip(ref, lo, hi), bins=edges, density=True, color="0.78")
        ax.hist(np.clip(w, lo, hi), bins=edges, density=True, histtype="step", lw=1.8, color=f"C{i % 10}")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_title(f"{label}: mean {w.mean():.3g}, Gini {_gini(w):.3f}", fontsize=9)
        if i + cols >= len(arrays):  # the lowest panel of its column
            ax.set_xlabel(f"individual {key} (last bin: ≥ {hi:.3g})")
        if i % cols == 0:
            ax.set_ylabel("density")
    for ax in axes[len(arrays):]:
        ax.set_visible(False)
    fig.suptitle(title or f"stationary distribution of {key} across {agent_name}s: each solver (line) against the "
                 f"{reference_label} (grey: mean {ref.mean():.3g}, Gini {_gini(ref):.3f})", fontsize=10)
    return _save(fig, path)


def euler_error_distribution_figure(
    errors: Mapping[str, np.ndarray | None], path: str | os.PathLike, *, reference: np.ndarray | None = None,
    reference_label: str = "reference", kind: str = "relative_euler", title: str | None = None, bins: int = 50,
) -> Path | None:
    """Distribution of log10 unit-free errors (every household at every common test state), one step histogram
    per solver overlaid on the reference's (grey), the mean of log10 of each marked on top. Errors that are
    exactly zero (a household at its borrowing limit whose Euler inequality holds) cannot go on a log scale:
    their share is given in the legend. None when there is nothing to draw."""
    series = [(label, np.asarray(e, dtype=float).ravel(), False) for label, e in errors.items() if e is not None]
    if reference is not None and np.any(np.asarray(reference) > ZERO_ERROR):  # an exact reference has no error
        series.insert(0, (reference_label, np.asarray(reference, dtype=float).ravel(), True))
    if not any(np.any(e > ZERO_ERROR) for _, e, _ in series):
        return None
    pooled = np.concatenate([np.log10(e[e > ZERO_ERROR]) for _, e, _ in series])
    edges = np.linspace(np.floor(pooled.min() * 2) / 2, np.ceil(pooled.max() * 2) / 2 + 1e-9, bins + 1)
    fig = Figure(figsize=(7.4, 4.2), layout="constrained")
    ax = fig.subplots()
    name = "|1 − c/c_EE|" if kind == "relative_euler" else "|u − u_ref| / |u_ref|"
    i = 0
    for label, e, is_reference in series:
        v = np.log10(e[e > ZERO_ERROR])
        zero = 1.0 - v.size / max(e.size, 1)
        mean_log = float(np.log10(np.maximum(e, ZERO_ERROR)).mean()) if e.size else float("nan")
        text = f"{label}: mean {e.mean():.2e}" + (f", {100 * zero:.1f} % exactly 0" if zero > 0 else "")
        weights = np.full(v.size, 1.0 / max(e.size, 1))
        if is_reference:
            ax.hist(v, bins=edges, weights=weights, color="0.75", label=text)
            colour = "0.35"
        else:
            colour, i = f"C{i % 10}", i + 1
            ax.hist(v, bins=edges, weights=weights, histtype="step", lw=1.7, color=colour, label=text)
        ax.axvline(mean_log, color=colour, lw=0.9, ls="--")
    ax.set(xlabel=f"log10 {name}  (dashed: mean of log10)", ylabel="share of households × test states",
           title=title or "unit-free errors on the common test states (drawn from the reference's ergodic set)")
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def common_shock_paths_figure(
    paths: Mapping[str, np.ndarray], path: str | os.PathLike, *, reference: np.ndarray | None = None,
    reference_label: str = "reference", aggregate_state: np.ndarray | None = None, aggregate_state_key: str = "z",
    ylabel: str = "K", title: str | None = None, economy_index: int = 0,
) -> Path:
    """Aggregate K of economy ``economy_index`` over t for every solver (and the reference, thick grey) on the
    same shocks from the same start (left), and its deviation from the reference in % (right). Periods in which
    the discrete aggregate state ``aggregate_state`` (the same for every solver) is at its lowest value are
    shaded."""
    fig = Figure(figsize=(11, 3.9), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, sharex=True)
    ref = None if reference is None else np.asarray(reference, dtype=float)[economy_index]
    t = np.arange(len(ref) if ref is not None else len(next(iter(paths.values()))[economy_index]))
    if aggregate_state is not None:
        z = np.asarray(aggregate_state)[economy_index]
        low = z == z.min()
        if 0 < low.sum() < z.size:
            for a in (ax, ax2):
                a.fill_between(t, 0, 1, where=low, transform=a.get_xaxis_transform(), color="0.92", step="mid",
                               label=f"shaded: {aggregate_state_key} = {z.min():g}" if a is ax else None, lw=0)
    if ref is not None:
        ax.plot(t, ref, label=reference_label, **REFERENCE_STYLE)
        ax2.axhline(0.0, **REFERENCE_STYLE)
    for i, (label, k) in enumerate(paths.items()):
        k = np.asarray(k, dtype=float)[economy_index]
        ax.plot(t, k, lw=1.2, color=f"C{i}", label=label)
        if ref is not None:
            ax2.plot(t, 100.0 * (k / ref - 1.0), lw=1.2, color=f"C{i}")
    ax.set(xlabel="t (periods)", ylabel=ylabel, title="level")
    ax2.set(xlabel="t (periods)", ylabel=f"{ylabel} − reference (% of reference)", title="against the reference")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 7), frameon=False, fontsize=8)
    fig.suptitle(title or f"{ylabel} on common shocks: same start, same aggregate and idiosyncratic draws")
    return _save(fig, path)
