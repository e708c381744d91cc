r"""The N-firm investment economy (a Lucas–Prescott variant; Kahou, Fernández-Villaverde, Perla & Sood).

Model (one economy; all B economies at once in the code):

* N firms with capital :math:`x_i`; :math:`X = (x_1, \dots, x_N)`.
* Inverse demand :math:`p(X) = \alpha_0 - \alpha_1 \frac1N \sum_i x_i^\nu`
  (ν = 1: linear, an exact LQ problem; ν > 1: nonlinear, and :math:`x_i^\nu` reads :math:`\max(x_i, 0)^\nu`).
* Period profit of firm i (a price taker): :math:`p(X)\, x_i - \frac{\gamma}{2} u_i^2`, with investment :math:`u_i`.
* Law of motion: :math:`x_i' = (1-\delta) x_i + u_i + \sigma w_i + \eta \omega`, with :math:`w_i \sim N(0,1)`
  i.i.d. idiosyncratic and :math:`\omega \sim N(0,1)` one aggregate shock per economy and period.
* Euler equation: :math:`\gamma u_i(X) = \beta\, E\left[ p(X') + \gamma (1-\delta) u_i(X') \right]`.
* Exact solution for ν = 1: :math:`u(X) = H_0 + H_1\, \mathrm{mean}(X)` (:mod:`hetagents_env.economies.lq`); at the
  baseline H0 = 0.0687224390648, H1 = −0.0504613550013.

Shapes: state ``"x"`` (B, N); action u (B, N); shocks ``"w"`` (B, N) and ``"omega"`` (B,). Units: capital and
investment in units of the good; the price in goods per unit of capital.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import numpy as np
import torch
from tensordict import TensorDict

from . import lq
from .core import Economy, Features, Policy, _check_buffer
from .registry import register_economy
from .params import Params, interval


@dataclasses.dataclass(frozen=True)
class InvestmentParams(Params):
    """Parameters of the investment economy; defaults are the paper's baseline (linear, ν = 1)."""

    model_name = "investment economy"

    alpha0: float = dataclasses.field(default=1.0, metadata=interval(0.0, open_lo=True))
    """demand intercept α0 > 0"""
    alpha1: float = dataclasses.field(default=1.0, metadata=interval(0.0))
    """demand slope α1 ≥ 0"""
    beta: float = dataclasses.field(default=0.95, metadata=interval(0.0, 1.0, open_lo=True, open_hi=True))
    """discount factor β ∈ (0, 1)"""
    gamma: float = dataclasses.field(default=90.0, metadata=interval(0.0, open_lo=True))
    """adjustment cost γ > 0"""
    delta: float = dataclasses.field(default=0.05, metadata=interval(0.0, 1.0))
    """depreciation δ ∈ [0, 1]"""
    sigma: float = dataclasses.field(default=0.005, metadata=interval(0.0))
    """sd of the idiosyncratic shock σ ≥ 0"""
    eta: float = dataclasses.field(default=0.001, metadata=interval(0.0))
    """sd of the aggregate shock η ≥ 0"""
    nu: float = dataclasses.field(default=1.0, metadata=interval(1.0))
    """curvature of demand ν ≥ 1"""
    x0_mean: float = dataclasses.field(default=0.9, metadata=interval())
    """mean of the initial capital draw |N(x0_mean, x0_sd²)|"""
    x0_sd: float = dataclasses.field(default=0.05, metadata=interval(0.0))
    """sd of the initial capital draw"""


