"""The N-firm investment economy: the exact LQ solution, its Euler residual, the law of motion and the payoff."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import DEVICES, assert_finite, close_kwargs, make_generator
from hetagents_env import InvestmentEconomy
from hetagents_env.economies import lq

H0_PUBLISHED = 0.0687224390648
H1_PUBLISHED = -0.0504613550013
BASELINE = dict(alpha0=1.0, alpha1=1.0, beta=0.95, gamma=90.0, delta=0.05)

# a valid, economically sensible range of the parameters the LQ solution depends on (boundaries included;
# α1 is 0 or ≥ 1e-12: near 1e-307 scipy's Riccati solver balances the matrices with reciprocals that overflow)
lq_params = st.fixed_dictionaries(
    {
        "alpha0": st.floats(0.1, 10.0),
        "alpha1": st.one_of(st.just(0.0), st.floats(1e-12, 5.0)),
        "beta": st.floats(0.5, 0.999),
        "gamma": st.floats(1.0, 500.0),
        "delta": st.floats(0.0, 1.0, allow_subnormal=False),
    }
)
shock_params = st.fixed_dictionaries(
    {"sigma": st.floats(0.0, 0.1), "eta": st.floats(0.0, 0.05), "n_agents": st.integers(1, 300)}
)


def economy(n_agents=8, dtype=torch.float64, device="cpu", **params) -> InvestmentEconomy:
    return InvestmentEconomy(n_agents, dtype=dtype, device=device, **params)


# ---------------------------------------------------------------------------------------------- LQ coefficients
@pytest.mark.parametrize("method", ["closed_form", "riccati"])
def test_published_lq_coefficients(method):
    h0, h1 = InvestmentEconomy().lq_coefficients(method)
    assert h0 == pytest.approx(H0_PUBLISHED, abs=1e-12)
    assert h1 == pytest.approx(H1_PUBLISHED, abs=1e-12)


def test_lq_default_method_is_published_and_certainty_equivalent():
    # H0, H1 depend neither on the shocks' sizes nor on N (certainty equivalence)
    for kwargs in ({}, {"sigma": 0.3, "eta": 0.2, "x0_mean": 3.0}, {"sigma": 0.0, "eta": 0.0}):
        for n in (1, 7, 10_000):
            h0, h1 = InvestmentEconomy(n, **kwargs).lq_coefficients()
            assert h0 == pytest.approx(H0_PUBLISHED, abs=1e-12)
            assert h1 == pytest.approx(H1_PUBLISHED, abs=1e-12)


def test_lq_published_root_is_the_stable_one():
    p = BASELINE
    a = p["beta"] * p["gamma"] * (1 - p["delta"])
    b = p["beta"] * p["gamma"] * (1 - p["delta"]) ** 2 - p["beta"] * p["alpha1"] - p["gamma"]
    c = -p["beta"] * p["alpha1"] * (1 - p["delta"])
    roots = np.roots([a, b, c])
    _, h1 = lq.closed_form(**p)
    assert min(abs(roots - h1)) < 1e-12
    other = roots[np.argmax(abs(roots - h1))]
    assert other == pytest.approx(0.2202, abs=1e-4)  # REFERENCE: the explosive root
    assert abs(1 - p["delta"] + h1) < 1 < abs(1 - p["delta"] + other)


def test_lq_steady_state_matches_reference():
    h0, h1 = InvestmentEconomy().lq_coefficients()
    x_ss = h0 / (BASELINE["delta"] - h1)
    assert x_ss == pytest.approx(0.684, abs=1e-3)
    assert h0 + h1 * x_ss == pytest.approx(0.034, abs=5e-4)  # u* = δ x_ss
    assert h0 + h1 * 0.9 == pytest.approx(0.0233, abs=1e-4)


@settings(max_examples=25)
@given(lq_params)
def test_closed_form_equals_riccati(params):
    h0_c, h1_c = lq.closed_form(**params)
    h0_r, h1_r = lq.riccati(**params)
    assert h1_r == pytest.approx(h1_c, rel=1e-9, abs=1e-11)
    assert h0_r == pytest.approx(h0_c, rel=1e-9, abs=1e-11)
    # the non-explosive root (|1−δ+H1| = 1 only in the α1 = 0, δ = 0 corner, where H1 = 0)
    assert abs(1 - params["delta"] + h1_c) <= 1


@pytest.mark.parametrize("delta", [0.0, 0.05, 1.0])
@pytest.mark.parametrize("method", ["closed_form", "riccati"])
def test_constant_price_gives_constant_investment(method, delta):
    # α1 = 0: the price is α0 whatever X, so u = Σ_t β^(t+1) (1−δ)^t α0 / γ = β α0 / (γ (1 − β(1−δ))), H1 = 0;
    # δ = 0 is the corner with a unit root in mean(X) (capital grows forever), still a well-defined equilibrium
    h0, h1 = InvestmentEconomy(alpha0=2.0, alpha1=0.0, beta=0.9, gamma=3.0, delta=delta).lq_coefficients(method)
    assert h1 == pytest.approx(0.0, abs=1e-12)
    assert h0 == pytest.approx(0.9 * 2.0 / (3.0 * (1 - 0.9 * (1 - delta))), rel=1e-12)


@pytest.mark.parametrize("nu", [1.5, 1.05, 1.0 + 1e-9, 3.0])
def test_lq_coefficients_rejects_nonlinear_model(nu):
    eco = InvestmentEconomy(4, nu=nu)
    with pytest.raises(ValueError, match="nu"):
        eco.lq_coefficients()
    with pytest.raises(ValueError, match="nu"):
        eco.lq_coefficients("riccati")
    with pytest.raises(ValueError, match="nu"):
        eco.lq_policy(eco.initial_state(2, make_generator()))


def test_lq_coefficients_rejects_unknown_method():
    with pytest.raises(ValueError, match="method"):
        InvestmentEconomy(4).lq_coefficients("newton")


# ---------------------------------------------------------------------------------------------- Euler residual
def lq_paths(eco: InvestmentEconomy, seed: int, trajectories: int = 16, steps: int = 63):
    """States of simulated LQ trajectories (the published data set: 16 × 64 states), flattened to batch [T·B]."""
    start = eco.initial_state(trajectories, make_generator(eco.device, seed))
    path = eco.rollout(eco.lq_policy, start, steps, make_generator(eco.device, seed + 1))
    assert tuple(path.batch_size) == (trajectories, steps + 1)
    return path.reshape(-1)


def test_lq_euler_residual_is_zero_at_paper_parameters():
    eco = InvestmentEconomy(dtype=torch.float64)  # N = 128, the paper's baseline
    initial = eco.initial_state(64, make_generator(seed=1))
    for states in (initial, lq_paths(eco, seed=2)):
        residual = eco.euler_residual(eco.lq_policy, states, generator=make_generator(seed=3))
        assert residual.shape == (states.batch_size[0], 128)
        assert residual.dtype == torch.float64
        assert residual.abs().max().item() <= 1e-10


def test_lq_euler_residual_with_a_given_standardized_draw_and_nodes():
    eco = InvestmentEconomy(50, dtype=torch.float64)
    states = lq_paths(eco, seed=4, trajectories=4, steps=20)
    draw = eco.standardized_draw(make_generator(seed=5))
    assert draw.shape == (50,)
    assert abs(draw.mean().item()) < 1e-14 and draw.std(correction=0).item() == pytest.approx(1.0, abs=1e-14)
    for nodes in (1, 2, 7, 15):
        residual = eco.euler_residual(eco.lq_policy, states, nodes=nodes, idiosyncratic=draw)
        assert residual.abs().max().item() <= 1e-10


@settings(max_examples=20)
@given(lq_params, shock_params, st.integers(0, 2**31 - 1))
def test_lq_euler_residual_is_zero_at_other_parameters(params, shocks, seed):
    n = shocks.pop("n_agents")
    eco = economy(n, **params, **shocks)
    states = lq_paths(eco, seed, trajectories=3, steps=10)
    residual = eco.euler_residual(eco.lq_policy, states, generator=make_generator(seed=seed + 2))
    assert_finite(residual, "residual")
    assert residual.abs().max().item() <= 1e-10


def test_euler_residual_of_an_unstandardized_draw_is_the_known_floor():
    # REFERENCE §1.3: for the linear policy the residual is exactly β σ [α1 − γ(1−δ)H1] · mean(ŵ)
    eco = InvestmentEconomy(32, dtype=torch.float64, sigma=0.02)
    p = eco.params
    _, h1 = eco.lq_coefficients()
    states = eco.initial_state(5, make_generator(seed=6))
    draw = torch.randn(32, generator=make_generator(seed=7), dtype=torch.float64) + 0.3
    residual = eco.euler_residual(eco.lq_policy, states, idiosyncratic=draw)
    expected = p.beta * p.sigma * (p.alpha1 - p.gamma * (1 - p.delta) * h1) * draw.mean().item()
    assert abs(expected) > 1e-4  # the check is not vacuous
    torch.testing.assert_close(residual, torch.full_like(residual, expected), rtol=1e-10, atol=1e-13)


def test_euler_residual_of_a_wrong_policy_is_not_zero():
    eco = InvestmentEconomy(16, dtype=torch.float64)
    h0, h1 = eco.lq_coefficients()
    states = eco.initial_state(8, make_generator(seed=8))

    def too_much(state):  # invests 10 % more than the LQ policy
        return 1.1 * eco.lq_policy(state)

    residual = eco.euler_residual(too_much, states, generator=make_generator(seed=9))
    # subtract the exact Euler equation of u = H0 + H1 m (m = mean X; quadrature: E ω = 0, mean ŵ = 0):
    # with du = 0.1u, m' moves by du and u' = 1.1(H0 + H1 m') moves by 0.1 u0' + 1.1 H1 du, u0' = H0 + H1 m0'
    p = eco.params
    m = states["x"].mean(-1, keepdim=True)
    u = h0 + h1 * m
    du = 0.1 * u
    u0_next = h0 + h1 * ((1 - p.delta) * m + u)
    expected = p.gamma * du - p.beta * (-p.alpha1 * du + p.gamma * (1 - p.delta) * (0.1 * u0_next + 1.1 * h1 * du))
    torch.testing.assert_close(residual, expected.expand_as(residual), rtol=1e-9, atol=1e-12)


def test_euler_residual_is_differentiable_through_the_policy():
    eco = InvestmentEconomy(6, dtype=torch.float64)
    h0, h1 = eco.lq_coefficients()
    theta = torch.tensor([h0, h1], dtype=torch.float64, requires_grad=True)

    def policy(state):
        x = state["x"]
        return (theta[0] + theta[1] * x.mean(-1, keepdim=True)).expand_as(x)

    states = eco.initial_state(4, make_generator(seed=10))
    loss = eco.euler_residual(policy, states, generator=make_generator(seed=11)).square().mean()
    (grad,) = torch.autograd.grad(loss, theta)
    assert loss.item() <= 1e-20
    assert grad.abs().max().item() <= 1e-8  # the exact solution is a minimum of the loss
    theta.data[0] += 1e-3
    loss = eco.euler_residual(policy, states, generator=make_generator(seed=11)).square().mean()
    (grad,) = torch.autograd.grad(loss, theta)
    assert loss.item() > 1e-6 and grad[0].item() > 0


def test_monte_carlo_residual_is_unbiased_with_the_predicted_spread():
    """With ``method="monte_carlo"`` the LQ residual of each economy is
    β(α1 − γ(1−δ)H1) · (1/S) Σ_s (σ w̄_s + η ω_s)  ~  N(0, s²),  s = |β(α1 − γ(1−δ)H1)| √(σ²/N + η²) / √S,
    the same for every firm of an economy and independent across economies."""
    n, batch, samples = 128, 400, 64
    eco = InvestmentEconomy(n, dtype=torch.float64)
    p = eco.params
    _, h1 = eco.lq_coefficients()
    states = eco.initial_state(batch, make_generator(seed=12))
    residual = eco.euler_residual(
        eco.lq_policy, states, method="monte_carlo", samples=samples, generator=make_generator(seed=13)
    )
    assert residual.shape == (batch, n)
    torch.testing.assert_close(residual, residual[:, :1].expand_as(residual), rtol=0, atol=1e-12)
    r = residual[:, 0]
    s = abs(p.beta * (p.alpha1 - p.gamma * (1 - p.delta) * h1)) * math.sqrt(p.sigma**2 / n + p.eta**2 / 1.0)
    s /= math.sqrt(samples)
    # unbiased: the mean of B independent N(0, s²) lies within 5 standard errors of 0
    assert abs(r.mean().item()) <= 5 * s / math.sqrt(batch)
    # the spread: Σ r²/s² ~ χ²(B); a two-sided 1e-6 band
    stat = (r.square().sum() / s**2).item()
    assert scipy.stats.chi2.ppf(1e-6, batch) <= stat <= scipy.stats.chi2.ppf(1 - 1e-6, batch)


def test_euler_residual_rejects_bad_options():
    eco = InvestmentEconomy(5, dtype=torch.float64)
    states = eco.initial_state(2, make_generator())
    with pytest.raises(ValueError, match="method"):
        eco.euler_residual(eco.lq_policy, states, method="sparse_grid")
    with pytest.raises(ValueError, match="idiosyncratic"):
        eco.euler_residual(eco.lq_policy, states, idiosyncratic=torch.zeros(4, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------- equations
def test_reward_matches_hand_computation():
    eco = economy(3, alpha0=2.0, alpha1=0.5, gamma=10.0)
    state = eco.initial_state(1, make_generator())
    state["x"] = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    u = torch.tensor([[0.1, -0.2, 0.3]], dtype=torch.float64)
    # p = 2 − 0.5·mean(1, 2, 3) = 1;  r_i = p x_i − 10/2 u_i²
    expected = torch.tensor([[1.0 - 0.05, 2.0 - 0.2, 3.0 - 0.45]], dtype=torch.float64)
    torch.testing.assert_close(eco.reward(state, u), expected, rtol=0, atol=1e-14)


def test_nonlinear_price_matches_hand_computation():
    eco = economy(2, alpha0=2.0, alpha1=0.5, nu=2.0)
    x = torch.tensor([[1.0, 3.0], [-1.0, 2.0]], dtype=torch.float64)
    # p = 2 − 0.5 · (1 + 9)/2 = −0.5;  negative capital counts as 0: 2 − 0.5 · (0 + 4)/2 = 1
    torch.testing.assert_close(eco.price(x), torch.tensor([-0.5, 1.0], dtype=torch.float64), rtol=0, atol=1e-14)


def test_transition_matches_hand_computation():
    eco = economy(2, delta=0.1, sigma=0.5, eta=0.25)
    state = eco.initial_state(2, make_generator())
    state["x"] = torch.tensor([[1.0, 2.0], [0.5, 0.0]], dtype=torch.float64)
    u = torch.tensor([[0.1, -0.1], [0.2, 0.0]], dtype=torch.float64)
    shocks = eco.sample_shocks(state, make_generator())
    shocks["w"] = torch.tensor([[1.0, -2.0], [0.0, 4.0]], dtype=torch.float64)
    shocks["omega"] = torch.tensor([2.0, -4.0], dtype=torch.float64)
    # x' = 0.9 x + u + 0.5 w + 0.25 ω
    expected = torch.tensor(
        [[0.9 + 0.1 + 0.5 + 0.5, 1.8 - 0.1 - 1.0 + 0.5], [0.45 + 0.2 - 1.0, 2.0 - 1.0]], dtype=torch.float64
    )
    torch.testing.assert_close(eco.transition(state, u, shocks)["x"], expected, rtol=0, atol=1e-14)


def test_shocks_have_the_documented_shapes_and_moments():
    eco = economy(64)
    state = eco.initial_state(500, make_generator())
    shocks = eco.sample_shocks(state, make_generator(seed=1))
    assert shocks["w"].shape == (500, 64) and shocks["omega"].shape == (500,)
    # standard normals: mean within 5 standard errors of 0, variance within 5 of 1
    for z in (shocks["w"].flatten(), shocks["omega"]):
        m = z.numel()
        assert abs(z.mean().item()) <= 5 / math.sqrt(m)
        assert abs(z.var().item() - 1) <= 5 * math.sqrt(2 / m)


def test_initial_state_is_the_folded_normal():
    eco = economy(1000, x0_mean=0.9, x0_sd=0.05)
    x = eco.initial_state(50, make_generator(seed=2))["x"]
    assert (x >= 0).all()
    m = x.numel()
    assert abs(x.mean().item() - 0.9) <= 5 * 0.05 / math.sqrt(m)
    assert abs(x.std().item() - 0.05) <= 5 * 0.05 / math.sqrt(2 * m)  # sd of a sample sd: σ/√(2m)
    # folded: a mean of 0 gives |N(0, 1)|, whose mean is √(2/π)
    y = economy(1000, x0_mean=0.0, x0_sd=1.0).initial_state(50, make_generator(seed=3))["x"]
    assert (y >= 0).all()
    assert abs(y.mean().item() - math.sqrt(2 / math.pi)) <= 5 * math.sqrt(1 - 2 / math.pi) / math.sqrt(m)


def test_transition_and_reward_are_differentiable_wrt_action():
    eco = economy(3, sigma=0.1, eta=0.05)
    state = eco.initial_state(2, make_generator())
    shocks = eco.sample_shocks(state, make_generator(seed=1))
    action = torch.randn(2, 3, dtype=torch.float64, generator=make_generator(seed=2), requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: eco.transition(state, a, shocks)["x"], (action,))
    assert torch.autograd.gradcheck(lambda a: eco.reward(state, a), (action,))
    assert torch.autograd.gradgradcheck(lambda a: eco.reward(state, a), (action,))
    # and the analytic values: ∂x'_i/∂u_j = 1{i=j}, ∂r_i/∂u_i = −γ u_i
    (jac,) = torch.autograd.functional.jacobian(lambda a: eco.transition(state, a, shocks)["x"], (action,))
    torch.testing.assert_close(jac, torch.eye(6, dtype=torch.float64).reshape(2, 3, 2, 3))
    (grad,) = torch.autograd.grad(eco.reward(state, action).sum(), action)
    torch.testing.assert_close(grad, -eco.params.gamma * action.detach())


def test_gradient_flows_through_a_rollout():
    # path optimisation back-propagates through many transitions
    eco = economy(4)
    theta = torch.tensor(0.02, dtype=torch.float64, requires_grad=True)
    path = eco.rollout(lambda s: theta.expand_as(s["x"]), eco.initial_state(3, make_generator()), 5, make_generator())
    (grad,) = torch.autograd.grad(path["x"][:, -1].sum(), theta)
    # x_5 = 0.95^5 x_0 + Σ_{t<5} 0.95^t u + shocks  ⇒  ∂Σ x_5/∂θ = 12 · Σ_{t<5} 0.95^t
    assert grad.item() == pytest.approx(12 * sum(0.95**t for t in range(5)), rel=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_float32_and_float64_both_work_and_agree(device):
    eco64 = InvestmentEconomy(32, dtype=torch.float64, device=device)
    eco32 = InvestmentEconomy(32, dtype=torch.float32, device=device)
    for eco in (eco32, eco64):
        dt = eco.dtype
        start = eco.initial_state(4, make_generator(device, 0))
        path = eco.rollout(eco.lq_policy, start, 10, make_generator(device, 1))
        assert path["x"].dtype == dt and path["x"].device.type == device.type
        states = path.reshape(-1)
        shocks = eco.sample_shocks(states, make_generator(device, 2))
        outputs = (
            eco.reward(states, eco.lq_policy(states)),
            eco.euler_residual(eco.lq_policy, states, generator=make_generator(device, 3)),
            eco.transition(states, eco.lq_policy(states), shocks)["x"],
            shocks["w"],
            shocks["omega"],
            *eco.observe(states).values(),
        )
        for t in outputs:
            assert t.dtype == dt and t.device.type == device.type
            assert_finite(t)
        residual = outputs[1]
        # float64: exact up to rounding; float32: a few ulps of γu ≈ 2
        assert residual.abs().max().item() <= (1e-10 if dt == torch.float64 else 1e-5)
    # the same inputs, rounded to float32, give the float64 results up to float32 rounding
    start = eco64.initial_state(4, make_generator(device))
    states64 = eco64.rollout(eco64.lq_policy, start, 10, make_generator(device)).reshape(-1)
    shocks64 = eco64.sample_shocks(states64, make_generator(device, 4))
    states32, shocks32 = states64.to(torch.float32), shocks64.to(torch.float32)
    u64 = eco64.lq_policy(states64)
    u32 = eco32.lq_policy(states32)
    torch.testing.assert_close(u32.double(), u64, **close_kwargs(torch.float32))
    torch.testing.assert_close(
        eco32.transition(states32, u32, shocks32)["x"].double(),
        eco64.transition(states64, u64, shocks64)["x"],
        **close_kwargs(torch.float32),
    )
    torch.testing.assert_close(
        eco32.reward(states32, u32).double(), eco64.reward(states64, u64), **close_kwargs(torch.float32)
    )


def test_observe_and_aggregates():
    eco = economy(5)
    state = eco.initial_state(3, make_generator())
    obs = eco.observe(state)
    assert obs["agents"].shape == (3, 5, len(eco.agent_features))
    assert obs["aggregate"].shape == (3, len(eco.aggregate_features))
    torch.testing.assert_close(obs["agents"][..., 0], state["x"])
    torch.testing.assert_close(obs["aggregate"][:, 0], state["x"].mean(-1))
    torch.testing.assert_close(obs["aggregate"][:, 1], 1.0 - state["x"].mean(-1))
    agg = eco.aggregates(state)
    for value in agg.values():
        assert value.shape == (3,)
    torch.testing.assert_close(agg["sd_x"], state["x"].std(-1, correction=0))


@pytest.mark.parametrize("nu", [1.05, 1.5, 2.0])
def test_nonlinear_model_gives_finite_outputs(nu):
    eco = InvestmentEconomy(64, nu=nu, dtype=torch.float32)
    h0, h1 = InvestmentEconomy(64).lq_coefficients()  # the linear policy as a stand-in

    def policy(state):
        x = state["x"]
        return (h0 + h1 * x.mean(-1, keepdim=True)).expand_as(x)

    path = eco.rollout(policy, eco.initial_state(8, make_generator()), 63, make_generator(seed=1))
    states = path.reshape(-1)
    assert_finite(states["x"], "states")
    reward = eco.reward(states, policy(states))
    assert_finite(reward, "reward")
    residual = eco.euler_residual(policy, states, generator=make_generator(seed=2))
    assert residual.shape == (8 * 64, 64)
    assert_finite(residual, "residual")
    residual_mc = eco.euler_residual(policy, states, method="monte_carlo", samples=8, generator=make_generator())
    assert_finite(residual_mc, "monte carlo residual")
    # the price uses Σ x^ν: compare with the float64 formula
    x = states["x"].double()
    torch.testing.assert_close(
        eco.price(states["x"]).double(), 1.0 - x.clamp_min(0).pow(nu).mean(-1), rtol=1e-5, atol=1e-5
    )
    # the linear policy is not an equilibrium of the nonlinear model: the residual is not ~0
    assert residual.abs().max().item() > 1e-4
