"""The Gymnasium facade: registration, Gymnasium's own checker, autoreset modes, and agreement with the core."""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import hetagents_env
from conftest import action_sequence as shared_action_sequence
from hetagents_env.interfaces.gymnasium import EconomyGymEnv, EconomyVectorEnv, parse_autoreset_mode

B, N = 3, 4
# check_env warns (does not fail) about the honest infinite bounds of unbounded observations
pytestmark = pytest.mark.filterwarnings("ignore:.*infinity")


def action_sequence(env_id: str, steps: int, b: int = B, n: int = N, seed: int = 7) -> torch.Tensor:
    """``steps`` reproducible actions ``(steps, b, n)`` inside the action box."""
    return shared_action_sequence(env_id, steps, b, n, seed)



def assert_obs_equal(obs: dict, core_obs) -> None:
    np.testing.assert_array_equal(obs["agents"], core_obs["agents"].numpy())
    np.testing.assert_array_equal(obs["aggregate"], core_obs["aggregate"].numpy())


# ---------------------------------------------------------------------- registration and checkers
def test_registered_at_import(env_id):
    spec = gymnasium.spec(f"hetagents/{env_id}")
    assert spec.vector_entry_point is not None
    assert spec.kwargs == {"economy": env_id}


def test_make_vec_uses_the_vector_entry_point(env_id):
    envs = gymnasium.make_vec(f"hetagents/{env_id}", num_envs=8, n_agents=16)
    assert isinstance(envs, EconomyVectorEnv)
    assert envs.num_envs == 8 and envs.n_agents == 16
    assert envs.autoreset_mode is AutoresetMode.NEXT_STEP  # Gymnasium's own default
    assert envs.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    d_a, d_z = len(envs.economy.agent_features), len(envs.economy.aggregate_features)
    assert envs.single_observation_space["agents"].shape == (16, d_a)
    assert envs.single_observation_space["aggregate"].shape == (d_z,)
    assert envs.single_action_space.shape == (16,)
    obs, info = envs.reset(seed=0)
    assert obs in envs.observation_space
    assert obs["agents"].shape == (8, 16, d_a)
    obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    assert obs in envs.observation_space
    assert reward.shape == terminated.shape == truncated.shape == (8,)
    assert info["agent_rewards"].shape == (8, 16)
    np.testing.assert_allclose(reward, info["agent_rewards"].mean(-1), rtol=1e-6)
    envs.close()


def test_action_boxes(env_id):
    box = gymnasium.make_vec(f"hetagents/{env_id}", num_envs=2, n_agents=3).single_action_space
    cls = hetagents_env.economy_class(env_id)
    # the economy's own bounds where finite (a share in [0, 1]), +-1 (the default action_bound) where unbounded
    low = cls.action_low if math.isfinite(cls.action_low) else -1.0
    high = cls.action_high if math.isfinite(cls.action_high) else 1.0
    assert (box.low == np.float32(low)).all() and (box.high == np.float32(high)).all()
    narrow = EconomyVectorEnv(env_id, 2, n_agents=3, action_bound=0.2).single_action_space
    assert np.allclose(narrow.low, low if math.isfinite(cls.action_low) else -0.2)
    assert np.allclose(narrow.high, high if math.isfinite(cls.action_high) else 0.2)
    with pytest.raises(ValueError, match="action_bound"):
        EconomyVectorEnv(env_id, 2, n_agents=3, action_bound=0.0)


@pytest.mark.parametrize("horizon", [None, 3])
def test_check_env_on_the_single_economy(env_id, horizon):
    env = gymnasium.make(f"hetagents/{env_id}", n_agents=N, max_episode_steps=horizon)
    assert isinstance(env.unwrapped, EconomyGymEnv)
    check_env(env.unwrapped)
    direct = EconomyGymEnv(env_id, n_agents=N, dtype=torch.float64, max_episode_steps=horizon)
    check_env(direct, skip_render_check=True)  # no spec outside gymnasium.make: nothing to re-make for rendering


