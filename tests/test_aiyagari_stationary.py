"""The stationary Aiyagari equilibrium: Markov discretisations, EGM, the lottery histogram, market clearing, the grid
guard, β calibration and the registered solver."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.solvers.aiyagari_equilibrium import (
    AiyagariModel, GridSpec, calibrate_beta, gini, invariant_mass, percentile, solve_equilibrium, solve_household,
    value_function,
)
from hetagents_env.economies.markov import rouwenhorst, stationary_distribution, tauchen

#: a modest grid: a Table II cell in about a second
SMALL = GridSpec(asset_points=200, histogram_points=500)


def _moments(grid, P):
    pi = stationary_distribution(P)
    mean = pi @ grid
    var = pi @ (grid - mean) ** 2
    autocov = (pi * (grid - mean)) @ P @ (grid - mean)
    return mean, var, autocov / var


def _model(rho=0.6, sigma=0.2, gamma=3.0, beta=0.96, a_min=0.0, width=3.0, n=7):
    grid, P = tauchen(n, rho, sigma, width)
    return AiyagariModel(beta, gamma, 0.36, 0.08, a_min, np.exp(grid), P)


@pytest.fixture(scope="module")
def cell():
    """Table II, σ .2, ρ .6, μ 3 on the small grid."""
    return solve_equilibrium(_model(), SMALL)


# ---------------------------------------------------------------------------------------------- markov
@pytest.mark.parametrize("n, rho, sigma", [(2, 0.0, 0.2), (5, 0.3, 0.4), (7, 0.9, 0.2), (11, -0.5, 1.0)])
def test_rouwenhorst_matches_the_ar1_moments_exactly(n, rho, sigma):
    grid, P = rouwenhorst(n, rho, sigma)
    assert grid.shape == (n,) and P.shape == (n, n)
    assert np.allclose(P.sum(1), 1.0, atol=1e-14) and P.min() >= 0.0
    mean, var, autocorr = _moments(grid, P)
    assert abs(mean) < 1e-12
    assert var == pytest.approx(sigma**2, rel=1e-12)
    assert autocorr == pytest.approx(rho, abs=1e-12)


@pytest.mark.parametrize("width", [2.0, 3.0, 3.5])
def test_tauchen_is_a_symmetric_stochastic_matrix(width):
    grid, P = tauchen(7, 0.6, 0.2, width)
    assert np.allclose(P.sum(1), 1.0, atol=1e-14) and P.min() >= 0.0
    assert grid[-1] == pytest.approx(width * 0.2) and np.allclose(grid, -grid[::-1])
    assert np.allclose(P, P[::-1, ::-1])  # symmetric process
    _, var, autocorr = _moments(grid, P)
    assert abs(autocorr - 0.6) < 0.05 and 0.8 * 0.04 < var < 1.5 * 0.04
    g0, P0 = tauchen(7, 0.6, 0.0, width)  # σ = 0: the σ → 0 limit on a degenerate grid
    assert np.all(g0 == 0.0) and np.allclose(P0, P)


def test_stationary_distribution_of_the_dhkr_chain():
    P = np.array([[0.992, 0.008, 0.0], [0.009, 0.980, 0.011], [0.0, 0.083, 0.917]])
    pi = stationary_distribution(P)
    assert np.allclose(pi @ P, pi, atol=1e-15) and pi.sum() == pytest.approx(1.0)
    assert np.allclose(pi, [0.498, 0.443, 0.059], atol=1e-3)


@pytest.mark.parametrize("call, name", [
    (lambda: rouwenhorst(1, 0.5, 0.2), "'n'"), (lambda: tauchen(7, 1.0, 0.2), "'rho'"),
    (lambda: rouwenhorst(7, 0.5, -0.1), "'sigma'"), (lambda: tauchen(7, 0.5, 0.2, width=0.0), "'width'"),
    (lambda: stationary_distribution([[0.5, 0.6], [0.5, 0.5]]), "'P'"),
    (lambda: stationary_distribution(np.eye(2)), "'P'"),
])
def test_bad_markov_input_names_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ---------------------------------------------------------------------------------------------- household problem
def test_egm_satisfies_the_euler_equation_at_grid_points():
    """Brute force: at every grid point, u'(c) against β(1+r) E u'(c(a', e')) with c' from the converged policy."""
    m = _model(rho=0.9, sigma=0.4, gamma=2.0)
    r, (_, w) = 0.03, m.prices(0.03)
    assets = m.borrowing_limit + 60.0 * (np.linspace(0, 1, 300) ** 3)
    c, _, iterations = solve_household(m, r, w, assets)
    assert iterations > 10
    cash = (1 + r) * assets + w * m.productivity[:, None]
    a_next = cash - c
    assert np.all(a_next >= -1e-12) and np.all(np.diff(c, axis=1) > 0) and np.all(np.diff(a_next, axis=1) >= -1e-12)
    c_next = np.stack([np.interp(a_next, assets, c[e]) for e in range(len(m.productivity))])  # [e', e, j]
    rhs = m.beta * (1 + r) * np.einsum("ij,jik->ik", m.transition, c_next ** -m.gamma)
    c_euler = rhs ** (-1 / m.gamma)
    constrained = a_next <= 1e-10
    inside = ~constrained & (a_next < assets[-1] / 2)
    assert constrained.any() and inside.sum() > 1000
    assert np.abs(c_euler[inside] / c[inside] - 1).max() < 1e-3  # interpolation error only
    assert np.all(c[constrained] <= c_euler[constrained] * (1 + 1e-6))  # u'(c) >= β(1+r) E u'(c') at the limit