@register_economy
class InvestmentEconomy(Economy):
    """N price-taking firms choosing investment; see the module docstring for the equations.

    Action: investment u per firm, unbounded real, shape (B, N).
    """

    env_id = "Investment-v0"
    agent_name = "firm"
    Params = InvestmentParams
    default_n_agents = 128
    agent_features = ("x",)
    endogenous_key = "x"
    aggregate_features = ("mean_x", "price")

    params: InvestmentParams

    # ------------------------------------------------------------------ self-description
    def features(self) -> Features:
        """φ over x, no own state (μ = 0: u depends on X only), no aggregate exogenous state, unscaled (Kahou)."""
        return Features(set=("x",))

    def centred_features(self) -> Features:
        """x centred at the initial mean x0_mean and divided by 0.1: inputs O(1) for networks with hidden biases."""
        return Features(set=("x",), scale=(("x", 0.1),), shift=(("x", float(self.params.x0_mean)),))

    def neutral_action(self) -> float:
        """Replacement investment δ · x0_mean: keeps x at the initial mean."""
        return self.params.delta * self.params.x0_mean

    @property
    def action_scale(self) -> float:
        """max(δ, 0.01) · max(|x0_mean|, 0.1): replacement investment, bounded away from 0."""
        p = self.params
        return max(p.delta, 0.01) * max(abs(p.x0_mean), 0.1)

    def price_taking_transition(
        self, state: TensorDict, action: torch.Tensor, shocks: TensorDict
    ) -> tuple[TensorDict, torch.Tensor]:
        """The law of motion has no aggregates; the profit uses the detached price: p(X̄) x_i − γ u_i²/2."""
        frozen = state.detach()
        nxt = self.transition(state, action, shocks)
        reward = self.reward(frozen, action) + self.price(frozen["x"]).unsqueeze(-1) * (state["x"] - frozen["x"])
        return nxt, reward

    def residual_options(self, *, generator: torch.Generator | None = None, nodes: int = 7,
                         standardize: bool = True) -> dict:
        """The published method: ``nodes``-point Gauss–Hermite over ω and ONE idiosyncratic draw ŵ ∈ R^N from
        ``generator``, standardised to mean 0 / sd 1 (:meth:`standardized_draw`) unless ``standardize=False``."""
        if standardize:
            w = self.standardized_draw(generator)
        else:
            w = torch.randn(self.n_agents, generator=generator, device=self.device, dtype=self.dtype)
        return {"method": "quadrature", "nodes": int(nodes), "idiosyncratic": w}

    def expectation_nodes(self, *, method: str = "quadrature", nodes: int = 7, samples: int = 64, **_) -> int:
        return nodes if method == "quadrature" else samples

    def exact_policy(self) -> Policy | None:
        """The LQ policy (ν = 1), else None."""
        return self.lq_policy if self.params.nu == 1.0 else None

    def exact_value(self):
        """The exact value of the LQ policy (ν = 1, :func:`~hetagents_env.economies.lq.linear_policy_value`)."""
        return lq.linear_policy_value(self) if self.params.nu == 1.0 else None

    def data_policy(self) -> Policy:
        """u = H0 + H1 mean(X) with the LINEAR model's exact coefficients, for every ν (Kahou's training data)."""
        p = self.params
        h0, h1 = lq.closed_form(p.alpha0, p.alpha1, p.beta, p.gamma, p.delta)

        def policy(state: TensorDict) -> torch.Tensor:
            x = state["x"]
            return (h0 + h1 * x.mean(-1, keepdim=True)).expand_as(x)

        return policy

    # ------------------------------------------------------------------ equations
    def demand_index(self, x: torch.Tensor) -> torch.Tensor:
        """(1/N) Σ_i x_i^ν over the last dim: (..., N) -> (...). For ν > 1 negative capital counts as 0."""
        nu = self.params.nu
        if nu == 1.0:
            return x.mean(-1)
        return x.clamp_min(0.0).pow(nu).mean(-1)

    def price(self, x: torch.Tensor) -> torch.Tensor:
        """p(X) = α0 − α1 (1/N) Σ_i x_i^ν: (..., N) -> (...)."""
        return self.params.alpha0 - self.params.alpha1 * self.demand_index(x)

    def next_capital(self, x: torch.Tensor, u: torch.Tensor, w: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        """x' = (1−δ) x + u + σ w + η ω, broadcasting ω (...,) over the agents."""
        p = self.params
        return (1.0 - p.delta) * x + u + p.sigma * w + p.eta * omega.unsqueeze(-1)

    # ------------------------------------------------------------------ Economy interface
    def initial_state(self, batch_size: int, generator: torch.Generator | None = None) -> TensorDict:
        """X_0 = |N(x0_mean, x0_sd²)| elementwise, independently for each of the ``batch_size`` economies."""
        p = self.params
        x = torch.randn(batch_size, self.n_agents, generator=generator, device=self.device, dtype=self.dtype)
        return TensorDict({"x": (p.x0_mean + p.x0_sd * x).abs()}, batch_size=[batch_size], device=self.device)

    def sample_shocks(
        self, state: TensorDict, generator: torch.Generator | None = None, *, out: TensorDict | None = None
    ) -> TensorDict:
        """w ~ N(0, 1) (B, N) then ω ~ N(0, 1) (B,), in that order from ``generator`` (into ``out`` if given)."""
        b = state.batch_size[0]
        kw = dict(generator=generator, device=self.device, dtype=self.dtype)
        if out is not None:
            _check_buffer(out, b)
            torch.randn(b, self.n_agents, out=out["w"], **kw)
            torch.randn(b, out=out["omega"], **kw)
            return out
        w = torch.randn(b, self.n_agents, **kw)
        omega = torch.randn(b, **kw)
        return TensorDict({"w": w, "omega": omega}, batch_size=[b], device=self.device)

    def transition(self, state: TensorDict, action: torch.Tensor, shocks: TensorDict) -> TensorDict:
        x_next = self.next_capital(state["x"], action, shocks["w"], shocks["omega"])
        return TensorDict({"x": x_next}, batch_size=state.batch_size, device=self.device)

    def reward(self, state: TensorDict, action: torch.Tensor) -> torch.Tensor:
        """Profit p(X) x_i − γ u_i² / 2, shape (B, N)."""
        x = state["x"]
        return self.price(x).unsqueeze(-1) * x - 0.5 * self.params.gamma * action.square()

    def observe(self, state: TensorDict) -> TensorDict:
        x = state["x"]
        aggregate = torch.stack([x.mean(-1), self.price(x)], dim=-1)
        return TensorDict(
            {"agents": x.unsqueeze(-1), "aggregate": aggregate}, batch_size=state.batch_size, device=self.device
        )

    def aggregates(self, state: TensorDict) -> dict[str, torch.Tensor]:
        x = state["x"]
        return {"mean_x": x.mean(-1), "sd_x": x.std(-1, correction=0), "price": self.price(x)}

    # ------------------------------------------------------------------ exact LQ solution (ν = 1)
    def lq_coefficients(self, method: Literal["closed_form", "riccati"] = "closed_form") -> tuple[float, float]:
        """(H0, H1) of the exact policy u(X) = H0 + H1 mean(X); only for the linear model (ν = 1)."""
        p = self.params
        if p.nu != 1.0:
            raise ValueError(f"the LQ solution exists only for the linear model nu = 1, got nu = {p.nu}")
        solve = {"closed_form": lq.closed_form, "riccati": lq.riccati}.get(method)
        if solve is None:
            raise ValueError(f"method must be 'closed_form' or 'riccati', got {method!r}")
        return solve(p.alpha0, p.alpha1, p.beta, p.gamma, p.delta)

    def lq_policy(self, state: TensorDict) -> torch.Tensor:
        """The exact policy u = H0 + H1 mean(X), the same for every firm, shape (B, N)."""
        h0, h1 = self._lq
        x = state["x"]
        return (h0 + h1 * x.mean(-1, keepdim=True)).expand_as(x)

    @functools.cached_property
    def _lq(self) -> tuple[float, float]:
        return self.lq_coefficients()

    # ------------------------------------------------------------------ Euler residual
    def standardized_draw(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw ŵ ∈ R^N of idiosyncratic shocks, standardised to sample mean 0 and sd 1 (shape (N,)).

        With ŵ standardised the LQ policy is an exact zero of the residual when ν = 1 (the published method).
        """
        w = torch.randn(self.n_agents, generator=generator, device=self.device, dtype=torch.float64)
        if self.n_agents > 1:
            w = (w - w.mean()) / w.std(correction=0)
        else:
            w = torch.zeros_like(w)
        return w.to(self.dtype)

    def euler_residual(
        self,
        policy: Policy,
        state: TensorDict,
        *,
        method: Literal["quadrature", "monte_carlo"] = "quadrature",
        nodes: int = 7,
        idiosyncratic: torch.Tensor | None = None,
        samples: int = 64,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        r"""ε_i(X) = γ u_i(X) − β E[ p(X') + γ(1−δ) u_i(X') ], shape (B, N), differentiable through ``policy``.

        ``method="quadrature"`` (published): E over the aggregate shock ω by ``nodes``-point Gauss–Hermite
        quadrature for N(0, 1) (weights normalised to 1) and ONE fixed idiosyncratic draw ŵ (``idiosyncratic``,
        shape (N,), e.g. from :meth:`standardized_draw`; drawn from ``generator`` and standardised if omitted).
        ``method="monte_carlo"``: E over ``samples`` joint draws of (w, ω) per state.

        The policy is evaluated once on all successors (batch ``nodes·B`` or ``samples·B``).
        """
        p = self.params
        x = state["x"]
        b, n = x.shape
        u = policy(state)
        if method == "quadrature":
            omega, weights = gauss_hermite(nodes, self.device, self.dtype)
            w = self.standardized_draw(generator) if idiosyncratic is None else idiosyncratic
            if w.shape != (n,):
                raise ValueError(f"idiosyncratic draw must have shape ({n},), got {tuple(w.shape)}")
            w = w.to(device=self.device, dtype=self.dtype).expand(nodes, b, n)
            omega = omega[:, None].expand(nodes, b)
        elif method == "monte_carlo":
            weights = torch.full((samples,), 1.0 / samples, device=self.device, dtype=self.dtype)
            w = torch.randn(samples, b, n, generator=generator, device=self.device, dtype=self.dtype)
            omega = torch.randn(samples, b, generator=generator, device=self.device, dtype=self.dtype)
        else:
            raise ValueError(f"method must be 'quadrature' or 'monte_carlo', got {method!r}")
        k = weights.shape[0]
        x_next = self.next_capital(x.expand(k, b, n), u.expand(k, b, n), w, omega)  # (K, B, N)
        u_next = policy(TensorDict({"x": x_next.reshape(k * b, n)}, batch_size=[k * b])).reshape(k, b, n)
        marginal_value = self.price(x_next).unsqueeze(-1) + p.gamma * (1 - p.delta) * u_next  # (K, B, N)
        expected = torch.einsum("k,kbn->bn", weights, marginal_value)
        return p.gamma * u - p.beta * expected


@functools.lru_cache(maxsize=32)
def gauss_hermite(nodes: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights (summing to 1) of Gauss–Hermite quadrature for a standard normal (numpy ``hermegauss``)."""
    if nodes < 1:
        raise ValueError(f"nodes must be >= 1, got {nodes}")
    z, wts = np.polynomial.hermite_e.hermegauss(nodes)
    wts = wts / wts.sum()
    return torch.as_tensor(z, dtype=dtype, device=device), torch.as_tensor(wts, dtype=dtype, device=device)
