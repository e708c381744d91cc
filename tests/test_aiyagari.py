"""The Aiyagari economy: calibrations, bad input, the Markov chains it samples, its Euler residual, price taking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hetagents_env
from hetagents_env import AiyagariEconomy, make_economy
from hetagents_env.economies import markov
from hetagents_env.economies.aiyagari import CALIBRATIONS, DHKR_BAD, DHKR_GOOD, DHKR_TRANSITION


def test_registered_and_default_calibration():
    assert "Aiyagari-v0" in hetagents_env.list_envs()
    eco = make_economy("Aiyagari-v0")
    p = eco.params
    assert (p.beta, p.alpha, p.delta, p.gamma, p.n_states) == (0.96, 0.36, 0.08, 3.0, 7)
    assert eco.reference_solver == "aiyagari_stationary"
    assert eco.aggregate_states == 1 and eco.n_e == 7
    # AR(1) levels are normalised to a stationary mean of 1 (so L = 1)
    assert float(eco.labour[0]) == pytest.approx(1.0, abs=1e-12)


def test_named_calibrations_and_overrides():
    eco = make_economy("Aiyagari-v0", calibration="dhkr2012")
    p = eco.params
    assert p.gamma == 2.0 and p.productivity == (1.0, 5.29, 46.55)
    assert p.productivity_transition == DHKR_TRANSITION
    shares = markov.stationary_distribution(np.asarray(DHKR_TRANSITION))
    np.testing.assert_allclose(shares, [0.498, 0.443, 0.059], atol=2e-3)  # REFERENCE: ≈ 0.498 / 0.443 / 0.059
    assert make_economy("Aiyagari-v0", calibration="dhkr2012", gamma=3.0).params.gamma == 3.0
    for name in CALIBRATIONS:  # every preset builds, and its dict round-trips (checkpoints, dtype copies)
        eco = make_economy("Aiyagari-v0", calibration=name)
        again = make_economy("Aiyagari-v0", **eco.params.to_dict())
        assert again.params == eco.params
        assert eco.with_dtype(torch.float64).params == eco.params


def test_cis_bad_matrix_matches_the_published_bad_state_shares():
    np.testing.assert_allclose(markov.stationary_distribution(np.asarray(DHKR_BAD)), [0.7123, 0.2540, 0.0337],
                               atol=5e-4)
    eco = make_economy("Aiyagari-v0", calibration="dhkr2012", aggregate_shock="cis")
    assert eco.aggregate_states == 2
    np.testing.assert_allclose(eco.idiosyncratic_transition[1], DHKR_GOOD)
    assert eco.reference_solver is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(calibration="aiyagari2000"), r"'calibration' = 'aiyagari2000' is not known: allowed 'aiyagari1994'"),
        (dict(gamma=0.0), r"'gamma' = 0.0 is out of range"),
        (dict(gamma=-1.0), r"'gamma' = -1.0 is out of range"),
        (dict(productivity=(1.0, 0.0), productivity_transition=((0.5, 0.5), (0.5, 0.5))), r"'productivity'.*> 0"),
        (dict(productivity=(1.0, -2.0), productivity_transition=((0.5, 0.5), (0.5, 0.5))), r"'productivity'.*> 0"),
        (dict(productivity=(1.0, 2.0), productivity_transition=((0.5, 0.6), (0.5, 0.5))),
         r"'productivity_transition' is not stochastic: row sums"),
        (dict(productivity=(1.0, 2.0), productivity_transition=((1.5, -0.5), (0.5, 0.5))),
         r"'productivity_transition' is not stochastic: entries must be in \[0, 1\]"),
        (dict(productivity=(1.0, 2.0), productivity_transition=((1.0,),)), r"must be an \(2, 2\) matrix"),
        (dict(productivity=(1.0, 2.0)), r"'productivity' and 'productivity_transition' go together"),
        (dict(borrowing_limit=-1e3), r"'borrowing_limit' = -1000.0 is at or below the natural borrowing limit"),
        (dict(rho=1.0), r"'rho' = 1.0 is out of range"),
        (dict(n_states=1), r"'n_states' = 1 is out of range"),
        (dict(discretization="chebyshev"), r"'discretization' = 'chebyshev' is not allowed"),
        (dict(aggregate_shock="big"), r"'aggregate_shock' = 'big' is not allowed"),
        (dict(aggregate_shock="cis"), r"'productivity_transition_bad' is needed"),
        (dict(k_init=-1.0), r"'k_init' = -1.0 is out of range"),
        (dict(rho=0.99, tauchen_width=10.0, n_states=2), r"rho = 0.99, .* give a productivity chain with absorbing"),
        (dict(alpha=1 - 1e-16), r"'k_init' = None asks for the complete-markets capital"),
        (dict(rho=0.995), r"'rho' = 0.995 is out of range: allowed \[-0.99, 0.99\]"),
    ],
)
def test_bad_input_names_parameter_value_and_range(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_economy("Aiyagari-v0", **kwargs)


def test_a_borrowing_limit_above_the_natural_one_is_allowed():
    eco = make_economy("Aiyagari-v0", borrowing_limit=-1.0, dtype=torch.float64)
    state = eco.initial_state(8, eco.generator(0))
    nxt, reward = eco.step(state, torch.zeros(8, eco.n_agents, dtype=torch.float64), eco.generator(1))
    assert bool((nxt["k"] > -1.0).all()) and bool(torch.isfinite(reward).all())


@pytest.mark.parametrize("shock", ["none", "ias", "cis"])
def test_sampled_chain_matches_the_transition_matrix(shock):
    """Markov-chain statistics: empirical P(z' | z) and P(e' | e, z') over many household-periods."""
    eco = make_economy("Aiyagari-v0", calibration="dhkr2012", aggregate_shock=shock, n_agents=2000,
                       dtype=torch.float64)
    gen = eco.generator(0)
    state = eco.initial_state(16, gen)
    share = torch.full((16, eco.n_agents), 0.2, dtype=torch.float64)
    counts = np.zeros((eco.n_z, eco.n_e, eco.n_e))
    z_counts = np.zeros((eco.n_z, eco.n_z))
    for _ in range(60):
        nxt = eco.transition(state, share, eco.sample_shocks(state, gen))
        z0, z1 = state["z"].numpy(), nxt["z"].numpy()
        np.add.at(z_counts, (z0, z1), 1)
        e0, e1 = state["e"].long().numpy(), nxt["e"].long().numpy()
        np.add.at(counts, (np.repeat(z1[:, None], eco.n_agents, 1), e0, e1), 1)
        state = nxt
    if eco.n_z > 1:
        freq = z_counts / z_counts.sum(1, keepdims=True)
        np.testing.assert_allclose(freq, eco.prob_z.numpy(), atol=0.06)
    for z in range(eco.n_z):
        rows = counts[z].sum(1)
        ok = rows > 5000
        freq = counts[z][ok] / rows[ok, None]
        np.testing.assert_allclose(freq, eco.idiosyncratic_transition[z][ok], atol=0.01)


@pytest.mark.parametrize("gamma", [1.0, 2.0, 5.0])
def test_relative_euler_residual_by_hand(gamma):
    """1 − c/c_EE with c_EE = (β E[R' c'^−γ])^(−1/γ), the expectation written out for one household."""
    eco = make_economy("Aiyagari-v0", calibration="dhkr2012", aggregate_shock="ias", gamma=gamma, n_agents=5,
                       dtype=torch.float64)
    gen = eco.generator(3)
    state = eco.initial_state(2, gen)
    state["k"] = state["k"] * torch.rand(2, 5, generator=gen, dtype=torch.float64) * 2

    def policy(s):
        return 0.1 + 0.05 * torch.tanh(s["k"] / 30.0) + 0.01 * s["e"]

    res = eco.euler_residual(policy, state, form="relative")
    b, i = 1, 3
    cash = eco.cash_on_hand(state)
    c = eco.consumption(cash, policy(state))
    k_next = (cash - c)[b]
    z, e = int(state["z"][b]), int(state["e"][b, i])
    expected = 0.0
    for z1 in range(eco.n_z):
        for e1 in range(eco.n_e):
            nxt = state[b : b + 1].clone()
            nxt["k"] = k_next.unsqueeze(0)
            nxt["e"] = torch.full_like(nxt["e"], float(e1))
            nxt["z"] = torch.full_like(nxt["z"], z1)
            c1 = eco.consumption(eco.cash_on_hand(nxt), policy(nxt))[0, i]
            R1, _ = eco.prices(k_next.mean(), torch.tensor(z1))
            prob = float(eco.prob_joint[z, e, z1, e1])
            expected += prob * float(R1) * float(c1) ** (-gamma)
    c_ee = (eco.params.beta * expected) ** (-1.0 / gamma)
    assert float(res[b, i]) == pytest.approx(1.0 - float(c[b, i]) / c_ee, rel=1e-10, abs=1e-12)


def test_price_taking_transition_has_the_same_values():
    eco = make_economy("Aiyagari-v0", calibration="dhkr2012", aggregate_shock="cis", n_agents=7, dtype=torch.float64)
    gen = eco.generator(0)
    state = eco.initial_state(3, gen)
    action = torch.rand(3, 7, generator=gen, dtype=torch.float64)
    shocks = eco.sample_shocks(state, gen)
    a, ra = eco.transition_and_reward(state, action, shocks)
    b, rb = eco.price_taking_transition(state, action, shocks)
    torch.testing.assert_close(a["k"], b["k"])
    torch.testing.assert_close(ra, rb)
    assert torch.equal(a["e"], b["e"]) and torch.equal(a["z"], b["z"])


def test_crra_reward_and_feasibility_for_any_share():
    eco = make_economy("Aiyagari-v0", gamma=5.0, n_agents=9)
    state = eco.initial_state(4, eco.generator(0))
    for share in (0.0, 0.5, 1.0):
        nxt, reward = eco.step(state, torch.full((4, 9), share), eco.generator(1))
        assert bool(torch.isfinite(reward).all()) and bool((nxt["k"] > 0).all())
    assert isinstance(eco, AiyagariEconomy)


def test_a_negative_borrowing_limit_never_gives_nan_rewards():
    """Consuming everything with a̲ < 0 drives K to a̲ < 0 (no capital: outside the economics); prices and rewards
    stay finite (K/L clamped, consumption at its positive floor)."""
    eco = make_economy("Aiyagari-v0", borrowing_limit=-1.0, n_agents=10, dtype=torch.float64)
    state = eco.initial_state(3, eco.generator(0))
    for t in range(5):
        state, reward = eco.step(state, torch.ones(3, 10, dtype=torch.float64), eco.generator(t))
        assert not bool(torch.isnan(reward).any()) and not bool(torch.isnan(state["k"]).any())


def test_registering_another_class_under_a_taken_id_is_refused():
    from hetagents_env.economies.registry import register_economy

    clone = type("AiyagariEconomy", (AiyagariEconomy,), {"__module__": "somebody.elses.module"})
    with pytest.raises(ValueError, match="'Aiyagari-v0' is already registered by hetagents_env.economies.aiyagari"):
        register_economy(clone)
    assert hetagents_env.economy_class("Aiyagari-v0") is AiyagariEconomy
