r"""The stationary Bewley–Aiyagari equilibrium without aggregate shocks, in numpy/scipy (float64).

**Households.** A continuum of households, each with assets a and productivity state e (a finite Markov chain with
levels ε_e and transition matrix P), chooses consumption c and next assets a':

.. math:: V(a, e) = \max_{c,\,a'}\ u(c) + \beta \sum_{e'} P_{ee'} V(a', e'),\qquad
          a' = (1+r)\,a + w\,\varepsilon_e - c \ \ge\ a_{\min},\qquad u(c) = \frac{c^{1-\gamma}}{1-\gamma}

(u = log c for γ = 1). The Euler equation, with equality where a' > a_min:
:math:`u'(c) \ge \beta (1+r) \sum_{e'} P_{ee'}\, u'(c(a', e'))`.

**Firm.** Cobb–Douglas Y = K^α L^{1−α}: :math:`r = \alpha (K/L)^{\alpha-1} - \delta`,
:math:`w = (1-\alpha)(K/L)^{\alpha}`, labour :math:`L = \sum_e \pi_e \varepsilon_e` (π the chain's stationary
distribution). Given r, capital demand is :math:`K_d(r) = L\,(\alpha/(r+\delta))^{1/(1-\alpha)}`.

**Household problem: the endogenous grid method** (Carroll 2006). Asset grid
:math:`a_j = a_{\min} + (a_{\max} - a_{\min})(j/(J-1))^p`, with :math:`a_{\max} - a_{\min}` = ``grid_max`` units of
mean labour income wL (so the grid scales with the wage: the problem with a_min = 0 is homogeneous in (a, w)).
Given consumption c(a, e) on the grid, for every end-of-period a'_j:

.. math:: \tilde c_{ej} = \Big(\beta (1+r) \sum_{e'} P_{ee'}\, c(a_j, e')^{-\gamma}\Big)^{-1/\gamma},\qquad
          \tilde a_{ej} = \frac{\tilde c_{ej} + a_j - w\varepsilon_e}{1+r};

a'(a, e) is the linear interpolation of a_j against ã_{e·} (extrapolated linearly above), a' = a_min below ã_{e0}
(the constraint binds), and c = (1+r)a + wε_e − a'. Iterate from c = cash − a_min until
max |Δc|/c < ``egm_tol``.

**Stationary distribution: the lottery (histogram) method** (Young 2010) on a finer grid h_m of the same form: a
household at (h_m, e) saving a' ∈ [h_k, h_{k+1}] moves to h_k with probability (h_{k+1} − a')/(h_{k+1} − h_k) and
to h_{k+1} otherwise, then draws e' from P. The invariant mass λ = λT of this sparse (n_e M)² chain comes from
inverse iteration: one sparse LU of :math:`T^\top - (1 + 10^{-10}) I` and three solves (each shrinks every other
eigen-component by ~1e-10), normalised to :math:`\sum \lambda = 1` and checked by its residual.

**Market clearing.** :math:`S(r) = \sum_{e,m} \lambda_{em} h_m` (household assets) against K_d(r): brentq on the
excess supply S(r) − K_d(r) over the bracket :math:`(-\delta + \eta, 1/\beta - 1 - \eta)` (η = ``bracket_margin``).
No sign change raises ``ValueError`` with the bracket and both ends' values. The natural borrowing limit: at every
r > 0 of the search, a_min must exceed :math:`-w\varepsilon_{\min}/r` (else ``ValueError`` naming
``borrowing_limit``). Without idiosyncratic risk (all ε equal) the equilibrium is the complete-markets one,
r = 1/β − 1, everyone holding K (reported with ``complete_markets=True``).

**Grids are never silently wrong.** Savings above a_max are moved to a_max by the lottery, so the grid's mass at
a_max measures the truncation; clamping lowers S(r), so a positive clamped excess supply is a proof of its sign. If
the mass at the top exceeds ``top_mass_tol`` where it matters (a negative clamped excess or the equilibrium
itself), ``grid_max`` is doubled and the search restarts (reported in ``notes``), or, with ``extend_grid=False``
or after ``max_grid_extensions`` doublings, ``ValueError`` names the grid and the mass.

**Statistics.** K (mean assets), r, w, Y, saving rate s = δK/Y (= αδ/(r+δ)), K/Y, wealth and consumption Gini of
the histogram (exact for a discrete distribution: the Lorenz curve is piecewise linear between its atoms), wealth
percentiles and top shares, the share at the borrowing limit. :func:`value_function` evaluates V of the EGM policy
on its grid (policy evaluation: one sparse solve). :func:`calibrate_beta` finds β such that mean assets hit a target.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import brentq
from scipy.sparse.linalg import splu, spsolve

from hetagents_env.economies.markov import stationary_distribution

from ..reference_metrics import gini  # the one Gini (weighted: of the histogram); re-exported for the benchmarks

__all__ = ["AiyagariModel", "GridSpec", "StationaryEquilibrium", "calibrate_beta", "gini", "solve_equilibrium",
           "solve_household", "value_function"]

PERCENTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


class GridTooSmall(Exception):
    """Internal: the asset grid truncates the distribution where it matters (carries the mass at the top)."""

    def __init__(self, r: float, mass: float) -> None:
        super().__init__(r, mass)
        self.r, self.mass = r, mass


@dataclasses.dataclass(frozen=True)
class AiyagariModel:
    """The calibration: preferences, technology, borrowing limit and the productivity chain (levels ε, matrix P)."""

    beta: float
    gamma: float
    alpha: float
    delta: float
    borrowing_limit: float
    productivity: np.ndarray
    transition: np.ndarray

    def __post_init__(self) -> None:
        for name, lo, hi in (("beta", 0.0, 1.0), ("alpha", 0.0, 1.0)):
            value = float(getattr(self, name))
            if not lo < value < hi:
                raise ValueError(f"parameter {name!r} = {value!r} is out of range: allowed ({lo:g}, {hi:g})")
        if not 0.0 <= float(self.delta) <= 1.0:
            raise ValueError(f"parameter 'delta' = {self.delta!r} is out of range: allowed [0, 1]")
        if not (math.isfinite(self.gamma) and self.gamma > 0.0):
            raise ValueError(f"parameter 'gamma' = {self.gamma!r} is out of range: allowed (0, inf)")
        if not math.isfinite(self.borrowing_limit):
            raise ValueError(f"parameter 'borrowing_limit' = {self.borrowing_limit!r} must be finite")
        eps = np.asarray(self.productivity, dtype=float).reshape(-1)
        if eps.size < 1 or not np.all(np.isfinite(eps)) or eps.min() <= 0.0:
            raise ValueError(f"parameter 'productivity' must be positive finite levels, got {eps.tolist()}")
        P = np.asarray(self.transition, dtype=float)
        if P.shape != (eps.size, eps.size):
            raise ValueError(f"parameter 'transition' must have shape {(eps.size, eps.size)}, got {P.shape}")
        stationary_distribution(P)  # validates P
        object.__setattr__(self, "productivity", eps)
        object.__setattr__(self, "transition", P)

    @property
    def stationary(self) -> np.ndarray:
        return stationary_distribution(self.transition)

    @property
    def labour(self) -> float:
        return float(self.stationary @ self.productivity)

    def prices(self, r: float) -> tuple[float, float]:
        """(K_d, w) at the net return r: capital demand and the wage."""
        k_over_l = (self.alpha / (r + self.delta)) ** (1.0 / (1.0 - self.alpha))
        return self.labour * k_over_l, (1.0 - self.alpha) * k_over_l**self.alpha

    def replace(self, **changes) -> "AiyagariModel":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class GridSpec:
    """Numerical settings (see the module docstring)."""

    asset_points: int = 400
    asset_power: float = 3.0
    grid_max: float = 100.0
    histogram_points: int = 1000
    histogram_power: float = 2.0
    egm_tol: float = 1e-11
    max_egm_iterations: int = 50_000
    bracket_margin: float = 1e-6
    r_tol: float = 1e-11
    top_mass_tol: float = 1e-8
    extend_grid: bool = True
    max_grid_extensions: int = 5


# ---------------------------------------------------------------------------------------------- household problem
def curved_grid(lo: float, hi: float, points: int, power: float) -> np.ndarray:
    return lo + (hi - lo) * np.linspace(0.0, 1.0, points) ** power


def interp_rows(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Row-wise linear interpolation with linear extrapolation at both ends: x (Q,) or (R, Q) queries, xp (R, K)
    increasing rows, fp (K,) or (R, K) values -> (R, Q). One searchsorted for all rows (rows offset apart)."""
    R, K = xp.shape
    x = np.broadcast_to(x, (R, x.shape[-1]))
    lo_v = min(xp.min(), x.min())
    scale = max(xp.max(), x.max()) - lo_v
    scale = scale if scale > 0.0 else 1.0
    offset = 4.0 * np.arange(R)[:, None]
    pos = np.searchsorted(((xp - lo_v) / scale + offset).ravel(), ((x - lo_v) / scale + offset).ravel())
    base = K * np.arange(R)[:, None]
    hi = (pos.reshape(R, -1) - base).clip(1, K - 1) + base
    lo = hi - 1
    xpf = xp.ravel()
    fpf = np.broadcast_to(fp, (R, K)).ravel() if fp.ndim == 2 else np.tile(fp, R)
    x_lo = xpf[lo]
    return fpf[lo] + (x - x_lo) / (xpf[hi] - x_lo) * (fpf[hi] - fpf[lo])


