"""The Krusell–Smith economy: prices, budget, the (Z, e) Markov chain, feasibility, the Euler residual, Gini."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import DEVICES, DTYPES, assert_finite, make_generator
from hetagents_env import KrusellSmithEconomy
from hetagents_env.economies.krusell_smith import DEFAULT_TRANSITION, fischer_burmeister, gini

BETA, ALPHA, DELTA, LBAR, MU = 0.99, 0.36, 0.025, 1 / 0.9, 0.15
Z_VALUES, UR = (0.99, 1.01), (0.10, 0.04)


def economy(n_agents=5, dtype=torch.float64, device="cpu", **params) -> KrusellSmithEconomy:
    return KrusellSmithEconomy(n_agents, dtype=dtype, device=device, **params)


def constant_share(share: float):
    def policy(state):
        return torch.full_like(state["k"], share)

    return policy


def np_prices(K: float, z: int) -> tuple[float, float]:
    """REFERENCE §2.1, written independently of the code under test."""
    L = LBAR * (1 - UR[z])
    return 1 - DELTA + Z_VALUES[z] * ALPHA * (K / L) ** (ALPHA - 1), Z_VALUES[z] * (1 - ALPHA) * (K / L) ** ALPHA


def np_cash(k: np.ndarray, e: np.ndarray, z: int) -> np.ndarray:
    R, w = np_prices(k.mean(), z)
    tax = MU * UR[z] / (LBAR * (1 - UR[z]))
    return R * k + (1 - tax) * w * LBAR * e + MU * w * (1 - e)


# ---------------------------------------------------------------------------------------------- prices and budget
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_prices_at_reference_capital(device, dtype):
    eco = economy(dtype=dtype, device=device)
    K = torch.full((2,), 39.5, dtype=dtype, device=device)
    R, w = eco.prices(K, torch.tensor([0, 1], device=device))
    assert R.shape == w.shape == (2,) and R.dtype == w.dtype == dtype
    # REFERENCE §2.2, to half a unit of the last published digit
    assert R[0].item() == pytest.approx(1.00889, abs=5e-6)
    assert w[0].item() == pytest.approx(2.380, abs=5e-4)
    assert R[1].item() == pytest.approx(1.01104, abs=5e-6)
    assert w[1].item() == pytest.approx(2.372, abs=5e-4)


@settings(max_examples=30)
@given(st.lists(st.tuples(st.floats(0.5, 500.0), st.integers(0, 1)), min_size=1, max_size=6))
def test_prices_match_the_formula(points):
    eco = economy()
    K = torch.tensor([p[0] for p in points], dtype=torch.float64)
    z = torch.tensor([p[1] for p in points])
    R, w = eco.prices(K, z)
    expected = np.array([np_prices(*p) for p in points])
    np.testing.assert_allclose(R.numpy(), expected[:, 0], rtol=1e-13)
    np.testing.assert_allclose(w.numpy(), expected[:, 1], rtol=1e-13)


def test_tax_rates_and_steady_state():
    eco = economy()
    assert eco.tax.tolist() == pytest.approx([0.015, 0.005625], abs=1e-15)
    # the budget of the unemployment insurance balances at the theoretical unemployment rates
    for z in (0, 1):
        paid = eco.tax[z].item() * LBAR * (1 - UR[z])
        assert paid == pytest.approx(MU * UR[z], rel=1e-14)
    assert eco.params.steady_state_capital == pytest.approx(37.99, abs=5e-3)
    assert eco.initial_state(3, make_generator())["k"].eq(eco.params.steady_state_capital).all()
    assert economy(k_init=12.5).initial_state(3, make_generator())["k"].eq(12.5).all()


@settings(max_examples=25)
@given(
    k=hnp.arrays(np.float64, (2, 6), elements=st.floats(0.0, 300.0)),
    e=hnp.arrays(np.float64, (2, 6), elements=st.sampled_from([0.0, 1.0])),
    z=st.tuples(st.integers(0, 1), st.integers(0, 1)),
)
def test_cash_on_hand_matches_the_budget(k, e, z):
    k[:, 0] += 1e-3  # K > 0
    eco = economy(6)
    state = eco.initial_state(2, make_generator())
    state["k"], state["e"], state["z"] = torch.from_numpy(k), torch.from_numpy(e), torch.tensor(z)
    cash = eco.cash_on_hand(state)
    expected = np.stack([np_cash(k[b], e[b], z[b]) for b in range(2)])
    np.testing.assert_allclose(cash.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_consumption_clip():
    eco = economy(4)
    cash = torch.tensor([[10.0, 10.0, 10.0, 0.002]], dtype=torch.float64)
    c_min = eco.params.c_min
    # share 0 -> the floor; share 1 -> all but the floor; interior shares untouched; a poor household keeps x/4
    c = eco.consumption(cash, torch.tensor([[0.0, 1.0, 0.3, 1.0]], dtype=torch.float64))
    torch.testing.assert_close(c, torch.tensor([[c_min, 10.0 - c_min, 3.0, 0.0015]], dtype=torch.float64))
    c = eco.consumption(cash, torch.tensor([[-5.0, 7.0, 0.5, 0.0]], dtype=torch.float64))  # out-of-range shares clip
    torch.testing.assert_close(c, torch.tensor([[c_min, 10.0 - c_min, 5.0, 0.0005]], dtype=torch.float64))


def test_reward_is_log_consumption_and_budget_holds():
    eco = economy(7)
    state = eco.initial_state(3, make_generator(seed=1))
    share = torch.rand(3, 7, generator=make_generator(seed=2), dtype=torch.float64) * 0.8 + 0.1
    cash = eco.cash_on_hand(state)
    reward = eco.reward(state, share)
    torch.testing.assert_close(reward, torch.log(share * cash), rtol=1e-14, atol=1e-14)
    nxt = eco.transition(state, share, eco.sample_shocks(state, make_generator(seed=3)))
    torch.testing.assert_close(nxt["k"], (1 - share) * cash, rtol=1e-13, atol=1e-13)


def test_savings_share_is_the_complement_of_the_consumption_share():
    cons, sav = economy(6), economy(6, action="savings_share")
    state = cons.initial_state(4, make_generator(seed=4))
    state["k"] = state["k"] * torch.rand(4, 6, generator=make_generator(seed=5), dtype=torch.float64) * 2
    shocks = cons.sample_shocks(state, make_generator(seed=6))
    random = torch.rand(4, 6, generator=make_generator(seed=7), dtype=torch.float64)
    for s in (random, torch.zeros(4, 6, dtype=torch.float64), torch.ones(4, 6, dtype=torch.float64)):
        a, b = cons.transition(state, 1.0 - s, shocks), sav.transition(state, s, shocks)
        torch.testing.assert_close(a["k"], b["k"], rtol=1e-13, atol=1e-13)
        assert a["e"].equal(b["e"]) and a["z"].equal(b["z"])
        torch.testing.assert_close(cons.reward(state, 1.0 - s), sav.reward(state, s), rtol=1e-13, atol=1e-13)
    # saving share s: c = (1 − s) x, k' = s x
    s = torch.full((4, 6), 0.25, dtype=torch.float64)
    cash = sav.cash_on_hand(state)
    torch.testing.assert_close(sav.reward(state, s), torch.log(0.75 * cash))
    torch.testing.assert_close(sav.transition(state, s, shocks)["k"], 0.25 * cash)


def test_transition_is_differentiable_wrt_interior_shares():
    eco = economy(4)
    state = eco.initial_state(2, make_generator(seed=8))
    state["k"] = state["k"] * torch.tensor([[0.5, 1.0, 1.5, 2.0]], dtype=torch.float64)
    shocks = eco.sample_shocks(state, make_generator(seed=9))
    share = (0.2 + 0.6 * torch.rand(2, 4, generator=make_generator(seed=10), dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda s: eco.transition(state, s, shocks)["k"], (share,))
    assert torch.autograd.gradcheck(lambda s: eco.reward(state, s), (share,))


# ---------------------------------------------------------------------------------------------- the Markov chain
@pytest.fixture(scope="module")
def long_simulation():
    """128 economies × 1000 periods × 50 households of the exogenous (Z, e) chain, started from the stationary
    distribution by ``initial_state``, stepped by ``sample_shocks`` and ``next_exogenous`` (which ``transition``
    uses: see the next test)."""
    eco = economy(50)
    gen = make_generator(seed=11)
    state = eco.initial_state(128, gen)
    zs, es = [state["z"]], [state["e"]]
    for _ in range(1000):
        z, e = eco.next_exogenous(state, eco.sample_shocks(state, gen))
        state = state.clone(recurse=False)
        state["z"], state["e"] = z, e
        zs.append(z)
        es.append(e)
    return eco, torch.stack(zs, 1).numpy(), torch.stack(es, 1).numpy()  # (B, T+1), (B, T+1, N)


def test_transition_draws_the_exogenous_states_with_next_exogenous():
    eco = economy(30)
    gen = make_generator(seed=12)
    state = eco.initial_state(64, gen)
    for _ in range(5):
        shocks = eco.sample_shocks(state, gen)
        z, e = eco.next_exogenous(state, shocks)
        nxt = eco.transition(state, torch.full((64, 30), 0.3, dtype=torch.float64), shocks)
        assert nxt["z"].equal(z) and nxt["e"].equal(e)
        state = nxt


def test_simulated_z_persistence(long_simulation):
    _, z, _ = long_simulation
    # P(Z' = Z) is 0.875 in both states, so the "stay" indicators are i.i.d. Bernoulli(0.875) (the strong Markov
    # property): a binomial standard error, exact
    stay = z[:, 1:] == z[:, :-1]
    se = math.sqrt(0.875 * 0.125 / stay.size)
    assert abs(stay.mean() - 0.875) <= 5 * se
    for state in (0, 1):  # also per state: the number of visits is random but the outcomes are i.i.d. given it
        visits = z[:, :-1] == state
        p = stay[visits].mean()
        assert abs(p - 0.875) <= 5 * math.sqrt(0.875 * 0.125 / visits.sum())


def test_stationary_share_of_bad_times(long_simulation):
    eco, z, _ = long_simulation
    assert eco.stationary_bad == pytest.approx(0.5, abs=1e-12)
    # the time average of the indicator of a stationary two-state chain with second eigenvalue λ = 0.75 has
    # variance p(1−p)(1+λ)/((1−λ)T) at most; the 128 economies are independent
    lam = 2 * 0.875 - 1
    se = math.sqrt(0.25 * (1 + lam) / (1 - lam) / z.size)
    assert abs((z == 0).mean() - 0.5) <= 5 * se


def test_simulated_unemployment_rates(long_simulation):
    _, z, e = long_simulation
    # given the Z path, E[unemployment share_t] = ur(Z_t) at every t (the initial draw matches and the matrix is
    # consistent). Employment spells make the periods of one economy strongly dependent, so the standard error
    # comes from the spread of the per-economy estimates across the 128 independent economies (batch means).
    unemployed = 1.0 - e.mean(-1)  # (B, T+1)
    for state, target in ((0, 0.10), (1, 0.04)):
        mask = z == state
        per_economy = (unemployed * mask).sum(1) / mask.sum(1)
        se = per_economy.std(ddof=1) / math.sqrt(len(per_economy))
        assert 0 < se < 0.01
        assert abs(per_economy.mean() - target) <= 5 * se


def test_simulated_employment_transitions(long_simulation):
    _, z, e = long_simulation
    # REFERENCE §2.2: P(stay unemployed | Z→Z') / P(stay employed | Z→Z'); given (Z, Z', e) the households'
    # e' are independent Bernoulli draws, so pooled counts have binomial standard errors
    table = {(0, 0): (0.6, 0.955556), (0, 1): (0.25, 0.983336), (1, 0): (0.75, 0.92708), (1, 1): (0.333333, 0.972222)}
    z0, z1 = np.broadcast_to(z[:, :-1, None], e[:, :-1].shape), np.broadcast_to(z[:, 1:, None], e[:, 1:].shape)
    for (a, b), (stay_u, stay_e) in table.items():
        for emp, p in ((0.0, stay_u), (1.0, stay_e)):
            cell = (z0 == a) & (z1 == b) & (e[:, :-1] == emp)
            n = cell.sum()
            assert n > 1000
            freq = (e[:, 1:][cell] == emp).mean()
            assert abs(freq - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-6, (a, b, emp, freq, p, n)


def test_state_values_are_valid(long_simulation):
    _, z, e = long_simulation
    assert set(np.unique(z)) <= {0, 1} and set(np.unique(e)) <= {0.0, 1.0}


# ---------------------------------------------------------------------------------------------- feasibility
share_values = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))


@settings(max_examples=40)
@given(
    shares=hnp.arrays(np.float64, (8, 3, 5), elements=share_values),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    kind=st.sampled_from(["consumption_share", "savings_share"]),
    k_init=st.sampled_from([None, 1e-6, 1e-2, 1.0, 1e3]),
    mu=st.sampled_from([0.15, 0.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_shares_keep_capital_positive_and_everything_finite(shares, dtype, kind, k_init, mu, seed):
    eco = economy(5, dtype=dtype, action=kind, k_init=k_init, mu=mu)
    gen = make_generator(seed=seed)
    state = eco.initial_state(3, gen)
    for share in torch.from_numpy(shares).to(dtype):
        cash = eco.cash_on_hand(state)
        reward = eco.reward(state, share)
        nxt = eco.transition(state, share, eco.sample_shocks(state, gen))
        assert_finite(reward, "reward")
        assert_finite(nxt["k"], "capital")
        assert (nxt["k"] > 0).all(), "capital must stay strictly positive"
        # the budget: c + k' = x, with c = exp(reward)
        torch.testing.assert_close(torch.exp(reward) + nxt["k"], cash, rtol=1e-5, atol=1e-6)
        assert nxt["k"].dtype == dtype and nxt["e"].dtype == dtype and nxt["z"].dtype == torch.int64
        for value in eco.aggregates(nxt).values():
            assert_finite(value, "aggregate")
        state = nxt


# ---------------------------------------------------------------------------------------------- Euler residual
def residual_states(eco: KrusellSmithEconomy, seed: int = 13):
    """Initial states, states with capital spread from 0.1 to 3 × the steady state, and states of a rollout."""
    gen = make_generator(seed=seed)
    start = eco.initial_state(16, gen)
    spread = start.clone()
    spread["k"] = spread["k"] * (0.1 + 2.9 * torch.rand(spread["k"].shape, generator=gen, dtype=eco.dtype))
    path = eco.rollout(constant_share(0.07), spread, 20, gen).reshape(-1)
    return [start, spread, path]


@pytest.mark.parametrize("dtype", DTYPES)
def test_euler_residual_shape_and_finiteness(dtype):
    eco = economy(50, dtype=dtype)
    for states in residual_states(eco):
        for share in (0.0, 0.01, 0.3, 0.99, 1.0):
            residual = eco.euler_residual(constant_share(share), states)
            assert residual.shape == (states.batch_size[0], 50) and residual.dtype == dtype
            assert_finite(residual, f"residual at share {share}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_euler_residual_sign_convention(dtype):
    # docstring: ε > 0 when the household saves too much, ε < 0 when it consumes too much
    eco = economy(50, dtype=dtype)
    for states in residual_states(eco):
        for share in (0.99, 1.0):  # consumes (almost) everything: 1/c < β E[R'/c'] by far
            assert (eco.euler_residual(constant_share(share), states) < 0).all()
        assert (eco.euler_residual(constant_share(0.01), states) > 0).all()  # saves almost everything
    # and for the savings-share action the same economics
    sav = economy(50, dtype=dtype, action="savings_share")
    states = residual_states(sav)[1]
    assert (sav.euler_residual(constant_share(0.01), states) < 0).all()
    assert (sav.euler_residual(constant_share(0.99), states) > 0).all()


def test_euler_residual_matches_a_brute_force_computation():
    """The documented residual, FB(k'/x, 1 − β c E[R'/c']) with the exact expectation over (Z', own e') where every
    household of a successor state has the same e', recomputed with Python loops for a policy that depends on the
    household's own (k, e) and on (K, z)."""
    eco = economy(4)
    P = np.asarray(DEFAULT_TRANSITION)

    def share_of(k, e, K, z):
        return 0.2 + 0.5 / (1 + np.exp(-(k / K - 1 + 0.3 * e + 0.1 * z)))

    def policy(state):
        k, e, z = state["k"], state["e"], state["z"]
        K = k.mean(-1, keepdim=True)
        return 0.2 + 0.5 * torch.sigmoid(k / K - 1 + 0.3 * e + 0.1 * z.unsqueeze(-1).to(k.dtype))

    gen = make_generator(seed=14)
    states = eco.initial_state(3, gen)
    states["k"] = states["k"] * (0.2 + 2 * torch.rand(3, 4, generator=gen, dtype=torch.float64))
    states["z"] = torch.tensor([0, 1, 1])
    states["e"] = torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    residual = eco.euler_residual(policy, states)

    expected = np.zeros((3, 4))
    for b in range(3):
        k, e, z = states["k"][b].numpy(), states["e"][b].numpy(), int(states["z"][b])
        x = np_cash(k, e, z)
        c = share_of(k, e, k.mean(), z) * x
        k1 = x - c
        for i in range(4):
            expectation = 0.0
            for z1 in (0, 1):
                R1, _ = np_prices(k1.mean(), z1)
                for e1 in (0.0, 1.0):
                    e_all = np.full(4, e1)
                    x1 = np_cash(k1, e_all, z1)
                    c1 = share_of(k1, e_all, k1.mean(), z1) * x1
                    prob = P[2 * z + int(e[i]), 2 * z1 + int(e1)]
                    expectation += prob * R1 / c1[i]
            a_, b_ = k1[i] / x[i], 1 - BETA * c[i] * expectation
            expected[b, i] = a_ + b_ - math.sqrt(a_**2 + b_**2)
    np.testing.assert_allclose(residual.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_euler_residual_is_differentiable_through_the_policy():
    eco = economy(6)
    theta = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)

    def policy(state):
        return torch.sigmoid(theta + torch.zeros_like(state["k"]))

    states = residual_states(eco)[1]
    loss = eco.euler_residual(policy, states).square().mean()
    (grad,) = torch.autograd.grad(loss, theta)
    assert math.isfinite(grad.item()) and grad.item() != 0.0


# ---------------------------------------------------------------------------------------------- helpers
finite_or_zero = st.one_of(st.just(0.0), st.floats(1e-6, 1e3), st.floats(-1e3, -1e-6))


@settings(max_examples=200)
@given(finite_or_zero, finite_or_zero)
def test_fischer_burmeister_is_zero_iff_complementarity(a, b):
    fb = fischer_burmeister(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)).item()
    if a >= 0 and b >= 0 and a * b == 0:
        assert fb == 0.0
    elif a > 0 and b > 0:
        assert fb > 0  # both slacks positive
    else:
        assert fb < 0  # a violated inequality