def test_sync_vectorization_also_works(env_id):
    envs = gymnasium.make_vec(f"hetagents/{env_id}", num_envs=2, vectorization_mode="sync", n_agents=N)
    obs, _ = envs.reset(seed=1)
    assert obs["agents"].shape[:2] == (2, N)
    envs.step(envs.action_space.sample())
    envs.close()


# ---------------------------------------------------------------------- agreement with the core
def test_same_seed_same_trajectory_as_the_core(env_id):
    steps = 4
    actions = action_sequence(env_id, steps)
    core = hetagents_env.make(env_id, num_envs=B, n_agents=N)
    envs = hetagents_env.make(env_id, api="gymnasium", num_envs=B, n_agents=N)
    single = gymnasium.make(f"hetagents/{env_id}", n_agents=N)
    core_obs, _ = core.reset(seed=11)
    obs, _ = envs.reset(seed=11)
    assert_obs_equal(obs, core_obs)
    core_1 = hetagents_env.make(env_id, num_envs=1, n_agents=N)
    core_1_obs, _ = core_1.reset(seed=5)
    single_obs, _ = single.reset(seed=5)
    np.testing.assert_array_equal(single_obs["agents"], core_1_obs["agents"][0].numpy())
    for t in range(steps):
        core_obs, core_reward, _, _, _ = core.step(actions[t])
        obs, reward, _, _, info = envs.step(actions[t].numpy())
        assert_obs_equal(obs, core_obs)
        np.testing.assert_array_equal(info["agent_rewards"], core_reward.numpy())
        np.testing.assert_allclose(reward, core_reward.mean(-1).numpy(), rtol=1e-6)
        core_1_obs, core_1_reward, _, _, _ = core_1.step(actions[t, :1])
        single_obs, single_reward, _, _, _ = single.step(actions[t, 0].numpy())
        np.testing.assert_array_equal(single_obs["aggregate"], core_1_obs["aggregate"][0].numpy())
        assert single_reward == pytest.approx(float(core_1_reward.mean()), rel=1e-6)


def test_step_matches_the_pure_transition(env_id):
    envs = EconomyVectorEnv(env_id, B, n_agents=N, return_torch=True)
    envs.reset(seed=3)
    economy, state = envs.economy, envs.core.state
    replay = torch.Generator()
    replay.set_state(envs.core.rng.get_state())
    shocks = economy.sample_shocks(state, replay)  # the shocks the env is about to draw
    action = action_sequence(env_id, 1)[0]
    expected = economy.observe(economy.transition(state, action, shocks))
    obs, reward, _, _, info = envs.step(action)
    torch.testing.assert_close(obs["agents"], expected["agents"])
    torch.testing.assert_close(obs["aggregate"], expected["aggregate"])
    torch.testing.assert_close(info["agent_rewards"], economy.reward(state, action))


# ---------------------------------------------------------------------- bad input
def test_bad_actions_raise_the_core_errors(env_id):
    envs = EconomyVectorEnv(env_id, B, n_agents=N)
    envs.reset(seed=0)
    good = envs.action_space.sample()
    with pytest.raises(ValueError, match="shape"):
        envs.step(good[:, :-1])
    nan = good.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        envs.step(nan)
    with pytest.raises(ValueError, match="real numbers"):
        envs.step([["a"] * N] * B)
    with pytest.raises(ValueError, match="dtype"):  # tensors are checked as they are, like the core does
        envs.step(torch.zeros(B, N, dtype=torch.float64))
    single = EconomyGymEnv(env_id, n_agents=N)
    single.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        single.step(np.zeros(N + 1, dtype=np.float32))
    with pytest.raises(ValueError, match="finite"):
        single.step(np.full(N, np.inf))


