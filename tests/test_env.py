"""The stateful batched env returned by ``hetagents_env.make``: ids, seeding, resets, truncation, shapes."""

from __future__ import annotations

import dataclasses
import inspect
import math

import gymnasium
import numpy as np
import pytest
import torch

import hetagents_env
from conftest import CUDA_AVAILABLE, ENV_IDS, action_sequence
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


# ---------------------------------------------------------------------------------------------- options
# The keywords every interface shares are the fields of one EnvOptions: keywords and the object build the same env,
# and every interface built from the same options runs the same economies.
APIS = ("torch", "gymnasium", "pettingzoo", "torchrl")
STEPS = 3  # the options' horizon


def example_options(**changes) -> hetagents_env.EnvOptions:
    base = hetagents_env.EnvOptions(
        n_agents=5, dtype=torch.float64, seed=11, max_episode_steps=3, check_actions=True, params={"beta": 0.95}
    )
    return dataclasses.replace(base, **changes)


def facade_step(env, api: str, action: torch.Tensor) -> None:
    """One step of ``action`` ``(B, N)`` through the interface's own API."""
    if api == "torch":
        env.step(action)
    elif api in ("gymnasium", "gymnasium-single"):
        env.step(action.numpy() if api == "gymnasium" else action[0].numpy())
    elif api == "pettingzoo":
        env.step({agent: action[0, i : i + 1].numpy() for i, agent in enumerate(env.possible_agents)})
    else:
        from tensordict import TensorDict

        td = TensorDict({"agents": TensorDict({"action": action.unsqueeze(-1)}, batch_size=action.shape)},
                        batch_size=action.shape[:1])
        env.step(td)


def run_through(env, api: str, env_id: str, steps: int = STEPS) -> list[torch.Tensor]:
    """Reset (no seed given: the options' seed applies) and step up to the horizon through the interface's API;
    the core's state and step counters of every period."""
    core = env if isinstance(env, EconomyEnv) else env.core
    env.reset()
    actions = action_sequence(env_id, steps, core.num_envs, core.n_agents).to(core.dtype)
    out = []
    for t in range(steps):
        facade_step(env, api, actions[t])
        out += [core.state[key].clone() for key in sorted(core.state.keys())] + [core.elapsed_steps.clone()]
    return out


def build(api: str, env_id: str, num_envs: int = 1, **kwargs):
    return make(env_id, api=api, num_envs=num_envs, **kwargs)


@pytest.mark.parametrize("api", APIS)
def test_keywords_and_options_build_the_same_env(env_id, api):
    options = example_options()
    keywords = {
        "n_agents": 5, "dtype": torch.float64, "seed": 11, "max_episode_steps": 3, "check_actions": True, "beta": 0.95,
    }
    num_envs = 1 if api == "pettingzoo" else 2
    by_keywords = build(api, env_id, num_envs, **keywords)
    by_options = build(api, env_id, num_envs, options=options)
    # keywords next to the options replace its fields (and add to its parameters)
    mixed = build(api, env_id, num_envs, options=example_options(n_agents=9, seed=0, params={}), n_agents=5, seed=11,
                  beta=0.95)
    envs = (by_keywords, by_options, mixed)
    if api != "torch":
        assert all(env.options == options for env in envs)
    cores = [env if api == "torch" else env.core for env in envs]
    for core in cores:
        assert (core.n_agents, core.dtype, core.max_episode_steps) == (5, torch.float64, 3)
        assert core.economy.params == cores[0].economy.params and core.economy.params.beta == 0.95
    runs = [run_through(env, api, env_id) for env in envs]
    assert same(runs[0], runs[1]) and same(runs[0], runs[2])


