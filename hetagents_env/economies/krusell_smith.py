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

Shapes: state ``"k"`` (B, N) real, ``"e"`` (B, N) real in {0., 1.} (a float so it enters the budget directly),
``"z"`` (B,) int64; shocks ``"z_uniform"`` (B,) and ``"e_uniform"`` (B, N) uniforms on [0, 1).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
import torch
from tensordict import TensorDict

from .core import Economy, Policy, _check_buffer
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


def fischer_burmeister(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """FB(a, b) = a + b − √(a² + b²): zero iff a ≥ 0, b ≥ 0 and a·b = 0 (a smooth complementarity residual)."""
    return a + b - torch.sqrt(a * a + b * b)


@register_economy
class KrusellSmithEconomy(Economy):
    """N households saving in capital under idiosyncratic unemployment and aggregate productivity risk.

    See the module docstring for the equations and conventions.
    """

    env_id = "KrusellSmith-v0"
    agent_name = "household"
    Params = KrusellSmithParams
    default_n_agents = 50
    agent_features = ("k", "e")
    endogenous_key = "k"
    aggregate_features = ("K", "z")
    action_low = 0.0
    action_high = 1.0

    params: KrusellSmithParams

    def __init__(self, n_agents=None, *, device=None, dtype=None, **params) -> None:
        super().__init__(n_agents, device=device, dtype=dtype, **params)
        p = self.params
        P4 = np.asarray(p.transition).reshape(2, 2, 2, 2)  # [z, e, z', e']
        pz = P4[:, 0].sum(-1)  # P(Z'|Z), [z, z']
        cond = P4 / np.where(pz[:, None, :, None] > 0, pz[:, None, :, None], 1.0)  # P(e'|z, e, z')
        ur = np.array(p.unemployment_rates)
        t = self.tensor
        self.z_values = t([p.z_bad, p.z_good])
        self.labour = t(p.lbar * (1 - ur))  # L_Z
        self.tax = t(p.mu * ur / (p.lbar * (1 - ur)))  # τ_Z
        self.prob_z = t(pz)  # [z, z']
        self.prob_joint = t(P4)  # [z, e, z', e']
        # P(e' = 0 | z, z', e) as [z, z', e] for sampling
        self.prob_unemployed_next = t(np.transpose(cond[..., 0], (0, 2, 1)))
        denom = pz[0, 1] + pz[1, 0]
        self.stationary_bad = float(pz[1, 0] / denom) if denom > 0 else 0.5
        self.k_init = p.steady_state_capital if p.k_init is None else p.k_init

    # ------------------------------------------------------------------ equations
    def prices(self, K: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gross return R = 1 − δ + Z α (K/L_Z)^(α−1) and wage w = Z (1−α) (K/L_Z)^α, for K, z of shape (...)."""
        p = self.params
        ratio = K / self.labour[z]
        zv = self.z_values[z]
        return 1.0 - p.delta + zv * p.alpha * ratio.pow(p.alpha - 1.0), zv * (1.0 - p.alpha) * ratio.pow(p.alpha)

    def cash_on_hand(self, state: TensorDict) -> torch.Tensor:
        """x_i = R k_i + (1 − τ_Z) w l̄ e_i + μ w (1 − e_i), shape (B, N), with prices at K = mean_i k_i."""
        k, e, z = state["k"], state["e"], state["z"]
        p = self.params
        R, w = self.prices(k.mean(-1), z)
        benefit = w * p.mu  # income of the unemployed, (B,)
        gain = w * (1.0 - self.tax[z]) * p.lbar - benefit  # extra income of the employed, (B,)
        # = R k + (1 − τ) w l̄ e + μ w (1 − e), in three passes over the (B, N) arrays
        return torch.addcmul(R.unsqueeze(-1) * k + benefit.unsqueeze(-1), gain.unsqueeze(-1), e)

    def consumption(self, cash: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """c = share·x (or (1−share)·x), clipped to [f, x − f] with f = min(c_min, x/4); shape (B, N)."""
        share = action if self.params.action == "consumption_share" else 1.0 - action
        floor = torch.clamp(0.25 * cash, max=self.params.c_min)
        return torch.minimum(torch.maximum(share * cash, floor), cash - floor)

    # ------------------------------------------------------------------ Economy interface
    def initial_state(self, batch_size: int, generator: torch.Generator | None = None) -> TensorDict:
        """k = k_init for all; z from the stationary distribution of Z; e employed with probability 1 − ur_z."""
        u = torch.rand(batch_size, self.n_agents + 1, generator=generator, device=self.device, dtype=self.dtype)
        z = (u[:, 0] >= self.stationary_bad).long()
        e = (u[:, 1:] >= self.tensor(self.params.unemployment_rates)[z].unsqueeze(-1)).to(self.dtype)
        k = torch.full((batch_size, self.n_agents), self.k_init, device=self.device, dtype=self.dtype)
        return TensorDict({"k": k, "e": e, "z": z}, batch_size=[batch_size], device=self.device)

    def sample_shocks(
        self, state: TensorDict, generator: torch.Generator | None = None, *, out: TensorDict | None = None
    ) -> TensorDict:
        """One (B, N + 1) draw of uniforms: column 0 is ``z_uniform``, the rest ``e_uniform`` (views of the draw).
        With ``out`` (from :meth:`shock_buffer`) the draw goes into the buffer both views share."""
        b = state.batch_size[0]
        kw = dict(generator=generator, device=self.device, dtype=self.dtype)
        if out is not None:
            _check_buffer(out, b)
            flat = out["e_uniform"]._base  # the (B, N + 1) draw that both entries view
            if flat is None or flat.shape != (b, self.n_agents + 1) or out["z_uniform"]._base is not flat:
                raise ValueError("out must be a buffer from KrusellSmithEconomy.shock_buffer (views of one draw)")
            torch.rand(b, self.n_agents + 1, out=flat, **kw)
            return out
        u = torch.rand(b, self.n_agents + 1, **kw)
        return TensorDict({"z_uniform": u[:, 0], "e_uniform": u[:, 1:]}, batch_size=[b], device=self.device)

    def next_exogenous(self, state: TensorDict, shocks: TensorDict) -> tuple[torch.Tensor, torch.Tensor]:
        """(z', e'): Z' = bad iff its uniform < P(Z_b | Z); e' = 0 iff its uniform < P(e' = 0 | Z, Z', e)."""
        z, e = state["z"], state["e"]
        z_next = (shocks["z_uniform"] >= self.prob_z[z, 0]).long()
        table = self.prob_unemployed_next[z, z_next]  # (B, 2): P(e'=0 | z, z', e) for e = 0, 1
        p_unemployed = table[:, :1] + (table[:, 1:] - table[:, :1]) * e
        e_next = (shocks["e_uniform"] >= p_unemployed).to(self.dtype)
        return z_next, e_next

    def transition(self, state: TensorDict, action: torch.Tensor, shocks: TensorDict) -> TensorDict:
        return self.transition_and_reward(state, action, shocks)[0]

    def transition_and_reward(
        self, state: TensorDict, action: torch.Tensor, shocks: TensorDict
    ) -> tuple[TensorDict, torch.Tensor]:
        """k' = x − c and log c from one evaluation of cash on hand and consumption."""
        cash = self.cash_on_hand(state)
        c = self.consumption(cash, action)
        z_next, e_next = self.next_exogenous(state, shocks)
        next_state = TensorDict({"k": cash - c, "e": e_next, "z": z_next}, batch_size=state.batch_size, device=self.device)
        return next_state, torch.log(c)

    def reward(self, state: TensorDict, action: torch.Tensor) -> torch.Tensor:
        """Utility log c_i, shape (B, N)."""
        return torch.log(self.consumption(self.cash_on_hand(state), action))

    def observe(self, state: TensorDict) -> TensorDict:
        k = state["k"]
        aggregate = torch.stack([k.mean(-1), state["z"].to(self.dtype)], dim=-1)
        agents = torch.stack([k, state["e"]], dim=-1)
        return TensorDict({"agents": agents, "aggregate": aggregate}, batch_size=state.batch_size, device=self.device)

    def aggregates(self, state: TensorDict) -> dict[str, torch.Tensor]:
        k, z = state["k"], state["z"]
        K = k.mean(-1)
        R, w = self.prices(K, z)
        return {
            "K": K,
            "unemployment": 1.0 - state["e"].mean(-1),
            "z": z.to(self.dtype),
            "R": R,
            "w": w,
            "gini_k": gini(k),
        }

    # ------------------------------------------------------------------ Euler residual
    def euler_residual(
        self, policy: Policy, state: TensorDict, *, form: Literal["fischer_burmeister", "relative"] = "fischer_burmeister"
    ) -> torch.Tensor:
        r"""Fischer–Burmeister residual of the household Euler equation, shape (B, N).

        With a = k'/x (share saved, ≥ 0) and b = 1 − β c E[R'/c'] (the relative gap of the Euler inequality,
        ≥ 0), the residual is FB(a, b) = a + b − √(a² + b²), zero iff the complementarity holds.

        Sign: at an interior choice FB ≈ b, so **ε > 0: the household saves too much** (1/c > β E[R'/c'], it
        would gain by consuming more) and **ε < 0: it consumes too much**.

        The expectation is exact: over Z' ∈ {Z_b, Z_g} and the household's own e' ∈ {0, 1} with probabilities
        P(Z', e' | Z, e_i) from the transition matrix; R' = R(K', Z') with K' = mean k'. The four successor states
        give every household the same e' at once, so the population summary seen by the policy must depend on the
        capital distribution only (true for the Krusell–Smith ALM and DeepHAM's moments of k); one policy call
        evaluates all four (batch 4·B).

        ``form="relative"`` returns b = 1 − c/c_EE itself, with c_EE = 1/(β E[R'/c']) the consumption the Euler
        equation asks for: |b| is the unit-free Euler-equation error of unconstrained households (same sign).
        """
        p = self.params
        k = state["k"]
        b, n = k.shape
        cash = self.cash_on_hand(state)
        c = self.consumption(cash, policy(state))
        k_next = cash - c
        zs = torch.tensor([0, 0, 1, 1], device=self.device)
        es = self.tensor([0.0, 1.0, 0.0, 1.0])
        successors = TensorDict(
            {
                "k": k_next.expand(4, b, n).reshape(4 * b, n),
                "e": es[:, None, None].expand(4, b, n).reshape(4 * b, n),
                "z": zs[:, None].expand(4, b).reshape(4 * b),
            },
            batch_size=[4 * b],
            device=self.device,
        )
        c_next = self.consumption(self.cash_on_hand(successors), policy(successors)).reshape(4, b, n)
        R_next, _ = self.prices(k_next.mean(-1).expand(4, b), zs[:, None].expand(4, b))  # (4, B)
        # P(z', e' | z, e_i) for the 4 successors: [z, e, z', e'] indexed by (z_b, e_bn, zs, es)
        e_idx = state["e"].long()
        prob = self.prob_joint[state["z"][None, :, None], e_idx[None], zs[:, None, None], es.long()[:, None, None]]
        expected = (prob * R_next.unsqueeze(-1) / c_next).sum(0)
        gap = 1.0 - p.beta * c * expected  # = 1 − c / c_EE with c_EE = 1 / (β E[R'/c'])
        if form == "relative":
            return gap
        if form != "fischer_burmeister":
            raise ValueError(f"form must be 'fischer_burmeister' or 'relative', got {form!r}")
        return fischer_burmeister(k_next / cash, gap)


def gini(values: torch.Tensor) -> torch.Tensor:
    """Gini coefficient over the last dim: G = 2 Σ_i i v_(i) / (N Σ v) − (N + 1)/N, with v sorted ascending."""
    n = values.shape[-1]
    v = values.sort(dim=-1).values
    ranks = torch.arange(1, n + 1, device=values.device, dtype=values.dtype)
    total = v.sum(-1)
    return 2.0 * (v * ranks).sum(-1) / (n * total) - (n + 1.0) / n if n > 1 else torch.zeros_like(total)
