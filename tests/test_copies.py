"""Copies of every facade of every registered economy (pickle, deepcopy, cloudpickle): they step correctly, draw
shocks independent of the original (reproducibly when seeded), and refuse a pickle from another package version."""

from __future__ import annotations

import copy
import pickle

import cloudpickle
import numpy as np
import pytest
import torch
from tensordict import TensorDict

import hetagents_env
from hetagents_env.factory import APIS
from hetagents_env.interfaces import _facade

# Two independent one-step draws of a discrete shock (Krusell-Smith's employment and aggregate state) coincide with
# probability ~2e-3 at this size, so independence is judged on whole trajectories of STEPS steps (all identical:
# ~1e-11 per pair).
N = 64
STEPS = 6
COPIERS = {
    "pickle": lambda env: pickle.loads(pickle.dumps(env)),
    "deepcopy": copy.deepcopy,
    "cloudpickle": lambda env: cloudpickle.loads(cloudpickle.dumps(env)),
}
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


def build(env_id: str, api: str, seed: int | None = 0):
    num_envs = 1 if api == "pettingzoo" else 2
    return hetagents_env.make(env_id, api=api, num_envs=num_envs, n_agents=N, seed=seed)


def core_of(env):
    return env if isinstance(env, hetagents_env.EconomyEnv) else env.core


def reset(env, api: str, seed: int | None = None) -> None:
    if api == "torchrl":
        if seed is not None:
            env.set_seed(seed)
        env.reset()
    else:
        env.reset(seed=seed)


def step(env, api: str) -> TensorDict:
    """One step through the facade's own API with the middle of the action box; returns the core's new state."""
    core = core_of(env)
    low, high = _facade.action_bounds(core.economy)
    value, shape = (low + high) / 2, (core.num_envs, core.n_agents)
    if api == "torch":
        env.step(torch.full(shape, value, dtype=core.dtype))
    elif api == "gymnasium":
        env.step(np.full(shape, value))
    elif api == "pettingzoo":
        env.step({agent: np.array([value]) for agent in env.agents})
    else:
        action = torch.full((*shape, 1), value, dtype=core.dtype)
        env.step(TensorDict({("agents", "action"): action}, batch_size=[core.num_envs]))
    return core.state


def same(a: TensorDict, b: TensorDict) -> bool:
    return all(torch.equal(a[key], b[key]) for key in a.keys())


def trajectory(env, api: str, steps: int = STEPS) -> list[TensorDict]:
    return [step(env, api) for _ in range(steps)]


@pytest.mark.parametrize("copier", list(COPIERS))
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("env_id", hetagents_env.list_envs())
def test_a_copy_steps_correctly_before_and_after_reset(env_id, api, copier):
    env = build(env_id, api)
    fresh = COPIERS[copier](env)  # copied before any reset
    reset(fresh, api)
    step(fresh, api)
    reset(env, api)
    state = step(env, api)
    clone = COPIERS[copier](env)
    core, clone_core = core_of(env), core_of(clone)
    assert same(clone_core.state, state) and torch.equal(clone_core.elapsed_steps, core.elapsed_steps)
    # the clone's step is the economy's pure transition with the shocks its own generator draws
    replay = clone_core.economy.generator()
    replay.set_state(clone_core.rng.get_state())
    shocks = clone_core.economy.sample_shocks(state, replay)
    low, high = _facade.action_bounds(core.economy)
    action = torch.full((core.num_envs, N), (low + high) / 2, dtype=core.dtype)
    expected = clone_core.economy.transition(state, action, shocks)
    assert same(step(clone, api), expected)
    reset(clone, api)
    step(clone, api)
    assert clone_core.elapsed_steps.tolist() == [1] * core.num_envs


@pytest.mark.parametrize("seed", [0, None])
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("env_id", hetagents_env.list_envs())
def test_copies_draw_independent_shocks(env_id, api, seed):
    env = build(env_id, api, seed=seed)
    reset(env, api)
    first, second = copy.deepcopy(env), pickle.loads(pickle.dumps(env))
    paths = [trajectory(e, api) for e in (env, first, second)]
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert not all(same(a, b) for a, b in zip(paths[i], paths[j])), (i, j)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("env_id", hetagents_env.list_envs())
def test_copies_are_reproducible_when_seeded(env_id, api):
    paths = []
    for _ in range(2):
        env = build(env_id, api, seed=5)
        reset(env, api)
        step(env, api)
        copies = [COPIERS[name](env) for name in COPIERS]
        paths.append([trajectory(c, api) for c in copies])
    for one, other in zip(*paths):
        assert all(same(a, b) for a, b in zip(one, other))
    # an explicit seed still rules: a reseeded copy replays the reseeded original
    env = build(env_id, api, seed=5)
    clone = copy.deepcopy(env)
    reset(env, api, seed=11)
    reset(clone, api, seed=11)
    assert all(same(a, b) for a, b in zip(trajectory(env, api), trajectory(clone, api)))


@pytest.mark.parametrize("api", APIS)
def test_a_pickle_from_another_version_is_refused(api, monkeypatch):
    env = build(hetagents_env.list_envs()[0], api)
    current = hetagents_env.__version__
    monkeypatch.setattr(hetagents_env._version, "__version__", "0.0.1")
    blob = pickle.dumps(env)
    monkeypatch.setattr(hetagents_env._version, "__version__", current)
    with pytest.raises(pickle.UnpicklingError, match=rf"hetagents_env 0\.0\.1 .* hetagents_env {current}"):
        pickle.loads(blob)
    assert isinstance(pickle.loads(pickle.dumps(env)), type(env))


def test_the_fused_step_rebuilds_its_shock_buffer(env_id):
    env = hetagents_env.make(env_id, num_envs=3, n_agents=4, seed=0)
    clone = pickle.loads(pickle.dumps(env._step))
    assert clone.shocks is not env._step.shocks and clone.num_envs == 3 and not clone.compiled
    env.reset()
    gen = env.economy.generator(1)
    next_state, _ = clone(env.state, torch.zeros(3, 4, dtype=env.dtype), gen)
    assert tuple(next_state.batch_size) == (3,)
    compiled = hetagents_env.FusedStep(env.economy, 3, compile=True)  # compiles lazily: nothing compiled here
    assert pickle.loads(pickle.dumps(compiled)).compiled


@pytest.mark.parametrize("copier", list(COPIERS))
@pytest.mark.parametrize("api", APIS)
def test_an_env_built_from_options_copies_with_them(api, copier):
    options = hetagents_env.EnvOptions(
        n_agents=4, device="cpu", dtype=torch.float64, seed=3, max_episode_steps=5, params={"nu": 1.5}
    )
    assert COPIERS[copier](options) == options
    env = hetagents_env.make("Investment-v0", api=api, options=options)
    clone = COPIERS[copier](env)
    if api != "torch":
        assert clone.options == env.options == options
    core, clone_core = core_of(env), core_of(clone)
    assert clone_core.economy.params == core.economy.params and clone_core.economy.params.nu == 1.5
    assert (clone_core.n_agents, clone_core.dtype, clone_core.max_episode_steps) == (4, torch.float64, 5)
    reset(clone, api)
    step(clone, api)
