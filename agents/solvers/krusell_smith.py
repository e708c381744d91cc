r"""The classical Krusell–Smith algorithm (Maliar, Maliar & Valli 2010), as an in-package reference solution.

Households perceive a log-linear aggregate law of motion (ALM) per aggregate state,
:math:`\ln K' = a_z + b_z \ln K`, and solve their problem on a grid; the economy is then simulated and the ALM
re-estimated, until the perceived and the simulated laws agree.

1. **Individual problem** — Euler-equation (time) iteration on a grid k_j = k_max (j/(J−1))^p (100 points on
   [0, 1000], p = 7) × K ∈ [30, 50] (4 points) × e × z. Given the policy k'(k, e; K, z):

   .. math:: c = \Big(\beta \sum_{z', e'} P(z', e' \mid z, e)\, \frac{R(K', z')}{c'}\Big)^{-1}, \qquad
             c' = x(k', e'; K', z') - k'(k', e'; K', z'),\quad K' = e^{a_z + b_z \ln K}

   then k'_new = max(x − c, 0) (the borrowing constraint), damped: k' ← ω k'_new + (1 − ω) k' (ω = 0.7), until
   max |Δk'| < 1e-8. k'(·) off the grid is bilinear in (k, K) (linear extrapolation).
2. **Aggregate step** — simulate the economy (10,000 households, 1,100 periods, the first 100 dropped) with the
   economy's own ``transition`` on a fixed exogenous path (common random numbers across iterations), regress
   ln K_{t+1} on ln K_t per state (OLS), and update the ALM with damping 0.3 on the new estimate, until the
   coefficients change by less than 1e-8.

Everything is vectorised in torch (float64): the grid arrays are (2 z, M K, 2 e, J k), the panel (B, N).
Outputs: the ALM and its R², the interpolated policy (as the economy's action: a consumption or savings share), the
value function (policy evaluation on the grid, one dense linear solve) and the simulated panel's K path for the Den
Haan statistic (:mod:`agents.aggregate_law`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np
import torch
from tensordict import TensorDict
from torch import nn

from hetagents_env.economies.core import Economy
from hetagents_env.economies.krusell_smith import KrusellSmithEconomy

from ..aggregate_law import ALMFit, fit_alm
from ..config import Config, ConfigError, interval
from .base import Callback, Progress, Solver, check_budget, register_solver

#: Maliar, Maliar & Valli (2010), stochastic simulation, JEDC comparison-project calibration
PUBLISHED_ALM = np.array([[0.123815, 0.965565], [0.137800, 0.963238]])


@dataclasses.dataclass(frozen=True)
class ClassicalKSConfig(Config):
    """Settings of the classical algorithm (defaults: MMV 2010)."""

    k_points: int = dataclasses.field(default=100, metadata=interval(2))
    """number of individual capital grid points J"""
    k_max: float = dataclasses.field(default=1000.0, metadata=interval(0.0, open_lo=True))
    """upper end of the individual capital grid"""
    k_power: float = dataclasses.field(default=7.0, metadata=interval(1.0))
    """grid curvature p: k_j = k_max (j/(J−1))^p"""
    K_points: int = dataclasses.field(default=4, metadata=interval(2))
    """number of aggregate capital grid points M"""
    K_min: float = dataclasses.field(default=30.0, metadata=interval(0.0, open_lo=True))
    K_max: float = dataclasses.field(default=50.0, metadata=interval(0.0, open_lo=True))
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
    """upper end of the histogram's k grid (mass above it is moved to it)"""
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
        if self.K_max <= self.K_min:
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

    def __init__(self, economy: KrusellSmithEconomy, grid: GridFunction, policy: torch.Tensor) -> None:
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

    def __init__(self, economy: Economy, config: ClassicalKSConfig | dict | None = None) -> None:
        if not isinstance(economy, KrusellSmithEconomy):
            raise ValueError(f"the classical algorithm solves the Krusell-Smith economy, got {type(economy).__name__}")
        super().__init__(economy, config)
        cfg = self.config
        # the grid maths runs in float64 whatever the economy's dtype; the policy answers in the state's dtype
        self.grid_economy = economy if economy.dtype == torch.float64 else type(economy)(
            economy.n_agents, device=economy.device, dtype=torch.float64, **economy.params.to_dict()
        )
        eco = self.grid_economy
        j = torch.arange(cfg.k_points, dtype=torch.float64, device=eco.device)
        self.grid = GridFunction(
            cfg.k_max * (j / (cfg.k_points - 1)) ** cfg.k_power,
            torch.linspace(cfg.K_min, cfg.K_max, cfg.K_points, dtype=torch.float64, device=eco.device),
            cfg.K_interpolation,
        )
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
        eco, p = self.grid_economy, self.grid_economy.params
        R, w = eco.prices(K, z)
        return R * k + w * ((1.0 - eco.tax[z]) * p.lbar * e + p.mu * (1.0 - e))

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
        K, z = [], []
        with torch.no_grad():
            for _ in range(periods):
                K.append(state["k"].mean(-1))
                z.append(state["z"])
                state = eco.transition(state, policy(state), eco.sample_shocks(state, gen))
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
        z = int(u[0] >= eco.stationary_bad)
        if initial is None:  # all households at k_init, unemployed in proportion ur_z
            ur = eco.params.unemployment_rates[z]
            mass = np.zeros((2, P))
            mass[:, int(np.searchsorted(g, eco.k_init))] = (ur, 1.0 - ur)
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
        for t in range(periods):
            flat = mass.reshape(-1)
            K = float(mass.sum(0) @ g)
            K_path[t], z_path[t] = K, z
            idx, weights = grid.K_stencil_numpy(K)
            k_next = weights @ nodes[z, idx]  # (2P,)
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
        final = torch.as_tensor(mass, dtype=torch.float64, device=eco.device)
        return K_path[None], z_path[None], final

    # ------------------------------------------------------------------ the fixed point
    def train(
        self,
        steps: int | None = None,
        *,
        budget: float | None = None,
        callback: Callback | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """ALM iterations: household problem -> panel simulation -> OLS -> damped ALM update, until converged."""
        steps, budget = check_budget(steps, budget)
        cfg = self.config
        total = cfg.max_alm_iterations if steps is None else steps
        self._start_clock()
        try:
            for done in range(1, total + 1):
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
                stop = self._log(self._metrics(change, policy_iterations, K), callback)
                if progress is not None:
                    progress(done, total)
                if self.converged or stop or (budget is not None and self._elapsed() > budget):
                    break
            self.value.table = self.value_table()
        finally:
            self._stop_clock()
        self.metrics["wall_time"] = self.wall_time
        return self.metrics

    def _metrics(self, change: float, policy_iterations: int, K: np.ndarray) -> dict[str, Any]:
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
                  panel_k=self.panel_k)
        return sd

    def load_state_dict(self, state_dict) -> None:
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
