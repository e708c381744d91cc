"""The classical Krusell–Smith solver (MMV 2010), the ALM fit and the Den Haan statistic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import agents
import hetagents_env
from agents.aggregate_law import alm_path, den_haan, fit_alm
from agents.config import ConfigError
from agents.solvers.krusell_smith import (
    KS1998_ALM,
    KS1998_PARAMS,
    PUBLISHED_ALM,
    ClassicalKSSolver,
    GridCoverageError,
    GridFunction,
    aggregate_steady_state,
    default_K_grid,
)

COARSE = {"k_points": 40, "periods": 500, "burn_in": 100, "policy_tol": 1e-6, "alm_tol": 1e-5}


@pytest.fixture(scope="module")
def solved() -> ClassicalKSSolver:
    """A coarse solve: 2,000 households, 500 periods, 40 k-points (a few seconds)."""
    torch.set_num_threads(1)
    economy = hetagents_env.make_economy("KrusellSmith-v0", n_agents=2000, dtype=torch.float64)
    solver = agents.make_solver("ks_classical", economy, COARSE)
    solver.train()
    return solver


def test_coarse_run_converges_near_published_alm(solved):
    assert solved.converged
    # the default K grid of the DeepHAM (JEDC) calibration is MMV's, and the solution stayed on it
    assert solved.K_bounds == (30.0, 50.0) and solved.K_regrids == 0
    assert solved.metrics["K_on_grid"] and 30.0 < solved.metrics["K_fixed_bad"] < solved.metrics["K_fixed_good"] < 50.0
    assert solved.r2.min() > 0.99
    # the intercept/slope pair is collinear along ln K ≈ 3.68: compare the predicted ln K' there, and the slopes
    log_k = np.log([36.0, 39.5, 43.0])
    ours = solved.alm[:, :1] + solved.alm[:, 1:] * log_k
    published = PUBLISHED_ALM[:, :1] + PUBLISHED_ALM[:, 1:] * log_k
    assert np.abs(ours - published).max() < 5e-3
    assert np.abs(solved.alm[:, 1] - PUBLISHED_ALM[:, 1]).max() < 0.01
    K, _ = solved.panel
    assert 38.0 < K[:, 100:].mean() < 41.5


def test_interpolated_policy_is_feasible(solved):
    eco = solved.grid_economy
    gen = eco.generator(3)
    state = eco.initial_state(8, gen)
    state["k"] = torch.rand(8, eco.n_agents, generator=gen, dtype=torch.float64) * 300.0  # far beyond the ergodic set
    k_next = solved.policy.next_capital(state)
    cash = eco.cash_on_hand(state)
    share = solved.policy(state)
    assert torch.isfinite(share).all() and (share >= 0).all() and (share <= 1).all()
    k_after = cash - eco.consumption(cash, share)
    assert (k_after > 0).all() and (k_after < cash).all()
    assert torch.allclose(k_after, k_next.clamp(2e-3, None).minimum(cash - 1e-3), rtol=1e-6, atol=1e-3)


def test_policy_satisfies_the_economy_euler_equation(solved):
    """The grid solution is (nearly) a zero of the economy's own Euler residual on the ergodic panel."""
    eco = solved.grid_economy
    state = eco.initial_state(1, eco.generator(0))
    state["k"] = solved.panel_k
    residual = eco.euler_residual(solved.policy, state)
    assert residual.abs().mean() < 2e-3


def test_value_function_solves_the_bellman_equation_on_the_grid(solved):
    """V = log c + β E V' on the grid, with the same interpolation: the dense solve is exact."""
    V = solved.value.table
    assert torch.isfinite(V).all()
    eco, grid = solved.grid_economy, solved.grid
    K_next, _, _, prob = solved._successors(solved.alm)
    table = solved.policy.table
    # E V(k', e'; K', z') evaluated with the interpolation the solver uses
    next_value = solved._policy_at_successors(V, K_next, table)  # (2, M, 2, 4, J)
    expected = (prob * next_value).sum(-2)
    bellman = torch.log(solved._cash - table) + eco.params.beta * expected
    assert torch.allclose(V, bellman, atol=1e-8, rtol=0)
    # richer households are better off; the employed better off than the unemployed
    assert (V[..., 1:] >= V[..., :-1] - 1e-9).all()
    assert (V[:, :, 1] > V[:, :, 0]).all()