def test_invariant_mass_is_the_fixed_point_of_the_lottery(cell):
    mass = invariant_mass(cell.savings, cell.grid, cell.model.transition)
    assert np.allclose(mass, cell.mass) and mass.min() >= 0 and mass.sum() == pytest.approx(1.0)
    # one more period of the lottery chain leaves it unchanged (power iteration check)
    k = np.clip(np.searchsorted(cell.grid, cell.savings, side="right") - 1, 0, len(cell.grid) - 2)
    wt = (cell.savings - cell.grid[k]) / (cell.grid[k + 1] - cell.grid[k])
    moved = np.zeros_like(mass)
    for e in range(mass.shape[0]):
        moved[e] = np.bincount(k[e], (1 - wt[e]) * mass[e], len(cell.grid)) + np.bincount(
            k[e] + 1, wt[e] * mass[e], len(cell.grid))
    assert np.abs(cell.model.transition.T @ moved - mass).max() < 1e-12
    assert np.allclose(mass.sum(1), stationary_distribution(cell.model.transition))


# ---------------------------------------------------------------------------------------------- equilibrium
def test_table_ii_cell(cell):
    """σ .2, ρ .6, μ 3: published 3.8767 / 24.25 (Tauchen m = 3 converged: 3.878)."""
    s = cell.statistics()
    assert abs(100 * cell.r - 3.8767) < 0.05
    assert abs(s["saving_rate_pct"] - 24.25) < 0.05
    assert s["saving_rate"] == pytest.approx(0.36 * 0.08 / (cell.r + 0.08), rel=1e-6)  # market clearing
    assert abs(s["excess_supply"]) < 1e-6 * s["K"]
    assert cell.top_mass < 1e-8 and 0.3 < s["wealth_gini"] < 0.5 and 0 < s["consumption_gini"] < s["wealth_gini"]
    V = value_function(cell)
    assert np.all(np.diff(V, axis=1) > 0) and np.all(np.diff(V, axis=0) > 0)  # increasing in assets and in ε


def test_gini_is_exact_for_discrete_distributions():
    assert gini([0.0, 1.0], [0.5, 0.5]) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    v, m = rng.gamma(1.0, size=40), rng.random(40)
    m /= m.sum()
    pairwise = (m[:, None] * m[None, :] * np.abs(v[:, None] - v[None, :])).sum() / (2 * (m @ v))
    assert gini(v, m) == pytest.approx(pairwise, rel=1e-12)
    assert percentile([1.0, 2.0, 3.0], [0.2, 0.3, 0.5], 0.5) == 2.0


