"""The RL ecosystem's own tools on the economies: Gymnasium AsyncVectorEnv, Stable-Baselines3 (single env,
make_vec_env, the batched adapter), SuperSuit's multiprocess concat_vec_envs. Each test is a README recipe
(the README's "Use it from your RL library" section), small and CPU-only, and asserts something that could fail."""

from __future__ import annotations

import multiprocessing

import gymnasium
import numpy as np
import pytest

import hetagents_env

sb3 = pytest.importorskip("stable_baselines3")
supersuit = pytest.importorskip("supersuit")

ENV_ID = "KrusellSmith-v0"
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


def policy_output(model, obs) -> np.ndarray:
    return model.predict(obs, deterministic=True)[0].copy()


@pytest.fixture
def fork_start_method():
    """Multiprocess tools that use the global start method (SuperSuit's process pool, TorchRL's collectors) start
    "fork" workers here: once torchrl is imported (as by other tests) the global method is "spawn", and every
    spawned worker re-imports torch and the package (~10 s each on a busy 2-core machine)."""
    previous = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("fork", force=True)
    yield
    multiprocessing.set_start_method(previous, force=True)


def test_gymnasium_async_vector_env_two_workers():
    # the registered id, one economy per worker process, Gymnasium's NEXT_STEP autoreset
    envs = gymnasium.make_vec(
        f"hetagents/{ENV_ID}", num_envs=2, vectorization_mode="async", vector_kwargs={"context": "fork"},
        n_agents=32, max_episode_steps=3,
    )
    envs.reset(seed=0)
    actions = np.full((2, 32), 0.3, dtype=np.float32)
    for t in range(3):
        obs, reward, terminated, truncated, info = envs.step(actions)
    assert truncated.all() and not terminated.any()
    obs, reward, terminated, truncated, info = envs.step(actions)  # the reset step
    assert (info["elapsed_steps"] == 0).all() and (reward == 0).all()
    envs.close()

    # one built env copied into each worker: "forkserver" pickles it; each copy draws its own shocks
    multiprocessing.get_context("forkserver").set_forkserver_preload(["hetagents_env"])  # workers start faster
    env = gymnasium.make(f"hetagents/{ENV_ID}", n_agents=32, max_episode_steps=3)
    envs = gymnasium.vector.AsyncVectorEnv([lambda: env, lambda: env], context="forkserver")
    history = [envs.reset()[0]["agents"]]
    # two episodes: one step's 32 discrete employment draws coincide with p ≈ 3e-4, a history of six steps practically
    # never
    for t in range(6):
        history.append(envs.step(actions)[0]["agents"])
    assert not all(np.array_equal(obs[0], obs[1]) for obs in history)
    envs.close()


def test_sb3_check_env_and_ppo_on_the_single_env():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_checker import check_env

    env = gymnasium.make(f"hetagents/{ENV_ID}", n_agents=8, max_episode_steps=16)
    check_env(env)
    model = PPO("MultiInputPolicy", env, n_steps=256, batch_size=64, n_epochs=2, seed=0)
    obs, _ = env.reset(seed=1)
    before = policy_output(model, obs)
    model.learn(2_000)
    assert not np.allclose(policy_output(model, obs), before)
    assert {episode["l"] for episode in model.ep_info_buffer} == {16}  # every episode reset at the horizon


def test_sb3_make_vec_env_with_its_defaults():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    # make_vec_env passes render_mode="rgb_array" to the env: accepted, and render() gives a picture
    venv = make_vec_env(f"hetagents/{ENV_ID}", env_kwargs={"n_agents": 8, "max_episode_steps": 16})
    model = PPO("MultiInputPolicy", venv, n_steps=256, batch_size=64, n_epochs=2, seed=0)
    obs = venv.reset()
    before = policy_output(model, obs)
    model.learn(2_000)
    assert not np.allclose(policy_output(model, obs), before)
    assert {episode["l"] for episode in model.ep_info_buffer} == {16}
    frame = venv.render()
    assert frame.dtype == np.uint8 and frame.shape[2] == 3


def test_supersuit_concat_vec_envs_two_cpus_and_sb3_ppo(fork_start_method):
    import supersuit as ss
    from stable_baselines3 import PPO
    from stable_baselines3.common.utils import set_random_seed

    n, horizon = 32, 8
    env = hetagents_env.make(ENV_ID, api="pettingzoo", n_agents=n, max_episode_steps=horizon, seed=0)
    venv = ss.pettingzoo_env_to_vec_env_v1(env)  # one vector entry per household
    venv = ss.concat_vec_envs_v1(venv, 2, num_cpus=2, base_class="stable_baselines3")  # 2 copies, 2 processes
    try:
        assert venv.num_envs == 2 * n
        obs = venv.reset()
        history = [obs]
        actions = np.full((2 * n, 1), 0.3, dtype=np.float32)
        for t in range(horizon):
            obs, reward, dones, infos = venv.step(actions)
            history.append(obs)
            assert dones.all() == (t == horizon - 1)  # every household's episode ends at the horizon
        assert "terminal_observation" in infos[0]
        for t in range(2):
            obs, *_ = venv.step(actions)
            history.append(obs)
        # the two copies are different economies (judged on the whole history: the discrete employment of 32
        # households over the first few steps can coincide by chance)
        assert not all(np.array_equal(o[:n], o[n:]) for o in history)
        set_random_seed(0)  # PPO(seed=...) would call venv.seed, which SuperSuit's process pool lacks
        model = PPO("MlpPolicy", venv, n_steps=16, batch_size=256, n_epochs=2)
        before = policy_output(model, obs)
        model.learn(2_000)
        assert not np.allclose(policy_output(model, obs), before)
    finally:
        venv.close()