def test_bad_options_and_modes(env_id):
    envs = EconomyVectorEnv(env_id, B, n_agents=N)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="boolean"):
        envs.reset(options={"reset_mask": np.ones(B, dtype=np.int64)})
    with pytest.raises(ValueError, match="shape"):
        envs.reset(options={"reset_mask": np.ones(B + 1, dtype=bool)})
    with pytest.raises(ValueError, match="autoreset_mode"):
        EconomyVectorEnv(env_id, B, n_agents=N, autoreset_mode="sometimes")
    assert parse_autoreset_mode("SameStep") is AutoresetMode.SAME_STEP
    assert parse_autoreset_mode("next_step") is AutoresetMode.NEXT_STEP
    with pytest.raises(ValueError, match="Economy instance"):
        EconomyVectorEnv(hetagents_env.make_economy(env_id, n_agents=N), B, n_agents=N)


# ---------------------------------------------------------------------- resets and autoreset modes
def test_partial_reset_with_a_mask(env_id):
    envs = EconomyVectorEnv(env_id, B, n_agents=N, max_episode_steps=5)
    envs.reset(seed=0)
    for t in range(2):
        before, *_ = envs.step(action_sequence(env_id, 2)[t].numpy())
    mask = np.array([True, False, True])
    obs, info = envs.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(info["elapsed_steps"], [0, 2, 0])
    np.testing.assert_array_equal(obs["agents"][1], before["agents"][1])  # untouched economy
    assert not np.array_equal(obs["agents"][0], before["agents"][0])
    rng_state = envs.core.rng.get_state()
    same, info = envs.reset(options={"reset_mask": np.zeros(B, dtype=bool)})  # a no-op, random stream included
    np.testing.assert_array_equal(same["agents"], obs["agents"])
    assert torch.equal(envs.core.rng.get_state(), rng_state)


def test_disabled_mode_truncates_and_waits_for_a_reset(env_id):
    envs = EconomyVectorEnv(env_id, B, n_agents=N, max_episode_steps=2, autoreset_mode="DISABLED")
    envs.reset(seed=0)
    actions = action_sequence(env_id, 3).numpy()
    _, _, terminated, truncated, _ = envs.step(actions[0])
    assert not truncated.any() and not terminated.any()
    _, _, terminated, truncated, info = envs.step(actions[1])
    assert truncated.all() and not terminated.any()
    assert "final_obs" not in info
    obs, info = envs.reset(options={"reset_mask": truncated})
    np.testing.assert_array_equal(info["elapsed_steps"], 0)


def test_same_step_autoreset(env_id):
    actions = action_sequence(env_id, 2).numpy()
    same = EconomyVectorEnv(env_id, B, n_agents=N, max_episode_steps=2, autoreset_mode="SAME_STEP")
    manual = EconomyVectorEnv(env_id, B, n_agents=N, max_episode_steps=2, autoreset_mode="DISABLED")
    assert same.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    same.reset(seed=4)
    manual.reset(seed=4)
    same.step(actions[0])
    manual.step(actions[0])
    obs, reward, _, truncated, info = same.step(actions[1])
    last, last_reward, _, manual_truncated, _ = manual.step(actions[1])
    fresh, _ = manual.reset(options={"reset_mask": manual_truncated})
    assert truncated.all() and info["_final_obs"].all() and info["_final_info"].all()
    for i in range(B):
        np.testing.assert_array_equal(info["final_obs"][i]["agents"], last["agents"][i])
        assert info["final_info"][i]["elapsed_steps"] == 2
    np.testing.assert_array_equal(obs["agents"], fresh["agents"])  # the reset economy, returned at once
    np.testing.assert_array_equal(reward, last_reward)
    np.testing.assert_array_equal(info["elapsed_steps"], 0)


def test_next_step_is_the_default_and_does_nothing_without_a_horizon(env_id):
    envs = EconomyVectorEnv(env_id, B, n_agents=N)
    envs.reset(seed=0)
    for action in action_sequence(env_id, 3).numpy():
        _, _, terminated, truncated, info = envs.step(action)
    assert not terminated.any() and not truncated.any()
    np.testing.assert_array_equal(info["elapsed_steps"], 3)


