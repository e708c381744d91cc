"""The stateful batched env returned by ``hetagents_env.make``: ids, seeding, resets, truncation, shapes."""

from __future__ import annotations

import pytest
import torch

import hetagents_env
from conftest import CUDA_AVAILABLE, ENV_IDS
from hetagents_env import EconomyEnv, InvestmentEconomy, list_envs, make



def action_for(env: EconomyEnv, step: int = 0) -> torch.Tensor:
    """A deterministic, state-dependent action of the right shape, dtype and device."""
    state = env.state
    if isinstance(env.economy, InvestmentEconomy):
        return env.economy.lq_policy(state) + 0.001 * step
    k = state["k"]
    return torch.sigmoid(k / k.mean(-1, keepdim=True) - 1 + 0.1 * step)


def trajectory(env: EconomyEnv, steps: int, seed=None) -> list[torch.Tensor]:
    """The flattened observations and rewards of ``steps`` steps after ``reset(seed=seed)``."""
    obs, _ = env.reset(seed=seed)
    out = [obs["agents"].clone()]
    for t in range(steps):
        obs, reward, *_ = env.step(action_for(env, t))
        out += [obs["agents"].clone(), reward.clone()]
    return out


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(x.equal(y) for x, y in zip(a, b))


# ---------------------------------------------------------------------------------------------- ids
@pytest.mark.parametrize("prefix", ["", "hetagents/"])
def test_make_both_ids(env_id, prefix):
    env = make(prefix + env_id, num_envs=3, seed=0)
    assert isinstance(env, EconomyEnv)
    assert type(env.economy) is hetagents_env.economy_class(env_id)
    assert env.num_envs == 3
    assert env.n_agents == hetagents_env.economy_class(env_id).default_n_agents  # 128 firms / 50 households by default
    assert env.dtype == torch.float32 and env.device == torch.device("cpu")
    env2 = make(prefix + env_id, num_envs=2, n_agents=7, dtype=torch.float64, seed=0, beta=0.9)
    assert env2.n_agents == 7 and env2.economy.params.beta == 0.9 and env2.dtype == torch.float64


def test_default_parameters_are_the_published_ones():
    assert make("Investment-v0").economy.params.gamma == 90.0
    assert make("KrusellSmith-v0").economy.params.beta == 0.99


def test_list_envs():
    ids = list_envs()
    assert isinstance(ids, list) and set(ENV_IDS) <= set(ids)
    assert ids == sorted(ids)
    for env_id in ids:  # every listed id can be made
        assert make(env_id).economy.env_id == env_id
    assert hetagents_env.list_envs is list_envs


# ---------------------------------------------------------------------------------------------- seeding
def test_same_seed_gives_identical_trajectories(env_id):
    a = trajectory(make(env_id, num_envs=4, n_agents=6, seed=123), 12)
    b = trajectory(make(env_id, num_envs=4, n_agents=6, seed=123), 12)
    assert same(a, b)
    # a seed given to reset() re-seeds: the same trajectory from an env made with another seed
    c = trajectory(make(env_id, num_envs=4, n_agents=6, seed=999), 12, seed=123)
    assert same(a, c)
    # and re-seeding the same env mid-run replays it
    env = make(env_id, num_envs=4, n_agents=6, seed=5)
    trajectory(env, 3)
    assert same(trajectory(env, 12, seed=123), a)


def test_different_seeds_give_different_trajectories(env_id):
    a = trajectory(make(env_id, num_envs=4, n_agents=6, seed=1), 12)
    b = trajectory(make(env_id, num_envs=4, n_agents=6, seed=2), 12)
    assert not same(a, b)
    # the exogenous randomness differs too (not only the initial draw)
    assert not all(x.equal(y) for x, y in zip(a[1:], b[1:]))
    # unseeded envs are seeded non-deterministically
    unseeded = [trajectory(make(env_id, num_envs=4, n_agents=6), 12) for _ in range(2)]
    assert not same(*unseeded)


def test_env_does_not_touch_the_global_rng(env_id):
    torch.manual_seed(2024)
    before = torch.get_rng_state()
    cuda_before = torch.cuda.get_rng_state_all() if CUDA_AVAILABLE else None
    env = make(env_id, num_envs=3, n_agents=5, seed=0)
    trajectory(env, 5)
    env.reset(options={"reset_mask": torch.tensor([True, False, True])})
    env.step(action_for(env))
    unseeded = make(env_id, num_envs=2, n_agents=5)
    trajectory(unseeded, 3)
    assert torch.get_rng_state().equal(before)
    if CUDA_AVAILABLE:
        assert all(a.equal(b) for a, b in zip(torch.cuda.get_rng_state_all(), cuda_before))
    # and the global RNG does not influence the env: a different global seed, the same trajectory
    torch.manual_seed(7)
    first = trajectory(make(env_id, num_envs=3, n_agents=5, seed=11), 4)
    torch.manual_seed(8)
    assert same(first, trajectory(make(env_id, num_envs=3, n_agents=5, seed=11), 4))