def savings_at(query: np.ndarray, a_endo: np.ndarray, assets: np.ndarray, a_min: float) -> np.ndarray:
    """a'(query, e) (n_e, Q) from the EGM's endogenous grid: a_j against ã_{e·}; a_min where the constraint binds."""
    return np.maximum(interp_rows(query, a_endo, assets), a_min)


def _egm_step(c, model: AiyagariModel, r, w, assets):
    gamma = model.gamma
    emu = model.transition @ c ** (-gamma)
    c_endo = (model.beta * (1.0 + r) * emu) ** (-1.0 / gamma)
    a_endo = (c_endo + assets[None, :] - w * model.productivity[:, None]) / (1.0 + r)
    cash = (1.0 + r) * assets[None, :] + w * model.productivity[:, None]
    return cash - savings_at(assets, a_endo, assets, model.borrowing_limit), a_endo


def solve_household(model: AiyagariModel, r: float, w: float, assets: np.ndarray, c0: np.ndarray | None = None,
                    tol: float = 1e-11, max_iterations: int = 50_000):
    """EGM at prices (r, w) on ``assets`` (J,): returns (c (n_e, J), ã (n_e, J), iterations)."""
    cash = (1.0 + r) * assets[None, :] + w * model.productivity[:, None]
    c = cash - model.borrowing_limit if c0 is None else c0
    for it in range(1, max_iterations + 1):
        c_new, a_endo = _egm_step(c, model, r, w, assets)
        if not np.all(c_new > 0.0):
            raise ValueError(f"EGM produced non-positive consumption at r = {r:.6g}: is borrowing_limit = "
                             f"{model.borrowing_limit} inside the natural borrowing limit?")
        change = float(np.max(np.abs(c_new - c) / c_new))
        c = c_new
        if change < tol:
            return c, a_endo, it
    raise ValueError(f"EGM did not converge in {max_iterations} iterations at r = {r:.6g} (last change {change:.3g})")


