r"""The N-household Bewley–Aiyagari economy, with optional aggregate risk (Aiyagari 1994; Dávila, Hong, Krusell &
Ríos-Rull 2012 as solved by DeepHAM).

Model (one economy; all B economies at once in the code; the equations are the household machinery of
:mod:`hetagents_env.economies.households`, with the numbers below):

* N households with assets :math:`k_i \ge \underline a` (``borrowing_limit``) and labour productivity
  :math:`\varepsilon_{e_i}`, e a finite Markov chain: given as levels + matrix (``productivity``,
  ``productivity_transition``), or a log AR(1) :math:`y' = \rho y + \sqrt{1-\rho^2}\,\sigma\,\eta` (σ the
  *unconditional* sd, as Aiyagari) discretised into ``n_states`` points by Rouwenhorst or Tauchen
  (:mod:`hetagents_env.economies.markov`), levels :math:`e^{y}` normalised to a stationary mean of 1.
* Aggregate productivity :math:`Z \in \{1 - \Delta, 1 + \Delta\}` (``tfp_shock`` Δ), a symmetric two-state chain
  staying with probability ``z_persistence`` (DeepHAM: Krusell–Smith's 0.875), or none (``aggregate_shock="none"``:
  Z ≡ 1, the stationary economy). ``"ias"``: idiosyncratic risk independent of Z; ``"cis"``: countercyclical
  idiosyncratic risk, :math:`P(e' \mid e, z')` from one matrix per NEW aggregate state z'
  (``productivity_transition_bad`` / ``_good``).
* Firm: :math:`R = 1 - \delta + Z\alpha(K/L_z)^{\alpha-1}`, :math:`w = Z(1-\alpha)(K/L_z)^{\alpha}` (r = R − 1
  is Aiyagari's net return), with :math:`L_z = E[\varepsilon \mid z] = \sum_e \pi(e \mid z)\,\varepsilon_e` the
  theoretical labour supply: π the stationary distribution of the joint chain of (z, e), so that prices depend on
  the asset distribution only (one L without aggregate risk, the stationary mean of ε). Unlike Krusell–Smith's
  matrix, CIS's does not make the cross-section of e jump with z: the realised mean productivity of N households
  drifts around L_z (for dhkr2012 at N = 100 about ±19 % from the 46.55 top state), and with CIS L_z differs
  little between the states (6.30 / 6.44 for dhkr2012) because productivity exits are slow.
* Budget :math:`k_i' = R k_i + w \varepsilon_{e_i} - c_i \ge \underline a`; CRRA utility :math:`c^{1-\gamma}/(1-\gamma)`
  (log at γ = 1), discount β.

Action: the share of spendable resources :math:`x_i - \underline a` consumed (``action="savings_share"``: saved),
clipped so that consumption stays positive and assets above the limit: never NaN.

Calibrations (``calibration=``; explicit keywords override the preset's values):

* ``"aiyagari1994"``: β 0.96, α 0.36, δ 0.08, a̲ 0, 7-state Tauchen AR(1) with ρ 0.6, σ 0.2, γ 3 (Table II's grid:
  γ ∈ {1, 3, 5}, ρ ∈ {0, .3, .6, .9}, σ ∈ {.2, .4}; pass them as keywords). Tauchen's width is 3.5 unconditional
  sds: of the widths 2–4 and Rouwenhorst, the one closest to the published table over all 24 cells
  (``benchmarks/aiyagari.py``: mean gap 0.03 points; width 3 gives 0.07, Rouwenhorst 0.20).
* ``"dhkr2012"``: γ 2, α 0.36, δ 0.08, a̲ 0, ε ∈ {1, 5.29, 46.55} with DeepHAM's matrix; β = :data:`DHKR_BETA`,
  calibrated so that the competitive stationary equilibrium's average assets are 30.635 (the published market
  column; see ``benchmarks/aiyagari.py``). With ``aggregate_shock="ias"`` or ``"cis"`` (Δ 0.02, persistence 0.875);
  CIS's good-state matrix is DeepHAM's :data:`DHKR_GOOD`; the published bad-state matrix is inconsistent (its second
  row is not a distribution over the same states), so the bad-state matrix :data:`DHKR_BAD` keeps the good state's
  middle and top rows and sets the low state's exit probability p so that the chain's stationary shares are the
  published bad-state shares 0.7123 / 0.2540 / 0.0337 (a birth–death chain: π_low p = π_mid 0.009 gives
  p = 0.009 · 0.2540 / 0.7123 = 0.00321; the top two shares, 0.2540 / 0.0337 = 7.54 ≈ 0.083 / 0.011, already match).

Shapes: state ``"k"`` (B, N) assets, ``"e"`` (B, N) the productivity state index as a real number, ``"z"`` (B,)
int64 (always 0 without aggregate risk); shocks ``"z_uniform"`` (B,), ``"e_uniform"`` (B, N). Units: assets,
consumption and income in units of the good (annual model).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from . import markov
from .households import HouseholdEconomy, conditional_stationary
from .params import Interval, Params, check_in, choices, interval
from .registry import register_economy

#: DeepHAM's matrix of the DHKR productivity chain (no aggregate shock; IAS)
DHKR_TRANSITION = ((0.992, 0.008, 0.0), (0.009, 0.980, 0.011), (0.0, 0.083, 0.917))
#: DeepHAM's good-state matrix of the CIS variant
DHKR_GOOD = ((0.98, 0.02, 0.0), (0.009, 0.980, 0.011), (0.0, 0.083, 0.917))
#: the bad-state matrix of the CIS variant, derived from the published bad-state shares (module docstring)
_P_BAD_EXIT = 0.009 * 0.2540 / 0.7123
DHKR_BAD = ((1.0 - _P_BAD_EXIT, _P_BAD_EXIT, 0.0), (0.009, 0.980, 0.011), (0.0, 0.083, 0.917))
#: β of the dhkr2012 calibration: average assets 30.635 in the competitive stationary equilibrium (found by
#: ``calibrate_beta`` of the stationary solver, brentq on β; r = 4.097 %, K/Y = 2.976; benchmarks/aiyagari.py)
DHKR_BETA = 0.887313

CALIBRATIONS: dict[str, dict[str, Any]] = {
    "aiyagari1994": dict(
        beta=0.96, alpha=0.36, delta=0.08, gamma=3.0, borrowing_limit=0.0, rho=0.6, sigma=0.2, n_states=7,
        discretization="tauchen", tauchen_width=3.5, productivity=None, productivity_transition=None,
    ),
    "dhkr2012": dict(
        beta=DHKR_BETA, alpha=0.36, delta=0.08, gamma=2.0, borrowing_limit=0.0, productivity=(1.0, 5.29, 46.55),
        productivity_transition=DHKR_TRANSITION, productivity_transition_bad=DHKR_BAD,
        productivity_transition_good=DHKR_GOOD,
    ),
}
_SHOCKS = ("none", "ias", "cis")
_DISCRETIZATIONS = ("rouwenhorst", "tauchen")
_STOCHASTIC_TOL = 1e-8


@dataclasses.dataclass(frozen=True)
class AiyagariParams(Params):
    """Parameters of the Aiyagari economy; defaults are the ``aiyagari1994`` calibration (one Table II cell)."""

    model_name = "Aiyagari economy"

    calibration: str | None = None
    """a named preset (``"aiyagari1994"``, ``"dhkr2012"``) whose values the other keywords override; None: the
    defaults below"""
    beta: float = dataclasses.field(default=0.96, metadata=interval(0.0, 1.0, open_lo=True, open_hi=True))
    """discount factor β ∈ (0, 1)"""
    gamma: float = dataclasses.field(default=3.0, metadata=interval(0.0, open_lo=True))
    """CRRA coefficient γ > 0 (1: log utility)"""
    alpha: float = dataclasses.field(default=0.36, metadata=interval(0.0, 1.0, open_lo=True, open_hi=True))
    """capital share α ∈ (0, 1)"""
    delta: float = dataclasses.field(default=0.08, metadata=interval(0.0, 1.0))
    """depreciation δ ∈ [0, 1]"""
    borrowing_limit: float = dataclasses.field(default=0.0, metadata=interval())
    """a̲: assets stay above it; not below the natural limit (see ``_validate``)"""
    productivity: tuple | None = None
    """productivity levels ε (n,), > 0; None: exp of the discretised AR(1) grid, normalised to mean 1"""
    productivity_transition: tuple | None = None
    """(n, n) row-stochastic matrix of the productivity chain (with ``productivity``)"""
    rho: float = dataclasses.field(default=0.6, metadata=interval(-0.99, 0.99))
    """AR(1) persistence ρ ∈ [−0.99, 0.99] (when ``productivity`` is None; closer to ±1 a 7-state chain's extreme
    states become numerically absorbing)"""
    sigma: float = dataclasses.field(default=0.2, metadata=interval(0.0, 5.0))
    """AR(1) unconditional sd of log productivity σ ∈ [0, 5] (wider: exp of the grid overflows)"""
    n_states: int = 7
    """number of productivity states of the discretised AR(1) (≥ 2)"""
    discretization: str = dataclasses.field(default="tauchen", metadata=choices(*_DISCRETIZATIONS))
    """``"tauchen"`` (Aiyagari's) or ``"rouwenhorst"``"""
    tauchen_width: float = dataclasses.field(default=3.5, metadata=interval(0.0, 10.0, open_lo=True))
    """Tauchen's grid half-width in unconditional sds, in (0, 10]"""
    aggregate_shock: str = dataclasses.field(default="none", metadata=choices(*_SHOCKS))
    """``"none"`` (stationary economy), ``"ias"`` (TFP shock) or ``"cis"`` (TFP shock + countercyclical risk)"""
    tfp_shock: float = dataclasses.field(default=0.02, metadata=interval(0.0, 1.0, open_hi=True))
    """Δ: Z = 1 ± Δ"""
    z_persistence: float = dataclasses.field(default=0.875, metadata=interval(0.0, 1.0))
    """P(Z' = Z)"""
    productivity_transition_bad: tuple | None = None
    """CIS: the productivity matrix of the bad aggregate state (into which the economy moves)"""
    productivity_transition_good: tuple | None = None
    """CIS: the productivity matrix of the good aggregate state"""
    k_init: float | None = None
    """initial assets of every household; None: the complete-markets steady state K* (per household)"""
    c_min: float = dataclasses.field(default=1e-3, metadata=interval(0.0, open_lo=True))
    """consumption floor and minimum saving of the clip"""
    action: str = dataclasses.field(default="consumption_share", metadata=choices("consumption_share", "savings_share"))
    """``"consumption_share"`` or ``"savings_share"``"""

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "AiyagariParams":
        """The named ``calibration``'s values, overridden by the other keywords."""
        name = kwargs.get("calibration")
        if name is not None:
            if name not in CALIBRATIONS:
                raise ValueError(
                    f"parameter 'calibration' = {name!r} is not known: allowed {', '.join(map(repr, CALIBRATIONS))} "
                    "or None"
                )
            kwargs = {**CALIBRATIONS[name], **kwargs}
        return super().from_kwargs(**kwargs)

    def _validate(self) -> None:
        super()._validate()
        if isinstance(self.n_states, bool) or not isinstance(self.n_states, (int, np.integer)) or self.n_states < 2:
            raise ValueError(f"parameter 'n_states' = {self.n_states!r} is out of range: allowed integers >= 2")
        if (self.productivity is None) != (self.productivity_transition is None):
            raise ValueError("parameters 'productivity' and 'productivity_transition' go together: give both or neither")
        if self.productivity is not None:
            levels = np.asarray(self.productivity, dtype=float)
            if levels.ndim != 1 or len(levels) < 1 or not np.all(np.isfinite(levels)) or levels.min() <= 0:
                raise ValueError(
                    f"parameter 'productivity' = {self.productivity!r} must be a list of finite levels > 0"
                )
            object.__setattr__(self, "productivity", tuple(float(v) for v in levels))
            n = len(levels)
            object.__setattr__(self, "productivity_transition",
                               _check_matrix("productivity_transition", self.productivity_transition, n))
        else:
            n = int(self.n_states)
        for name in ("productivity_transition_bad", "productivity_transition_good"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _check_matrix(name, value, n))
            elif self.aggregate_shock == "cis":
                raise ValueError(f"parameter {name!r} is needed with aggregate_shock = 'cis' (an ({n}, {n}) matrix)")
        if self.k_init is not None:
            object.__setattr__(self, "k_init", check_in("k_init", self.k_init, Interval(self.borrowing_limit,
                                                                                      lo_closed=False)))
        levels, P = self.chain()
        if self.k_init is None:  # the default initial assets must exist (α near 1 or β near 0 over/underflow)
            K_star = float(markov.stationary_distribution(P) @ levels) * self.complete_markets_capital_ratio()
            if not self.borrowing_limit < K_star < math.inf:
                raise ValueError(
                    f"parameter 'k_init' = None asks for the complete-markets capital K* = {K_star!r} for beta = "
                    f"{self.beta!r}, alpha = {self.alpha!r}, delta = {self.delta!r}: pass k_init in "
                    f"({self.borrowing_limit:g}, inf)")
        limit = self.natural_borrowing_limit(float(levels.min()))
        if self.borrowing_limit < limit or (limit < 0.0 and self.borrowing_limit == limit):
            raise ValueError(
                f"parameter 'borrowing_limit' = {self.borrowing_limit!r} is at or below the natural borrowing limit "
                f"-w eps_min / r = {limit:.6g} at the complete-markets rate r = 1/beta - 1 (the highest a stationary "
                f"equilibrium can have): allowed ({limit:.6g}, inf)"
            )

    # ------------------------------------------------------------------ derived numbers
    def chain(self) -> tuple[np.ndarray, np.ndarray]:
        """(levels ε (n,), matrix P (n, n)) of the productivity chain without aggregate risk."""
        if self.productivity is not None:
            return np.asarray(self.productivity, dtype=float), np.asarray(self.productivity_transition, dtype=float)
        discretise = markov.rouwenhorst if self.discretization == "rouwenhorst" else (
            lambda n, rho, sigma: markov.tauchen(n, rho, sigma, self.tauchen_width))
        grid, P = discretise(int(self.n_states), self.rho, self.sigma)
        levels = np.exp(grid)
        try:
            return levels / (markov.stationary_distribution(P) @ levels), P
        except ValueError:
            raise ValueError(
                f"parameters rho = {self.rho!r}, sigma = {self.sigma!r}, n_states = {self.n_states!r}, "
                f"tauchen_width = {self.tauchen_width!r} ({self.discretization}) give a productivity chain with "
                "absorbing states (no unique stationary distribution): lower |rho| or the width, or use "
                "discretization='rouwenhorst'") from None

    def complete_markets_capital_ratio(self) -> float:
        """K/L at the complete-markets rate r* = 1/β − 1: ((r* + δ)/α)^(1/(α−1)) (inf when it overflows)."""
        try:
            return ((1.0 / self.beta - 1.0 + self.delta) / self.alpha) ** (1.0 / (self.alpha - 1.0))
        except (OverflowError, ZeroDivisionError):
            return math.inf

    def natural_borrowing_limit(self, eps_min: float) -> float:
        """−w ε_min / r at the complete-markets rate r* = 1/β − 1 (w at K/L there)."""
        r = 1.0 / self.beta - 1.0
        try:
            w = (1.0 - self.alpha) * self.complete_markets_capital_ratio() ** self.alpha
            return -w * eps_min / r if math.isfinite(w) else -math.inf
        except (OverflowError, ZeroDivisionError):
            return -math.inf


def _check_matrix(name: str, matrix, n: int) -> tuple:
    """An (n, n) finite matrix with entries in [0, 1] and rows summing to 1, as a tuple of tuples."""
    try:
        P = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"parameter {name!r} must be an ({n}, {n}) matrix of numbers: {err}") from None
    if P.shape != (n, n):
        raise ValueError(f"parameter {name!r} must be an ({n}, {n}) matrix (one row per productivity state), "
                         f"got shape {P.shape}")
    if not np.all(np.isfinite(P)) or P.min() < 0 or P.max() > 1:
        raise ValueError(f"parameter {name!r} is not stochastic: entries must be in [0, 1], got {P.tolist()}")
    sums = P.sum(1)
    if not np.allclose(sums, 1.0, atol=_STOCHASTIC_TOL, rtol=0):
        raise ValueError(f"parameter {name!r} is not stochastic: row sums are {sums.tolist()}, expected all 1")
    P = P / sums[:, None]  # rows summing to 1 within the tolerance: renormalised exactly
    return tuple(tuple(float(v) for v in row) for row in P)