def test_every_interface_built_from_the_same_options_agrees(env_id):
    from hetagents_env.interfaces.gymnasium import EconomyGymEnv, EconomyVectorEnv
    from hetagents_env.interfaces.pettingzoo import EconomyParallelEnv
    from hetagents_env.interfaces.torchrl import EconomyTorchRLEnv

    options = example_options(action_bound=0.25)
    envs = {
        "torch": make(env_id, options=dataclasses.replace(options, action_bound=None)),  # no action box there
        "gymnasium": EconomyVectorEnv(env_id, 1, options=options),
        "gymnasium-single": EconomyGymEnv(env_id, options=options),
        "registered": gymnasium.make_vec(f"hetagents/{env_id}", num_envs=1, options=options),
        "pettingzoo": EconomyParallelEnv(env_id, options=options),
        "torchrl": EconomyTorchRLEnv(env_id, 1, options=options),
    }
    reference = run_through(envs.pop("torch"), "torch", env_id)
    for name, env in envs.items():  # each run once: the first reset draws from the options' seed
        assert same(run_through(env, "gymnasium" if name == "registered" else name, env_id), reference), name
        assert env.unwrapped.options == options if name == "registered" else env.options == options, name
    # the same action box everywhere
    cls = hetagents_env.economy_class(env_id)
    low = cls.action_low if math.isfinite(cls.action_low) else -0.25
    high = cls.action_high if math.isfinite(cls.action_high) else 0.25
    boxes = [
        (envs["gymnasium"].single_action_space.low, envs["gymnasium"].single_action_space.high),
        (envs["gymnasium-single"].action_space.low, envs["gymnasium-single"].action_space.high),
        (envs["pettingzoo"].action_space(envs["pettingzoo"].possible_agents[0]).low,
         envs["pettingzoo"].action_space(envs["pettingzoo"].possible_agents[0]).high),
        (envs["torchrl"].action_spec["agents", "action"].space.low.numpy(),
         envs["torchrl"].action_spec["agents", "action"].space.high.numpy()),
    ]
    for lo, hi in boxes:
        assert np.all(lo == low) and np.all(hi == high)


def test_the_option_keywords_are_written_once():
    """``make`` and every facade take exactly the fields of EnvOptions as keywords, with its defaults."""
    from hetagents_env.interfaces.gymnasium import EconomyGymEnv, EconomyVectorEnv
    from hetagents_env.interfaces.pettingzoo import EconomyParallelEnv
    from hetagents_env.interfaces.torchrl import EconomyTorchRLEnv

    defaults = hetagents_env.EnvOptions()
    for target in (make, EconomyVectorEnv, EconomyGymEnv, EconomyParallelEnv, EconomyTorchRLEnv):
        parameters = inspect.signature(target.__init__ if isinstance(target, type) else target).parameters
        assert parameters["options"].default is None, target
        for name in hetagents_env.EnvOptions.keywords():
            assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, (target, name)
            assert parameters[name].default == getattr(defaults, name), (target, name)
        assert list(parameters)[-1] == "params"


def test_from_kwargs_replaces_fields_and_merges_parameters():
    EnvOptions = hetagents_env.EnvOptions
    base = EnvOptions(n_agents=3, seed=1, params={"beta": 0.9, "nu": 1.5})
    assert EnvOptions.from_kwargs() == EnvOptions()
    assert EnvOptions.from_kwargs(base) is base
    merged = EnvOptions.from_kwargs(base, seed=2, beta=0.95, delta=0.1)
    assert merged == EnvOptions(n_agents=3, seed=2, params={"beta": 0.95, "nu": 1.5, "delta": 0.1})
    assert base.params == {"beta": 0.9, "nu": 1.5}  # untouched
    given = {"beta": 0.9}
    options = EnvOptions(params=given)
    given["beta"] = 0.5
    assert options.params == {"beta": 0.9}  # a copy of the mapping given
    # normalised values compare equal
    assert EnvOptions(device="cpu", seed=np.int64(4), n_agents=np.int32(2)) == EnvOptions(
        device=torch.device("cpu"), seed=4, n_agents=2
    )
    assert hash(EnvOptions(n_agents=2)) == hash(EnvOptions(n_agents=2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.seed = 3