def test_complete_markets_limit():
    eq = solve_equilibrium(_model(sigma=0.0), SMALL)
    assert eq.complete_markets and eq.r == pytest.approx(1 / 0.96 - 1, abs=1e-15)
    assert eq.K == pytest.approx(eq.model.prices(eq.r)[0], rel=1e-12) and eq.notes


def test_no_sign_change_names_the_bracket():
    m = _model(sigma=0.01)
    with pytest.raises(ValueError, match=r"bracket r in \(.*excess asset supply.*no sign change"):
        solve_equilibrium(m, GridSpec(asset_points=100, histogram_points=200, bracket_margin=0.01))


def test_borrowing_limit_below_the_natural_limit_is_an_error():
    with pytest.raises(ValueError, match="'borrowing_limit' = -100.0 is out of range"):
        solve_equilibrium(_model(a_min=-100.0), SMALL)


def test_grid_guard_extends_or_raises():
    m = _model(rho=0.9, sigma=0.4, gamma=1.0)
    tight = GridSpec(asset_points=150, histogram_points=300, grid_max=3.0, extend_grid=False)
    with pytest.raises(ValueError, match=r"asset grid .* holds mass .* at its top"):
        solve_equilibrium(m, tight)
    eq = solve_equilibrium(m, GridSpec(asset_points=150, histogram_points=300, grid_max=3.0))
    assert eq.grid_max > 3.0 and any("grid_max doubled" in note for note in eq.notes)
    assert eq.top_mass <= 1e-8


def test_calibrate_beta_recovers_beta(cell):
    eq = calibrate_beta(cell.K, _model(beta=0.9), SMALL)  # same grid as the cell: the same β to brentq's tolerance
    assert eq.model.beta == pytest.approx(0.96, abs=1e-6)
    assert eq.K == pytest.approx(cell.K, rel=1e-6) and eq.beta_calibration["beta"] == eq.model.beta


# ---------------------------------------------------------------------------------------------- the solver
def test_registered_solver_policy_value_and_checkpoint():
    import agents
    import hetagents_env

    eco = hetagents_env.make_economy("Aiyagari-v0", n_agents=16, dtype=torch.float32)
    config = {"asset_points": 150, "histogram_points": 300}
    solver = agents.make_solver("aiyagari_stationary", eco, config)
    metrics = solver.train()
    assert metrics["converged"] and abs(metrics["r_pct"] - 3.8767) < 0.05
    gen = eco.generator(0)
    state = solver.sample_state(3, gen)
    share, value = solver.policy(state), solver.value(state)
    assert share.shape == value.shape == (3, 16) and share.dtype == value.dtype == torch.float32
    assert (share > 0).all() and (share <= 1).all() and torch.isfinite(value).all()
    # the policy's consumption is the EGM consumption at the equilibrium prices
    eq = solver.equilibrium
    k, e = state["k"].double(), state["e"].long()
    c = torch.as_tensor(np.stack([[np.interp(kk, eq.assets, eq.consumption[ee]) for kk, ee in zip(kr, er)]
                                  for kr, er in zip(k.numpy(), e.numpy())]))
    spend = (1 + eq.r) * k + eq.w * torch.as_tensor(eq.model.productivity)[e]
    assert torch.allclose(share.double(), (c / spend).clamp(max=1.0), rtol=1e-5)
    fresh = agents.make_solver("aiyagari_stationary", eco, config)
    fresh.load_state_dict(solver.state_dict())
    assert torch.equal(fresh.policy(state), share) and torch.equal(fresh.value(state), value)
    assert np.array_equal(fresh.distribution.mass, solver.distribution.mass)
    with pytest.raises(ValueError, match=r"cannot solve Aiyagari-v0 .* lacks no aggregate shock"):
        agents.make_solver("aiyagari_stationary", hetagents_env.make_economy("Aiyagari-v0", aggregate_shock="ias"))
    with pytest.raises(ValueError, match=r"cannot solve KrusellSmith-v0 .* lacks productivity; idiosyncratic_transition"):
        agents.make_solver("aiyagari_stationary", hetagents_env.make_economy("KrusellSmith-v0"))
