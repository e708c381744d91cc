"""The PettingZoo facade: PettingZoo's API and seed tests, spaces, and agreement with the core."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test, parallel_seed_test

import hetagents_env
from conftest import action_sequence as shared_action_sequence
from hetagents_env.interfaces.pettingzoo import EconomyParallelEnv

N, HORIZON = 4, 5


def make(env_id: str, **kwargs) -> EconomyParallelEnv:
    kwargs = {"n_agents": N, "max_episode_steps": HORIZON, **kwargs}
    return hetagents_env.make(env_id, api="pettingzoo", **kwargs)


def action_sequence(env_id: str, steps: int, seed: int = 7) -> torch.Tensor:
    """``steps`` reproducible actions ``(steps, 1, N)`` inside the action box."""
    return shared_action_sequence(env_id, steps, 1, N, seed)



def as_dict(env: EconomyParallelEnv, action: torch.Tensor) -> dict[str, np.ndarray]:
    """A ``(1, N)`` action tensor as PettingZoo's per-agent dict of ``(1,)`` arrays."""
    return {agent: action[0, i : i + 1].numpy() for i, agent in enumerate(env.agents)}


def test_parallel_api_test(env_id):
    parallel_api_test(make(env_id), num_cycles=2 * HORIZON)


def test_parallel_seed_test(env_id):
    parallel_seed_test(lambda: make(env_id, seed=3), num_cycles=HORIZON)


def test_agents_spaces_and_state(env_id):
    env = make(env_id)
    name = env.economy.agent_name
    assert name == hetagents_env.economy_class(env_id).agent_name and name.isidentifier()
    assert env.possible_agents == [f"{name}_{i}" for i in range(N)]
    assert env.agents == []  # until reset
    obs, infos = env.reset(seed=0)
    assert env.agents == env.possible_agents and set(obs) == set(infos) == set(env.agents)
    # one shared space object per group
    assert all(env.observation_space(a) is env.observation_space(name + "_0") for a in env.agents)
    assert all(env.action_space(a) is env.action_space(name + "_0") for a in env.agents)
    d_a, d_z = len(env.economy.agent_features), len(env.economy.aggregate_features)
    assert env.observation_space(name + "_0").shape == (d_a + d_z,)
    assert env.observation_features == tuple(env.economy.agent_features) + tuple(env.economy.aggregate_features)
    assert all(o in env.observation_space(a) for a, o in obs.items())
    state = env.state()
    assert state.shape == env.state_space.shape == (N * d_a + d_z,) and state in env.state_space
    core_obs = env.economy.observe(env.core.state)
    np.testing.assert_array_equal(state[: N * d_a], core_obs["agents"][0].reshape(-1).numpy())
    np.testing.assert_array_equal(state[N * d_a :], core_obs["aggregate"][0].numpy())
    # own state first, then the public aggregate, the same for every agent
    for i, agent in enumerate(env.agents):
        np.testing.assert_array_equal(obs[agent][:d_a], core_obs["agents"][0, i].numpy())
        np.testing.assert_array_equal(obs[agent][d_a:], core_obs["aggregate"][0].numpy())
    with pytest.raises(KeyError, match="unknown agent"):
        env.action_space("nobody_0")


def test_all_agents_truncated_together_at_the_horizon(env_id):
    env = make(env_id)
    env.reset(seed=0)
    actions = action_sequence(env_id, HORIZON)
    for t in range(HORIZON):
        _, rewards, terminations, truncations, _ = env.step(as_dict(env, actions[t]))
        assert not any(terminations.values())
        assert all(truncations.values()) == (t == HORIZON - 1) and len(set(truncations.values())) == 1
        assert all(isinstance(r, float) for r in rewards.values())
    assert env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})


def test_same_seed_same_trajectory_as_the_core(env_id):
    steps = 4
    actions = action_sequence(env_id, steps)
    core = hetagents_env.make(env_id, num_envs=1, n_agents=N)
    env = make(env_id)
    core_obs, _ = core.reset(seed=21)
    env.reset(seed=21)
    np.testing.assert_array_equal(env.state()[: core_obs["agents"][0].numel()], core_obs["agents"][0].reshape(-1))
    for t in range(steps):
        core_obs, core_reward, _, _, _ = core.step(actions[t])
        obs, rewards, _, _, _ = env.step(as_dict(env, actions[t]))
        np.testing.assert_array_equal(np.stack([rewards[a] for a in env.agents]), core_reward[0].numpy())
        own = np.stack([obs[a][: len(env.economy.agent_features)] for a in env.agents])
        np.testing.assert_array_equal(own, core_obs["agents"][0].numpy())


def test_step_matches_the_pure_transition(env_id):
    env = make(env_id)
    env.reset(seed=2)
    economy, state = env.economy, env.core.state
    replay = torch.Generator()
    replay.set_state(env.core.rng.get_state())
    action = action_sequence(env_id, 1)[0]
    expected = economy.transition(state, action, economy.sample_shocks(state, replay))
    env.step(as_dict(env, action))
    for key in expected.keys():
        torch.testing.assert_close(env.core.state[key], expected[key])


def test_bad_actions(env_id):
    env = make(env_id)
    env.reset(seed=0)
    good = {agent: env.action_space(agent).sample() for agent in env.agents}
    missing = dict(list(good.items())[1:])
    with pytest.raises(ValueError, match="missing"):
        env.step(missing)
    with pytest.raises(ValueError, match="unknown"):
        env.step({**missing, "nobody": np.zeros(1)})
    with pytest.raises(ValueError, match="shape"):
        env.step({agent: np.zeros(2) for agent in env.agents})
    with pytest.raises(ValueError, match="finite"):  # the core's check
        env.step({**good, env.agents[0]: np.array([np.nan])})
    with pytest.raises(ValueError, match="dict"):
        env.step(np.zeros(N))
    # scalars are accepted too, and a rejected step leaves the economy where it was
    _, _, _, _, _ = env.step({agent: float(a[0]) for agent, a in good.items()})
    assert int(env.core.elapsed_steps[0]) == 1
