r"""The stationary Bewley–Aiyagari equilibrium as a registered solver (``"aiyagari_stationary"``): the classical
reference solution of an Aiyagari economy without aggregate shocks.

The numerics (EGM household problem, Young's lottery histogram, brentq market clearing in r, the grid guard, β
calibration, statistics) are in :mod:`agents.solvers.aiyagari_equilibrium`, whose docstring has the maths. This
module reads the calibration from the economy (``params.beta``, ``gamma``, ``alpha``, ``delta``,
``borrowing_limit``, ``c_min``, ``action``; ``productivity`` (n_e,) and ``idiosyncratic_transition`` (1, n_e, n_e))
and exposes the solution through the :class:`~agents.solvers.base.Solver` interface:

* ``policy(state)`` — the economy's action (B, N): the share of spendable resources x − a̲ consumed (or saved, per
  ``params.action``), :math:`s = c(k, e)/(x - \underline a)` with :math:`x = (1+r)k + w\varepsilon_e` at the
  *equilibrium* prices (r, w) — the stationary reference, not prices from the state's K — and c(k, e) linear in k
  on the EGM grid (extrapolated linearly above it);
* ``value(state)`` — V(k, e) of that policy (policy evaluation on the EGM grid), linear in k, (B, N);
* ``distribution`` — the invariant histogram (grid (M,), mass (n_e, M)); ``sample_state(B, generator)`` draws
  economy states whose N households are i.i.d. from it (reference test states for the judge);
* ``equilibrium`` — the full :class:`~agents.solvers.aiyagari_equilibrium.StationaryEquilibrium`, ``statistics``
  its summary (r, w, K, saving rate, Ginis, percentiles, …).

``train()`` solves once (``steps``/``budget`` only as the Solver contract: ``steps=0`` solves nothing). With
``target_assets`` set in the config, β is calibrated first (:func:`~agents.solvers.aiyagari_equilibrium.calibrate_beta`)
and the solution is the one at the calibrated β (``metrics["beta"]``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict
from torch import nn

from hetagents_env.economies.core import Economy

from ..config import Config, interval
from .aiyagari_equilibrium import (
    AiyagariModel, GridSpec, StationaryEquilibrium, calibrate_beta, curved_grid, solve_equilibrium, utility,
    value_function,
)
from .base import Solver
from .registry import register_solver

_NEEDS = ("productivity", "idiosyncratic_transition")


@dataclasses.dataclass(frozen=True)
class AiyagariStationaryConfig(Config):
    """Numerical settings of the stationary solution (see :mod:`agents.solvers.aiyagari_equilibrium`)."""

    asset_points: int = dataclasses.field(default=400, metadata=interval(4))
    """points J of the EGM asset grid a_j = a̲ + (a_max − a̲)(j/(J−1))^p"""
    asset_power: float = dataclasses.field(default=3.0, metadata=interval(1.0))
    """curvature p of the EGM grid"""
    grid_max: float = dataclasses.field(default=100.0, metadata=interval(0.0, open_lo=True))
    """a_max − a̲ in units of mean labour income w·L (the grids scale with the wage)"""
    histogram_points: int = dataclasses.field(default=1000, metadata=interval(4))
    """points M of the histogram grid (same form)"""
    histogram_power: float = dataclasses.field(default=2.0, metadata=interval(1.0))
    egm_tol: float = dataclasses.field(default=1e-11, metadata=interval(0.0, open_lo=True))
    """stop the EGM when max |Δc|/c is below this"""
    max_egm_iterations: int = dataclasses.field(default=50_000, metadata=interval(1))
    bracket_margin: float = dataclasses.field(default=1e-6, metadata=interval(0.0, open_lo=True))
    """η of the brentq bracket (−δ + η, 1/β − 1 − η) for r"""
    r_tol: float = dataclasses.field(default=1e-11, metadata=interval(0.0, open_lo=True))
    top_mass_tol: float = dataclasses.field(default=1e-8, metadata=interval(0.0, open_lo=True))
    """largest mass allowed at the top of the asset grid"""
    extend_grid: bool = True
    """double grid_max (and say so in ``notes``) when the distribution reaches the top; False: raise"""
    max_grid_extensions: int = dataclasses.field(default=5, metadata=interval(0))
    target_assets: float | None = dataclasses.field(default=None, metadata=interval(0.0, open_lo=True))
    """calibrate β so that mean assets equal this (None: the economy's β)"""
    beta_min: float = dataclasses.field(default=0.5, metadata=interval(0.0, 1.0, open_lo=True, open_hi=True))
    """lower end of the β bracket of the calibration"""

    def grid_spec(self) -> GridSpec:
        names = {f.name for f in dataclasses.fields(GridSpec)}
        return GridSpec(**{k: v for k, v in self.to_dict().items() if k in names})


@dataclasses.dataclass(frozen=True)
class StationaryDistribution:
    """The invariant histogram: mass (n_e, M) at (productivity state e, asset grid point m)."""

    grid: np.ndarray
    mass: np.ndarray
    productivity: np.ndarray


class _GridTable(nn.Module):
    """A table f(a, e) (n_e, J) on the asset grid (J,), evaluated at (k, e) of any shape: linear in k, constant
    below the grid's start, extrapolated linearly above its end."""

    def __init__(self, assets: torch.Tensor, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("assets", assets)
        self.register_buffer("table", table)

    def lookup(self, k: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        a, J = self.assets, self.assets.shape[0]
        k = k.to(a.dtype)
        hi = torch.searchsorted(a, k.contiguous()).clamp(1, J - 1)
        lo = hi - 1
        t = ((k - a[lo]) / (a[hi] - a[lo])).clamp_min(0.0)
        flat = self.table.reshape(-1)
        row = e.long() * J
        f_lo, f_hi = flat[row + lo], flat[row + hi]
        return f_lo + t * (f_hi - f_lo)


class StationaryPolicy(_GridTable):
    """The stationary solution as the economy's action: state -> (B, N) consumption (or savings) share."""

    def __init__(self, assets, consumption, prices, productivity, borrowing_limit: float, action: str) -> None:
        super().__init__(assets, consumption)
        self.register_buffer("prices", prices)  # (r, w)
        self.register_buffer("productivity", productivity)
        self.borrowing_limit, self.action = float(borrowing_limit), action

    def consumption(self, state: TensorDict) -> torch.Tensor:
        """c(k, e) (B, N) in float64."""
        return self.lookup(state["k"], state["e"])

    def spendable(self, state: TensorDict) -> torch.Tensor:
        """x − a̲ = (1 + r) k + w ε_e − a̲ at the equilibrium prices, (B, N) in float64."""
        r, w = self.prices[0], self.prices[1]
        k = state["k"].to(self.prices.dtype)
        return (1.0 + r) * k + w * self.productivity[state["e"].long()] - self.borrowing_limit

    def forward(self, state: TensorDict) -> torch.Tensor:
        spend = self.spendable(state)
        share = torch.where(spend > 0, self.consumption(state) / spend.clamp_min(1e-300), torch.ones_like(spend))
        share = share.clamp(0.0, 1.0)
        if self.action == "savings_share":
            share = 1.0 - share
        return share.to(state["k"].dtype)


class StationaryValue(_GridTable):
    """V(k, e) of the stationary policy: state -> (B, N)."""

    def forward(self, state: TensorDict) -> torch.Tensor:
        return self.lookup(state["k"], state["e"]).to(state["k"].dtype)


def model_of(economy: Economy) -> AiyagariModel:
    """The stationary model of an economy without aggregate risk: its preferences, technology, borrowing limit and
    productivity chain (levels ``economy.productivity``, matrix ``economy.idiosyncratic_transition[0]``)."""
    p = economy.params
    return AiyagariModel(beta=p.beta, gamma=p.gamma, alpha=p.alpha, delta=p.delta, borrowing_limit=p.borrowing_limit,
                         productivity=np.asarray(economy.productivity, dtype=float),
                         transition=np.asarray(economy.idiosyncratic_transition, dtype=float)[0])


@register_solver("aiyagari_stationary")
class AiyagariStationarySolver(Solver):
    """The stationary equilibrium of an Aiyagari economy without aggregate shocks (see the module docstring)."""

    Config = AiyagariStationaryConfig
    progress_metrics = ("r", "K")
    requires = _NEEDS + (("no aggregate shock (one aggregate state; e.g. Aiyagari-v0 with aggregate_shock='none')",
                          lambda eco: eco.aggregate_states <= 1),)

    def __init__(self, economy: Economy, config: AiyagariStationaryConfig | dict | None = None) -> None:
        super().__init__(economy, config)  # checks ``requires``: an economy with aggregate shocks is refused there
        self.model = model_of(economy)
        self.equilibrium: StationaryEquilibrium | None = None
        self.distribution: StationaryDistribution | None = None
        self.statistics: dict[str, Any] = {}
        self._set_tables(*self._complete_markets_tables())

    # ------------------------------------------------------------------ tables
    def _complete_markets_tables(self):
        """Before training: hold assets constant at the complete-markets prices (c = r a + w ε, V = u(c)/(1 − β))."""
        m, cfg = self.model, self.config
        r = 1.0 / m.beta - 1.0
        _, w = m.prices(r)
        assets = curved_grid(m.borrowing_limit, m.borrowing_limit + cfg.grid_max * w * m.labour, cfg.asset_points,
                             cfg.asset_power)
        c = r * assets[None, :] + w * m.productivity[:, None]
        c = np.maximum(c, self.economy.params.c_min)
        return assets, c, r, w, utility(c, m.gamma) / (1.0 - m.beta)

    def _set_tables(self, assets, consumption, r, w, value) -> None:
        dev = self.economy.device
        t = lambda x: torch.as_tensor(np.asarray(x, dtype=float), dtype=torch.float64, device=dev)  # noqa: E731
        p = self.economy.params
        self.policy = StationaryPolicy(t(assets), t(consumption), t([r, w]), t(self.model.productivity),
                                       p.borrowing_limit, getattr(p, "action", "consumption_share"))
        self.value = StationaryValue(t(assets), t(value))

    # ------------------------------------------------------------------ solve
    # ``train`` (the Solver template) solves once: one step (``steps=0`` solves nothing)
    def _begin(self, steps: int | None, budget: float | None) -> int | None:
        return 0 if steps == 0 else 1

    def _train_step(self) -> dict[str, Any]:
        """Solve the stationary equilibrium (β calibrated first if ``target_assets`` is set)."""
        cfg = self.config
        spec = cfg.grid_spec()
        if cfg.target_assets is not None:
            eq = calibrate_beta(cfg.target_assets, self.model, spec, beta_min=cfg.beta_min)
        else:
            eq = solve_equilibrium(self.model, spec)
        self.equilibrium = eq
        V = value_function(eq, c_min=self.economy.params.c_min)
        self._set_tables(eq.assets, eq.consumption, eq.r, eq.w, V)
        self.distribution = StationaryDistribution(eq.grid, eq.mass, eq.model.productivity)
        self.statistics = eq.statistics()
        return self._metrics()

    def _metrics(self) -> dict[str, Any]:
        s = self.statistics
        scalars = {k: v for k, v in s.items() if isinstance(v, (int, float, bool)) and not isinstance(v, dict)}
        scalars.update({f"wealth_{k}": v for k, v in s["wealth_percentiles"].items()})
        return {"iteration": 1, "converged": True, **scalars, "notes": "; ".join(s["notes"]),
                "wall_time": self._elapsed()}

    # ------------------------------------------------------------------ reference states
    def sample_state(self, batch_size: int, generator: torch.Generator | None = None) -> TensorDict:
        """Economy states (batch ``batch_size``) whose N households are i.i.d. draws (e, k) from the invariant
        histogram (the economy's own initial state with "k" and "e" replaced)."""
        if self.distribution is None:
            raise RuntimeError("call train() first: the stationary distribution is not solved yet")
        eco = self.economy
        state = eco.initial_state(batch_size, generator)
        mass = torch.as_tensor(self.distribution.mass.reshape(-1), dtype=torch.float64, device=eco.device)
        draws = torch.multinomial(mass, batch_size * eco.n_agents, replacement=True, generator=generator)
        M = self.distribution.grid.shape[0]
        grid = torch.as_tensor(self.distribution.grid, dtype=eco.dtype, device=eco.device)
        state["k"] = grid[draws % M].reshape(batch_size, eco.n_agents)
        state["e"] = (draws // M).to(eco.dtype).reshape(batch_size, eco.n_agents)
        return state

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["statistics"] = self.statistics
        if self.distribution is not None:
            # tensors, not numpy arrays: a checkpoint must load with torch.load(weights_only=True)
            sd["distribution"] = {"grid": torch.as_tensor(self.distribution.grid).clone(),
                                  "mass": torch.as_tensor(self.distribution.mass).clone()}
        return sd

    def load_state_dict(self, state_dict) -> None:
        self._load_run(state_dict)
        pol, val = state_dict["policy"], state_dict["value"]
        r, w = (float(x) for x in pol["prices"])
        self._set_tables(pol["assets"].cpu().numpy(), pol["table"].cpu().numpy(), r, w, val["table"].cpu().numpy())
        self.statistics = dict(state_dict.get("statistics", {}))
        dist = state_dict.get("distribution")
        self.distribution = None if dist is None else StationaryDistribution(
            _numpy(dist["grid"]), _numpy(dist["mass"]), self.model.productivity)


def _numpy(value) -> np.ndarray:
    """A checkpoint's array (a tensor; an ndarray from an in-memory state dict) as a float64 numpy array."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)