def test_single_env_never_autoresets(env_id):
    env = EconomyGymEnv(env_id, n_agents=N, max_episode_steps=1)
    assert env.vector.autoreset_mode is AutoresetMode.DISABLED
    env.reset(seed=0)
    *_, truncated, _ = env.step(action_sequence(env_id, 1, b=1)[0, 0].numpy())
    *_, truncated_again, info = env.step(action_sequence(env_id, 1, b=1)[0, 0].numpy())
    assert truncated and truncated_again and info["elapsed_steps"] == 2


def test_next_step_autoreset(env_id):
    envs = EconomyVectorEnv(env_id, B, n_agents=N, max_episode_steps=2, autoreset_mode=AutoresetMode.NEXT_STEP)
    envs.reset(seed=0)
    actions = action_sequence(env_id, 4).numpy()
    envs.step(actions[0])
    _, _, _, truncated, _ = envs.step(actions[1])
    assert truncated.all()
    replay = envs.economy.generator()
    replay.set_state(envs.core.rng.get_state())
    obs, reward, terminated, truncated, info = envs.step(actions[2])  # the reset step
    np.testing.assert_array_equal(reward, 0.0)
    np.testing.assert_array_equal(info["agent_rewards"], 0.0)
    assert not terminated.any() and not truncated.any()
    np.testing.assert_array_equal(info["elapsed_steps"], 0)
    envs.economy.sample_shocks(envs.core.state, replay)  # the step drew its shocks, then the fresh economies
    assert_obs_equal(obs, envs.economy.observe(envs.economy.initial_state(B, replay)))
    _, reward, _, truncated, info = envs.step(actions[3])
    assert not truncated.any() and (reward != 0).all()
    np.testing.assert_array_equal(info["elapsed_steps"], 1)


def test_return_torch(env_id):
    envs = hetagents_env.make(env_id, api="gymnasium", num_envs=B, n_agents=N, return_torch=True, seed=0)
    obs, info = envs.reset()
    assert isinstance(obs["agents"], torch.Tensor) and isinstance(info["elapsed_steps"], torch.Tensor)
    obs, reward, terminated, truncated, info = envs.step(action_sequence(env_id, 1)[0])
    assert isinstance(reward, torch.Tensor) and reward.shape == (B,)
    assert terminated.dtype == torch.bool and info["agent_rewards"].shape == (B, N)
    obs["agents"] += 1.0  # the caller owns what it gets: the env's state is untouched
    torch.testing.assert_close(envs.economy.observe(envs.core.state)["agents"], obs["agents"] - 1.0)


# ---------------------------------------------------------------------- the one entry
def test_make_api_switch(env_id):
    assert isinstance(hetagents_env.make(env_id, n_agents=N), hetagents_env.EconomyEnv)
    assert isinstance(hetagents_env.make(env_id, api="torch", n_agents=N), hetagents_env.EconomyEnv)
    envs = hetagents_env.make(f"hetagents/{env_id}", api="gymnasium", num_envs=2, n_agents=N, seed=1)
    assert isinstance(envs, EconomyVectorEnv) and envs.num_envs == 2
    with pytest.raises(ValueError, match="'torch', 'gymnasium', 'pettingzoo', 'torchrl'"):
        hetagents_env.make(env_id, api="jax")
    with pytest.raises(ValueError, match="num_envs must be 1"):
        hetagents_env.make(env_id, api="pettingzoo", num_envs=2)
    with pytest.raises(ValueError, match="unknown environment id"):
        hetagents_env.make("Nope-v0", api="gymnasium")
    with pytest.raises(TypeError, match="unknown parameter"):
        hetagents_env.make(env_id, api="gymnasium", not_a_parameter=1.0)