def test_state_dict_round_trip(solved):
    economy = hetagents_env.make_economy("KrusellSmith-v0", n_agents=2000, dtype=torch.float64)
    fresh = ClassicalKSSolver(economy, COARSE)
    fresh.load_state_dict(solved.state_dict())
    assert np.array_equal(fresh.alm, solved.alm)
    assert torch.equal(fresh.policy.table, solved.policy.table)
    assert torch.equal(fresh.value.table, solved.value.table)


def test_float32_economy_gets_float32_actions(solved):
    eco32 = hetagents_env.make_economy("KrusellSmith-v0", n_agents=2000)
    state = eco32.initial_state(2, eco32.generator(0))
    action = solved.policy(state)
    assert action.dtype == torch.float32 and action.shape == (2, 2000)


# ---------------------------------------------------------------------- ALM and Den Haan
def test_den_haan_is_zero_for_the_alm_that_generated_the_panel():
    rng = np.random.default_rng(0)
    z = (rng.random(2000) < 0.5).astype(int)
    alm = np.array([[0.1238, 0.9656], [0.1378, 0.9632]])
    K = alm_path(alm, 39.0, z)
    stats = den_haan(K, z, alm)
    assert stats["mean_pct"] == pytest.approx(0.0, abs=1e-10) and stats["max_pct"] == pytest.approx(0.0, abs=1e-10)
    small = den_haan(K, z, alm + np.array([[1e-4, 0.0], [0.0, 0.0]]))
    large = den_haan(K, z, alm + np.array([[1e-3, 0.0], [0.0, 0.0]]))
    assert 0 < small["max_pct"] < large["max_pct"]


def test_fit_alm_recovers_known_coefficients():
    rng = np.random.default_rng(1)
    z = (rng.random(5000) < 0.5).astype(int)
    alm = np.array([[0.12, 0.966], [0.14, 0.962]])
    K = alm_path(alm, 39.0, z) * np.exp(1e-4 * rng.standard_normal(5000))  # tiny noise: R² < 1
    fit = fit_alm(K, z)
    assert np.allclose(fit.coefficients, alm, atol=5e-3)
    assert (fit.r2 > 0.99).all() and (fit.r2 < 1).all()


def test_fit_alm_needs_both_states():
    with pytest.raises(ValueError, match="state 1"):
        fit_alm(np.linspace(38, 40, 50), np.zeros(50, dtype=int))


