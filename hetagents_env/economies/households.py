r"""Incomplete-markets households: the machinery that Krusell–Smith and the Bewley–Aiyagari family share.

Model (one economy; all B economies at once in the code). A subclass supplies the numbers marked (†):

* N households with assets (capital) :math:`k_i \ge \underline a` (†: the borrowing limit, 0 in Krusell–Smith)
  and an idiosyncratic state :math:`e_i \in \{0, \dots, n_e - 1\}` (an index: employment in Krusell–Smith, a
  productivity level in Aiyagari); aggregate productivity :math:`z \in \{0, \dots, n_z - 1\}` with levels
  :math:`Z_z` (†; :math:`n_z = 1`: no aggregate risk); :math:`K = \frac1N \sum_i k_i`.
* Prices of a Cobb–Douglas firm with the *theoretical* labour supply :math:`L_z` (†) of aggregate state z:

  .. math:: R = 1 - \delta + Z_z \alpha (K/L_z)^{\alpha-1}, \qquad w = Z_z (1-\alpha) (K/L_z)^{\alpha}

* Cash on hand :math:`x_i = R k_i + w\, y_{z, e_i}` with :math:`y` (†) the non-capital income in units of the
  wage (Krusell–Smith: :math:`(1-\tau_z)\bar l` employed, :math:`\mu` unemployed; Aiyagari: :math:`\varepsilon_e`).
* Action: the share :math:`s_i` of spendable resources :math:`x_i - \underline a` consumed,
  :math:`c_i = s_i (x_i - \underline a)` (or the share saved, ``action="savings_share"``), clipped to
  :math:`[f, x_i - \underline a - f]` with :math:`f = \min(c_{min}, (x_i - \underline a)/4)`, so consumption is
  positive and :math:`k_i' = x_i - c_i > \underline a`: never NaN whatever the share. (With a̲ < 0, shares far
  from an equilibrium can drive K ≤ 0 or x < a̲: prices are then evaluated at K/L ≥ 10⁻¹², consumption at
  f ≥ 10⁻⁶ c_min, and assets may end below a̲ — finite, never NaN.)
* Utility CRRA :math:`u(c) = c^{1-\gamma}/(1-\gamma)` (:math:`\log c` at γ = 1), discount β.
* Shocks: :math:`z' \sim P(z' \mid z)`, then each household's :math:`e' \sim P(e' \mid z, z', e_i)`
  independently, both from the joint matrix :math:`P[z, e, z', e']` (†) by inverse CDFs of uniforms.
* Euler equation with the borrowing limit (complementarity):
  :math:`u'(c_i) \ge \beta E[R' u'(c_i')]`, with equality when :math:`k_i' > \underline a`.

Shapes: state ``"k"`` (B, N) real, ``"e"`` (B, N) the index as a real number (0., 1., …: it enters formulas and
networks directly), ``"z"`` (B,) int64; shocks ``"z_uniform"`` (B,) and ``"e_uniform"`` (B, N), uniforms on
[0, 1) that are views of one (B, N + 1) draw. Units: assets, consumption and income in units of the good.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
import torch
from tensordict import TensorDict

from . import markov
from .core import Economy, Features, Policy, _check_buffer


class HouseholdEconomy(Economy):
    """Base class of the household economies; see the module docstring.

    A subclass's ``__init__`` calls :meth:`_set_structure` with its numbers; every equation lives here, once.
    Its parameters must include ``beta``, ``alpha``, ``delta``, ``c_min`` and ``action``.
    """

    agent_name = "household"
    agent_features = ("k", "e")
    endogenous_key = "k"
    aggregate_features = ("K", "z")
    action_low = 0.0
    action_high = 1.0
    #: names of the idiosyncratic states, for messages and plots (subclasses override)
    idiosyncratic_name: ClassVar[str] = "e"
    #: wealth spreads from the common initial assets over hundreds of periods
    mixing_periods = 1000
    aggregate_state_key = "z"

    # ------------------------------------------------------------------ structure (set by the subclass)
    def _set_structure(
        self,
        *,
        z_levels,
        labour,
        income,
        joint_transition,
        borrowing_limit: float,
        gamma: float,
        k_init: float,
    ) -> None:
        """Store the model's numbers as tensors of this economy's dtype/device.

        Args:
            z_levels: (n_z,) aggregate productivity levels Z_z.
            labour: (n_z,) theoretical labour supply L_z.
            income: (n_z, n_e) non-capital income in units of the wage, y[z, e].
            joint_transition: (n_z, n_e, n_z, n_e) row-stochastic P[z, e, z', e'] with P(z'|z) independent of e.
            borrowing_limit: a̲ (assets stay above it).
            gamma: CRRA coefficient (1: log).
            k_init: every household's initial assets.
        """
        P4 = np.asarray(joint_transition, dtype=float)
        n_z, n_e = P4.shape[:2]
        self.n_z, self.n_e = n_z, n_e
        pz = P4[:, 0].sum(-1)  # P(z'|z), [z, z']
        cond = P4 / np.where(pz[:, None, :, None] > 0, pz[:, None, :, None], 1.0)  # P(e'|z, e, z')
        t = self.tensor
        self.z_values = t(np.asarray(z_levels, dtype=float))
        self.labour = t(np.asarray(labour, dtype=float))
        self.income_table = t(np.asarray(income, dtype=float))  # [z, e]
        self.prob_z = t(pz)
        self.prob_joint = t(P4)
        self.prob_e_next = t(np.transpose(cond, (0, 2, 1, 3)))  # P(e' | z, z', e) as [z, z', e, e']
        # inverse-CDF tables: z' = #{j < n_z − 1: u ≥ cdf_z[z, j]}, e' likewise from P(e'|z, z', e) as [z, z', e, e']
        self.cdf_z = t(np.cumsum(pz, -1)[:, :-1])
        self.cdf_e = t(np.cumsum(np.transpose(cond, (0, 2, 1, 3)), -1)[..., :-1])
        self.stationary_z = _stationary(pz)
        # the initial draw: z from its stationary distribution, e from its stationary distribution given z
        self.cdf_z0 = t(np.cumsum(self.stationary_z)[:-1])
        self.cdf_e0 = t(np.cumsum(self.stationary_e(P4), -1)[:, :-1])
        self.borrowing_limit = float(borrowing_limit)
        self.gamma = float(gamma)
        self.k_init = float(k_init)

    def stationary_e(self, joint_transition: np.ndarray) -> np.ndarray:
        """(n_z, n_e): the distribution of e given z that the initial draw uses — the stationary joint distribution
        of (z, e) of the (float64) matrix P[z, e, z', e'], conditioned on z. Subclasses may state it exactly."""
        return conditional_stationary(joint_transition)

    # ------------------------------------------------------------------ equations
    def prices(self, K: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gross return R = 1 − δ + Z α (K/L_z)^(α−1) and wage w = Z (1−α) (K/L_z)^α, for K, z of shape (...)."""
        p = self.params
        ratio = (K / self.labour[z]).clamp_min(_TINY)  # K <= 0 only with a negative borrowing limit: keep prices finite
        zv = self.z_values[z]
        return 1.0 - p.delta + zv * p.alpha * ratio.pow(p.alpha - 1.0), zv * (1.0 - p.alpha) * ratio.pow(p.alpha)

    def cash_on_hand_at(self, k: torch.Tensor, e: torch.Tensor, K: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x = R(K, z) k + w(K, z) y[z, e] at ANY aggregate capital K (not the mean of k): the classical solvers'
        grids. ``k``, ``e`` (the index, real) of one shape, ``K``, ``z`` broadcastable to it."""
        R, w = self.prices(K, z)
        return R * k + w * self._income(e, z)

    def cash_on_hand(self, state: TensorDict) -> torch.Tensor:
        """x_i = R k_i + w y[z, e_i], shape (B, N), with prices at K = mean_i k_i."""
        k, e, z = state["k"], state["e"], state["z"]
        R, w = self.prices(k.mean(-1), z)
        if self.n_e == 2:  # binary state: an arithmetic select (three passes over (B, N), no gather)
            y = self.income_table[z]
            base, gain = (w * y[:, 0]).unsqueeze(-1), (w * (y[:, 1] - y[:, 0])).unsqueeze(-1)
            return torch.addcmul(R.unsqueeze(-1) * k + base, gain, e)
        return R.unsqueeze(-1) * k + w.unsqueeze(-1) * self._income(e, z.unsqueeze(-1))

    def _income(self, e: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """y[z, e] for an index tensor e (real) and z broadcastable to it."""
        z = z.expand(e.shape) if z.shape != e.shape else z
        return self.income_table[z, e.long()]

    def spendable(self, cash: torch.Tensor) -> torch.Tensor:
        """x − a̲: what a household can consume before hitting the borrowing limit."""
        return cash - self.borrowing_limit if self.borrowing_limit != 0.0 else cash

    def consumption(self, cash: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """c = share·(x − a̲) (or (1 − share)·(x − a̲)), clipped to the feasible set (:meth:`clip_consumption`)."""
        share = action if self.params.action == "consumption_share" else 1.0 - action
        return self.clip_consumption(share * self.spendable(cash), cash)

    def clip_consumption(self, c: torch.Tensor, cash: torch.Tensor) -> torch.Tensor:
        """c clipped to [f, x − a̲ − f] with f = min(c_min, (x − a̲)/4); ``cash`` broadcastable to ``c``.

        f ≥ 10⁻⁶ c_min > 0: if even that is not affordable (x < a̲, possible only with a̲ < 0 far from equilibrium
        prices) the household consumes f and its assets fall below the limit, rather than c ≤ 0 (NaN utility)."""
        spend = self.spendable(cash)
        floor = torch.clamp(0.25 * spend, min=1e-6 * self.params.c_min, max=self.params.c_min)
        return torch.maximum(torch.minimum(c, spend - floor), floor)

    def utility(self, c: torch.Tensor) -> torch.Tensor:
        """u(c) = c^(1−γ)/(1−γ), log c at γ = 1."""
        if self.gamma == 1.0:
            return torch.log(c)
        return c.pow(1.0 - self.gamma) / (1.0 - self.gamma)

    def marginal_utility(self, c: torch.Tensor) -> torch.Tensor:
        """u'(c) = c^(−γ)."""
        return c.reciprocal() if self.gamma == 1.0 else c.pow(-self.gamma)

    def next_exogenous(self, state: TensorDict, shocks: TensorDict) -> tuple[torch.Tensor, torch.Tensor]:
        """(z', e') by inverse CDFs: z' = #{j: u_z ≥ cdf(j | z)}, e' = #{j: u_e ≥ cdf(j | z, z', e)}."""
        z, e = state["z"], state["e"]
        uz, ue = shocks["z_uniform"], shocks["e_uniform"]
        if self.n_z == 1:
            z_next = torch.zeros_like(z)
        elif self.n_z == 2:
            z_next = (uz >= self.cdf_z[z, 0]).long()
        else:
            z_next = (uz.unsqueeze(-1) >= self.cdf_z[z]).sum(-1)
        table = self.cdf_e[z, z_next]  # (B, n_e, n_e − 1): cdf of e' for each current e
        if self.n_e == 2:  # P(e' = 0 | z, z', e) for e = 0, 1, selected arithmetically by the real e
            p0 = table[:, :1, 0] + (table[:, 1:, 0] - table[:, :1, 0]) * e
            return z_next, (ue >= p0).to(self.dtype)
        cdf = torch.gather(table, 1, e.long().unsqueeze(-1).expand(*e.shape, self.n_e - 1))  # (B, N, n_e − 1)
        return z_next, (ue.unsqueeze(-1) >= cdf).sum(-1).to(self.dtype)

    # ------------------------------------------------------------------ Economy interface
    def initial_state(self, batch_size: int, generator: torch.Generator | None = None) -> TensorDict:
        """k = k_init for all; z from its stationary distribution; e from its stationary distribution given z."""
        u = torch.rand(batch_size, self.n_agents + 1, generator=generator, device=self.device, dtype=self.dtype)
        z = (u[:, :1] >= self.cdf_z0).sum(-1) if self.n_z > 1 else torch.zeros(batch_size, dtype=torch.long,
                                                                                   device=self.device)
        cdf = self.cdf_e0[z]  # (B, n_e − 1)
        e = (u[:, 1:].unsqueeze(-1) >= cdf.unsqueeze(1)).sum(-1).to(self.dtype)
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
                raise ValueError(f"out must be a buffer from {type(self).__name__}.shock_buffer (views of one draw)")
            torch.rand(b, self.n_agents + 1, out=flat, **kw)
            return out
        u = torch.rand(b, self.n_agents + 1, **kw)
        return TensorDict({"z_uniform": u[:, 0], "e_uniform": u[:, 1:]}, batch_size=[b], device=self.device)

    def transition(self, state: TensorDict, action: torch.Tensor, shocks: TensorDict) -> TensorDict:
        return self.transition_and_reward(state, action, shocks)[0]

    def transition_and_reward(
        self, state: TensorDict, action: torch.Tensor, shocks: TensorDict
    ) -> tuple[TensorDict, torch.Tensor]:
        """k' = x − c and u(c) from one evaluation of cash on hand and consumption."""
        cash = self.cash_on_hand(state)
        c = self.consumption(cash, action)
        z_next, e_next = self.next_exogenous(state, shocks)
        next_state = TensorDict({"k": cash - c, "e": e_next, "z": z_next}, batch_size=state.batch_size, device=self.device)
        return next_state, self.utility(c)

    def reward(self, state: TensorDict, action: torch.Tensor) -> torch.Tensor:
        """Utility u(c_i), shape (B, N)."""
        return self.utility(self.consumption(self.cash_on_hand(state), action))

    def observe(self, state: TensorDict) -> TensorDict:
        k = state["k"]
        aggregate = torch.stack([k.mean(-1), state["z"].to(self.dtype)], dim=-1)
        agents = torch.stack([k, state["e"]], dim=-1)
        return TensorDict({"agents": agents, "aggregate": aggregate}, batch_size=state.batch_size, device=self.device)

    def aggregates(self, state: TensorDict) -> dict[str, torch.Tensor]:
        k, z = state["k"], state["z"]
        K = k.mean(-1)
        R, w = self.prices(K, z)
        return {"K": K, **self._extra_aggregates(state), "z": z.to(self.dtype), "R": R, "w": w, "gini_k": gini(k)}

    def _extra_aggregates(self, state: TensorDict) -> dict[str, torch.Tensor]:
        """Economy-specific statistics listed after K (e.g. the unemployment rate)."""
        return {}

    @property
    def aggregate_states(self) -> int:
        return self.n_z

    def feature_bounds(self, name: str) -> tuple[float, float]:
        return {
            "k": (self.borrowing_limit, math.inf),
            "K": (self.borrowing_limit, math.inf),
            "e": (0.0, float(self.n_e - 1)),
            # without aggregate risk z ≡ 0; a degenerate [0, 0] box would make Gymnasium's checker warn
            "z": (0.0, float(max(self.n_z - 1, 1))),
        }.get(name, (-math.inf, math.inf))

    # ------------------------------------------------------------------ self-description
    @property
    def capital_scale(self) -> float:
        """The scale networks divide assets by (the initial assets, > 0)."""
        return self.k_init if self.k_init > 0 else 1.0

    def features(self) -> Features:
        """φ over k (the summary depends on the asset distribution only, as :meth:`euler_residual`'s successor
        layout requires); own (k, e); aggregate z; k divided by :attr:`capital_scale`, e by n_e − 1 (if n_e > 2)."""
        scale = (("k", self.capital_scale),) + ((("e", float(self.n_e - 1)),) if self.n_e > 2 else ())
        return Features(set=("k",), own=("k", "e"), aggregate=("z",), scale=scale)

    def neutral_action(self) -> float:
        """The action that keeps k' = k at an initial state (k = k_init), averaged over its households."""
        state = self.initial_state(1, self.generator(0))
        cash = self.cash_on_hand(state)
        saved = float(((state["k"] - self.borrowing_limit) / self.spendable(cash)).mean())
        return 1.0 - saved if self.params.action == "consumption_share" else saved

    def price_taking_transition(
        self, state: TensorDict, action: torch.Tensor, shocks: TensorDict
    ) -> tuple[TensorDict, torch.Tensor]:
        r"""Prices at the detached state; cash on hand is linear in own assets given prices, so
        :math:`x_i = x_i(\bar s) + R(\bar K)(k_i - \bar k_i)` (bar: detached), then the consumption clip,
        :math:`k_i' = x_i - c_i` and :math:`u(c_i)`: the same values as :meth:`transition_and_reward`."""
        frozen = state.detach()
        R, _ = self.prices(frozen["k"].mean(-1), frozen["z"])
        cash = self.cash_on_hand(frozen) + R.unsqueeze(-1) * (state["k"] - frozen["k"])
        c = self.consumption(cash, action)
        z_next, e_next = self.next_exogenous(frozen, shocks)
        nxt = TensorDict({"k": cash - c, "e": e_next, "z": z_next}, batch_size=state.batch_size, device=self.device)
        return nxt, self.utility(c)

    def relative_euler_error(self, policy: Policy, state: TensorDict) -> torch.Tensor:
        """g = 1 − c/c_EE (:meth:`euler_residual` with ``form="relative"``)."""
        return self.euler_residual(policy, state, form="relative")

    def consumption_of(self, state: TensorDict, action: torch.Tensor) -> torch.Tensor:
        return self.consumption(self.cash_on_hand(state), action)

    @property
    def crra_gamma(self) -> float:
        return self.gamma

    def expectation_nodes(self, **options) -> int:
        return self.n_z * self.n_e

    # ------------------------------------------------------------------ exact expectation over the successors
    def successors(self, k_next: torch.Tensor, state: TensorDict) -> tuple[TensorDict, torch.Tensor]:
        r"""The S = n_z·n_e successor populations of next-period assets ``k_next`` (B, N) and their probabilities.

        Successor s = (z', e') gives EVERY household the same e' (one policy call evaluates all S·B economies), so a
        policy's population summary must depend on the asset distribution only. Returns the successors (batch
        [S·B], s-major: z' outer, e' inner) and P(z', e' | z, e_i) of shape (S, B, N)."""
        b, n = k_next.shape
        S = self.n_z * self.n_e
        zs = torch.arange(self.n_z, device=self.device).repeat_interleave(self.n_e)
        es = torch.arange(self.n_e, device=self.device).repeat(self.n_z)
        successors = TensorDict(
            {
                "k": k_next.expand(S, b, n).reshape(S * b, n),
                "e": es.to(self.dtype)[:, None, None].expand(S, b, n).reshape(S * b, n),
                "z": zs[:, None].expand(S, b).reshape(S * b),
            },
            batch_size=[S * b],
            device=self.device,
        )
        e_idx = state["e"].long()
        prob = self.prob_joint[state["z"][None, :, None], e_idx[None], zs[:, None, None], es[:, None, None]]
        return successors, prob

    def euler_residual(
        self, policy: Policy, state: TensorDict, *, form: Literal["fischer_burmeister", "relative"] = "fischer_burmeister"
    ) -> torch.Tensor:
        r"""Fischer–Burmeister residual of the household Euler equation, shape (B, N).

        With a = (k' − a̲)/(x − a̲) (share of spendable resources saved, ≥ 0) and b = 1 − c/c_EE, where
        :math:`c_{EE} = u'^{-1}(\beta E[R' u'(c')])` is the consumption the Euler equation asks for (b ≥ 0: the
        relative gap of the Euler inequality), the residual is FB(a, b) = a + b − √(a² + b²), zero iff the
        complementarity holds.

        Sign: at an interior choice FB ≈ b, so **ε > 0: the household saves too much** (it would gain by consuming
        more) and **ε < 0: it consumes too much**.

        The expectation is exact: over z' and the household's own e' (:meth:`successors`), with R' = R(K', z'),
        K' = mean k'; one policy call evaluates every successor.

        ``form="relative"`` returns b = 1 − c/c_EE itself: |b| is the unit-free Euler-equation error of
        unconstrained households (same sign).
        """
        b, n = state["k"].shape
        cash = self.cash_on_hand(state)
        c = self.consumption(cash, policy(state))
        k_next = cash - c
        successors, prob = self.successors(k_next, state)
        S = prob.shape[0]
        c_next = self.consumption(self.cash_on_hand(successors), policy(successors)).reshape(S, b, n)
        R_next, _ = self.prices(successors["k"].mean(-1), successors["z"])
        R_next = R_next.reshape(S, b, 1)
        beta = self.params.beta
        if self.gamma == 1.0:  # 1 − β c E[R'/c']
            gap = 1.0 - beta * c * (prob * R_next / c_next).sum(0)
        else:  # 1 − c (β E[R' c'^−γ])^(1/γ)
            gap = 1.0 - c * (beta * (prob * R_next * c_next.pow(-self.gamma)).sum(0)).pow(1.0 / self.gamma)
        if form == "relative":
            return gap
        if form != "fischer_burmeister":
            raise ValueError(f"form must be 'fischer_burmeister' or 'relative', got {form!r}")
        return fischer_burmeister((k_next - self.borrowing_limit) / self.spendable(cash), gap)


#: the smallest K / L the prices are evaluated at
_TINY = 1e-12


def fischer_burmeister(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """FB(a, b) = a + b − √(a² + b²): zero iff a ≥ 0, b ≥ 0 and a·b = 0 (a smooth complementarity residual)."""
    return a + b - torch.sqrt(a * a + b * b)


def gini(values: torch.Tensor) -> torch.Tensor:
    """Gini coefficient over the last dim: G = 2 Σ_i i v_(i) / (N Σ v) − (N + 1)/N, with v sorted ascending."""
    n = values.shape[-1]
    v = values.sort(dim=-1).values
    ranks = torch.arange(1, n + 1, device=values.device, dtype=values.dtype)
    total = v.sum(-1)
    return 2.0 * (v * ranks).sum(-1) / (n * total) - (n + 1.0) / n if n > 1 else torch.zeros_like(total)


def conditional_stationary(joint_transition: np.ndarray) -> np.ndarray:
    """(n_z, n_e): P(e | z) under the stationary distribution of the joint chain P[z, e, z', e'] (float64)."""
    n_z, n_e = np.asarray(joint_transition).shape[:2]
    P = np.asarray(joint_transition, dtype=float).reshape(n_z * n_e, n_z * n_e)
    joint = _stationary(P).reshape(n_z, n_e)
    return joint / np.maximum(joint.sum(-1, keepdims=True), 1e-300)


def _stationary(P: np.ndarray) -> np.ndarray:
    """The stationary distribution of the row-stochastic matrix P (left eigenvector of eigenvalue 1, ≥ 0, sum 1);
    for a reducible chain, the limit of the uniform start."""
    n = P.shape[0]
    if n == 1:
        return np.ones(1)
    if n == 2:  # closed form: π_0 = P_10 / (P_01 + P_10)
        denom = P[0, 1] + P[1, 0]
        first = float(P[1, 0] / denom) if denom > 0 else 0.5
        return np.array([first, 1.0 - first])
    P = P / P.sum(1, keepdims=True)
    try:
        return markov.stationary_distribution(P)
    except ValueError:  # several closed classes (e.g. an aggregate state that never changes): the uniform start's limit
        pi = np.full(n, 1.0 / n) @ np.linalg.matrix_power(P, 1 << 12)
        return pi / pi.sum()
