"""The SAC baseline (agents/solvers/rl/sac.py): it trains on every economy with finite losses, its policy is
permutation-equivariant and within the action bounds, the temperature α moves toward the target entropy, a short run
moves the policy toward the LQ policy while the critics' TD loss falls, price taking holds through torchrl's loss,
and bad settings are refused with errors naming them."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

import agents
import hetagents_env
from agents.config import ConfigError
from agents.solvers.rl import RLPolicy, SACSolver
from agents.solvers.rl.noise import AgentTanhNormal

from conftest import ENV_IDS  # noqa: E402

TINY = {"num_envs": 4, "horizon": 8, "warmup": 4, "batch_size": 4, "buffer_size": 256, "log_every": 5}


def economy(env_id: str, n: int = 8, dtype=torch.float32):
    return hetagents_env.make_economy(env_id, n_agents=n, dtype=dtype)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sac_trains_with_finite_losses(env_id):
    eco = economy(env_id)
    solver = agents.make_solver("sac", eco, TINY)
    logged = []
    metrics = solver.train(steps=12, callback=logged.append)
    assert metrics["step"] == 12 and metrics["agent_steps"] == 12 * 4 * eco.n_agents
    assert metrics["updates"] == 12 - 3  # learning starts once 4 periods (the warm-up) are in the buffer
    for key in ("loss_qvalue", "loss_actor", "loss_alpha", "alpha", "entropy"):
        assert all(math.isfinite(m[key]) for m in logged), key
    state = eco.initial_state(5, eco.generator(0))
    with torch.no_grad():
        u, v = solver.policy(state), solver.value(state)
    assert u.shape == v.shape == (5, eco.n_agents)
    assert bool(torch.isfinite(u).all()) and bool(torch.isfinite(v).all())
    assert bool((u >= eco.action_low).all()) and bool((u <= eco.action_high).all())
    # the critic behind solver.value holds the loss's trained parameters of the first twin
    module = TensorDict.from_module(solver.critic_modules[0])
    for key, value in solver.loss.qvalue_network_params[0].items(True, True):
        torch.testing.assert_close(module[key], value.data)
    # checkpoint round trip, then both copies continue identically
    other = agents.make_solver("sac", eco, TINY)
    other.load_state_dict(solver.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(other.policy(state), u, rtol=0, atol=0)
        torch.testing.assert_close(other.value(state), v, rtol=0, atol=0)
    assert float(other.loss.log_alpha.detach()) == float(solver.loss.log_alpha.detach())
    assert other.updates == solver.updates and other.agent_steps == solver.agent_steps


def test_sac_logs_its_progress_metrics_and_drives_all_three_learning_rates():
    eco = economy("Investment-v0", n=4)
    solver = agents.make_solver("sac", eco, TINY)
    solver.train(steps=10)
    last = solver.history[-1]
    assert set(solver.progress_metrics) <= set(last)
    cfg = solver.config
    rates = [opt.param_groups[0]["lr"] for opt in (solver.actor_optimizer, solver.critic_optimizer,
                                                    solver.alpha_optimizer)]
    assert rates == [lr * last["lr_factor"] for lr in (cfg.lr_actor, cfg.lr_critic, cfg.lr_alpha)]
    assert last["lr_factor"] < 1.0


def test_initial_policy_and_target_entropy():
    """The mean action starts as the deterministic actors' (same network and seed: on Krusell–Smith a share near the
    steady-state one), the sd at the exploration sd (carried to the pre-image at the neutral share), and the default
    target entropy is that of a Gaussian with the exploration sd."""
    eco = economy("KrusellSmith-v0")
    solver = SACSolver(eco, TINY)
    deterministic = RLPolicy(eco, solver.scaling, solver.actor_config, seed=0)
    state = eco.initial_state(3, eco.generator(0))
    with torch.no_grad():
        torch.testing.assert_close(solver.policy(state), deterministic(state))
        _, scale = solver.actor_net(state)
    share = eco.neutral_action()
    torch.testing.assert_close(scale * 2 * share * (1 - share), torch.full_like(scale, solver.exploration_sd))
    sd = solver.exploration_sd
    assert solver.target_entropy == pytest.approx(math.log(sd * math.sqrt(2 * math.pi * math.e)))
    assert float(solver.loss.target_entropy) == pytest.approx(solver.target_entropy)


@pytest.mark.parametrize("env_id", ["KrusellSmith-v0", "Investment-v0"])
def test_policy_is_permutation_equivariant(env_id):
    """Relabelling the agents relabels their actions, means and sds (the DeepSets summary is a mean over agents)."""
    eco = economy(env_id, n=7)
    solver = SACSolver(eco, TINY)
    solver.train(steps=6)  # away from the initial weights
    state = eco.initial_state(4, eco.generator(1))
    for _ in range(3):  # spread the agents' states
        state, _ = eco.step(state, solver.policy(state).detach(), eco.generator(2))
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    permuted = state.clone()
    for key in eco.agent_features:
        permuted[key] = state[key][:, perm]
    with torch.no_grad():
        u, (loc, scale) = solver.policy(state), solver.actor_net(state)
        u_p, (loc_p, scale_p) = solver.policy(permuted), solver.actor_net(permuted)
    for a, b in ((u, u_p), (loc, loc_p), (scale, scale_p)):
        torch.testing.assert_close(a[:, perm], b, rtol=1e-5, atol=1e-6)
    if env_id == "KrusellSmith-v0":
        assert float(u.std(-1).max()) > 0  # households with different wealth act differently


@pytest.mark.parametrize("alpha_init,direction", [(1e-7, 1.0), (1e-1, -1.0)])
def test_temperature_moves_toward_the_target_entropy(alpha_init, direction):
    """With α far too small the actor's sd collapses below the target entropy and α rises; far too large, the sd
    grows above it and α falls."""
    eco = economy("Investment-v0")
    solver = SACSolver(eco, {**TINY, "alpha_init": alpha_init, "lr_schedule": "constant", "lr_actor": 3e-3})
    logged = []
    solver.train(steps=40, callback=logged.append)
    alpha = float(solver.loss.log_alpha.detach().exp())
    assert direction * math.log(alpha / alpha_init) > 0.05, (alpha_init, alpha)
    gap = logged[-1]["entropy"] - solver.target_entropy
    assert -direction * gap > 0, (logged[-1]["entropy"], solver.target_entropy)


def _judge_lq(solver) -> float:
    return agents.evaluate_solver(solver, trajectories=4).lq_rel_error


def test_sac_moves_toward_lq():
    """160 steps on a 16-firm investment economy: the critics' TD loss falls by more than 10× and the mean policy
    moves toward the LQ policy (relative error 1.15 → ≈ 0.9, seed 0)."""
    eco = economy("Investment-v0", n=16)
    solver = SACSolver(eco, {"num_envs": 8, "horizon": 32, "warmup": 8, "batch_size": 16, "lr_actor": 1e-3,
                             "lr_schedule": "constant", "log_every": 20})
    before = _judge_lq(solver)
    losses = []
    solver.train(steps=160, callback=lambda m: losses.append(m["loss_qvalue"]))
    after = _judge_lq(solver)
    assert before > 0.5 and after < before - 0.1, (before, after)
    assert all(math.isfinite(x) for x in losses) and losses[-1] < 0.1 * losses[0], losses


def test_sac_is_reproducible_and_leaves_the_global_rng_alone():
    """All of SAC's sampling (collection, the loss's reparametrised draws) runs on the solver's own stream."""
    def trained(global_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(global_seed)
        solver = SACSolver(economy("Investment-v0"), TINY)
        before = torch.random.get_rng_state()
        solver.train(steps=10)
        assert torch.equal(torch.random.get_rng_state(), before)
        state = solver.economy.initial_state(3, solver.economy.generator(0))
        with torch.no_grad():
            return solver.policy(state), solver.value(state)

    torch.testing.assert_close(trained(1), trained(2), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- price taking
def test_actor_loss_gradient_is_own_action_only():
    """Through the critic modules of torchrl's SACLoss (both twins) and the actor's log-probability:
    agent 0's loss has zero gradient w.r.t. every other agent's action and distribution parameters."""
    eco = economy("KrusellSmith-v0", n=5)
    solver = SACSolver(eco, TINY)
    solver.train(steps=6)
    batch = solver.buffer.sample()
    for critic_module in solver.critic_modules:  # synced with the loss's trained twins after every step
        td = batch.select("population", "aggregate").clone()
        solver.actor(td)
        action = td["agents", "action"].detach().requires_grad_()
        td["agents", "action"] = action
        critic_module(td)
        q = td["agents", "state_action_value"][..., 0]  # (batch, N)
        (grad,) = torch.autograd.grad(q[:, 0].sum(), action)
        assert bool((grad[:, 1:] == 0).all()) and bool((grad[:, 0] != 0).all())
    loc = torch.zeros(3, 5, 1, requires_grad=True)
    dist = AgentTanhNormal(loc, torch.full((3, 5, 1), 0.3), low=0.0, high=1.0,
                           generator=torch.Generator().manual_seed(0))
    sample, log_prob = dist.rsample_and_log_prob()
    (grad,) = torch.autograd.grad(log_prob[:, 0].sum(), loc)
    assert bool((grad[:, 1:] == 0).all())


def test_tanh_normal_matches_torchrl_and_centres_the_noise():
    from torchrl.modules import TanhNormal

    gen = torch.Generator().manual_seed(0)
    loc = torch.randn(4, 6, 1, generator=gen, dtype=torch.float64)
    scale = torch.rand(4, 6, 1, generator=gen, dtype=torch.float64) * 0.5 + 0.05
    ours = AgentTanhNormal(loc, scale, low=-0.5, high=2.0, centered=False, generator=gen)
    ref = TanhNormal(loc, scale, low=-0.5, high=2.0)
    sample, log_prob = ours.rsample_and_log_prob()
    assert log_prob.shape == (4, 6) and bool(((sample > -0.5) & (sample < 2.0)).all())
    torch.testing.assert_close(log_prob, ref.log_prob(sample))
    torch.testing.assert_close(ours.log_prob(sample), log_prob)
    torch.testing.assert_close(ours.deterministic_sample, ref.deterministic_sample)
    # zero-sum pre-image noise: with a common scale the mean pre-image over the agents is the mean loc
    common = scale[:, :1].expand_as(scale)
    centred = AgentTanhNormal(loc, common, low=-1.0, high=1.0, centered=True, generator=gen)
    z = torch.atanh(centred.sample())
    torch.testing.assert_close(z.mean(-2), loc.mean(-2))


# ---------------------------------------------------------------------------------------------- bad settings
@pytest.mark.parametrize("changes,field", [
    ({"alpha_init": 0.0}, "alpha_init"),
    ({"lr_alpha": -1e-3}, "lr_alpha"),
    ({"sd_range": 1.0}, "sd_range"),
    ({"exploration_sd": 0.0}, "exploration_sd"),
    ({"target_entropy": float("nan")}, "target_entropy"),
    ({"tau": 0.0}, "tau"),
    ({"critic_form": "cubic"}, "critic_form"),
    ({"alpha": 0.1}, "alpha"),
])
def test_bad_config_is_refused(changes, field):
    with pytest.raises(ConfigError, match=field):
        SACSolver(economy("Investment-v0", n=4), {**TINY, **changes})


def test_dtype_must_match_the_economy():
    with pytest.raises(ConfigError, match="dtype"):
        SACSolver(economy("Investment-v0", n=4, dtype=torch.float64), TINY)
