r"""The N-household Krusell–Smith economy with aggregate shocks (Krusell & Smith 1998; DeepHAM calibration).

Model (one economy; all B economies at once in the code):

* N households with capital :math:`k_i \ge 0` and employment :math:`e_i \in \{0, 1\}` (0 = unemployed);
  aggregate productivity :math:`Z \in \{Z_b, Z_g\}` (index z = 0 bad, 1 good); :math:`K = \frac1N\sum_i k_i`.
* Prices from a Cobb–Douglas firm, with the *theoretical* labour supply :math:`L_Z = \bar l\,(1 - ur_Z)`:

  .. math:: R = 1 - \delta + Z \alpha (K/L_Z)^{\alpha-1}, \qquad w = Z (1-\alpha) (K/L_Z)^{\alpha}

* Unemployment insurance financed by a labour tax :math:`\tau_Z = \mu\, ur_Z / (\bar l\, (1-ur_Z))`.
* Cash on hand :math:`x_i = R k_i + (1-\tau_Z) w \bar l e_i + \mu w (1-e_i)`; consumption :math:`c_i`;
  next capital :math:`k_i' = x_i - c_i \ge 0`; period utility :math:`\log c_i`.
* Shocks: Z follows the Markov chain implied by the 4×4 joint (Z, e) matrix; given (Z, Z'), each household's
  e' is drawn independently from :math:`P(e' \mid Z, Z', e)` (unemployment among N households is not forced to
  equal :math:`ur_{Z'}`).
* Euler equation with the borrowing constraint (complementarity):
  :math:`1/c_i \ge \beta E[R' / c_i']`, with equality when :math:`k_i' > 0`.

Action: the share of cash on hand consumed, :math:`s_i \in [0, 1]`, so :math:`c_i = s_i x_i` (or the share
saved, :math:`c_i = (1 - s_i) x_i`, with ``action="savings_share"``). Consumption is then clipped to
:math:`[f, x_i - f]` with :math:`f = \min(c_{min}, x_i/4)`, so consumption and next capital stay positive and
nothing becomes NaN whatever the share (DeepHAM's clip :math:`[10^{-3}, x - 10^{-3}]` when :math:`x \ge 4 c_{min}`).

The budget, the consumption clip, the shocks' sampling, the price-taking transition and the Euler residual are
the shared household machinery of :mod:`hetagents_env.economies.households` (this module supplies the numbers:
income y[z, e] = μ unemployed, (1 − τ_z) l̄ employed; labour L_Z; the joint matrix; a̲ = 0; γ = 1).

Shapes: state ``"k"`` (B, N) real, ``"e"`` (B, N) real in {0., 1.} (a float so it enters the budget directly),
``"z"`` (B,) int64; shocks ``"z_uniform"`` (B,) and ``"e_uniform"`` (B, N) uniforms on [0, 1).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from tensordict import TensorDict

from .households import HouseholdEconomy, fischer_burmeister, gini  # noqa: F401  (re-exported)
from .registry import register_economy
from .params import Interval, Params, check_in, interval

#: rows/columns ordered (Z_b, u), (Z_b, e), (Z_g, u), (Z_g, e)
DEFAULT_TRANSITION = (
    (0.525, 0.35, 0.03125, 0.09375),
    (0.038889, 0.836111, 0.002083, 0.122917),
    (0.09375, 0.03125, 0.291667, 0.583333),
    (0.009115, 0.115885, 0.024306, 0.850694),
)
_STOCHASTIC_TOL = 1e-5
#: aggregate transitions less likely than this are not checked for consistency with the unemployment rates
_NEGLIGIBLE = 1e-12


@dataclasses.dataclass(frozen=True)
class KrusellSmithParams(Params):
    """Parameters of the Krusell–Smith economy; defaults are the DeepHAM calibration (quarterly)."""

    model_name = "Krusell-Smith economy"

    beta: float = dataclasses.field(default=0.99, metadata=interval(0.0, 1.0, open_lo=True, open_hi=True))
    """discount factor β ∈ (0, 1)"""
    alpha: float = dataclasses.field(default=0.36, metadata=interval(0.0, 1.0, open_lo=True, open_hi=True))
    """capital share α ∈ (0, 1)"""
    delta: float = dataclasses.field(default=0.025, metadata=interval(0.0, 1.0))
    """depreciation δ ∈ [0, 1]"""
    z_bad: float = dataclasses.field(default=0.99, metadata=interval(0.0, open_lo=True))
    """productivity in the bad state Z_b > 0"""
    z_good: float = dataclasses.field(default=1.01, metadata=interval(0.0, open_lo=True))
    """productivity in the good state Z_g > 0"""
    lbar: float = dataclasses.field(default=1.0 / 0.9, metadata=interval(0.0, open_lo=True))
    """hours worked by an employed household l̄ > 0"""
    mu: float = dataclasses.field(default=0.15, metadata=interval(0.0))
    """unemployment benefit as a share of the wage μ ≥ 0"""
    unemployment_bad: float = dataclasses.field(default=0.10, metadata=interval(0.0, 1.0, open_hi=True))
    """unemployment rate of the bad state ur_b ∈ [0, 1)"""
    unemployment_good: float = dataclasses.field(default=0.04, metadata=interval(0.0, 1.0, open_hi=True))
    """unemployment rate of the good state ur_g ∈ [0, 1)"""
    transition: tuple = DEFAULT_TRANSITION
    """4×4 row-stochastic matrix of (Z, e) -> (Z', e'), order (Z_b,u), (Z_b,e), (Z_g,u), (Z_g,e)"""
    k_init: float | None = None
    """initial capital of every household (> 0); ``None``: the deterministic steady state"""
    c_min: float = dataclasses.field(default=1e-3, metadata=interval(0.0, open_lo=True))
    """consumption floor and minimum saving of the clip (DeepHAM: 1e-3)"""
    action: str = "consumption_share"
    """meaning of the action: ``"consumption_share"`` (c = s·x) or ``"savings_share"`` (c = (1−s)·x)"""

    def _validate(self) -> None:
        super()._validate()
        if self.action not in ("consumption_share", "savings_share"):
            raise ValueError(
                f"parameter 'action' = {self.action!r} is not allowed: use 'consumption_share' or 'savings_share'"
            )
        if self.k_init is not None:
            object.__setattr__(self, "k_init", check_in("k_init", self.k_init, Interval(0.0, lo_closed=False)))
        object.__setattr__(self, "transition", _check_transition(self.transition, self.unemployment_rates))
        if self.k_init is None:  # the default initial capital must exist (α near 1 or β near 0 over/underflow)
            try:
                k_ss = self.steady_state_capital
            except OverflowError:
                k_ss = math.inf
            if not 0.0 < k_ss < math.inf:
                raise ValueError(
                    f"parameter 'k_init' = None asks for the deterministic steady state, which is {k_ss!r} for "
                    f"beta = {self.beta!r}, alpha = {self.alpha!r}, delta = {self.delta!r}: pass k_init in (0, inf)"
                )

    @property
    def unemployment_rates(self) -> tuple[float, float]:
        return (self.unemployment_bad, self.unemployment_good)

    @property
    def steady_state_capital(self) -> float:
        """Deterministic steady state k_ss = ((1/β − (1−δ)) / α)^(1/(α−1)) (per unit of labour)."""
        return ((1.0 / self.beta - (1.0 - self.delta)) / self.alpha) ** (1.0 / (self.alpha - 1.0))


def _check_transition(matrix, unemployment_rates) -> tuple:
    """Validate the joint (Z, e) matrix: 4×4, finite, ≥ 0, rows summing to 1, P(Z'|Z) independent of e, and
    consistent with the unemployment rates (ur_Z P(u'|Z,u→Z') + (1−ur_Z) P(u'|Z,e→Z') = ur_Z')."""
    try:
        P = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"parameter 'transition' must be a 4x4 matrix of numbers: {err}") from None
    if P.shape != (4, 4):
        raise ValueError(f"parameter 'transition' must be a 4x4 matrix, got shape {P.shape}")
    if not np.isfinite(P).all():
        raise ValueError(f"parameter 'transition' must be finite, got {P.tolist()}")
    if (P < 0).any():
        bad = ", ".join(f"[{i}, {j}] = {P[i, j]!r}" for i, j in zip(*np.nonzero(P < 0)))
        raise ValueError(f"parameter 'transition' is not stochastic: entries must be in [0, 1], got {bad}")
    sums = P.sum(1)
    if not np.allclose(sums, 1.0, atol=_STOCHASTIC_TOL, rtol=0):
        raise ValueError(f"parameter 'transition' is not stochastic: row sums are {sums.tolist()}, expected all 1")
    P4 = P.reshape(2, 2, 2, 2)  # [z, e, z', e']
    pz = P4.sum(-1)  # [z, e, z']
    if not np.allclose(pz[:, 0], pz[:, 1], atol=_STOCHASTIC_TOL, rtol=0):
        raise ValueError(
            "parameter 'transition' must give the same P(Z'|Z) for employed and unemployed households, "
            f"got {pz[:, 0].tolist()} vs {pz[:, 1].tolist()}"
        )
    ur = np.asarray(unemployment_rates, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_unemp = P4[..., 0] / pz  # [z, e, z'] = P(e' = 0 | z, e, z')
    for z in range(2):
        for z1 in range(2):
            if pz[z, 0, z1] < _NEGLIGIBLE:  # its conditional employment odds are not identifiable numerically
                continue
            implied = ur[z] * p_unemp[z, 0, z1] + (1 - ur[z]) * p_unemp[z, 1, z1]
            if abs(implied - ur[z1]) > 1e-4:
                raise ValueError(
                    f"parameter 'transition' is inconsistent with the unemployment rates {tuple(ur.tolist())}: from "
                    f"state {z} to {z1} it implies unemployment {implied:.6f}, expected {ur[z1]:.6f}"
                )
    return tuple(tuple(float(v) for v in row) for row in P)


@register_economy
class KrusellSmithEconomy(HouseholdEconomy):
    """N households saving in capital under idiosyncratic unemployment and aggregate productivity risk.

    See the module docstring for the equations and conventions.
    """

    env_id = "KrusellSmith-v0"
    Params = KrusellSmithParams
    default_n_agents = 50
    idiosyncratic_name = "employment"
    reference_solver = "ks_classical"

    params: KrusellSmithParams

    def __init__(self, n_agents=None, *, device=None, dtype=None, **params) -> None:
        super().__init__(n_agents, device=device, dtype=dtype, **params)
        p = self.params
        ur = np.array(p.unemployment_rates)
        self.tax = self.tensor(p.mu * ur / (p.lbar * (1 - ur)))  # τ_Z
        self._set_structure(
            z_levels=[p.z_bad, p.z_good],
            labour=p.lbar * (1 - ur),  # L_Z
            income=[[p.mu, (1.0 - tau) * p.lbar] for tau in (p.mu * ur / (p.lbar * (1 - ur)))],
            joint_transition=np.asarray(p.transition).reshape(2, 2, 2, 2),  # [z, e, z', e']
            borrowing_limit=0.0,
            gamma=1.0,
            k_init=p.steady_state_capital if p.k_init is None else p.k_init,
        )
        self.stationary_bad = float(self.stationary_z[0])
        self.prob_unemployed_next = self.cdf_e[..., 0]  # P(e' = 0 | z, z', e) as [z, z', e]

    def stationary_e(self, joint_transition) -> np.ndarray:
        """The initial draw: unemployed with probability ur_z exactly."""
        ur = np.array(self.params.unemployment_rates)
        return np.stack([ur, 1.0 - ur], axis=-1)

    @property
    def capital_scale(self) -> float:
        """Networks see k / k_ss (the deterministic steady state, whatever ``k_init``)."""
        return float(self.params.steady_state_capital)

    def _extra_aggregates(self, state: TensorDict) -> dict[str, torch.Tensor]:
        return {"unemployment": 1.0 - state["e"].mean(-1)}
