r"""The classical Krusell–Smith algorithm (Maliar, Maliar & Valli 2010), as an in-package reference solution.

Households perceive a log-linear aggregate law of motion (ALM) per aggregate state,
:math:`\ln K' = a_z + b_z \ln K`, and solve their problem on a grid; the economy is then simulated and the ALM
re-estimated, until the perceived and the simulated laws agree.

1. **Individual problem** — Euler-equation (time) iteration on a grid k_j = k_max (j/(J−1))^p (100 points on
   [0, 1000], p = 7) × K ∈ [K_min, K_max] (4 points) × e × z. Given the policy k'(k, e; K, z):

   .. math:: c = \Big(\beta \sum_{z', e'} P(z', e' \mid z, e)\, \frac{R(K', z')}{c'}\Big)^{-1}, \qquad
             c' = x(k', e'; K', z') - k'(k', e'; K', z'),\quad K' = e^{a_z + b_z \ln K}

   then k'_new = max(x − c, 0) (the borrowing constraint), damped: k' ← ω k'_new + (1 − ω) k' (ω = 0.7), until
   max |Δk'| < 1e-8. k'(·) off the grid is bilinear in (k, K) (linear extrapolation).
2. **Aggregate step** — simulate the economy (10,000 households, 1,100 periods, the first 100 dropped) with the
   economy's own ``transition`` on a fixed exogenous path (common random numbers across iterations), regress
   ln K_{t+1} on ln K_t per state (OLS), and update the ALM with damping 0.3 on the new estimate, until the
   coefficients change by less than 1e-8.

**The K grid follows the economy.** By default it is MMV's [30, 50] for the JEDC calibration (whose aggregate
steady state is K_ss = 39.26) scaled to this economy's aggregate steady state K_ss = k_ss · Σ_z π_z L_z
(:func:`aggregate_steady_state`): [0.764, 1.274] · K_ss — exactly [30, 50] on the DeepHAM calibration, [8.83, 14.72]
on Krusell & Smith's (1998) (l̄ = 0.3271, μ = 0). Explicit ``K_min`` / ``K_max`` are honoured as the first placement.
Once the ALM has settled (its change below 1e-3) and at convergence, the simulated K path after the burn-in and the
ALM's fixed points K*_z = exp(a_z / (1 − b_z)) must lie on the grid (within ``K_tolerance`` of its width); if they
do not, the grid is re-placed around them (up to ``K_regrids`` times, each one a warning and the ``K_regrids``
metric) and the iteration goes on; beyond that, :class:`GridCoverageError` names the grid, the simulated range and
the fixed points. At convergence the households' capital must also have stayed below ``k_max`` (the panel) or
``histogram_k_max`` (the histogram), or the same error names that grid. ``converged`` is never reported off the
grids.

Everything is vectorised in torch (float64): the grid arrays are (2 z, M K, 2 e, J k), the panel (B, N).
Outputs: the ALM and its R², the interpolated policy (as the economy's action: a consumption or savings share), the
value function (policy evaluation on the grid, one dense linear solve) and the simulated panel's K path for the Den
Haan statistic (:mod:`agents.aggregate_law`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Literal

import numpy as np
import torch
from tensordict import TensorDict
from torch import nn

from hetagents_env.economies.core import Economy

from ..aggregate_law import ALMFit, fit_alm
from ..config import Config, ConfigError, interval
from .base import Solver
from .registry import register_solver

#: Maliar, Maliar & Valli (2010), stochastic simulation, JEDC comparison-project calibration
PUBLISHED_ALM = np.array([[0.123815, 0.965565], [0.137800, 0.963238]])

#: Krusell & Smith (1998): the same economy with l̄ = 0.3271 and no unemployment benefit, and their published ALM
KS1998_PARAMS = {"lbar": 0.3271, "mu": 0.0}
KS1998_ALM = np.array([[0.085, 0.965], [0.095, 0.962]])

#: MMV's K grid for the JEDC calibration; the default grid is this band scaled to the economy's steady state
MMV_K_GRID = (30.0, 50.0)

#: the ALM change below which the K range is checked against the grid (before it, paths are transients)
SETTLED_CHANGE = 1e-3

#: the most capital (as a share of K, in any period) the histogram may lose by clipping mass at its top; the DeepHAM
#: calibration's tail reaches 200 (its continuum run clips mass ≈ 4e-8 there, ≈ 1e-9 of K)
HISTOGRAM_CLIP_TOL = 1e-6


class GridCoverageError(RuntimeError):
    """The simulated economy (or the ALM's fixed points) left a grid of the classical solver: no solution is
    reported on a grid that does not contain it."""


def _steady_state(beta: float, alpha: float, delta: float, labour, stationary) -> float:
    """Aggregate K of the deterministic steady state: k_ss · Σ_z π_z L_z, k_ss = ((1/β − (1−δ))/α)^(1/(α−1))."""
    k_ss = ((1.0 / beta - (1.0 - delta)) / alpha) ** (1.0 / (alpha - 1.0))
    return k_ss * sum(p * lab for p, lab in zip(stationary, labour))


#: the JEDC / DeepHAM calibration's aggregate steady state (≈ 39.26), the centre of MMV's grid
JEDC_STEADY_STATE = _steady_state(0.99, 0.36, 0.025, [(1.0 / 0.9) * (1 - 0.10), (1.0 / 0.9) * (1 - 0.04)], [0.5, 0.5])


def aggregate_steady_state(economy) -> float:
    """The economy's deterministic steady state in aggregate units: K_ss = k_ss · Σ_z π_z L_z, with k_ss per unit
    of labour (``params.steady_state_capital``), L_z the theoretical labour supply and π the stationary
    distribution of z."""
    p = economy.params
    exact = economy.with_dtype(torch.float64)  # the economy's tables in float64 (as its parameters give them)
    pz = exact.prob_z.cpu().numpy()
    labour = exact.labour.cpu().numpy()
    n = pz.shape[0]
    # stationary π: π (P − I) = 0, Σ π = 1
    A = np.vstack([(pz - np.eye(n)).T, np.ones(n)])
    pi = np.linalg.lstsq(A, np.r_[np.zeros(n), 1.0], rcond=None)[0]
    if n == 2 and pz[0, 1] + pz[1, 0] > 0:  # exactly, for the common case
        pi = np.array([pz[1, 0], pz[0, 1]]) / (pz[0, 1] + pz[1, 0])
    return _steady_state(p.beta, p.alpha, p.delta, labour.tolist(), pi.tolist())


def default_K_grid(economy) -> tuple[float, float]:
    """MMV's [30, 50] scaled by K_ss / 39.26: [0.764, 1.274] · K_ss (exactly [30, 50] on the JEDC calibration)."""
    scale = aggregate_steady_state(economy) / JEDC_STEADY_STATE
    return MMV_K_GRID[0] * scale, MMV_K_GRID[1] * scale


@dataclasses.dataclass(frozen=True)
class ClassicalKSConfig(Config):
    """Settings of the classical algorithm (defaults: MMV 2010)."""

    k_points: int = dataclasses.field(default=100, metadata=interval(2))
    """number of individual capital grid points J"""
    k_max: float = dataclasses.field(default=1000.0, metadata=interval(0.0, open_lo=True))
    """upper end of the individual capital grid (a converged panel whose households save beyond it is an error)"""
    k_power: float = dataclasses.field(default=7.0, metadata=interval(1.0))
    """grid curvature p: k_j = k_max (j/(J−1))^p"""
    K_points: int = dataclasses.field(default=4, metadata=interval(2))
    """number of aggregate capital grid points M"""
    K_min: float | None = dataclasses.field(default=None, metadata=interval(0.0, open_lo=True))
    """lower end of the aggregate capital grid; None: placed from the economy's steady state (0.764 K_ss)"""
    K_max: float | None = dataclasses.field(default=None, metadata=interval(0.0, open_lo=True))
    """upper end of the aggregate capital grid; None: 1.274 K_ss (MMV's [30, 50] on the JEDC calibration)"""
    K_regrids: int = dataclasses.field(default=3, metadata=interval(0))
    """times the K grid may be re-placed around the simulated K range when the (settled) simulation or the ALM's
    fixed points leave it; 0: leaving it is an error"""
    K_tolerance: float = dataclasses.field(default=0.05, metadata=interval(0.0))
    """how far the simulated K (after the burn-in) and the ALM's fixed points may lie beyond the K grid, as a
    share of its width"""
    K_interpolation: Literal["cubic", "linear"] = "cubic"
    """interpolation along the K grid: 4-point Lagrange (needs M ≥ 4; MMV interpolate cubically) or linear"""
    policy_damping: float = dataclasses.field(default=0.7, metadata=interval(0.0, 1.0, open_lo=True))
    """weight of the new policy in each Euler iteration"""
    policy_tol: float = dataclasses.field(default=1e-8, metadata=interval(0.0, open_lo=True))
    max_policy_iterations: int = dataclasses.field(default=20_000, metadata=interval(1))
    alm_damping: float = dataclasses.field(default=0.3, metadata=interval(0.0, 1.0, open_lo=True))
    """weight of the new OLS estimate in each ALM update"""
    alm_tol: float = dataclasses.field(default=1e-8, metadata=interval(0.0, open_lo=True))
    max_alm_iterations: int = dataclasses.field(default=200, metadata=interval(1))
    simulation: Literal["panel", "histogram"] = "panel"
    """aggregate step: a panel of the economy's N households (stochastic, MMV's method 1) or a histogram over a
    fine k grid (a continuum of households, non-stochastic: MMV's method 2, Young 2010)"""
    histogram_points: int = dataclasses.field(default=2000, metadata=interval(10))
    """points of the histogram's uniform k grid"""
    histogram_k_max: float = dataclasses.field(default=200.0, metadata=interval(0.0, open_lo=True))
    """upper end of the histogram's k grid (mass moved beyond it, clipped to it, is an error at convergence)"""
    panel_economies: int = dataclasses.field(default=1, metadata=interval(1))
    """independent economies B simulated in the aggregate step (each of the economy's N households)"""
    periods: int = dataclasses.field(default=1100, metadata=interval(3))
    burn_in: int = dataclasses.field(default=100, metadata=interval(0))
    seed: int = 0
    """seed of the fixed exogenous path of the aggregate step"""
    alm_init: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0)
    """initial (a_b, b_b, a_g, b_g)"""

    def _validate(self) -> None:
        if self.periods < self.burn_in + 3:
            raise ConfigError(f"periods = {self.periods} must exceed burn_in + 2 = {self.burn_in + 2}")
        if self.K_min is not None and self.K_max is not None and self.K_max <= self.K_min:
            raise ConfigError(f"K_max = {self.K_max} must exceed K_min = {self.K_min}")


