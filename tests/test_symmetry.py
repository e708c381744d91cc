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

from conftest import ENV_IDS, make_generator
from hetagents_env import InvestmentEconomy, make_economy

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


#: parameters that make the test harder than the defaults (noise, curvature), by economy; others: defaults
HARDER = {"Investment-v0": dict(sigma=0.1, eta=0.05, nu=1.5)}


def random_case(env_id: str, seed: int):
    """An economy of N agents, a state with its endogenous entry spread out, an action anywhere in the action box
    (its clipped corners included) and one period's shocks — built from the economy's own description."""
    eco = make_economy(env_id, n_agents=N, dtype=torch.float64, **HARDER.get(env_id, {}))
    gen = make_generator(seed=seed)
    state = eco.initial_state(B, gen)
    key = eco.endogenous_key
    state[key] = state[key] * (0.2 + 2 * torch.rand(B, N, generator=gen, dtype=torch.float64))
    if eco.action_head == "sigmoid":
        action = torch.rand(B, N, generator=gen, dtype=torch.float64)
        action[0, :2] = torch.tensor([0.0, 1.0], dtype=torch.float64)  # the clipped corners too
    else:
        action = 0.1 * torch.randn(B, N, generator=gen, dtype=torch.float64)
    return eco, state, action, eco.sample_shocks(state, gen)


def per_agent_keys(td) -> tuple[str, ...]:
    return tuple(k for k, v in td.items() if v.dim() == 2)


@pytest.mark.parametrize("env_id", ENV_IDS)
@settings(max_examples=25)
@given(perm=permutations, seed=st.integers(0, 2**31 - 1))
def test_transition_and_reward_are_permutation_equivariant(env_id, perm, seed):
    eco, state, action, shocks = random_case(env_id, seed)
    state_keys, shock_keys = per_agent_keys(state), per_agent_keys(shocks)
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


@pytest.mark.parametrize("env_id", [e for e in ENV_IDS if make_economy(e, n_agents=2).provides("successors")])
@settings(max_examples=15)
@given(perm=permutations, seed=st.integers(0, 2**31 - 1))
def test_household_euler_residual_is_permutation_equivariant(env_id, perm, seed):
    eco, state, _, _ = random_case(env_id, seed)
    perm = torch.tensor(perm)
    p_state = permute_agents(state, perm, ("k", "e"))

    def policy(s):  # own (k, e), the population mean K and z
        k = s["k"]
        K = k.mean(-1, keepdim=True)
        return torch.sigmoid(k / K - 1 + 0.5 * s["e"] - 0.2 * s["z"].unsqueeze(-1).to(k.dtype))

    torch.testing.assert_close(
        eco.euler_residual(policy, p_state), eco.euler_residual(policy, state)[:, perm], **TOL
    )