def test_step_uses_the_pure_functions_with_the_env_generator(env_id):
    env = make(env_id, num_envs=3, n_agents=4, dtype=torch.float64, seed=3)
    env.reset()
    for t in range(3):
        state, action = env.state, action_for(env, t)
        replay = torch.Generator().set_state(env.rng.get_state())
        shocks = env.economy.sample_shocks(state, replay)
        obs, reward, *_ = env.step(action)
        torch.testing.assert_close(reward, env.economy.reward(state, action), rtol=1e-14, atol=1e-14)
        expected = env.economy.transition(state, action, shocks)
        for key in expected.keys():
            torch.testing.assert_close(env.state[key], expected[key], rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(obs["agents"], env.economy.observe(expected)["agents"])


# ---------------------------------------------------------------------------------------------- resets
def test_reset_mask_resets_only_the_masked_economies(env_id):
    env = make(env_id, num_envs=4, n_agents=6, dtype=torch.float64, seed=0)
    env.reset()
    for t in range(5):
        env.step(action_for(env, t))
    before = env.state.clone()
    mask = torch.tensor([True, False, True, False])
    fresh = env.economy.initial_state(4, torch.Generator().set_state(env.rng.get_state()))
    obs, info = env.reset(options={"reset_mask": mask})
    after = env.state
    for key in after.keys():
        assert after[key][mask].equal(fresh[key][mask]), key
        assert after[key][~mask].equal(before[key][~mask]), key
    assert info["elapsed_steps"].tolist() == [0, 5, 0, 5]
    assert obs["agents"].equal(env.economy.observe(after)["agents"])
    env.step(action_for(env))
    assert env.elapsed_steps.tolist() == [1, 6, 1, 6]
    # a plain list works too; an all-False mask changes nothing
    state = env.state.clone()
    env.reset(options={"reset_mask": [False, False, False, False]})
    assert all(env.state[k].equal(state[k]) for k in state.keys())
    assert env.elapsed_steps.tolist() == [1, 6, 1, 6]
    # reset without a mask resets all
    env.reset()
    assert env.elapsed_steps.tolist() == [0, 0, 0, 0]


def test_reset_mask_of_the_wrong_shape_is_rejected(env_id):
    env = make(env_id, num_envs=3, n_agents=2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=r"reset_mask.*\(3,\)"):
        env.reset(options={"reset_mask": torch.tensor([True, False])})


def test_krusell_smith_reset_restores_initial_capital():
    env = make("KrusellSmith-v0", num_envs=2, n_agents=5, seed=0, k_init=10.0)
    env.reset()
    env.step(torch.full((2, 5), 0.1))
    assert (env.state["k"] != 10.0).all()
    env.reset(options={"reset_mask": torch.tensor([False, True])})
    assert (env.state["k"][1] == 10.0).all() and (env.state["k"][0] != 10.0).all()


def test_max_episode_steps_truncates(env_id):
    env = make(env_id, num_envs=3, n_agents=4, seed=0, max_episode_steps=3)
    env.reset()
    flags = []
    for t in range(4):
        _, _, terminated, truncated, info = env.step(action_for(env, t))
        assert not terminated.any()
        flags.append(truncated.tolist())
        assert info["elapsed_steps"].tolist() == [t + 1] * 3
    assert flags == [[False] * 3, [False] * 3, [True] * 3, [True] * 3]  # no automatic reset
    env.reset(options={"reset_mask": torch.tensor([False, True, False])})
    _, _, _, truncated, _ = env.step(action_for(env))
    assert truncated.tolist() == [True, False, True]
    # without a horizon nothing is ever truncated
    env = make(env_id, num_envs=2, n_agents=4, seed=0)
    env.reset()
    for t in range(5):
        assert not env.step(action_for(env, t))[3].any()


def test_step_before_reset_raises(env_id):
    env = make(env_id, num_envs=2, n_agents=3, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(2, 3))
    with pytest.raises(RuntimeError, match="reset"):
        env.state  # noqa: B018


# ---------------------------------------------------------------------------------------------- shapes
def test_shapes_dtypes_and_devices(env_id, device, dtype):
    b, n = 5, 7
    env = make(env_id, num_envs=b, n_agents=n, device=device, dtype=dtype, seed=0)
    eco = env.economy
    obs, info = env.reset()
    assert obs.batch_size == torch.Size([b])
    assert obs["agents"].shape == (b, n, len(eco.agent_features))
    assert obs["aggregate"].shape == (b, len(eco.aggregate_features))
    assert info["elapsed_steps"].shape == (b,)
    for t in range(3):
        obs, reward, terminated, truncated, info = env.step(action_for(env, t))
        assert obs["agents"].shape == (b, n, len(eco.agent_features))
        assert obs["aggregate"].shape == (b, len(eco.aggregate_features))
        assert reward.shape == (b, n)
        assert terminated.shape == truncated.shape == (b,)
        assert terminated.dtype == truncated.dtype == torch.bool
        for t_ in (obs["agents"], obs["aggregate"], reward):
            assert t_.dtype == dtype and t_.device.type == device.type
            assert torch.isfinite(t_).all()
        assert terminated.device.type == truncated.device.type == device.type
    assert env.state.batch_size == torch.Size([b])


def test_demo_runs_every_economy_under_its_own_policy(env_id, capsys):
    from train.demo import demo

    summary = demo(env_id, num_envs=2, steps=5, device="cpu", seed=0)
    assert all(map(lambda v: v == v and abs(v) < float("inf"), summary.values()))
    assert env_id in capsys.readouterr().out
