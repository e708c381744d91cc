r"""Finite Markov chains for idiosyncratic productivity: AR(1) discretisations and stationary distributions.

Pure numpy (no torch, nothing registered). The process is a log AR(1)

.. math:: y' = \rho\, y + \varepsilon', \qquad \varepsilon' \sim N\big(0,\ \sigma^2 (1 - \rho^2)\big),

parametrised, as in Aiyagari (1994), by its *unconditional* standard deviation σ (so the innovation sd is
:math:`\sigma_\varepsilon = \sigma\sqrt{1-\rho^2}`). Each discretisation returns ``(grid, P)``: the ``(n,)`` grid
of **log** states y_i (productivity levels are ``exp(grid)``) and the ``(n, n)`` row-stochastic matrix
``P[i, j] = Pr(y' = y_j | y = y_i)``.

* :func:`rouwenhorst` — exact in the first two conditional and unconditional moments for every ρ (preferred for
  persistent processes);
* :func:`tauchen` — Tauchen (1986): equally spaced grid on ±``width``·σ, normal-CDF probabilities;
* :func:`stationary_distribution` — the invariant distribution π = π P of a stochastic matrix.

A bad argument raises ``ValueError`` naming the parameter, its value and the allowed range.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

__all__ = ["rouwenhorst", "stationary_distribution", "tauchen"]


def _check(n: int, rho: float, sigma: float) -> tuple[int, float, float]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"parameter 'n' = {n!r} is out of range: allowed integers >= 2")
    rho, sigma = float(rho), float(sigma)
    if not math.isfinite(rho) or abs(rho) >= 1.0:
        raise ValueError(f"parameter 'rho' = {rho!r} is out of range: allowed (-1, 1)")
    if not math.isfinite(sigma) or sigma < 0.0:
        raise ValueError(f"parameter 'sigma' = {sigma!r} is out of range: allowed [0, inf)")
    return int(n), rho, sigma


def rouwenhorst(n: int, rho: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Rouwenhorst (1995; Kopecky & Suen 2010) discretisation of the log AR(1) with unconditional sd σ.

    Grid: n equally spaced points on :math:`[-\psi, \psi]`, :math:`\psi = \sigma\sqrt{n-1}`. With
    :math:`p = q = (1+\rho)/2`, the matrix is built recursively from
    :math:`P_2 = \begin{pmatrix} p & 1-p \\ 1-q & q \end{pmatrix}`:

    .. math:: P_m = p \begin{pmatrix} P_{m-1} & 0 \\ 0^\top & 0 \end{pmatrix}
                  + (1-p) \begin{pmatrix} 0 & P_{m-1} \\ 0 & 0^\top \end{pmatrix}
                  + (1-q) \begin{pmatrix} 0^\top & 0 \\ P_{m-1} & 0 \end{pmatrix}
                  + q \begin{pmatrix} 0 & 0^\top \\ 0 & P_{m-1} \end{pmatrix},

    and rows 2..m−1 are halved. The chain's stationary distribution is Binomial(n−1, 1/2) over the grid, its
    unconditional variance is exactly σ² and its first-order autocorrelation exactly ρ, for every n ≥ 2.

    Returns ``(grid, P)``: log states (n,) and the (n, n) transition matrix.
    """
    n, rho, sigma = _check(n, rho, sigma)
    p = q = (1.0 + rho) / 2.0
    P = np.array([[p, 1.0 - p], [1.0 - q, q]])
    for m in range(3, n + 1):
        Z = np.zeros((m, m))
        Z[:-1, :-1] += p * P
        Z[:-1, 1:] += (1.0 - p) * P
        Z[1:, :-1] += (1.0 - q) * P
        Z[1:, 1:] += q * P
        Z[1:-1] /= 2.0
        P = Z
    psi = sigma * math.sqrt(n - 1)
    grid = np.linspace(-psi, psi, n)
    return grid, P / P.sum(axis=1, keepdims=True)


def tauchen(n: int, rho: float, sigma: float, width: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    r"""Tauchen (1986) discretisation of the log AR(1) with unconditional sd σ.

    Grid: :math:`y_i` equally spaced on :math:`[-m\sigma, m\sigma]` (m = ``width``), step d. With innovation sd
    :math:`\sigma_\varepsilon = \sigma\sqrt{1-\rho^2}` and Φ the standard normal CDF,

    .. math:: P_{i1} = \Phi\Big(\frac{y_1 - \rho y_i + d/2}{\sigma_\varepsilon}\Big), \quad
              P_{in} = 1 - \Phi\Big(\frac{y_n - \rho y_i - d/2}{\sigma_\varepsilon}\Big), \quad
              P_{ij} = \Phi\Big(\frac{y_j - \rho y_i + d/2}{\sigma_\varepsilon}\Big)
                     - \Phi\Big(\frac{y_j - \rho y_i - d/2}{\sigma_\varepsilon}\Big).

    Every ratio scales with σ, so P depends on (n, ρ, m) only; σ = 0 gives the σ → 0 limit of P on a degenerate
    grid of zeros. Returns ``(grid, P)``: log states (n,) and the (n, n) transition matrix.
    """
    n, rho, sigma = _check(n, rho, sigma)
    width = float(width)
    if not math.isfinite(width) or width <= 0.0:
        raise ValueError(f"parameter 'width' = {width!r} is out of range: allowed (0, inf)")
    unit = np.linspace(-width, width, n)  # the grid for σ = 1
    d = unit[1] - unit[0]
    s_eps = math.sqrt(1.0 - rho * rho)
    mean = rho * unit[:, None]
    upper = ndtr((unit[None, :] - mean + d / 2.0) / s_eps)
    lower = ndtr((unit[None, :] - mean - d / 2.0) / s_eps)
    upper[:, -1] = 1.0
    lower[:, 0] = 0.0
    P = upper - lower
    return sigma * unit + 0.0, P / P.sum(axis=1, keepdims=True)


def stationary_distribution(P) -> np.ndarray:
    r"""The invariant distribution π of the stochastic matrix P: :math:`\pi = \pi P`, :math:`\sum_i \pi_i = 1`.

    Solved as the linear system :math:`(P^\top - I)\pi = 0` with one equation replaced by :math:`\sum_i \pi_i = 1`.
    Raises ``ValueError`` if P is not square, has negative entries or rows not summing to 1 (tolerance 1e-10), or
    if the chain has more than one invariant distribution (several closed classes).
    """
    P = np.asarray(P, dtype=float)
    if P.ndim != 2 or P.shape[0] != P.shape[1] or P.shape[0] < 1:
        raise ValueError(f"parameter 'P' must be a square (n, n) matrix, got shape {P.shape}")
    if not np.all(np.isfinite(P)) or P.min() < 0.0:
        raise ValueError(f"parameter 'P' must have finite entries in [0, 1], got minimum {P.min()!r}")
    rows = P.sum(axis=1)
    if np.abs(rows - 1.0).max() > 1e-10:
        raise ValueError(f"parameter 'P' must be row-stochastic (rows sum to 1), got row sums {rows.tolist()}")
    n = P.shape[0]
    A = P.T - np.eye(n)
    A[-1, :] = 1.0
    b = np.zeros(n)
    b[-1] = 1.0
    try:
        pi = np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        raise ValueError("parameter 'P' has no unique stationary distribution (more than one closed class)") from None
    if not np.all(np.isfinite(pi)) or pi.min() < -1e-10 or np.abs(pi @ P - pi).max() > 1e-9:
        raise ValueError("parameter 'P' has no unique stationary distribution (more than one closed class)")
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()
