"""Exact solution of the linear (ν = 1) investment economy: u(X) = H0 + H1 · mean(X).

Two independent derivations, cross-checked in the tests:

* :func:`closed_form` — match coefficients in the Euler equation
  ``γ u(X) = β E[ p(X') + γ(1−δ) u(X') ]`` with ``E[mean X'] = (1−δ+H1) mean X + H0``:

      βγ(1−δ) H1² + [βγ(1−δ)² − βα1 − γ] H1 − βα1(1−δ) = 0     (stable root: |1−δ+H1| < 1)
      H0 = β α0 / [ γ − βγ(1−δ) − β(γ(1−δ) H1 − α1) ]

* :func:`riccati` — a price-taking firm solves a discounted linear-quadratic regulator on the state
  s = (1, x, X̄) given the perceived law X̄' = H0 + (1−δ+H1) X̄; its optimal rule u = −F s must reproduce the
  perceived law (and not depend on its own x): a fixed point in (H0, H1), solved with scipy.

Certainty equivalence: neither depends on σ, η or N.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import scipy.linalg
import scipy.optimize
from tensordict import TensorDict


def closed_form(alpha0: float, alpha1: float, beta: float, gamma: float, delta: float) -> tuple[float, float]:
    """(H0, H1) from the quadratic in H1 (stable root) and the linear equation in H0."""
    a = beta * gamma * (1 - delta)
    b = beta * gamma * (1 - delta) ** 2 - beta * alpha1 - gamma
    c = -beta * alpha1 * (1 - delta)
    if a == 0.0:  # δ = 1: the equation is linear in H1
        roots = [-c / b]
    else:
        disc = b * b - 4 * a * c
        if disc < 0:
            raise ValueError(f"no real equilibrium: discriminant {disc:g} < 0")
        sq = math.sqrt(disc)
        # numerically stable pair of roots (avoid cancellation in −b ± sq)
        q = -0.5 * (b + math.copysign(sq, b))
        roots = [q / a, c / q] if q != 0 else [0.0]
    # the non-explosive root, |1−δ+H1| ≤ 1: the quadratic is ≤ 0 at H1 = δ, so the other root is ≥ δ, explosive;
    # the boundary case |1−δ+H1| = 1 occurs only for α1 = 0, δ = 0 (constant price, no depreciation: H1 = 0)
    stable = [h for h in roots if abs(1 - delta + h) <= 1]
    if len(stable) != 1:
        raise ValueError(f"expected exactly one stable root of the H1 equation, got roots {roots}")
    h1 = stable[0]
    h0 = beta * alpha0 / (gamma - beta * gamma * (1 - delta) - beta * (gamma * (1 - delta) * h1 - alpha1))
    return h0, h1


def firm_lqr(h0: float, h1: float, alpha0: float, alpha1: float, beta: float, gamma: float, delta: float):
    """Optimal feedback u = −F s of one price taker on s = (1, x, X̄) given X̄' = H0 + (1−δ+H1) X̄.

    Minimises Σ β^t [ s'Rs + γ/2 u² ] with s'Rs = −(α0 − α1 X̄) x, via the discounted Riccati equation
    (``scipy.linalg.solve_discrete_are`` on √β-scaled dynamics). Returns F as a length-3 array.
    """
    A = np.array([[1.0, 0.0, 0.0], [0.0, 1 - delta, 0.0], [h0, 0.0, 1 - delta + h1]])
    B = np.array([[0.0], [1.0], [0.0]])
    R = np.array([[0.0, -alpha0 / 2, 0.0], [-alpha0 / 2, 0.0, alpha1 / 2], [0.0, alpha1 / 2, 0.0]])
    Q = np.array([[gamma / 2]])
    sb = math.sqrt(beta)
    P = scipy.linalg.solve_discrete_are(sb * A, sb * B, R, Q)
    F = np.linalg.solve(Q + beta * B.T @ P @ B, beta * B.T @ P @ A)
    return F.ravel()


def riccati(alpha0: float, alpha1: float, beta: float, gamma: float, delta: float) -> tuple[float, float]:
    """(H0, H1) as the rational-expectations fixed point of the firm's LQ regulator."""

    def gap(h: np.ndarray) -> np.ndarray:
        F = firm_lqr(h[0], h[1], alpha0, alpha1, beta, gamma, delta)
        return np.array([-F[0] - h[0], -F[2] - h[1]])

    sol = scipy.optimize.root(gap, x0=np.zeros(2), method="hybr", tol=1e-13)
    residual = float(np.abs(gap(sol.x)).max())
    if residual > 1e-10:
        raise RuntimeError(f"Riccati fixed point did not converge (residual {residual:.2e}): {sol.message}")
    return float(sol.x[0]), float(sol.x[1])


def linear_policy_value(economy, h0: float | None = None, h1: float | None = None) -> Callable:
    r"""The exact value of firm i when every firm invests :math:`u = H_0 + H_1 \bar X` (investment economy, ν = 1).

    With :math:`s = (1, x_i, \bar X)` the state follows :math:`s' = A s + \varepsilon` with

    .. math:: A = \begin{pmatrix} 1 & 0 & 0 \\ H_0 & 1-\delta & H_1 \\ H_0 & 0 & 1-\delta+H_1 \end{pmatrix},\quad
              \mathrm{Var}(\varepsilon_x) = \sigma^2 + \eta^2,\ \mathrm{Var}(\varepsilon_{\bar X}) =
              \mathrm{Cov}(\varepsilon_x, \varepsilon_{\bar X}) = \sigma^2/N + \eta^2

    (the mean of the N idiosyncratic shocks includes firm i's own), and the profit
    :math:`(\alpha_0 - \alpha_1 \bar X) x_i - \tfrac\gamma2 (H_0 + H_1\bar X)^2 = s^\top R s`. Then
    :math:`V(s) = s^\top P s` with :math:`P = R + \beta A^\top P A + c\, e_0 e_0^\top`, solved as the discounted
    Lyapunov equation :math:`\tilde P = R + \beta A^\top \tilde P A` and :math:`c = \beta\,\mathrm{tr}(\tilde P
    \Sigma)/(1-\beta)`. Defaults: the LQ (equilibrium) coefficients. Returns ``value(state) -> (B, N)``."""
    p = economy.params
    if p.nu != 1.0:
        raise ValueError(f"the exact value exists for the linear model nu = 1 only, got nu = {p.nu}")
    if h0 is None or h1 is None:
        h0, h1 = economy.lq_coefficients()
    beta, n = p.beta, economy.n_agents
    A = np.array([[1.0, 0.0, 0.0], [h0, 1 - p.delta, h1], [h0, 0.0, 1 - p.delta + h1]])
    R = np.array([
        [-0.5 * p.gamma * h0**2, p.alpha0 / 2, -0.5 * p.gamma * h0 * h1],
        [p.alpha0 / 2, 0.0, -p.alpha1 / 2],
        [-0.5 * p.gamma * h0 * h1, -p.alpha1 / 2, -0.5 * p.gamma * h1**2],
    ])
    var_agg = p.sigma**2 / n + p.eta**2
    Sigma = np.array([[0.0, 0.0, 0.0], [0.0, p.sigma**2 + p.eta**2, var_agg], [0.0, var_agg, var_agg]])
    P = scipy.linalg.solve_discrete_lyapunov(math.sqrt(beta) * A.T, R)
    P[0, 0] += beta * float(np.trace(P @ Sigma)) / (1 - beta)

    def value(state: TensorDict) -> torch.Tensor:
        x = state["x"].double()
        m = x.mean(-1, keepdim=True)
        v = (P[0, 0] + 2 * P[0, 1] * x + 2 * P[0, 2] * m + P[1, 1] * x * x + 2 * P[1, 2] * x * m + P[2, 2] * m * m)
        return v.to(state["x"].dtype)

    value.P = P  # type: ignore[attr-defined]
    return value
