"""The TorchRL facade: check_env_specs, partial resets, a Collector, GymWrapper over the Gymnasium facade, and
agreement with the core."""

from __future__ import annotations

import warnings

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs import GymWrapper
from torchrl.envs.utils import check_env_specs

import hetagents_env
from conftest import action_sequence as shared_action_sequence
from hetagents_env.interfaces.torchrl import EconomyTorchRLEnv

with warnings.catch_warnings():  # torchrl 0.14 warns about its own deprecated weight updaters at import
    warnings.simplefilter("ignore", DeprecationWarning)
    from torchrl.collectors import Collector

B, N, HORIZON = 3, 4, 2


def make(env_id: str, **kwargs) -> EconomyTorchRLEnv:
    kwargs = {"num_envs": B, "n_agents": N, "max_episode_steps": HORIZON, "seed": 0, **kwargs}
    return hetagents_env.make(env_id, api="torchrl", **kwargs)


def action_sequence(env_id: str, steps: int, seed: int = 7) -> torch.Tensor:
    """``steps`` reproducible actions ``(steps, B, N)`` inside the action box."""
    return shared_action_sequence(env_id, steps, B, N, seed)



def with_action(td: TensorDict, action: torch.Tensor) -> TensorDict:
    return td.set(("agents", "action"), action.unsqueeze(-1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_check_env_specs(env_id, dtype):
    env = make(env_id, dtype=dtype)
    check_env_specs(env, seed=0, break_when_any_done="both")


def test_keys_and_shapes(env_id):
    env = make(env_id)
    d_a, d_z = len(env.economy.agent_features), len(env.economy.aggregate_features)
    assert env.batch_size == torch.Size([B])
    assert env.action_keys == [("agents", "action")] and env.reward_keys == [("agents", "reward")]
    assert set(env.done_keys) == {"done", "terminated", "truncated"}
    td = env.rollout(3, break_when_any_done=False)
    assert td["agents", "observation"].shape == (B, 3, N, d_a + d_z)
    assert td["agents", "action"].shape == (B, 3, N, 1)
    assert td["next", "agents", "reward"].shape == (B, 3, N, 1)
    assert td["population"].shape == (B, 3, N, d_a) and td["aggregate"].shape == (B, 3, d_z)
    assert td["next", "done"].shape == (B, 3, 1)
    low, high = env.full_action_spec["agents", "action"].space.low, env.full_action_spec["agents", "action"].space.high
    assert (td["agents", "action"] >= low).all() and (td["agents", "action"] <= high).all()
    # truncated together at the horizon, then reset by the rollout
    assert td["next", "truncated"][:, :, 0].tolist() == [[False, True, False]] * B


def test_partial_reset():
    env = make("KrusellSmith-v0", max_episode_steps=None)
    td = env.reset()
    for action in action_sequence("KrusellSmith-v0", 2):
        td = env.step(with_action(td, action))["next"]
    reset_mask = torch.tensor([[True], [False], [True]])
    before = td["population"].clone()
    td = env.reset(td.set("_reset", reset_mask))
    assert env.core.elapsed_steps.tolist() == [0, 2, 0]
    torch.testing.assert_close(td["population"][1], before[1])  # the economy not reset is untouched
    assert (td["population"][0, :, 0] == env.economy.k_init).all()  # fresh economies start at k_init
    assert not td["done"].any()


def test_set_seed_and_same_trajectory_as_the_core(env_id):
    steps = 4
    actions = action_sequence(env_id, steps)
    core = hetagents_env.make(env_id, num_envs=B, n_agents=N)
    env = make(env_id, max_episode_steps=None)
    core_obs, _ = core.reset(seed=17)
    env.set_seed(17)
    td = env.reset()
    torch.testing.assert_close(td["population"], core_obs["agents"], rtol=0, atol=0)
    for t in range(steps):
        core_obs, core_reward, _, _, _ = core.step(actions[t])
        td = env.step(with_action(td, actions[t]))["next"]
        torch.testing.assert_close(td["population"], core_obs["agents"], rtol=0, atol=0)
        torch.testing.assert_close(td["aggregate"], core_obs["aggregate"], rtol=0, atol=0)
        torch.testing.assert_close(td["agents", "reward"].squeeze(-1), core_reward, rtol=0, atol=0)
    # rollouts after the same seed agree
    env.set_seed(5)
    first = env.rollout(3, policy=lambda td: with_action(td, actions[0]))
    env.set_seed(5)
    second = env.rollout(3, policy=lambda td: with_action(td, actions[0]))
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_step_matches_the_pure_transition(env_id):
    env = make(env_id, max_episode_steps=None)
    td = env.reset()
    economy, state = env.economy, env.core.state
    replay = torch.Generator()
    replay.set_state(env.core.rng.get_state())
    action = action_sequence(env_id, 1)[0]
    expected_state = economy.transition(state, action, economy.sample_shocks(state, replay))
    expected = economy.observe(expected_state)
    out = env.step(with_action(td, action))["next"]
    torch.testing.assert_close(out["population"], expected["agents"])
    torch.testing.assert_close(out["aggregate"], expected["aggregate"])
    torch.testing.assert_close(out["agents", "reward"].squeeze(-1), economy.reward(state, action))
    own = out["agents", "observation"][..., : len(economy.agent_features)]
    torch.testing.assert_close(own, expected["agents"])


def test_bad_actions_raise_the_core_errors(env_id):
    env = make(env_id)
    td = env.reset()
    action = action_sequence(env_id, 1)[0]
    with pytest.raises(ValueError, match="finite"):
        env.step(with_action(td.clone(), action.masked_fill(action > -2, float("nan"))))
    with pytest.raises(ValueError, match="dtype"):
        env.step(with_action(td.clone(), action.double()))
    with pytest.raises(ValueError, match="shape"):
        env.step(td.clone().set(("agents", "action"), action.unsqueeze(-1).expand(B, N, 2).clone()))


def test_collector_with_a_random_policy(env_id):
    env = make(env_id)
    collector = Collector(env, None, frames_per_batch=2 * B, total_frames=4 * B)
    try:
        batches = list(collector)
    finally:
        collector.shutdown()
    assert len(batches) == 2
    assert batches[0].batch_size == (B, 2)
    assert batches[0]["next", "agents", "reward"].shape == (B, 2, N, 1)


def test_gym_wrapper_around_the_gymnasium_facade(env_id):
    envs = hetagents_env.make(
        env_id, api="gymnasium", num_envs=B, n_agents=N, max_episode_steps=HORIZON, seed=0, autoreset_mode="DISABLED"
    )  # TorchRL's GymWrapper refuses Gymnasium's default NEXT_STEP
    wrapped = GymWrapper(envs)
    assert wrapped.batch_size == torch.Size([B])
    check_env_specs(wrapped, seed=0)
    td = wrapped.rollout(3, break_when_any_done=False)
    assert td["next", "truncated"][:, :, 0].tolist() == [[False, True, False]] * B
    # a partial "_reset" reaches the facade as options={"reset_mask": ...} (autoreset DISABLED)
    td = wrapped.reset()
    td = wrapped.step(td.set("action", wrapped.full_action_spec["action"].rand()))["next"]
    wrapped.reset(td.set("_reset", torch.tensor([[True], [False], [False]])))
    assert envs.core.elapsed_steps.tolist() == [0, 1, 1]


@pytest.mark.filterwarnings("ignore:PettingZoo in TorchRL is tested")
def test_pettingzoo_wrapper_around_the_pettingzoo_facade(env_id):
    from torchrl.envs.libs.pettingzoo import PettingZooWrapper

    env = hetagents_env.make(env_id, api="pettingzoo", n_agents=N, max_episode_steps=HORIZON, seed=0)
    wrapped = PettingZooWrapper(env, use_mask=False)
    assert list(wrapped.group_map) == [env.economy.agent_name]
    check_env_specs(wrapped, seed=0)
