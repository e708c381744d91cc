r"""Log-linear aggregate laws of motion (ALM) and Den Haan's accuracy test.

An ALM per aggregate state z:  ln K' = a_z + b_z ln K, stored as a (2, 2) array ``[[a_b, b_b], [a_g, b_g]]``.

* :func:`fit_alm` — OLS per aggregate state on a simulated path of K (what the classical algorithm does, and how the
  judge gives an ALM to solvers that have none), with R².
* :func:`den_haan` — Den Haan (2010): start the ALM at the panel's K_1 and iterate it on its own predictions (never
  re-anchored) along the panel's aggregate shocks; report mean and max over t of 100·|K_panel − K_ALM| / K_panel.
  R² alone is not an accuracy test; above ≈ 1 % means a mis-specified or unconverged ALM.

Paths are numpy or torch 1-D arrays of length T (one economy); the loop over time is sequential by nature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


@dataclass(frozen=True)
class ALMFit:
    """OLS fit of ln K' = a_z + b_z ln K: ``coefficients`` (2, 2) as [[a_b, b_b], [a_g, b_g]], ``r2`` (2,)."""

    coefficients: np.ndarray
    r2: np.ndarray

    def to_dict(self) -> dict:
        (ab, bb), (ag, bg) = self.coefficients.tolist()
        return {"bad": {"a": ab, "b": bb, "r2": float(self.r2[0])}, "good": {"a": ag, "b": bg, "r2": float(self.r2[1])}}


def fit_alm(K, z, burn_in: int = 0) -> ALMFit:
    """Regress ln K_{t+1} on (1, ln K_t) separately for z_t = 0 and 1, over t ≥ ``burn_in``.

    Args:
        K: (T,) aggregate capital path; z: (T,) aggregate states in {0, 1} (z_t is the state in which K_{t+1} is
            chosen). Several independent paths may be given as (P, T) arrays: the regressions pool them.
    """
    K, z = np.atleast_2d(_np(K)).astype(float), np.atleast_2d(_np(z)).astype(int)
    x, y, s = np.log(K[:, burn_in:-1]).ravel(), np.log(K[:, burn_in + 1 :]).ravel(), z[:, burn_in:-1].ravel()
    coefficients, r2 = np.zeros((2, 2)), np.zeros(2)
    for state in (0, 1):
        xs, ys = x[s == state], y[s == state]
        if len(xs) < 2:
            raise ValueError(f"aggregate state {state} occurs {len(xs)} times after burn-in: cannot fit an ALM")
        X = np.stack([np.ones_like(xs), xs], axis=1)
        beta, *_ = np.linalg.lstsq(X, ys, rcond=None)
        resid = ys - X @ beta
        total = ((ys - ys.mean()) ** 2).sum()
        coefficients[state] = beta
        r2[state] = 1.0 - (resid**2).sum() / total if total > 0 else 1.0
    return ALMFit(coefficients, r2)


def alm_path(coefficients, K0: float, z) -> np.ndarray:
    """Iterate ln K_{t+1} = a_{z_t} + b_{z_t} ln K_t from K_0 on its own predictions: (T,) path."""
    coefficients, z = np.asarray(coefficients, dtype=float), _np(z).astype(int)
    log_k = np.empty(len(z))
    log_k[0] = np.log(K0)
    a, b = coefficients[z, 0], coefficients[z, 1]
    for t in range(len(z) - 1):
        log_k[t + 1] = a[t] + b[t] * log_k[t]
    return np.exp(log_k)


def den_haan(K, z, coefficients) -> dict:
    """Den Haan statistic of an ALM against a panel path K (T,) with states z (T,): mean and max % error."""
    K = _np(K).astype(float)
    error = 100.0 * np.abs(K - alm_path(coefficients, K[0], z)) / K
    return {"mean_pct": float(error[1:].mean()), "max_pct": float(error[1:].max())}


def den_haan_of_policy(
    policy,
    economy,
    *,
    alm=None,
    economies: int = 1,
    periods: int = 2000,
    burn_in: int = 500,
    seed: int = 0,
    initial_state=None,
) -> dict:
    """The Den Haan statistic of any policy on the Krusell–Smith economy (the judge's version).

    Simulates ``economies`` independent panels of the economy's N households under ``policy`` for ``burn_in`` +
    ``periods`` periods (common random numbers through ``seed``), then iterates ``alm`` — the solver's own law of
    motion, or, for solvers without one, an ALM fitted by OLS on the same simulated panels (so that every solver is
    scored by it) — on its own from each panel's K after the burn-in. Returns the ALM, its R² on the panels, and
    the mean and max over periods (and paths) of 100·|K − K_ALM|/K.
    """
    import torch  # local: this module is otherwise numpy-only

    gen = economy.generator(seed)
    state = economy.initial_state(economies, gen) if initial_state is None else initial_state
    K, z = [], []
    with torch.no_grad():
        for t in range(burn_in + periods):
            if t >= burn_in:
                K.append(state[economy.endogenous_key].mean(-1))
                z.append(state[economy.aggregate_state_key])
            state = economy.transition(state, policy(state), economy.sample_shocks(state, gen))
    K, z = _np(torch.stack(K, 1)).astype(float), _np(torch.stack(z, 1)).astype(int)
    fit = fit_alm(K, z)
    coefficients = fit.coefficients if alm is None else np.asarray(alm, dtype=float)
    paths = [den_haan(K[b], z[b], coefficients) for b in range(K.shape[0])]
    return {
        "alm": coefficients.tolist(),
        "alm_source": "fitted" if alm is None else "solver",
        "r2": fit.r2.tolist(),
        "mean_pct": float(np.mean([p["mean_pct"] for p in paths])),
        "max_pct": float(np.max([p["max_pct"] for p in paths])),
        "mean_K": float(K.mean()),
        "economies": economies,
        "periods": periods,
        "burn_in": burn_in,
    }