@register_economy
class AiyagariEconomy(HouseholdEconomy):
    """N households self-insuring against productivity risk, optionally under aggregate TFP risk.

    See the module docstring for the equations, the calibrations and the conventions. ``productivity`` (numpy
    (n_e,)) and ``idiosyncratic_transition`` (numpy (n_z, n_e, n_e): P(e' | e) by the new aggregate state) describe
    the chain for the classical solvers.
    """

    env_id = "Aiyagari-v0"
    Params = AiyagariParams
    default_n_agents = 100
    idiosyncratic_name = "productivity"

    params: AiyagariParams

    def __init__(self, n_agents=None, *, device=None, dtype=None, **params) -> None:
        super().__init__(n_agents, device=device, dtype=dtype, **params)
        p = self.params
        levels, P = p.chain()
        if p.aggregate_shock == "none":
            z_levels, pz, by_state = [1.0], np.ones((1, 1)), [P]
        else:
            z_levels = [1.0 - p.tfp_shock, 1.0 + p.tfp_shock]
            stay = p.z_persistence
            pz = np.array([[stay, 1.0 - stay], [1.0 - stay, stay]])
            if p.aggregate_shock == "ias":
                by_state = [P, P]
            else:
                by_state = [np.asarray(p.productivity_transition_bad), np.asarray(p.productivity_transition_good)]
        self.productivity = levels
        self.idiosyncratic_transition = np.stack(by_state)  # [z', e, e']
        # P[z, e, z', e'] = P(z' | z) · P_{z'}(e' | e)
        joint = pz[:, None, :, None] * self.idiosyncratic_transition[None, :, :, :].transpose(0, 2, 1, 3)
        labour = conditional_stationary(joint) @ levels  # L_z = E[ε | z] in the stationary joint distribution
        K_star = float(markov.stationary_distribution(P) @ levels) * p.complete_markets_capital_ratio()
        self._set_structure(
            z_levels=z_levels,
            labour=labour,
            income=np.tile(levels, (len(z_levels), 1)),
            joint_transition=joint,
            borrowing_limit=p.borrowing_limit,
            gamma=p.gamma,
            k_init=K_star if p.k_init is None else p.k_init,
        )

    @property
    def reference_solver(self) -> str | None:  # type: ignore[override]
        """The classical stationary equilibrium (``aiyagari_stationary``) without aggregate risk; none with it."""
        return "aiyagari_stationary" if self.params.aggregate_shock == "none" else None

    def _extra_aggregates(self, state) -> dict:
        return {"mean_productivity": self.income_table[0][state["e"].long()].mean(-1)}  # row 0: the levels ε