def test_cubic_stencil_is_exact_for_cubics():
    grid = GridFunction(torch.linspace(0, 1, 5, dtype=torch.float64), torch.linspace(30, 50, 7, dtype=torch.float64))
    K = torch.tensor([29.0, 30.0, 33.3, 41.0, 50.0, 52.0], dtype=torch.float64)
    idx, w = grid.K_stencil(K)
    f = lambda x: 0.002 * x**3 - 0.1 * x**2 + x  # noqa: E731
    assert torch.allclose((w * f(grid.K_grid)[idx]).sum(-1), f(K), atol=1e-9)
    for i, K_i in enumerate(K.tolist()):  # the scalar numpy stencil of the simulation loops is the same
        idx_np, w_np = grid.K_stencil_numpy(K_i)
        np.testing.assert_array_equal(idx_np, idx[i].numpy())
        np.testing.assert_allclose(w_np, w[i].numpy(), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------- bad input
def test_rejects_other_economies_and_bad_config():
    with pytest.raises(ConfigError, match=r"solver 'ks_classical' cannot solve Investment-v0 .* lacks "
                                          r"cash_on_hand_at.*two aggregate states"):
        agents.make_solver("ks_classical", hetagents_env.make_economy("Investment-v0"))
    with pytest.raises(ConfigError, match=r"cannot solve Aiyagari-v0 .* lacks two aggregate states; two idiosyncratic"):
        agents.make_solver("ks_classical", hetagents_env.make_economy("Aiyagari-v0"))
    ks = hetagents_env.make_economy("KrusellSmith-v0", n_agents=10)
    with pytest.raises(ConfigError, match="unknown key 'k_pts'"):
        agents.make_solver("ks_classical", ks, {"k_pts": 10})
    with pytest.raises(ConfigError, match="K_interpolation"):
        agents.make_solver("ks_classical", ks, {"K_interpolation": "quintic"})
    with pytest.raises(ConfigError, match="K_max"):
        agents.make_solver("ks_classical", ks, {"K_min": 50.0, "K_max": 30.0})
    with pytest.raises(ConfigError, match=r"K grid \[60, 50\] is empty"):  # K_max placed from the steady state
        agents.make_solver("ks_classical", ks, {"K_min": 60.0})
    with pytest.raises(ConfigError, match="histogram_k_max = 45"):
        agents.make_solver("ks_classical", ks, {"simulation": "histogram", "histogram_k_max": 45.0})


def test_histogram_simulation_conserves_mass_and_the_unemployment_rate(solved):
    """The continuum cross-section keeps total mass 1 and its unemployment share equal to ur_z every period."""
    eco = solved.grid_economy
    mass = None
    for seed in (0, 1):  # the second path starts from the first one's final cross-section (and a new z_0)
        K, z, mass = solved.simulate_histogram(periods=60, seed=seed, initial=mass)
        assert abs(float(mass.sum()) - 1.0) < 1e-12 and (mass >= 0).all()
        assert np.isfinite(K).all() and (K > 20).all() and (K < 60).all()
    # one more period by hand: the unemployed mass after a transition is the model's ur_{z'} (up to the 6-digit
    # rounding of the published matrix)
    _, z, mass = solved.simulate_histogram(periods=2, seed=3)
    ur = eco.params.unemployment_rates[int(z[0, -1])]
    assert float(mass[0].sum()) == pytest.approx(ur, abs=1e-5)


def test_histogram_step_moves_every_mass_point_to_its_policy_choice(solved):
    """One period by hand: K_1 = Σ_e Σ_j m[e, j] k'(g_j, e; K_0, z_0) (the lottery keeps each point's mean; the
    employment transition only moves mass between the e rows)."""
    cfg = solved.config
    g = torch.linspace(0.0, cfg.histogram_k_max, cfg.histogram_points, dtype=torch.float64)
    _, _, initial = solved.simulate_histogram(periods=50, seed=4)
    K, z, _ = solved.simulate_histogram(periods=2, seed=5, initial=initial)
    assert K[0, 0] == pytest.approx(float(initial.sum(0) @ g), rel=1e-14)
    k_next = solved.grid.panel(
        solved.policy_table, g.repeat(2)[None], torch.tensor([0.0, 1.0], dtype=torch.float64).repeat_interleave(len(g))[None],
        torch.tensor([K[0, 0]], dtype=torch.float64), torch.tensor([int(z[0, 0])]),
    )[0].clamp(0.0, cfg.histogram_k_max)
    assert K[0, 1] == pytest.approx(float(initial.reshape(-1) @ k_next), rel=1e-12)


def test_histogram_solve_matches_the_continuum_alm():
    """The non-stochastic variant converges with R² > 0.9999 to an ALM near the published one."""
    economy = hetagents_env.make_economy("KrusellSmith-v0", n_agents=10, dtype=torch.float64)
    solver = agents.make_solver("ks_classical", economy, {**COARSE, "simulation": "histogram", "histogram_points": 500})
    solver.train()
    assert solver.converged and solver.r2.min() > 0.9999
    log_k = np.log([36.0, 39.5, 43.0])
    ours = solver.alm[:, :1] + solver.alm[:, 1:] * log_k
    assert np.abs(ours - (PUBLISHED_ALM[:, :1] + PUBLISHED_ALM[:, 1:] * log_k)).max() < 5e-3


def test_den_haan_of_any_policy_fits_an_alm_when_the_solver_has_none(solved):
    from agents.aggregate_law import den_haan_of_policy

    eco = hetagents_env.make_economy("KrusellSmith-v0", n_agents=500, dtype=torch.float64)
    fitted = den_haan_of_policy(solved.policy, eco, economies=2, periods=300, burn_in=100)
    assert fitted["alm_source"] == "fitted" and min(fitted["r2"]) > 0.98
    assert 0 < fitted["mean_pct"] <= fitted["max_pct"] < 5
    own = den_haan_of_policy(solved.policy, eco, alm=solved.alm, economies=2, periods=300, burn_in=100)
    assert own["alm_source"] == "solver" and own["alm"] == solved.alm.tolist()
    # a constant-share rule is not what the solver's ALM describes: much larger error
    constant = den_haan_of_policy(lambda s: torch.full_like(s["k"], 0.2), eco, alm=solved.alm, periods=300, burn_in=100)
    assert constant["mean_pct"] > 5 * own["mean_pct"]


def test_the_judge_reports_den_haan_with_the_solver_alm_or_a_fitted_one(solved):
    from agents.evaluate import EvaluationResult, evaluate

    small = {"trajectories": 2, "horizon": 8, "den_haan_economies": 2, "den_haan_periods": 200, "den_haan_burn_in": 50}
    result = agents.evaluate_solver(solved, **small)
    assert result.den_haan["alm_source"] == "solver" and result.den_haan["alm"] == solved.alm.tolist()
    assert 0 < result.den_haan["mean_pct"] < 2
    assert EvaluationResult.from_json(result.to_json()).den_haan == result.den_haan
    plain = evaluate(solved.policy, solved.economy, **small)
    assert plain.den_haan["alm_source"] == "fitted"
    investment = evaluate(hetagents_env.make_economy("Investment-v0").lq_policy, hetagents_env.make_economy("Investment-v0"),
                          trajectories=2, horizon=4)
    assert investment.den_haan is None


def test_the_judge_measures_the_bellman_error_on_request(solved):
    small = {"economies": 2, "burn_in": 50, "periods": 20, "samples": 5, "z_draws": 0, "grid_points": 5}
    result = agents.evaluate_solver(solved, trajectories=2, horizon=4, den_haan=False, bellman=small)
    assert result.bellman is not None and 0 < result.bellman_error < 0.5
    assert result.bellman["config"]["economies"] == 2
    assert agents.evaluate_solver(solved, trajectories=2, horizon=4, den_haan=False).bellman_error is None


# ---------------------------------------------------------------------- the grids follow the economy
#: quick settings of the Krusell–Smith (1998) solves: the continuum (histogram) simulation, a 50-point k grid; the K
#: grid, its re-placement rule, the panel length and the damping are the defaults
KS98_QUICK = {"simulation": "histogram", "k_points": 50, "policy_tol": 1e-6, "alm_tol": 1e-6}


def ks1998(n_agents: int = 10) -> hetagents_env.KrusellSmithEconomy:
    return hetagents_env.make_economy("KrusellSmith-v0", n_agents=n_agents, dtype=torch.float64, **KS1998_PARAMS)


def test_default_K_grid_is_placed_from_the_aggregate_steady_state():
    deepham = hetagents_env.make_economy("KrusellSmith-v0", n_agents=10)
    # K_ss = k_ss · Σ_z π_z L_z = 37.99 · (1/0.9) · 0.93; the default grid is MMV's [30, 50] there, exactly
    assert aggregate_steady_state(deepham) == pytest.approx(37.9893 * 0.93 / 0.9, rel=1e-4)
    assert default_K_grid(deepham) == (30.0, 50.0)
    assert ClassicalKSSolver(deepham).K_bounds == (30.0, 50.0)
    # Krusell & Smith (1998): l̄ = 0.3271 -> K_ss = 37.99 · 0.3271 · 0.93 ≈ 11.56, the grid scaled with it
    eco = ks1998()
    K_ss = aggregate_steady_state(eco)
    assert K_ss == pytest.approx(37.9893 * 0.3271 * 0.93, rel=1e-4)
    lo, hi = ClassicalKSSolver(eco).K_bounds
    assert (lo, hi) == pytest.approx((30.0 * K_ss / 39.2556, 50.0 * K_ss / 39.2556), rel=1e-4)
    # explicit ends are honoured (one of them alone too)
    assert ClassicalKSSolver(eco, {"K_min": 9.0, "K_max": 16.0}).K_bounds == (9.0, 16.0)
    assert ClassicalKSSolver(eco, {"K_max": 16.0}).K_bounds == (lo, 16.0)


def test_ks1998_calibration_with_the_default_grid_lands_on_the_published_alm():
    """Krusell & Smith (1998): l̄ = 0.3271, μ = 0, ergodic K ≈ 11–12.5. The default grid follows the economy
    (on MMV's [30, 50] the law's fixed points were 5.7 / 7.9 and yet 'converged'): published bad 0.085 + 0.965 ln K,
    good 0.095 + 0.962 ln K."""
    torch.set_num_threads(1)
    solver = agents.make_solver("ks_classical", ks1998(), KS98_QUICK)
    solver.train()
    assert solver.converged and solver.K_regrids == 0
    assert np.abs(solver.alm - KS1998_ALM).max() < 5e-3, solver.alm
    m = solver.metrics
    lo, hi = solver.K_bounds
    assert m["K_on_grid"] and lo < m["K_sim_min"] < m["K_sim_max"] < hi
    assert lo < m["K_fixed_bad"] < m["K_fixed_good"] < hi
    assert 11.0 < m["mean_K"] < 12.5


def test_a_wrong_explicit_K_grid_is_an_error_without_re_placement():
    """MMV's [30, 50] on the 1998 calibration: the economy settles around K ≈ 6–8 by extrapolation; with
    re-placement disabled the solve stops with an error naming the grid, the simulated range and the fixed points
    instead of reporting convergence."""
    torch.set_num_threads(1)
    solver = agents.make_solver("ks_classical", ks1998(), {**KS98_QUICK, "K_min": 30.0, "K_max": 50.0, "K_regrids": 0})
    named = r"simulated K after the burn-in spans \[\d.*K\*_bad = .*K grid \[30, 50\]"
    with pytest.raises(GridCoverageError, match=named):
        solver.train()
    assert not solver.converged
    assert solver.history[-1]["K_on_grid"] is False and solver.history[-1]["K_sim_max"] < 30.0


def test_a_wrong_explicit_K_grid_is_re_placed_around_the_economy():
    """With re-placement (the default), the same wrong grid is moved to the steady-state placement, with a warning,
    and the solve lands where the default grid does; a checkpoint keeps the re-placed grid."""
    torch.set_num_threads(1)
    solver = agents.make_solver("ks_classical", ks1998(), {**KS98_QUICK, "K_min": 30.0, "K_max": 50.0})
    with pytest.warns(RuntimeWarning, match=r"K grid re-placed to \[8.832, 14.72\] \(1 of at most 3\)"):
        solver.train()
    assert solver.converged and solver.K_regrids == 1 and solver.history[-1]["K_regrids"] == 1
    assert solver.K_bounds == default_K_grid(solver.grid_economy)
    assert np.abs(solver.alm - KS1998_ALM).max() < 5e-3, solver.alm
    fresh = agents.make_solver("ks_classical", ks1998(), {**KS98_QUICK, "K_min": 30.0, "K_max": 50.0})
    fresh.load_state_dict(solver.state_dict())
    assert fresh.K_bounds == solver.K_bounds and fresh.K_regrids == 1
    state = fresh.grid_economy.initial_state(2, fresh.grid_economy.generator(0))
    assert torch.equal(fresh.policy(state), solver.policy(state))


def test_households_beyond_the_top_of_the_histogram_are_an_error():
    """In the 1998 economy (K ≈ 11.8) about 1 % of the households hold more than k = 20: a histogram topped at 20
    clips them there, and the converged solve says so instead of reporting the clipped economy."""
    torch.set_num_threads(1)
    short = {**KS98_QUICK, "histogram_points": 300, "histogram_k_max": 20.0, "alm_tol": 1e-4}
    solver = agents.make_solver("ks_classical", ks1998(), short)
    with pytest.raises(GridCoverageError, match="beyond its top histogram_k_max = 20; clipped there, it lost"):
        solver.train()
    assert not solver.converged


def test_households_beyond_the_top_of_the_k_grid_are_an_error():
    """An individual grid topped at 20 (beyond it the policy is extrapolated) does not cover the panel's richest."""
    torch.set_num_threads(1)
    panel = {"k_points": 30, "k_max": 20.0, "policy_tol": 1e-5, "alm_tol": 1e-3, "periods": 300}
    solver = agents.make_solver("ks_classical", ks1998(500), panel)
    with pytest.raises(GridCoverageError, match="beyond the individual capital grid's top k_max = 20"):
        solver.train()
    assert not solver.converged