# ---------------------------------------------------------------------------------------------- distribution
def lottery(savings: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Young (2010): for a' (n_e, M) the lower node k (n_e, M) and the weight on k + 1 (a' clipped to the grid)."""
    ap = np.clip(savings, grid[0], grid[-1])
    k = (np.searchsorted(grid, ap, side="right") - 1).clip(0, len(grid) - 2)
    return k, (ap - grid[k]) / (grid[k + 1] - grid[k])


def invariant_mass(savings: np.ndarray, grid: np.ndarray, P: np.ndarray) -> np.ndarray:
    """The invariant mass (n_e, M) of the lottery chain: one sparse LU solve."""
    n_e, M = savings.shape
    n = n_e * M
    k, wt = lottery(savings, grid)
    src = np.arange(n).reshape(n_e, M)
    rows = np.broadcast_to(src[:, :, None, None], (n_e, M, n_e, 2))
    nxt = np.arange(n_e)[None, None, :, None] * M + k[:, :, None, None] + np.array([0, 1])
    vals = P[:, None, :, None] * np.stack([1.0 - wt, wt], axis=-1)[:, :, None, :]
    T = sp.csr_matrix((vals.ravel(), (rows.ravel(), nxt.ravel())), shape=(n, n))
    # inverse iteration with the shift 1 + 1e-10: one sparse LU, each solve multiplies the error by ~1e-10
    lu = splu((T.T - (1.0 + 1e-10) * sp.identity(n, format="csr")).tocsc(), permc_spec="COLAMD")
    mass = np.full(n, 1.0 / n)
    for _ in range(3):
        mass = lu.solve(mass)
        mass /= mass.sum()
    mass = np.clip(mass, 0.0, None)
    residual = float(np.abs(T.T @ mass - mass).max()) / float(mass.max())
    if not np.isfinite(residual) or residual > 1e-9:
        raise ValueError(f"the invariant distribution of the lottery chain did not solve (residual {residual:.3g})")
    return (mass / mass.sum()).reshape(n_e, M)


# ---------------------------------------------------------------------------------------------- statistics
def lorenz(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Population shares and cumulative value shares (both from 0) of a discrete distribution."""
    v, m = np.asarray(values, float).ravel(), np.asarray(weights, float).ravel()
    order = np.argsort(v, kind="stable")
    v, m = v[order], m[order] / m.sum()
    return np.concatenate([[0.0], np.cumsum(m)]), np.concatenate([[0.0], np.cumsum(m * v)]) / np.sum(m * v)


def percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The q-quantile of a discrete distribution: the smallest atom with cumulative weight ≥ q."""
    v, m = np.asarray(values, float).ravel(), np.asarray(weights, float).ravel()
    order = np.argsort(v, kind="stable")
    cum = np.cumsum(m[order]) / m.sum()
    return float(v[order][min(np.searchsorted(cum, q - 1e-12), len(cum) - 1)])


# ---------------------------------------------------------------------------------------------- equilibrium
@dataclasses.dataclass
class StationaryEquilibrium:
    """The solution: prices, aggregates, inequality statistics, the EGM policy and the invariant histogram."""

    model: AiyagariModel
    spec: GridSpec
    r: float
    w: float
    assets: np.ndarray  # (J,) EGM grid of beginning-of-period assets
    consumption: np.ndarray  # (n_e, J) c(a_j, e)
    grid: np.ndarray  # (M,) histogram grid
    mass: np.ndarray  # (n_e, M) invariant mass at (e, h_m)
    savings: np.ndarray  # (n_e, M) a'(h_m, e) (clipped to the grid)
    grid_max: float
    top_mass: float
    egm_iterations: int
    evaluations: int
    seconds: float = 0.0
    complete_markets: bool = False
    notes: list[str] = dataclasses.field(default_factory=list)
    beta_calibration: dict[str, Any] | None = None

    @property
    def K(self) -> float:
        return float(np.sum(self.mass * self.grid))

    @property
    def L(self) -> float:
        return self.model.labour

    @property
    def Y(self) -> float:
        return self.K**self.model.alpha * self.L ** (1.0 - self.model.alpha)

    @property
    def saving_rate(self) -> float:
        return self.model.delta * self.K / self.Y

    @property
    def histogram_consumption(self) -> np.ndarray:
        cash = (1.0 + self.r) * self.grid[None, :] + self.w * self.model.productivity[:, None]
        return cash - self.savings

    def statistics(self) -> dict[str, Any]:
        wealth = np.broadcast_to(self.grid, self.mass.shape)
        pop, share = lorenz(wealth, self.mass)
        top = {f"top_{int(round(q * 100))}pct_wealth_share": float(1.0 - np.interp(1.0 - q, pop, share))
               for q in (0.01, 0.1)}
        return {
            "beta": self.model.beta, "r": self.r, "r_pct": 100.0 * self.r, "w": self.w, "K": self.K, "L": self.L,
            "Y": self.Y, "K_over_Y": self.K / self.Y, "saving_rate": self.saving_rate,
            "saving_rate_pct": 100.0 * self.saving_rate,
            "excess_supply": self.K - self.model.prices(self.r)[0],
            "wealth_gini": gini(wealth, self.mass),
            "consumption_gini": gini(self.histogram_consumption, self.mass),
            "wealth_percentiles": {f"p{int(round(q * 100))}": percentile(wealth, self.mass, q) for q in PERCENTILES},
            **top,
            "constrained_share": float(self.mass[:, 0].sum()),
            "top_mass": self.top_mass, "grid_max": self.grid_max, "a_max": float(self.grid[-1]),
            "asset_points": len(self.assets), "histogram_points": len(self.grid),
            "egm_iterations": self.egm_iterations, "evaluations": self.evaluations, "seconds": self.seconds,
            "complete_markets": self.complete_markets, "notes": list(self.notes),
            **({"beta_calibration": self.beta_calibration} if self.beta_calibration else {}),
        }


class _Economy:
    """The household side at one calibration and grid size: S(r) with warm starts and the grid guard."""

    def __init__(self, model: AiyagariModel, spec: GridSpec, grid_max: float) -> None:
        self.model, self.spec, self.grid_max = model, spec, grid_max
        self.c_guess: tuple[float, np.ndarray] | None = None  # (w, c) of the last solve, for warm starts
        self.evaluations = self.egm_iterations = 0
        self.cache: dict[float, dict[str, Any]] = {}

    def grids(self, w: float) -> tuple[np.ndarray, np.ndarray]:
        s, a_min = self.spec, self.model.borrowing_limit
        top = a_min + self.grid_max * w * self.model.labour
        return (curved_grid(a_min, top, s.asset_points, s.asset_power),
                curved_grid(a_min, top, s.histogram_points, s.histogram_power))

    def check_borrowing_limit(self, r: float, w: float) -> None:
        a_min = self.model.borrowing_limit
        if r > 0.0:
            natural = -w * self.model.productivity.min() / r
            if a_min <= natural:
                raise ValueError(
                    f"parameter 'borrowing_limit' = {a_min!r} is out of range at r = {r:.6g} (w = {w:.6g}): allowed "
                    f"({natural:.6g}, inf), above the natural borrowing limit -w·min(ε)/r")

    def solve(self, r: float) -> dict[str, Any]:
        r = float(r)
        if r not in self.cache:
            self.cache = {**dict(list(self.cache.items())[-3:]), r: self._solve(r)}  # the 4 latest r
        return self.cache[r]

    def _solve(self, r: float) -> dict[str, Any]:
        m, s = self.model, self.spec
        K_d, w = m.prices(r)
        self.check_borrowing_limit(r, w)
        assets, hist = self.grids(w)
        c0 = None if self.c_guess is None else self.c_guess[1] * (w / self.c_guess[0])
        try:
            c, a_endo, its = solve_household(m, r, w, assets, c0, s.egm_tol, s.max_egm_iterations)
        except ValueError:
            if c0 is None:
                raise
            c, a_endo, its = solve_household(m, r, w, assets, None, s.egm_tol, s.max_egm_iterations)
        self.c_guess = (w, c)
        savings = np.minimum(savings_at(hist, a_endo, assets, m.borrowing_limit), hist[-1])
        mass = invariant_mass(savings, hist, m.transition)
        self.evaluations += 1
        self.egm_iterations += its
        supply = float(np.sum(mass * hist))
        return {"r": r, "w": w, "assets": assets, "c": c, "grid": hist, "mass": mass, "savings": savings,
                "excess": supply - K_d, "top_mass": float(mass[:, -1].sum())}

    def excess(self, r: float) -> float:
        out = self.solve(r)
        if out["excess"] < 0.0 and out["top_mass"] > self.spec.top_mass_tol:
            raise GridTooSmall(r, out["top_mass"])  # the clamped supply is only a lower bound here
        return out["excess"]


def _complete_markets(model: AiyagariModel, spec: GridSpec, start: float) -> StationaryEquilibrium:
    r = 1.0 / model.beta - 1.0
    K, w = model.prices(r)
    eco = _Economy(model, spec, spec.grid_max)
    eco.check_borrowing_limit(r, w)
    assets, hist = eco.grids(w)
    c = r * assets[None, :] + w * model.productivity[:, None]  # keeps a constant
    savings = np.broadcast_to(hist, (len(model.productivity), len(hist))).copy()
    k, wt = lottery(np.full((1, 1), K), hist)
    mass = np.zeros((len(model.productivity), len(hist)))
    mass[:, k[0, 0]] += (1.0 - wt[0, 0]) * model.stationary
    mass[:, k[0, 0] + 1] += wt[0, 0] * model.stationary
    note = "no idiosyncratic risk (all productivity levels equal): complete markets, r = 1/beta - 1, everyone holds K"
    return StationaryEquilibrium(model, spec, r, w, assets, c, hist, mass, savings, spec.grid_max, 0.0, 0, 0,
                                 time.perf_counter() - start, True, [note])


def solve_equilibrium(model: AiyagariModel, spec: GridSpec | None = None) -> StationaryEquilibrium:
    """The stationary equilibrium of ``model`` (see the module docstring); raises ``ValueError`` if none is found."""
    spec = spec or GridSpec()
    start = time.perf_counter()
    if np.ptp(model.productivity) == 0.0:
        return _complete_markets(model, spec, start)
    lo, hi = -model.delta + spec.bracket_margin, 1.0 / model.beta - 1.0 - spec.bracket_margin
    if not lo < hi:
        raise ValueError(f"the bracket ({lo:.6g}, {hi:.6g}) for r is empty: bracket_margin = {spec.bracket_margin} "
                         f"must be below (1/beta - 1 + delta)/2")
    grid_max, notes = spec.grid_max, []
    for extension in range(spec.max_grid_extensions + 1):
        eco = _Economy(model, spec, grid_max)
        try:
            f_lo, f_hi = eco.excess(lo), eco.excess(hi)
            if f_lo > 0.0 or f_hi < 0.0:
                raise ValueError(
                    f"no stationary equilibrium in the bracket r in ({lo:.6g}, {hi:.6g}): excess asset supply "
                    f"S(r) - K_d(r) = {f_lo:.6g} at r = {lo:.6g} and {f_hi:.6g} at r = {hi:.6g} (no sign change)")
            r = brentq(eco.excess, lo, hi, xtol=spec.r_tol, rtol=4 * np.finfo(float).eps, maxiter=200)
            out = eco.solve(r)
            if out["top_mass"] > spec.top_mass_tol:
                raise GridTooSmall(r, out["top_mass"])
        except GridTooSmall as err:
            where = (f"asset grid [{model.borrowing_limit:g}, a_min + {grid_max:g} wL] holds mass {err.mass:.3g} at "
                     f"its top a_max (tolerance top_mass_tol = {spec.top_mass_tol:g}) at r = {err.r:.6g}")
            if not spec.extend_grid or extension == spec.max_grid_extensions:
                raise ValueError(f"{where}: the distribution is off the grid; raise grid_max") from None
            notes.append(f"{where}: grid_max doubled to {2 * grid_max:g}")
            grid_max *= 2.0
            continue
        return StationaryEquilibrium(model, spec, r, out["w"], out["assets"], out["c"], out["grid"], out["mass"],
                                     out["savings"], grid_max, out["top_mass"], eco.egm_iterations, eco.evaluations,
                                     time.perf_counter() - start, False, notes)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------- value function
def utility(c: np.ndarray, gamma: float) -> np.ndarray:
    return np.log(c) if gamma == 1.0 else c ** (1.0 - gamma) / (1.0 - gamma)


def value_function(eq: StationaryEquilibrium, c_min: float = 0.0) -> np.ndarray:
    """V(a_j, e) (n_e, J) of the equilibrium's EGM policy: V = u(c) + β P-expectation of V at a' (linear in a on
    the EGM grid, a' clamped to it), solved exactly as one sparse system (I − βT)V = u."""
    m, a = eq.model, eq.assets
    n_e, J = eq.consumption.shape
    c = np.maximum(eq.consumption, max(c_min, 1e-300))
    cash = (1.0 + eq.r) * a[None, :] + eq.w * m.productivity[:, None]
    k, wt = lottery(cash - eq.consumption, a)
    n = n_e * J
    rows = np.broadcast_to(np.arange(n).reshape(n_e, J)[:, :, None, None], (n_e, J, n_e, 2))
    cols = np.arange(n_e)[None, None, :, None] * J + k[:, :, None, None] + np.array([0, 1])
    vals = m.transition[:, None, :, None] * np.stack([1.0 - wt, wt], axis=-1)[:, :, None, :]
    T = sp.csr_matrix((vals.ravel(), (rows.ravel(), cols.ravel())), shape=(n, n))
    V = spsolve((sp.identity(n, format="csc") - m.beta * T).tocsc(), utility(c, m.gamma).ravel())
    return V.reshape(n_e, J)


# ---------------------------------------------------------------------------------------------- calibration
def calibrate_beta(target_assets: float, model: AiyagariModel, spec: GridSpec | None = None,
                   beta_min: float = 0.5) -> StationaryEquilibrium:
    """β such that the stationary equilibrium's mean assets equal ``target_assets`` (``model.beta`` is ignored).

    The target pins the equilibrium prices: K/L = target/L gives r* and w*; brentq then finds β on
    (``beta_min``, 1/(1+r*) − η) where the households' asset supply S(r*; β) equals the target. The equilibrium is
    then re-solved at that β (market clearing by brentq in r, as :func:`solve_equilibrium`) and returned, with the
    calibration in ``beta_calibration``."""
    spec = spec or GridSpec()
    start = time.perf_counter()
    L = model.labour
    k_over_l = float(target_assets) / L
    r = model.alpha * k_over_l ** (model.alpha - 1.0) - model.delta
    hi = 1.0 / (1.0 + r) - spec.bracket_margin
    grid_max = spec.grid_max
    for extension in range(spec.max_grid_extensions + 1):
        eco = _Economy(model, spec, grid_max)  # one household side across β: warm-started EGM
        try:
            def gap(beta: float) -> float:
                eco.model, eco.cache = model.replace(beta=beta), {}
                out = eco.solve(r)
                if out["excess"] < 0.0 and out["top_mass"] > spec.top_mass_tol:
                    raise GridTooSmall(r, out["top_mass"])
                return out["excess"]  # S(r*; β) − K_d(r*) = S − target

            g_lo, g_hi = gap(beta_min), gap(hi)
            if g_lo > 0.0 or g_hi < 0.0:
                raise ValueError(f"target_assets = {target_assets} is not reached for beta in ({beta_min}, {hi:.6g}):"
                                 f" S - target = {g_lo:.6g} and {g_hi:.6g} at the ends (r* = {r:.6g})")
            beta = brentq(gap, beta_min, hi, xtol=1e-12, maxiter=200)
            break
        except GridTooSmall:
            if not spec.extend_grid or extension == spec.max_grid_extensions:
                raise ValueError(f"asset grid too small for target_assets = {target_assets}; raise grid_max") from None
            grid_max *= 2.0
    eq = solve_equilibrium(model.replace(beta=beta), dataclasses.replace(spec, grid_max=grid_max))
    eq.beta_calibration = {"target_assets": float(target_assets), "beta": beta, "r_target": r,
                           "beta_bracket": [beta_min, hi], "seconds": time.perf_counter() - start}
    return eq