def test_sb3_adapter_steps_b_economies_in_one_call():
    from stable_baselines3 import PPO

    from hetagents_env.interfaces.sb3 import EconomySB3VecEnv

    venv = EconomySB3VecEnv(ENV_ID, num_envs=8, n_agents=16, max_episode_steps=10, seed=0)
    obs = venv.reset()
    assert obs["agents"].shape == (8, 16, 2)
    actions = np.full((8, 16), 0.3, dtype=np.float32)
    for t in range(10):
        obs, reward, dones, infos = venv.step(actions)
    assert dones.all() and infos[3]["TimeLimit.truncated"] and "terminal_observation" in infos[3]
    assert venv.core.elapsed_steps.tolist() == [0] * 8  # reset inside the step, SB3-style
    model = PPO("MultiInputPolicy", venv, n_steps=32, batch_size=64, n_epochs=2, seed=0)
    before = policy_output(model, obs)
    model.learn(2_000)
    assert not np.allclose(policy_output(model, obs), before)


def test_sb3_adapter_vecenv_methods_and_render():
    from hetagents_env.interfaces.sb3 import EconomySB3VecEnv

    venv = EconomySB3VecEnv(ENV_ID, num_envs=2, n_agents=4, render_mode="rgb_array")
    venv.seed(3)
    first = venv.reset()
    venv.seed(3)
    np.testing.assert_array_equal(venv.reset()["agents"], first["agents"])  # seed() applies to the next reset
    assert venv.get_attr("n_agents") == [4, 4] and venv.get_attr("n_agents", indices=1) == [4]
    assert venv.has_attr("economy") and not venv.has_attr("no_such_attribute")
    assert venv.env_is_wrapped(gymnasium.Wrapper) == [False, False]
    venv.set_attr("return_torch", False)
    with pytest.raises(ValueError, match="all of them"):
        venv.set_attr("return_torch", False, indices=[0])
    frame = venv.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3
    with pytest.raises(ValueError, match="'human', 'rgb_array'"):
        EconomySB3VecEnv(ENV_ID, num_envs=2, n_agents=4, render_mode="video")
    venv.close()


def test_torchrl_mappo_with_a_two_worker_collector(fork_start_method):
    import functools
    import warnings

    import torch
    from tensordict.nn import NormalParamExtractor, TensorDictModule
    from torchrl.modules import MultiAgentMLP, ProbabilisticActor, TanhNormal
    from torchrl.objectives import ClipPPOLoss, ValueEstimators

    with warnings.catch_warnings():  # torchrl 0.14 warns about its own deprecated weight updaters at import
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchrl.collectors import MultiSyncCollector

    make_env = functools.partial(
        hetagents_env.make, ENV_ID, api="torchrl", num_envs=4, n_agents=8, max_episode_steps=10
    )
    env = make_env()
    n, d = env.economy.n_agents, env.observation_spec["agents", "observation"].shape[-1]
    box = env.full_action_spec["agents", "action"].space  # the same bounds for every agent
    low, high = box.low.min().item(), box.high.max().item()
    # MAPPO: a decentralised actor and a centralised critic, parameters shared across agents
    actor_net = torch.nn.Sequential(
        MultiAgentMLP(d, 2, n_agents=n, centralised=False, share_params=True, depth=1, num_cells=16),
        NormalParamExtractor(),
    )
    actor = ProbabilisticActor(
        TensorDictModule(
            actor_net, in_keys=[("agents", "observation")], out_keys=[("agents", "loc"), ("agents", "scale")]
        ),
        in_keys=[("agents", "loc"), ("agents", "scale")], out_keys=[("agents", "action")],
        spec=env.full_action_spec["agents", "action"], distribution_class=TanhNormal,
        distribution_kwargs={"low": low, "high": high}, return_log_prob=True,
    )
    critic = TensorDictModule(
        MultiAgentMLP(d, 1, n_agents=n, centralised=True, share_params=True, depth=1, num_cells=16),
        in_keys=[("agents", "observation")], out_keys=[("agents", "state_value")],
    )
    loss = ClipPPOLoss(actor, critic, entropy_coeff=1e-3, normalize_advantage=False)
    loss.set_keys(
        reward=("agents", "reward"), action=("agents", "action"), value=("agents", "state_value"),
        done=("agents", "done"), terminated=("agents", "terminated"), sample_log_prob=("agents", "action_log_prob"),
    )
    loss.make_value_estimator(ValueEstimators.GAE, gamma=0.95, lmbda=0.9)
    optim = torch.optim.Adam(loss.parameters(), 3e-3)
    obs = env.reset()["agents", "observation"]
    with torch.no_grad():
        before = actor_net(obs)[0].clone()

    collector = MultiSyncCollector([make_env, make_env], actor, frames_per_batch=80, total_frames=240)
    try:
        for batch in collector:  # [workers, economies, time]
            assert batch["next", "truncated"][..., -1, :].all()  # every economy's episode ends at the horizon
            assert not torch.equal(batch["agents", "observation"][0], batch["agents", "observation"][1])
            for key in ("done", "terminated"):  # the shared flags, expanded to every agent for the loss
                flag = batch["next", key].unsqueeze(-2).expand(batch["next", "agents", "reward"].shape)
                batch.set(("next", "agents", key), flag)
            with torch.no_grad():
                loss.value_estimator(batch, params=loss.critic_network_params,
                                     target_params=loss.target_critic_network_params)
            out = loss(batch.reshape(-1))
            (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()
            optim.step()
            optim.zero_grad()
            collector.update_policy_weights_()
    finally:
        collector.shutdown()
    with torch.no_grad():
        assert not torch.allclose(actor_net(obs)[0], before)