def test_fischer_burmeister_known_values_and_broadcasting():
    a = torch.tensor([[0.0, 3.0, 3.0, -1.0]], dtype=torch.float64)
    b = torch.tensor([[2.0, 0.0, 4.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(fischer_burmeister(a, b), torch.tensor([[0.0, 0.0, 2.0, -2.0]], dtype=torch.float64))
    assert fischer_burmeister(torch.zeros(5, 3), torch.ones(3)).shape == (5, 3)


@pytest.mark.parametrize(
    "values, expected",
    [
        ([5.0, 5.0, 5.0, 5.0], 0.0),
        ([0.0, 0.0, 0.0, 1.0], 0.75),  # one household owns everything: (N − 1)/N
        ([1.0, 2.0, 3.0, 4.0], 0.25),  # Σ|xi − xj| / (2 N² mean) = 40 / 160
        ([4.0, 1.0, 3.0, 2.0], 0.25),  # order does not matter
        ([2.0, 4.0, 6.0, 8.0], 0.25),  # scale does not matter
        ([7.0], 0.0),
        ([1.0, 3.0], 0.25),
    ],
)
def test_gini_known_values(values, expected):
    assert gini(torch.tensor(values, dtype=torch.float64)).item() == pytest.approx(expected, abs=1e-14)


@settings(max_examples=40)
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(2, 20)), elements=st.floats(0.01, 100.0)))
def test_gini_matches_the_mean_absolute_difference(values):
    n = values.shape[-1]
    expected = np.abs(values[..., :, None] - values[..., None, :]).sum((-1, -2)) / (2 * n * n * values.mean(-1))
    result = gini(torch.from_numpy(values))
    assert result.shape == values.shape[:-1]
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-10, atol=1e-12)
