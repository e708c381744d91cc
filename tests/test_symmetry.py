"""Permutation symmetry of both economies.

Relabelling the agents of a state, together with their actions and idiosyncratic shocks, relabels the next state and
the rewards the same way (equivariance) and leaves every aggregate unchanged (invariance). The Euler residuals of a
symmetric policy are equivariant too.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_generator
from hetagents_env import InvestmentEconomy, KrusellSmithEconomy

N = 9
B = 3
TOL = {"rtol": 1e-12, "atol": 1e-12}  # float64; a permuted mean differs by the order of summation only

permutations = st.permutations(list(range(N)))


def permute_agents(td, perm: torch.Tensor, per_agent_keys):
    out = td.clone()
    for key in per_agent_keys:
        out[key] = td[key][:, perm]
    return out


def assert_aggregates_equal(eco, a, b):
    agg_a, agg_b = eco.aggregates(a), eco.aggregates(b)
    assert agg_a.keys() == agg_b.keys()
    for key in agg_a:
        torch.testing.assert_close(agg_a[key], agg_b[key], **TOL)
    torch.testing.assert_close(eco.observe(a)["aggregate"], eco.observe(b)["aggregate"], **TOL)


def random_investment(seed: int):
    eco = InvestmentEconomy(N, dtype=torch.float64, sigma=0.1, eta=0.05, nu=1.5)
    gen = make_generator(seed=seed)
    state = eco.initial_state(B, gen)
    action = 0.1 * torch.randn(B, N, generator=gen, dtype=torch.float64)
    return eco, state, action, eco.sample_shocks(state, gen)


def random_krusell_smith(seed: int):
    eco = KrusellSmithEconomy(N, dtype=torch.float64)
    gen = make_generator(seed=seed)
    state = eco.initial_state(B, gen)
    state["k"] = state["k"] * (0.2 + 2 * torch.rand(B, N, generator=gen, dtype=torch.float64))
    action = torch.rand(B, N, generator=gen, dtype=torch.float64)
    action[0, :2] = torch.tensor([0.0, 1.0], dtype=torch.float64)  # the clipped corners too
    return eco, state, action, eco.sample_shocks(state, gen)


ECONOMIES = {
    "investment": (random_investment, ("x",), ("w",)),
    "krusell_smith": (random_krusell_smith, ("k", "e"), ("e_uniform",)),
}


@pytest.mark.parametrize("name", list(ECONOMIES))
@settings(max_examples=25)
@given(perm=permutations, seed=st.integers(0, 2**31 - 1))
def test_transition_and_reward_are_permutation_equivariant(name, perm, seed):
    build, state_keys, shock_keys = ECONOMIES[name]
    eco, state, action, shocks = build(seed)
    perm = torch.tensor(perm)
    p_state = permute_agents(state, perm, state_keys)
    p_shocks = permute_agents(shocks, perm, shock_keys)
    p_action = action[:, perm]

    nxt, p_nxt = eco.transition(state, action, shocks), eco.transition(p_state, p_action, p_shocks)
    for key in state_keys:  # per-agent entries: permuted
        torch.testing.assert_close(p_nxt[key], nxt[key][:, perm], **TOL)
    for key in set(nxt.keys()) - set(state_keys):  # aggregate entries: unchanged
        assert p_nxt[key].equal(nxt[key])
    torch.testing.assert_close(eco.reward(p_state, p_action), eco.reward(state, action)[:, perm], **TOL)
    obs, p_obs = eco.observe(state), eco.observe(p_state)
    torch.testing.assert_close(p_obs["agents"], obs["agents"][:, perm], **TOL)
    assert_aggregates_equal(eco, state, p_state)
    assert_aggregates_equal(eco, nxt, p_nxt)


@settings(max_examples=15)
@given(perm=permutations, seed=st.integers(0, 2**31 - 1))
def test_investment_euler_residual_is_permutation_equivariant(perm, seed):
    eco = InvestmentEconomy(N, dtype=torch.float64)
    state = eco.initial_state(B, make_generator(seed=seed))
    draw = eco.standardized_draw(make_generator(seed=seed + 1))
    perm = torch.tensor(perm)
    p_state = permute_agents(state, perm, ("x",))

    def policy(s):  # own capital and the population mean (a DeepSets-shaped policy)
        x = s["x"]
        return 0.05 - 0.02 * x + 0.01 * x.square().mean(-1, keepdim=True)

    for nodes in (7, 3):  # the fixed idiosyncratic draw is per agent: it is relabelled with them
        residual = eco.euler_residual(policy, state, idiosyncratic=draw, nodes=nodes)
        p_residual = eco.euler_residual(policy, p_state, idiosyncratic=draw[perm], nodes=nodes)
        torch.testing.assert_close(p_residual, residual[:, perm], **TOL)


@settings(max_examples=15)
@given(perm=permutations, seed=st.integers(0, 2**31 - 1))
def test_krusell_smith_euler_residual_is_permutation_equivariant(perm, seed):
    eco, state, _, _ = random_krusell_smith(seed)
    perm = torch.tensor(perm)
    p_state = permute_agents(state, perm, ("k", "e"))

    def policy(s):  # own (k, e), the population mean K and z
        k = s["k"]
        K = k.mean(-1, keepdim=True)
        return torch.sigmoid(k / K - 1 + 0.5 * s["e"] - 0.2 * s["z"].unsqueeze(-1).to(k.dtype))

    torch.testing.assert_close(
        eco.euler_residual(policy, p_state), eco.euler_residual(policy, state)[:, perm], **TOL
    )
