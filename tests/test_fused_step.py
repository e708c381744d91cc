"""The env's fast path: shocks drawn into a preallocated buffer (``sample_shocks(..., out=)``) and
:class:`hetagents_env.FusedStep` give exactly the draws and the step of the pure functions (the compiled step is
compared in ``test_benchmarks_smoke.py``)."""

from __future__ import annotations

import pytest
import torch

import hetagents_env
from conftest import ENV_IDS


def _action(economy, state):
    b, n = state.batch_size[0], economy.n_agents
    if economy.env_id == "Investment-v0":
        return economy.lq_policy(state).contiguous()
    return torch.full((b, n), 0.3, dtype=economy.dtype, device=economy.device)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sample_shocks_into_buffer_matches_fresh_draws(env_id, dtype):
    eco = hetagents_env.make_economy(env_id, n_agents=7, dtype=dtype)
    state = eco.initial_state(5, eco.generator(0))
    buffer = eco.shock_buffer(5)
    fresh = eco.sample_shocks(state, eco.generator(3))
    filled = eco.sample_shocks(state, eco.generator(3), out=buffer)
    assert filled is buffer
    for key in fresh.keys():
        assert torch.equal(filled[key], fresh[key]), key
    # the buffer is refilled in place, and the next draw continues the same stream
    gen_a, gen_b = eco.generator(4), eco.generator(4)
    for _ in range(3):
        fresh = eco.sample_shocks(state, gen_a)
        eco.sample_shocks(state, gen_b, out=buffer)
        for key in fresh.keys():
            assert torch.equal(buffer[key], fresh[key]), key


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_shock_buffer_of_the_wrong_batch_size_is_refused(env_id):
    eco = hetagents_env.make_economy(env_id, n_agents=4)
    state = eco.initial_state(3, eco.generator(0))
    with pytest.raises(ValueError, match="batch_size"):
        eco.sample_shocks(state, eco.generator(0), out=eco.shock_buffer(2))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_fused_step_eager_equals_the_pure_step_bit_for_bit(env_id, dtype):
    eco = hetagents_env.make_economy(env_id, n_agents=9, dtype=dtype)
    state_ref = state = eco.initial_state(4, eco.generator(0))
    step = hetagents_env.FusedStep(eco, 4)
    gen_ref, gen = eco.generator(1), eco.generator(1)
    with torch.no_grad():
        for _ in range(5):
            state_ref, reward_ref = eco.step(state_ref, _action(eco, state_ref), gen_ref)
            state, reward = step(state, _action(eco, state), gen)
            assert torch.equal(reward, reward_ref)
            for key in state_ref.keys():
                assert torch.equal(state[key], state_ref[key]), key


def test_fused_step_keeps_gradients_through_the_action():
    eco = hetagents_env.make_economy("Investment-v0", n_agents=6, dtype=torch.float64)
    state = eco.initial_state(2, eco.generator(0))
    action = torch.zeros(2, 6, dtype=torch.float64, requires_grad=True)
    next_state, reward = hetagents_env.FusedStep(eco, 2)(state, action, eco.generator(1))
    (next_state["x"].sum() + reward.sum()).backward()
    assert action.grad is not None and torch.isfinite(action.grad).all()
    torch.testing.assert_close(action.grad, torch.ones_like(action) - eco.params.gamma * action.detach())


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_step_is_the_pure_step_on_the_env_generator(env_id):
    env = hetagents_env.make(env_id, num_envs=3, n_agents=5, seed=11)
    env.reset()
    eco = env.economy
    eco_gen = eco.generator(0)
    eco_gen.set_state(env.rng.get_state())
    state = env.state
    for _ in range(3):
        action = _action(eco, state)
        state, reward_ref = eco.step(state, action, eco_gen)
        _, reward, *_ = env.step(action)
        assert torch.equal(reward, reward_ref)
        for key in state.keys():
            assert torch.equal(env.state[key], state[key]), key
