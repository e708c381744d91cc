"""render_mode: frames of the cross-section and the aggregate path, through every rendering facade."""

from __future__ import annotations

import pickle

import gymnasium
import numpy as np
import pytest

import hetagents_env
from hetagents_env.interfaces.gymnasium import EconomyGymEnv, EconomyVectorEnv
from hetagents_env.interfaces.pettingzoo import EconomyParallelEnv
from hetagents_env.interfaces.render import RENDER_MODES, check_render_mode

B, N = 2, 16
pytestmark = pytest.mark.filterwarnings("ignore:.*infinity")


def middle_action(env) -> np.ndarray:
    box = env.single_action_space
    return np.tile((box.low + box.high) / 2, (env.num_envs, 1))


@pytest.mark.parametrize("env_id", hetagents_env.list_envs())
def test_vector_frames_show_the_economy_and_its_path(env_id):
    envs = EconomyVectorEnv(env_id, B, n_agents=N, seed=0, max_episode_steps=3, render_mode="rgb_array")
    assert envs.metadata["render_modes"] == list(RENDER_MODES) and envs.metadata["render_fps"] > 0
    envs.reset()
    start = envs.render()
    assert len(start) == B
    frame = start[0]
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 0
    for _ in range(3):
        envs.step(middle_action(envs))
    later = envs.render()
    assert later[-1].shape == frame.shape and not np.array_equal(later[0], frame)  # the picture moved
    mean = envs.core.state[envs.economy.endogenous_key].double().mean(-1).numpy()
    assert later.path(1).shape == (4,) and later.path(1)[-1] == pytest.approx(mean[1])  # periods 0..3
    envs.step(middle_action(envs))  # NEXT_STEP autoreset: a new episode, a new path
    assert envs.render().path(0).shape == (1,)


def test_a_partial_reset_keeps_the_other_paths():
    envs = EconomyVectorEnv("KrusellSmith-v0", B, n_agents=N, seed=0, render_mode="rgb_array")
    envs.reset()
    envs.step(middle_action(envs))
    envs.step(middle_action(envs))
    envs.reset(options={"reset_mask": np.array([True, False])})
    frames = envs.render()
    assert frames.path(0).shape == (1,) and frames.path(1).shape == (3,)
    assert frames[1].shape[2] == 3


@pytest.mark.parametrize("env_id", hetagents_env.list_envs())
def test_single_and_pettingzoo_frames(env_id):
    single = gymnasium.make(f"hetagents/{env_id}", n_agents=N, render_mode="rgb_array")
    single.reset(seed=0)
    assert single.render().shape[2] == 3
    parallel = EconomyParallelEnv(env_id, n_agents=N, seed=0, render_mode="rgb_array")
    parallel.reset()
    parallel.step({agent: parallel.action_space(agent).sample() for agent in parallel.agents})
    assert parallel.render().dtype == np.uint8
    clone = pickle.loads(pickle.dumps(parallel))  # a rendering env copies too
    assert clone.render().shape == parallel.render().shape


def test_human_mode_draws_at_each_step_and_render_returns_none():
    env = EconomyParallelEnv("KrusellSmith-v0", n_agents=N, seed=0, render_mode="human")
    env.reset()
    env.step({agent: env.action_space(agent).sample() for agent in env.agents})
    assert env.render() is None and env._renderer._window is not None
    env.close()
    assert env._renderer._window is None


def test_no_render_mode_means_no_bookkeeping():
    envs = EconomyVectorEnv("KrusellSmith-v0", B, n_agents=N, seed=0)
    envs.reset()
    assert envs.render_mode is None and envs._renderer is None and envs.render() is None


def test_unsupported_render_modes_list_the_supported_ones():
    for build in (
        lambda mode: EconomyVectorEnv("KrusellSmith-v0", B, n_agents=N, render_mode=mode),
        lambda mode: EconomyGymEnv("KrusellSmith-v0", n_agents=N, render_mode=mode),
        lambda mode: EconomyParallelEnv("KrusellSmith-v0", n_agents=N, render_mode=mode),
        check_render_mode,
    ):
        with pytest.raises(ValueError, match="render_mode must be None or one of 'human', 'rgb_array', got 'ansi'"):
            build("ansi")