class GridFunction:
    """A function f(k, e; K, z) tabulated on the (z, K, e, k) grid, evaluated at any (k, K).

    Along k (non-uniform grid, searchsorted): linear. Along K (uniform grid): cubic through the 4 nearest nodes
    (Lagrange; MMV interpolate cubically) or linear. Both extrapolate. A coarse K grid (4 points on [30, 50])
    needs the cubic stencil: linear interpolation in K biases savings upwards (ergodic K ≈ 41.3 instead of ≈ 39.4).
    """

    def __init__(self, k_grid: torch.Tensor, K_grid: torch.Tensor, K_order: str = "cubic") -> None:
        self.k_grid, self.K_grid = k_grid, K_grid
        self.dK = float(K_grid[1] - K_grid[0])
        self.K_stencil_size = 4 if K_order == "cubic" and len(K_grid) >= 4 else 2

    def K_stencil(self, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices and weights (..., S) of the K-grid nodes that interpolate at K (weights sum to 1)."""
        S, M = self.K_stencil_size, len(self.K_grid)
        pos = (K - self.K_grid[0]) / self.dK
        start = (pos.floor() - (S // 2 - 1)).clamp(0, M - S).long()
        t = (pos - start.to(pos.dtype)).unsqueeze(-1)  # position inside the window, in node units
        nodes = torch.arange(S, device=K.device, dtype=pos.dtype)
        weights = torch.ones(*t.shape[:-1], S, dtype=pos.dtype, device=K.device)
        for m in range(S):  # Lagrange basis: Π_{m ≠ j} (t − m) / (j − m)
            others = nodes != m
            weights = weights * torch.where(others, (t - m) / (nodes - m).masked_fill(~others, 1.0), 1.0)
        return start.unsqueeze(-1) + nodes.long(), weights

    def K_stencil_numpy(self, K: float) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`K_stencil` at one scalar K, in numpy (for sequential simulation loops)."""
        S, M = self.K_stencil_size, len(self.K_grid)
        pos = (K - float(self.K_grid[0])) / self.dK
        start = min(max(int(np.floor(pos)) - (S // 2 - 1), 0), M - S)
        t = pos - start
        weights = np.ones(S)
        for j in range(S):
            for m in range(S):
                if m != j:
                    weights[j] *= (t - m) / (j - m)
        return start + np.arange(S), weights

    def k_weights(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hi = torch.searchsorted(self.k_grid, k.contiguous()).clamp(1, len(self.k_grid) - 1)
        lo = hi - 1
        g_lo, g_hi = self.k_grid[lo], self.k_grid[hi]
        return lo, (k - g_lo) / (g_hi - g_lo)

    def at_K(self, table: torch.Tensor, z: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        """table (2, M, 2, J) at aggregate (z, K) of any shape S -> (*S, 2, J)."""
        idx, w = self.K_stencil(K)  # (*S, 4)
        return (w[..., None, None] * table[z.unsqueeze(-1), idx]).sum(-3)

    def panel(self, table: torch.Tensor, k: torch.Tensor, e: torch.Tensor, K: torch.Tensor, z: torch.Tensor):
        """f at a panel: k, e (B, N), K, z (B,) -> (B, N)."""
        rows = self.at_K(table, z, K)  # (B, 2, J)
        flat = rows.reshape(rows.shape[0], -1)  # (B, 2J): row e starts at e·J
        lo, w = self.k_weights(k)
        offset = e.long() * len(self.k_grid)
        return _gather_lerp(flat, lo + offset, w)


class GridPolicy(nn.Module):
    """The classical solution as a policy of the economy: state -> action (B, N), the share of cash on hand
    consumed (or saved, following the economy's ``action`` parameter), from the tabulated k'(k, e; K, z)."""

    def __init__(self, economy: Economy, grid: GridFunction, policy: torch.Tensor) -> None:
        super().__init__()
        self.economy, self.grid = economy, grid
        self.register_buffer("table", policy)

    def next_capital(self, state: TensorDict) -> torch.Tensor:
        k, e, z = state["k"], state["e"], state["z"]
        return self.grid.panel(self.table, k, e, k.mean(-1), z)

    def forward(self, state: TensorDict) -> torch.Tensor:
        dtype = state["k"].dtype
        state = _as_float64(state)
        saved = (self.next_capital(state) / self.economy.cash_on_hand(state)).clamp(0.0, 1.0)
        share = 1.0 - saved if self.economy.params.action == "consumption_share" else saved
        return share.to(dtype)


class GridValue(nn.Module):
    """The classical solution's value function V(k, e; K, z) at a state: (B, N)."""

    def __init__(self, grid: GridFunction, value: torch.Tensor) -> None:
        super().__init__()
        self.grid = grid
        self.register_buffer("table", value)

    def forward(self, state: TensorDict) -> torch.Tensor:
        dtype = state["k"].dtype
        state = _as_float64(state)
        k = state["k"]
        return self.grid.panel(self.table, k, state["e"], k.mean(-1), state["z"]).to(dtype)


@register_solver("ks_classical")
class ClassicalKSSolver(Solver):
    """MMV (2010) on a :class:`~hetagents_env.KrusellSmithEconomy`; its N households are the simulated panel.

    ``train`` runs ALM iterations (one "step" = household problem + panel simulation + OLS + damped update) until
    the ALM changes by less than ``alm_tol``, ``steps`` iterations or ``budget`` seconds. Afterwards ``policy``
    (the interpolated k' as the economy's action), ``value`` (V on the grid, interpolated), ``alm`` (2, 2) and
    ``panel`` (the last panel's K and z paths, (B, T) each) are ready for the judge.
    """

    Config = ClassicalKSConfig
    progress_metrics = ("alm_change",)
    #: a household economy with Krusell–Smith's shape: its grids are (2 z, M K, 2 e, J k), its Euler update is the
    #: log-utility one and its grid starts at k = 0
    requires = (
        "cash_on_hand_at", "prob_joint", "successors",
        ("two aggregate states", lambda economy: economy.aggregate_states == 2),
        ("two idiosyncratic states", lambda economy: getattr(economy, "n_e", None) == 2),
        ("log utility (gamma = 1)", lambda economy: getattr(economy, "gamma", None) == 1.0),
        ("a borrowing limit of 0", lambda economy: getattr(economy, "borrowing_limit", None) == 0.0),
    )

    @classmethod
    def reference_config(cls, economy: Economy) -> ClassicalKSConfig:
        """The judge's reference: the continuum (histogram) solution with the ALM fitted on 10,000 periods
        (configs/ks_classical_continuum.yaml: Den Haan 0.045 / 0.164 % on its own path), on a histogram reaching
        k = 400 (the DeepHAM calibration's wealth tail reaches ≈ 200) at the same resolution (0.1)."""
        return cls.default_config(economy).replace(
            simulation="histogram", histogram_points=4000, histogram_k_max=400.0, periods=10_100, burn_in=100,
        )

    def __init__(self, economy: Economy, config: ClassicalKSConfig | dict | None = None) -> None:
        super().__init__(economy, config)
        cfg = self.config
        # the grid maths runs in float64 whatever the economy's dtype; the policy answers in the state's dtype
        self.grid_economy = economy.with_dtype(torch.float64)
        eco = self.grid_economy
        K_min, K_max = self._initial_K_grid()
        j = torch.arange(cfg.k_points, dtype=torch.float64, device=eco.device)
        self.grid = GridFunction(
            cfg.k_max * (j / (cfg.k_points - 1)) ** cfg.k_power,
            torch.linspace(K_min, K_max, cfg.K_points, dtype=torch.float64, device=eco.device),
            cfg.K_interpolation,
        )
        self.K_regrids = 0  # times the K grid was re-placed
        self._default_grid_tried = (K_min, K_max) == default_K_grid(eco)
        self.regrid_log: list[str] = []
        self._k_top = 0.0  # the largest individual capital of the last simulation (panel)
        self._spill = (0.0, 0.0)  # the last histogram simulation's mass beyond its top, and the capital clipped / K
        self.alm = np.asarray(cfg.alm_init, dtype=float).reshape(2, 2)
        self.r2 = np.full(2, np.nan)
        self._cash = self._grid_cash()
        initial = (0.9 * self.grid.k_grid).expand(2, cfg.K_points, 2, cfg.k_points).clone()  # MMV: k' = 0.9 k
        self.policy = GridPolicy(eco, self.grid, initial)
        self.value = GridValue(self.grid, torch.zeros_like(initial))
        # initial cross-section of the aggregate step: capital (B, N) of the panel, or the histogram's mass (2, P)
        self.panel_k: torch.Tensor | None = None
        self.panel: tuple[np.ndarray, np.ndarray] | None = None
        self.iterations = 0
        self.converged = False

    @property
    def policy_table(self) -> torch.Tensor:
        return self.policy.table

    # ------------------------------------------------------------------ the K grid
    @property
    def K_bounds(self) -> tuple[float, float]:
        """The K grid's ends now (after any re-placement)."""
        return float(self.grid.K_grid[0]), float(self.grid.K_grid[-1])

    def _initial_K_grid(self) -> tuple[float, float]:
        """The configured K grid, its unset ends placed from the economy's steady state (:func:`default_K_grid`)."""
        cfg = self.config
        lo, hi = default_K_grid(self.grid_economy)
        K_min = lo if cfg.K_min is None else cfg.K_min
        K_max = hi if cfg.K_max is None else cfg.K_max
        if not 0.0 < K_min < K_max:
            raise ConfigError(f"the K grid [{K_min:.6g}, {K_max:.6g}] is empty (K_min {cfg.K_min}, K_max {cfg.K_max}; "
                              f"the default placement is [{lo:.6g}, {hi:.6g}])")
        self._check_K_below_k_grids(K_min, K_max, ConfigError)
        return K_min, K_max

    def _check_K_below_k_grids(self, K_min: float, K_max: float, error: type[Exception]) -> None:
        cfg = self.config
        tops = [("k_max", cfg.k_max)]
        if cfg.simulation == "histogram":
            tops.append(("histogram_k_max", cfg.histogram_k_max))
        for name, top in tops:
            if K_max >= top:
                raise error(f"the K grid [{K_min:.6g}, {K_max:.6g}] reaches the top of the individual capital grid, "
                            f"{name} = {top:g}: raise {name} well above the economy's capital (its aggregate steady "
                            f"state is {aggregate_steady_state(self.grid_economy):.6g})")

    def _set_K_grid(self, K_min: float, K_max: float, reinterpolate: bool = True) -> None:
        """Move the K grid to [K_min, K_max] (same number of points); the policy table is carried over by
        interpolation in K (clamped to the old grid) as the next Euler iteration's start."""
        grid, M = self.grid, len(self.grid.K_grid)
        new = torch.linspace(K_min, K_max, M, dtype=torch.float64, device=grid.K_grid.device)
        if reinterpolate:
            z = torch.arange(2, device=new.device)[:, None].expand(2, M)
            at = new.clamp(float(grid.K_grid[0]), float(grid.K_grid[-1]))[None].expand(2, M)
            table = grid.at_K(self.policy.table, z, at).clamp_min(0.0)
        grid.K_grid, grid.dK = new, float(new[1] - new[0])
        self._cash = self._grid_cash()
        if reinterpolate:
            self.policy.table = torch.minimum(table, self._cash)

    def _coverage(self, K: np.ndarray, alm: np.ndarray) -> dict[str, Any]:
        """The simulated K range after the burn-in and the ALM's fixed points against the K grid."""
        K = K[:, self.config.burn_in :]
        lo, hi = self.K_bounds
        slack = self.config.K_tolerance * (hi - lo)
        a, b = alm[:, 0], alm[:, 1]
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            fixed = np.where(b < 1.0, np.exp(a / (1.0 - b)), np.inf)
        K_lo, K_hi = float(K.min()), float(K.max())
        off_path = K_lo < lo - slack or K_hi > hi + slack
        off_fixed = bool(((fixed < lo - slack) | (fixed > hi + slack) | ~np.isfinite(fixed)).any())
        return {"K_sim_min": K_lo, "K_sim_max": K_hi, "K_fixed_bad": float(fixed[0]), "K_fixed_good": float(fixed[1]),
                "K_grid_min": lo, "K_grid_max": hi, "K_on_grid": not (off_path or off_fixed)}

    def _describe(self, cov: dict[str, Any]) -> str:
        return (f"the simulated K after the burn-in spans [{cov['K_sim_min']:.4g}, {cov['K_sim_max']:.4g}] and the "
                f"ALM's fixed points are K*_bad = {cov['K_fixed_bad']:.4g}, K*_good = {cov['K_fixed_good']:.4g}, "
                f"against the K grid [{cov['K_grid_min']:.4g}, {cov['K_grid_max']:.4g}] (tolerance "
                f"{self.config.K_tolerance:g} of its width)")

    def _replace_K_grid(self, cov: dict[str, Any]) -> str:
        """Re-place the K grid; returns the log line. An explicit grid that the economy leaves is first replaced by
        the default placement around the steady state (what the economy does off its grid is the policy's
        extrapolation, no guide to where its solution lies); after that the grid follows the simulation: centred
        (in logs) on the simulated range and the ALM's fixed points, as wide as the default grid or 1.5 times their
        spread if wider."""
        points = [cov["K_sim_min"], cov["K_sim_max"]] + [
            f for f in (cov["K_fixed_bad"], cov["K_fixed_good"]) if math.isfinite(f) and f > 0
        ]
        lo, hi = min(points), max(points)
        default_lo, default_hi = default_K_grid(self.grid_economy)
        if not self._default_grid_tried:
            new_lo, new_hi = default_lo, default_hi
            self._default_grid_tried = True
        else:
            half = max(0.5 * math.log(default_hi / default_lo), 0.75 * math.log(hi / lo))
            centre = 0.5 * math.log(lo * hi)
            new_lo, new_hi = math.exp(centre - half), math.exp(centre + half)
        self._check_K_below_k_grids(new_lo, new_hi, GridCoverageError)
        self._set_K_grid(new_lo, new_hi)
        self.K_regrids += 1
        line = (f"ks_classical, ALM iteration {self.iterations}: {self._describe(cov)}; K grid re-placed to "
                f"[{new_lo:.4g}, {new_hi:.4g}] ({self.K_regrids} of at most {self.config.K_regrids})")
        self.regrid_log.append(line)
        warnings.warn(line, RuntimeWarning, stacklevel=4)  # the caller of train
        return line

    def _check_k_grids(self) -> None:
        """At convergence: the households' capital stayed on the individual grid (panel) or the histogram."""
        cfg = self.config
        if cfg.simulation == "panel" and self._k_top > cfg.k_max:
            raise GridCoverageError(
                f"ks_classical: households saved up to k = {self._k_top:.6g}, beyond the individual capital grid's top "
                f"k_max = {cfg.k_max:g} (the policy is extrapolated there): raise k_max")
        mass, lost = self._spill
        if cfg.simulation == "histogram" and lost > HISTOGRAM_CLIP_TOL:
            raise GridCoverageError(
                f"ks_classical: the histogram simulation moved mass {mass:.3g} beyond its top histogram_k_max = "
                f"{cfg.histogram_k_max:g}; clipped there, it lost {lost:.3g} of K in a period (more than "
                f"{HISTOGRAM_CLIP_TOL:g}): raise histogram_k_max")

    # ------------------------------------------------------------------ grid arrays
    def _grid_cash(self) -> torch.Tensor:
        """Cash on hand x(k, e; K, z) on the grid, (2, M, 2, J), with the economy's own budget equation."""
        eco, grid = self.grid_economy, self.grid
        M, J = len(grid.K_grid), len(grid.k_grid)
        z = torch.arange(2, device=eco.device)[:, None, None, None].expand(2, M, 2, J)
        K = grid.K_grid[None, :, None, None].expand(2, M, 2, J)
        e = torch.tensor([0.0, 1.0], dtype=torch.float64, device=eco.device)[None, None, :, None].expand(2, M, 2, J)
        k = grid.k_grid.expand(2, M, 2, J)
        return self._cash_at(k, e, K, z)

    def _cash_at(self, k, e, K, z) -> torch.Tensor:
        """The economy's cash on hand at capital k when aggregate capital is K (not the mean of k)."""
        return self.grid_economy.cash_on_hand_at(k, e, K, z)

    def _successors(self, alm: np.ndarray):
        """K'(z, K) from the ALM and, for the 4 successors c = (z', e'), R' (2, M, 4) and the non-capital income
        (2, M, 4) at K', plus P(z', e' | z, e) as (2, 1, 2, 4, 1)."""
        eco, grid = self.grid_economy, self.grid
        a, b = (torch.as_tensor(alm[:, i], dtype=torch.float64, device=eco.device)[:, None] for i in (0, 1))
        K_next = torch.exp(a + b * torch.log(grid.K_grid)[None, :])  # (2, M)
        zs = torch.tensor([0, 0, 1, 1], device=eco.device)
        es = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64, device=eco.device)
        K4, z4, e4 = K_next[..., None].expand(2, -1, 4), zs.expand(2, len(grid.K_grid), 4), es.expand(2, len(grid.K_grid), 4)
        R_next, _ = eco.prices(K4, z4)
        income = self._cash_at(torch.zeros_like(K4), e4, K4, z4)
        prob = eco.prob_joint.reshape(2, 2, 4)[:, None, :, :, None]
        return K_next, R_next, income, prob

    def _policy_at_successors(self, table, K_next, query) -> torch.Tensor:
        """k''(query, e'; K'(z, K), z') for every successor: table (2, M, 2, J), query (2, M, 2, J) -> (2, M, 2, 4, J)."""
        grid = self.grid
        M, J = len(grid.K_grid), len(grid.k_grid)
        zs = torch.tensor([0, 1], device=table.device)
        # table at (z', K'(z, K)): (2 z, M, 2 z', 2 e', J) -> rows per successor c = 2 z' + e'
        rows = grid.at_K(table, zs[None, None, :], K_next[..., None].expand(2, M, 2)).reshape(2, M, 1, 4, J)
        lo, w = grid.k_weights(query)  # (2, M, 2, J)
        lo, w = lo[:, :, :, None, :].expand(2, M, 2, 4, J), w[:, :, :, None, :]
        return _gather_lerp(rows.expand(2, M, 2, 4, J), lo, w)

    # ------------------------------------------------------------------ step 1: the household problem
    def solve_household(self, alm: np.ndarray) -> int:
        """Euler iteration of the policy table given the ALM; returns the number of iterations."""
        cfg, beta = self.config, self.grid_economy.params.beta
        K_next, R_next, income, prob = self._successors(alm)
        R5, inc5 = R_next[:, :, None, :, None], income[:, :, None, :, None]  # (2, M, 1, 4, 1)
        table = self.policy.table
        for it in range(1, cfg.max_policy_iterations + 1):
            k2 = self._policy_at_successors(table, K_next, table)  # (2, M, 2, 4, J)
            c_next = (R5 * table[:, :, :, None, :] + inc5 - k2).clamp_min(1e-12)
            expected = (prob * R5 / c_next).sum(-2)  # (2, M, 2, J)
            new = (self._cash - 1.0 / (beta * expected)).clamp_min(0.0)
            change = float((new - table).abs().max())
            table = cfg.policy_damping * new + (1 - cfg.policy_damping) * table
            if change < cfg.policy_tol:
                break
        self.policy.table = table
        return it

    # ------------------------------------------------------------------ step 2: the aggregate step
    def simulate(
        self,
        policy: GridPolicy | None = None,
        periods: int | None = None,
        seed: int | None = None,
        initial_k: torch.Tensor | None = None,
    ):
        """Simulate B economies with the economy's own transition on a fixed exogenous path.

        The exogenous path (z, e) depends only on the seed, so every call with the same seed replays it (common
        random numbers across ALM iterations). ``initial_k`` (B, N) replaces the initial capital.
        Returns K (B, T), z (B, T) (z_t is the state in which K_{t+1} is chosen) and the final capital (B, N)."""
        cfg, eco = self.config, self.grid_economy
        policy = policy or self.policy
        periods = periods or cfg.periods
        gen = eco.generator(cfg.seed if seed is None else seed)
        state = eco.initial_state(cfg.panel_economies, gen)
        if initial_k is not None:
            state["k"] = initial_k.to(state["k"])
        else:  # the economy's k_init, inside the K grid (the policy is not extrapolated far in K)
            state["k"] = state["k"].clamp(*self.K_bounds)
        K, z = [], []
        top = state["k"].amax()
        with torch.no_grad():
            for _ in range(periods):
                K.append(state["k"].mean(-1))
                z.append(state["z"])
                state = eco.transition(state, policy(state), eco.sample_shocks(state, gen))
                top = torch.maximum(top, state["k"].amax())
        self._k_top = float(top)
        return torch.stack(K, 1).cpu().numpy(), torch.stack(z, 1).cpu().numpy(), state["k"]

    def simulate_histogram(self, periods: int | None = None, seed: int | None = None, initial: torch.Tensor | None = None):
        """Non-stochastic simulation of a continuum of households (Young 2010; MMV's method 2).

        The cross-section is a mass m[e, j] on a uniform k grid g_j. Each period: K = Σ m·g; every mass point moves
        to k'(g_j, e; K, z) (the policy table), split between the two neighbouring grid points so that the mean
        is preserved; then e' follows P(e' | z, z', e) exactly. The aggregate shocks z_t are drawn from the Markov
        chain with ``seed``. Returns K (1, T), z (1, T) and the final mass (2, P).

        The time loop is sequential by nature, so it runs in numpy on small arrays (≈ 60 µs a period, ≈ 6× the
        same loop in torch): k' at the histogram points is tabulated once per call on each K node, (2, M, 2P), and
        each period only mixes the S nodes of K's interpolation stencil."""
        cfg, eco, grid = self.config, self.grid_economy, self.grid
        periods = periods or cfg.periods
        gen = eco.generator(cfg.seed if seed is None else seed)
        P = cfg.histogram_points
        g = np.linspace(0.0, cfg.histogram_k_max, P)
        u = torch.rand(periods, generator=gen, dtype=torch.float64, device=eco.device).cpu().numpy()
        z = int(u[0] >= eco.stationary_z[0])
        if initial is None:  # all households at k_init (inside the K grid), unemployed in proportion ur_z
            ur = float(eco.cdf_e0[z, 0])  # the economy's initial P(e = 0 | z)
            mass = np.zeros((2, P))
            k0 = min(max(eco.k_init, self.K_bounds[0]), self.K_bounds[1])
            mass[:, min(int(np.searchsorted(g, k0)), P - 1)] = (ur, 1.0 - ur)
        else:
            mass = initial.detach().cpu().numpy().astype(np.float64).copy()
        # k'(g_j, e; K_m, z) on every K node: (2 z, M, 2P), row e·P + j
        lo, w = grid.k_weights(torch.as_tensor(g, dtype=torch.float64, device=self.policy.table.device))
        nodes = _gather_lerp(self.policy.table, lo.expand(*self.policy.table.shape[:-1], -1), w)  # (2, M, 2, P)
        nodes = nodes.reshape(2, len(grid.K_grid), 2 * P).cpu().numpy()
        cond = (eco.prob_joint / eco.prob_z[:, None, :, None].clamp_min(1e-300)).cpu().numpy()  # [z, e, z', e']
        move = np.ascontiguousarray(cond.transpose(0, 2, 3, 1))  # [z, z', e', e]
        stay_bad = eco.prob_z[:, 0].cpu().numpy()
        step, top = g[1] - g[0], P - 2
        offset = np.repeat(np.array([0, P]), P)  # the e rows of the flattened (2P,) mass
        K_path, z_path = np.empty(periods), np.empty(periods, dtype=np.int64)
        spill = (0.0, 0.0)  # the most mass moved beyond the top in a period (clipped there), and its capital / K
        for t in range(periods):
            flat = mass.reshape(-1)
            K = float(mass.sum(0) @ g)
            K_path[t], z_path[t] = K, z
            idx, weights = grid.K_stencil_numpy(K)
            k_next = weights @ nodes[z, idx]  # (2P,)
            if k_next[P - 1] > cfg.histogram_k_max or k_next[-1] > cfg.histogram_k_max:  # k' increases in k
                excess = np.maximum(k_next - cfg.histogram_k_max, 0.0)
                lost = float(flat @ excess) / K
                if lost > spill[1]:
                    spill = (float(flat[excess > 0].sum()), lost)
            pos = np.clip(k_next, 0.0, cfg.histogram_k_max) / step
            j = np.minimum(pos.astype(np.int64), top)  # floor (pos ≥ 0)
            frac = pos - j
            target = j + offset
            moved = np.bincount(target, (1.0 - frac) * flat, minlength=2 * P) + np.bincount(
                target + 1, frac * flat, minlength=2 * P
            )
            z_next = int(u[t + 1] >= stay_bad[z]) if t + 1 < periods else z
            mass = move[z, z_next] @ moved.reshape(2, P)  # (2 e', 2 e) @ (2 e, P)
            z = z_next
        self._spill = spill
        final = torch.as_tensor(mass, dtype=torch.float64, device=eco.device)
        return K_path[None], z_path[None], final

    # ------------------------------------------------------------------ the fixed point
    # ``train`` (the Solver template): ALM iterations until converged, ``steps`` iterations (default
    # ``max_alm_iterations``) or ``budget`` seconds; every iteration is logged.
    def _begin(self, steps: int | None, budget: float | None) -> int | None:
        if steps is None:  # by the config's own rule: nothing more to do once converged
            return 0 if self.converged else self.config.max_alm_iterations
        return steps

    def _train_step(self) -> dict[str, Any]:
        """One ALM iteration: household problem -> panel simulation -> OLS -> damped ALM update."""
        cfg = self.config
        policy_iterations = self.solve_household(self.alm)
        if cfg.simulation == "panel":
            K, z, final_k = self.simulate(initial_k=self.panel_k)
        else:
            K, z, final_k = self.simulate_histogram(initial=self.panel_k)
        fit: ALMFit = fit_alm(K, z, burn_in=cfg.burn_in)
        change = float(np.abs(fit.coefficients - self.alm).max())
        if change > 100 * cfg.alm_tol:
            # MMV: the next panel starts from this one's terminal cross-section (the ergodic set); it is
            # held fixed once the ALM is nearly converged, so that the fixed point is one of a fixed map
            self.panel_k = final_k
        self.converged = change < cfg.alm_tol
        # at convergence the perceived ALM is the panel's OLS fit; before, a damped step towards it
        self.alm = fit.coefficients if self.converged else (
            cfg.alm_damping * fit.coefficients + (1 - cfg.alm_damping) * self.alm
        )
        self.r2, self.panel, self.iterations = fit.r2, (K, z), self.iterations + 1
        # the solution must lie on its K grid: checked once the ALM has settled (before, K paths are
        # transients of a wrong ALM); off it, the grid is re-placed (a bounded number of times) or it fails
        coverage = self._coverage(K, fit.coefficients)
        if not coverage["K_on_grid"] and (self.converged or change < SETTLED_CHANGE):
            self.converged = False
            if self.K_regrids < cfg.K_regrids:
                self._replace_K_grid(coverage)
            else:
                self._failure = GridCoverageError(
                    f"ks_classical: {self._describe(coverage)}: the solution is not on its K grid"
                    + (f" after {self.K_regrids} re-placement(s) ({cfg.K_regrids} allowed)" if cfg.K_regrids
                       else " (re-placement disabled, K_regrids = 0)")
                    + ". Place K_min/K_max around the simulated range (or leave them unset: placed from the "
                    f"steady state {aggregate_steady_state(self.grid_economy):.4g}) or allow more K_regrids."
                )
        if self.converged and policy_iterations >= cfg.max_policy_iterations:
            self.converged = False  # the household problem did not converge under this ALM: go on
        if self.converged:
            try:
                self._check_k_grids()
            except GridCoverageError as error:
                self.converged, self._failure = False, error
        return {**self._iteration_metrics(change, policy_iterations, K), **coverage, "K_regrids": self.K_regrids}

    def _done(self) -> bool:
        """Converged; a grid failure of the last iteration is raised here, once its metrics are logged."""
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure
        return self.converged

    def _end(self, done: int) -> None:
        self.value.table = self.value_table()

    _failure: GridCoverageError | None = None

    def _iteration_metrics(self, change: float, policy_iterations: int, K: np.ndarray) -> dict[str, Any]:
        (ab, bb), (ag, bg) = self.alm.tolist()
        return {
            "iteration": self.iterations, "alm_change": change, "converged": self.converged,
            "policy_iterations": policy_iterations, "a_bad": ab, "b_bad": bb, "a_good": ag, "b_good": bg,
            "r2_bad": float(self.r2[0]), "r2_good": float(self.r2[1]),
            "mean_K": float(K[:, self.config.burn_in :].mean()), "wall_time": self._elapsed(),
        }

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd.update(alm=self.alm.tolist(), r2=self.r2.tolist(), iterations=self.iterations, converged=self.converged,
                  panel_k=self.panel_k, K_grid=list(self.K_bounds), K_regrids=self.K_regrids)
        return sd

    def load_state_dict(self, state_dict) -> None:
        if "K_grid" in state_dict:  # the grid the tables were solved on (it may have been re-placed)
            self._set_K_grid(*state_dict["K_grid"], reinterpolate=False)
            self.K_regrids = int(state_dict.get("K_regrids", 0))
            self._default_grid_tried = self._default_grid_tried or self.K_regrids > 0
        super().load_state_dict(state_dict)
        self.alm, self.r2 = np.asarray(state_dict["alm"]), np.asarray(state_dict["r2"])
        self.iterations, self.converged = int(state_dict["iterations"]), bool(state_dict["converged"])
        self.panel_k = state_dict.get("panel_k")

    # ------------------------------------------------------------------ value function
    def value_table(self) -> torch.Tensor:
        """V(k, e; K, z) of the current policy under the ALM: solves V = log c + β E V' on the grid exactly.

        The grid operator is linear in V: one dense (2·M·2·J)² solve of (I − β T) V = u."""
        eco, grid, beta = self.grid_economy, self.grid, self.grid_economy.params.beta
        M, J = len(grid.K_grid), len(grid.k_grid)
        n = 2 * M * 2 * J
        K_next, _, _, prob = self._successors(self.alm)
        table = self.policy.table
        utility = torch.log((self._cash - table).clamp_min(1e-12)).reshape(n)
        # interpolation weights of V at (k'(point), e', K'(z, K), z') on the 4 neighbouring grid nodes
        idx_K, w_K = grid.K_stencil(K_next)  # (2, M, S)
        lo_k, w_k = grid.k_weights(table)  # (2, M, 2, J)
        T = torch.zeros(n, n, dtype=torch.float64, device=eco.device)
        rows = torch.arange(n, device=eco.device).reshape(2, M, 2, J)
        # 4 successors × S K-nodes × 2 k-nodes: loops over stencil entries, not over agents or grid points
        for c, (zp, ep) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            pr = prob[:, :, :, c, :].expand(2, M, 2, J)  # P(z', e' | z, e)
            for s in range(grid.K_stencil_size):
                iK, wK = idx_K[:, :, s, None, None], w_K[:, :, s, None, None]
                for dk, wk in ((0, 1 - w_k), (1, w_k)):
                    col = ((zp * M + iK) * 2 + ep) * J + (lo_k + dk)
                    T.index_put_((rows.reshape(-1), col.reshape(-1)), (pr * wK * wk).reshape(-1), accumulate=True)
        V = torch.linalg.solve(torch.eye(n, dtype=torch.float64, device=eco.device) - beta * T, utility)
        return V.reshape(2, M, 2, J)


def _gather_lerp(rows: torch.Tensor, lo: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """rows (..., J) interpolated at (lo, w) of the same leading shape (..., Q) -> (..., Q)."""
    a = rows.gather(-1, lo)
    b = rows.gather(-1, lo + 1)
    return a + w * (b - a)


def _as_float64(state: TensorDict) -> TensorDict:
    return state.apply(lambda t: t.double() if t.is_floating_point() else t)
