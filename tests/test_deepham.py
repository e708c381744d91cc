"""DeepHAM: configuration errors, the building blocks (fast tanh, value ensemble, price taking), the LQ solution of
the linear investment economy by price-taking fictitious play, learning on Krusell–Smith, game vs planner."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

import agents
import hetagents_env
from conftest import ENV_IDS
from agents.config import ConfigError
from agents.evaluate import lq_errors, simulate_paths
from agents.networks import fast_tanh
from agents.solvers.deepham import DeepHAMSolver
from agents.value import ValueEnsemble, critic_features, fit_ensemble, value_dataset

#: tiny Krusell–Smith settings: 8 economies of 10 households, 20-period unrolls, one small value fit
KS_TINY = {
    "batch_size": 8, "horizon": 20, "burn_in": 100, "ergodic_economies": 16, "ergodic_periods": 20,
    "ergodic_skip": 2, "val_every": 1000, "val_economies": 16, "value_every": 100_000, "lr": 2e-3,
    "adam_betas": (0.9, 0.99),
    "value": {"economies": 16, "periods": 120, "horizon": 100, "start_every": 10, "epochs": 10, "lr": 1e-3},
}


def ks(n: int = 10, dtype=torch.float32):
    return hetagents_env.make_economy("KrusellSmith-v0", n_agents=n, dtype=dtype)


# ---------------------------------------------------------------------------------------------- config and parts
def test_bad_configs_raise_clear_errors():
    economy = ks()
    with pytest.raises(ConfigError, match="price_taker"):
        DeepHAMSolver(economy, {"learners": "all"})
    with pytest.raises(ConfigError, match="game"):
        DeepHAMSolver(economy, {"mode": "planner", "price_taker": True})
    with pytest.raises(ConfigError, match="unknown key"):
        DeepHAMSolver(economy, {"horizn": 3})
    with pytest.raises(ConfigError, match="horizon"):
        DeepHAMSolver(economy, {"value": {"horizon": 10, "periods": 5}})
    with pytest.raises(ConfigError, match="not both"):
        DeepHAMSolver(economy, {"input_offsets": [["k", 1.0]], "policy_network": {"shift": [["k", 2.0]]}})


def test_checkpoint_of_a_wrapped_input_centred_actor_still_loads():
    """Older versions wrapped every input-centred actor (policy keys "net.…"); a bare actor loads them."""
    economy = hetagents_env.make_economy("Investment-v0", n_agents=4)
    solver = DeepHAMSolver(economy, {"action_scale": 1.0, "steps": 1})
    assert solver.policy is solver.actor
    sd = solver.state_dict()
    sd["policy"] = {f"net.{key}": value for key, value in sd["policy"].items()}
    clone = DeepHAMSolver(economy, {"action_scale": 1.0, "steps": 1, "seed": 5})
    clone.load_state_dict(sd)
    state = economy.initial_state(2, economy.generator(0))
    torch.testing.assert_close(clone.policy(state), solver.policy(state))


def test_registered_and_published_architecture():
    assert "deepham" in agents.list_solvers()
    solver = agents.make_solver("deepham", ks(50), {**KS_TINY, "summary": "gm", "moments": 1})
    # published: a 2 × 24 tanh policy with one generalized moment Q: 1 → 12 → 12 → 1 has 938 parameters
    assert agents.count_parameters(solver.policy) == 938
    assert solver.value.n_members == 3


def test_fast_tanh_is_tanh():
    x = torch.linspace(-8, 8, 1001, dtype=torch.float64, requires_grad=True)
    y = fast_tanh(x)
    torch.testing.assert_close(y, torch.tanh(x), rtol=0, atol=1e-15)
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, 1 - torch.tanh(x).square(), rtol=0, atol=1e-14)


def test_value_ensemble_summary_interface_and_output_preserving_rescale():
    economy = ks(12, torch.float64)
    net = ValueEnsemble(critic_features(economy), members=3, phi="mlp", latent=2,
                        generator=torch.Generator().manual_seed(0)).double()
    state = economy.initial_state(5, economy.generator(0))
    state["k"] = state["k"] * torch.rand(5, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    v = net(state)
    assert v.shape == (5, 12)
    torch.testing.assert_close(net.head(state, net.features(state).mean(1)), v)
    idx = torch.tensor([[3], [0], [11], [5], [7]])
    torch.testing.assert_close(net(state, idx), v.gather(1, idx))
    net.fitted.fill_(True)
    net.set_target_stats(100.0, 7.0)  # PopArt: the predictions do not move
    torch.testing.assert_close(net(state), v)
    # permuting the households permutes the values
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(2))
    permuted = state.clone()
    permuted["k"], permuted["e"] = state["k"][:, perm], state["e"][:, perm]
    torch.testing.assert_close(net(permuted), v[:, perm])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_price_taking_transition_same_values_own_gradients_only(env_id):
    economy = hetagents_env.make_economy(env_id, n_agents=6, dtype=torch.float64)
    if not economy.provides("price_taking_transition"):
        pytest.skip(f"{env_id} has no price-taking transition")
    gen = economy.generator(0)
    state = economy.initial_state(3, gen)
    key = economy.endogenous_key
    noise = torch.rand(3, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    state[key] = state[key] * (0.5 + noise)
    action = torch.full((3, 6), 0.1 if economy.action_head == "sigmoid" else 0.02, dtype=torch.float64)
    shocks = economy.sample_shocks(state, gen)
    ref_next, ref_reward = economy.transition_and_reward(state, action, shocks)
    own = state[key].clone().requires_grad_(True)
    graph = state.clone()
    graph[key] = own
    nxt, reward = economy.price_taking_transition(graph, action, shocks)
    torch.testing.assert_close(reward, ref_reward)
    torch.testing.assert_close(nxt[key], ref_next[key])
    for out in (reward, nxt[key]):
        (jac,) = torch.autograd.grad(out[0, 2], own, retain_graph=True)
        assert jac[0, 2] != 0 and bool((jac[0, torch.arange(6) != 2] == 0).all()) and bool((jac[1:] == 0).all())


# ---------------------------------------------------------------------------------------------- investment: LQ
def test_price_taking_game_recovers_the_lq_policy():
    """Fictitious play with price-taking firms solves the linear investment economy at the baseline calibration
    (δ = 0.05, σ = 0.005, X_0 ≈ 0.9; the solver's default settings, 600 steps of 100-period unrolls): < 2 % error
    vs LQ (seeds 0–2: 1.5, 1.1, 0.6 %)."""
    torch.manual_seed(0)
    economy = hetagents_env.make_economy("Investment-v0", n_agents=16)
    solver = agents.make_solver("deepham", economy, {"seed": 0, "steps": 600})
    solver.train()
    paths = simulate_paths(
        solver.policy, economy, trajectories=8, horizon=63,
        initial_state=economy.initial_state(1, economy.generator(5)), generator=economy.generator(6),
    )
    errors = lq_errors(solver.policy, economy, paths.reshape(-1))
    assert errors["rel"] < 0.02, f"relative error vs LQ {errors['rel']:.2%}"


# ---------------------------------------------------------------------------------------------- Krusell–Smith
@pytest.fixture(scope="module")
def trained_game():
    torch.manual_seed(0)
    solver = DeepHAMSolver(ks(), {**KS_TINY, "price_taker": True, "learners": "all"})
    solver.fit_value()
    before = solver.validate()
    solver.train(steps=150)
    return solver, before, solver.validate()


def test_a_few_hundred_steps_raise_the_validation_objective(trained_game):
    solver, before, after = trained_game
    assert after["val_objective"] > before["val_objective"] + 0.05, (before, after)
    assert solver.step == 150 and solver.history and solver.wall_time > 0
    for value in after.values():
        assert torch.isfinite(torch.tensor(value))


def _share_gradient(n: int, extra: dict) -> tuple[torch.Tensor, float]:
    """Gradient of the objective w.r.t. the actor's parameters (and its value), from identical initialisations,
    start states and shocks."""
    solver = DeepHAMSolver(ks(n, torch.float64), {**KS_TINY, **extra, "seed": 3, "horizon": 15})
    solver.fit_value()
    objective = solver.objective(solver._draw_starts(8), generator=solver.sim.generator(7))
    grads = torch.autograd.grad(objective, list(solver.actor.parameters()))
    return torch.cat([g.flatten() for g in grads]), float(objective.detach())


def test_game_and_planner_coincide_for_one_household_and_differ_otherwise():
    """With N = 1 the single household is the whole economy: fictitious play with its own price effect kept IS the
    planner's problem (identical gradients), while a price taker ignores it. With N > 1 the planner internalises
    the pecuniary externalities and the other households' responses: a different gradient."""
    game, j_game = _share_gradient(1, {})
    planner, j_planner = _share_gradient(1, {"mode": "planner"})
    taker, _ = _share_gradient(1, {"price_taker": True})
    assert j_game == pytest.approx(j_planner, rel=1e-12)
    torch.testing.assert_close(game, planner, rtol=1e-9, atol=1e-12)
    assert (taker - game).norm() > 1e-3 * game.norm()
    game, _ = _share_gradient(10, {"price_taker": True, "learners": "all"})
    planner, _ = _share_gradient(10, {"mode": "planner"})
    assert (planner - game).norm() > 1e-2 * game.norm()


def test_published_one_learner_step_and_checkpoint_roundtrip():
    economy = ks()
    solver = DeepHAMSolver(economy, {**KS_TINY, "summary": "gm", "dtype": "float64"})
    metrics = solver.train(steps=3)
    assert metrics["step"] == 3 and solver.value_fits == 1
    assert solver.policy.rho[0].weight.dtype == torch.float64
    sd = solver.state_dict()
    clone = DeepHAMSolver(economy, {**KS_TINY, "summary": "gm", "dtype": "float64", "seed": 9})
    clone.load_state_dict(sd)
    state = solver.val_states
    torch.testing.assert_close(clone.policy(state), solver.policy(state))
    torch.testing.assert_close(clone.value(state), solver.value(state))
    assert clone.step == 3


# ---------------------------------------------------------------------------------------------- planner vs game
@pytest.fixture(scope="module")
def competitive_clone():
    """The competitive equilibrium in DeepHAM's hands: the classical solution's consumption share (coarse grid, 50
    households) cloned into a DeepHAM actor by regression on states of its ergodic set, and its value function."""
    economy = ks(50, torch.float64)
    classical = agents.make_solver("ks_classical", economy, {"k_points": 50, "policy_tol": 1e-6, "alm_tol": 1e-5,
                                                              "periods": 300, "panel_economies": 8})
    classical.train()
    gen = economy.generator(1)
    state, recorded = economy.initial_state(32, gen), []
    with torch.no_grad():
        for t in range(600):
            state = economy.transition(state, classical.policy(state), economy.sample_shocks(state, gen))
            if t >= 400 and t % 10 == 0:
                recorded.append(state)
    data = torch.cat(recorded)
    target = torch.logit(classical.policy(data).clamp(1e-4, 1 - 1e-4))
    clone, _ = clone_share_policy(economy, KS_TINY, data, target, steps=600)
    return economy, classical, clone.actor.state_dict(), state


def clone_share_policy(economy, config: dict, data, target: torch.Tensor, *, steps: int):
    """A price-taking DeepHAM solver whose actor is regressed (in logits of the consumption share) on ``target`` at
    ``data``; returns it and the final loss (also used by the constrained-efficiency test)."""
    torch.manual_seed(0)
    clone = DeepHAMSolver(economy, {**config, "price_taker": True, "learners": "all"})
    optimizer = torch.optim.Adam(clone.actor.parameters(), lr=5e-3)
    for _ in range(steps):
        loss = (torch.logit(clone.policy(data).clamp(1e-6, 1 - 1e-6)) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return clone, float(loss.detach())


def _consumption_bias_gradient(competitive_clone, extra: dict, seed: int) -> float:
    """d J / d (the actor's output bias: the logit of every household's consumption share) at the cloned policy,
    along a 20-period unroll with the classical value as the terminal value."""
    economy, classical, actor, starts = competitive_clone
    solver = DeepHAMSolver(economy, {**KS_TINY, **extra, "seed": seed, "horizon": 20})
    solver.actor.load_state_dict(actor)

    def classical_value(state, index=None, summary_state=None):  # V(k, e; K, z); price takers see K frozen
        K = (state if summary_state is None else summary_state)["k"].mean(-1)
        v = classical.grid.panel(classical.value.table, state["k"], state["e"], K, state["z"])
        return v if index is None else v.gather(1, index)

    return output_bias_gradient(solver, classical_value, starts, count=8, seed=seed)


def output_bias_gradient(solver: DeepHAMSolver, value, starts, *, count: int, seed: int) -> float:
    """dJ/d(the actor's output bias) of ``solver``'s objective with ``value`` as the terminal value, over ``count``
    start states picked from ``starts`` and shocks, both from ``seed`` (also used by the constrained-efficiency test)."""
    solver.value = value
    pick = torch.randperm(starts.batch_size[0], generator=torch.Generator().manual_seed(seed))[:count]
    objective = solver.objective(starts[pick].clone(), generator=solver.economy.generator(100 + seed))
    (grad,) = torch.autograd.grad(objective, [solver.actor.output_layer.bias])
    return float(grad.sum())


@pytest.mark.parametrize("seed", [0, 1])
def test_at_the_competitive_solution_the_planner_saves_more(competitive_clone, seed):
    """Game vs planner on Krusell–Smith, at the competitive equilibrium (the classical solution, cloned): for the
    game it is a best response — the gradient of J on the consumption share is ≈ 0 — while the planner would consume
    less and accumulate more capital (as published): more K raises the wage, which the consumption-poor live on, and
    lowers the return the rich live on (the pecuniary externality price takers ignore)."""
    game = _consumption_bias_gradient(competitive_clone, {"price_taker": True, "learners": "all"}, seed)
    planner = _consumption_bias_gradient(competitive_clone, {"mode": "planner"}, seed)
    assert abs(game) < 0.2, f"the cloned competitive policy is not a best response: dJ/db = {game:.3f}"
    assert planner < game - 0.2, f"planner dJ/db = {planner:.3f}, game {game:.3f}"


def test_the_learning_rate_decays_geometrically_over_the_configured_steps_bit_for_bit():
    """Step k's learning rate is lr · (lr_end / lr)^min(k / (steps − 1), 1), across calls and past ``steps``; the
    logged ``lr`` is the next step's."""
    config = {**KS_TINY, "horizon": 5, "steps": 6, "lr": 3e-3, "lr_end": 7e-5, "val_every": 4,
              "value": {**KS_TINY["value"], "epochs": 1}}
    solver = DeepHAMSolver(ks(), config)
    cfg, seen = solver.config, []
    solver.optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    solver.train(4)
    solver.train()
    solver.train(2)
    assert seen == [cfg.lr * (cfg.lr_end / cfg.lr) ** min(k / (cfg.steps - 1), 1.0) for k in range(8)]
    assert [m["step"] for m in solver.history] == [4, 6, 8] and solver.history[-1]["lr"] == solver.lr_at(8)


@pytest.mark.parametrize("mode", [{"mode": "game"}, {"mode": "game", "price_taker": True, "learners": "all"},
                                  {"mode": "game", "price_taker": True, "learners": "all", "compile_periods": 4}])
def test_the_compiled_unroll_gives_the_eager_objective_and_gradient(mode):
    """``compile: true`` compiles ``compile_periods`` periods of the unroll at a time (T = 6: one call of 4 periods,
    one of the remaining 2): the same objective and gradient as eager, and the training loop runs with it (the speed
    is measured in benchmarks/deepham_profile.py)."""
    economy = ks(dtype=torch.float64)
    eager = DeepHAMSolver(economy, {**KS_TINY, **{k: v for k, v in mode.items() if k != "compile_periods"},
                                    "horizon": 6})
    compiled = DeepHAMSolver(economy, {**KS_TINY, **mode, "horizon": 6, "compile": True})
    compiled.train(1)  # _begin compiles; one step
    assert compiled._compiled_period is not None
    eager.load_state_dict(compiled.state_dict())
    start = compiled._draw_starts(4)
    grads = []
    for solver in (eager, compiled):
        objective = solver.objective(start.clone(), generator=economy.generator(3))
        grads.append((objective, *torch.autograd.grad(objective, list(solver.actor.parameters()))))
    for e, c in zip(*grads):
        torch.testing.assert_close(c, e, rtol=1e-10, atol=1e-12)


def test_the_compiled_value_regression_fits_the_eager_critics():
    """``value.compile``: the regression's minibatch loss through torch.compile (a last partial batch included: a
    second compilation) takes the same Adam steps as eager: same critics, same metrics (float64); ``data_parallel``
    without a process group is the plain fit, bit for bit."""
    solver = DeepHAMSolver(ks(dtype=torch.float64), KS_TINY)
    cfg = dataclasses.replace(solver.config.value, epochs=3, batch_size=5)
    start = solver._draw_starts(cfg.economies, fresh=True)
    states, targets = value_dataset(solver.sim, solver._no_grad_policy, start, cfg, solver.rng)
    assert states.batch_size[0] % cfg.batch_size != 0
    fits = []
    for compiled, data_parallel in ((False, False), (True, False), (False, True)):
        value = copy.deepcopy(solver.value)
        metrics = fit_ensemble(value, states, targets, dataclasses.replace(cfg, compile=compiled),
                               torch.Generator().manual_seed(7), data_parallel=data_parallel)
        fits.append((metrics, torch.cat([p.reshape(-1) for p in value.parameters()])))
    (eager_metrics, eager), (compiled_metrics, compiled), alone = fits
    assert alone[0] == eager_metrics and torch.equal(alone[1], eager)  # data-parallel in one process: the plain fit
    assert compiled_metrics["value_steps"] == eager_metrics["value_steps"] == 3 * -(-states.batch_size[0] // 5)
    torch.testing.assert_close(compiled, eager, rtol=1e-9, atol=1e-12)
    assert compiled_metrics["value_mse"] == pytest.approx(eager_metrics["value_mse"], rel=1e-9)
    assert (eager - torch.cat([p.reshape(-1) for p in solver.value.parameters()])).abs().max() > 1e-4  # it fitted


def test_the_compiled_simulation_gives_the_eager_states_validation_and_value_data():
    """``compile_simulation``: the no-gradient periods (burn-in, refreshes, validation, value data) through
    torch.compile give the eager numbers to rounding (float64; one batch size here, so one compilation)."""
    economy = ks(dtype=torch.float64)
    eager, compiled = (DeepHAMSolver(economy, {**KS_TINY, "compile_simulation": c}) for c in (False, True))
    assert eager._compiled_simulation is None and compiled._compiled_simulation is not None
    torch.testing.assert_close(compiled.pool["k"], eager.pool["k"], rtol=1e-9, atol=1e-12)  # the burn-in
    torch.testing.assert_close(compiled.starts["k"], eager.starts["k"], rtol=1e-9, atol=1e-12)
    validation = compiled.validate()
    for key, value in eager.validate().items():
        assert validation[key] == pytest.approx(value, rel=1e-9)
    data = []
    for solver in (eager, compiled):
        states, targets = value_dataset(solver.sim, solver._no_grad_policy, solver._draw_starts(16, fresh=True),
                                        solver.config.value, economy.generator(4),
                                        period=solver._compiled_simulation)
        data.append((states["k"], targets))
    for c, e in zip(data[1], data[0]):
        torch.testing.assert_close(c, e, rtol=1e-9, atol=1e-12)


def test_compile_periods_needs_compile_and_a_positive_count():
    for bad in (0, -2):
        with pytest.raises(ConfigError, match="compile_periods"):
            DeepHAMSolver(ks(), {**KS_TINY, "compile": True, "compile_periods": bad})
    with pytest.raises(ConfigError, match="compile_periods = 4 has no effect without compile"):
        DeepHAMSolver(ks(), {**KS_TINY, "compile_periods": 4})


def test_start_spread_widens_the_start_states_mean_preserving_above_the_bound():
    """``start_spread``: a mean-one log-normal factor on every household's wealth above the borrowing limit in the
    policy steps' start states (not in the validation states nor the value fit's); 0 leaves the draw untouched."""
    economy = ks(n=50)
    base = {**KS_TINY, "ergodic_economies": 64, "ergodic_periods": 40}
    plain = DeepHAMSolver(economy, base)
    spread = DeepHAMSolver(economy, {**base, "start_spread": 0.5})
    torch.testing.assert_close(spread.starts["k"], plain.starts["k"])  # same pool: the spread is drawn per batch
    torch.testing.assert_close(spread.val_states["k"], plain.val_states["k"])
    low = economy.feature_bounds("k")[0]
    k0, k1 = plain._draw_starts(64)["k"] - low, spread._draw_starts(64)["k"] - low
    assert bool((k1 >= 0).all())
    ratio = (k1 / k0).log()  # the factor's log: N(−σ²/2, σ²) household by household
    assert abs(float(ratio.std()) - 0.5) < 0.03 and abs(float(ratio.mean()) + 0.125) < 0.03
    assert abs(float(k1.mean() / k0.mean()) - 1.0) < 0.05
    with pytest.raises(ConfigError, match="start_spread"):
        DeepHAMSolver(economy, {**base, "start_spread": -0.1})
    annealed = DeepHAMSolver(economy, {**base, "start_spread": 0.5, "start_spread_end": 0.0, "steps": 11})
    assert [annealed.spread_at(k) for k in (0, 5, 10, 20)] == [0.5, 0.25, 0.0, 0.0]
    annealed.step = 10  # σ = 0 at the end: the draws as they are
    torch.testing.assert_close(annealed._draw_starts(64)["k"], DeepHAMSolver(economy, base)._draw_starts(64)["k"])


def test_policy_average_reports_the_warm_ema_of_the_iterates_and_checkpoints_it():
    """``policy_average`` = d: ``solver.policy`` is the running mean of the first 1/(1 − d) iterates, then their
    exponential moving average; the iterate alone trains and simulates; a checkpoint restores both, and only into a
    solver configured with an average."""
    economy = ks()
    config = {**KS_TINY, "policy_average": 0.8}
    solver = DeepHAMSolver(economy, config)
    iterates = []
    for _ in range(12):
        solver.train(steps=1)
        iterates.append([p.detach().clone() for p in solver.actor.parameters()])
    expected = iterates[0]
    for n, iterate in enumerate(iterates[1:], start=2):  # the n-th iterate's weight: max(1 − d, 1/n)
        weight = max(0.2, 1.0 / n)
        expected = [a + (b - a) * weight for a, b in zip(expected, iterate)]
    for a, b in zip(expected, solver.average.module.parameters()):
        torch.testing.assert_close(b, a)
    state = solver.val_states
    assert not torch.allclose(solver.policy(state), solver.iterate(state))  # the reported policy is the average
    validated = solver.validate()
    with torch.no_grad():  # the iterate validates (and simulates): a different average changes nothing there
        for p in solver.average.module.parameters():
            p.mul_(0.5)
    assert solver.validate() == validated
    for a, b in zip(expected, solver.average.module.parameters()):
        b.data.copy_(a)
    sd = copy.deepcopy(solver.state_dict())  # a copy: optimizer.load_state_dict keeps the loaded tensors
    clone = DeepHAMSolver(economy, {**config, "seed": 3})
    clone.load_state_dict(sd)
    for one in (clone, solver):
        one.train(steps=2)
    torch.testing.assert_close(clone.policy(state), solver.policy(state), rtol=0, atol=0)
    torch.testing.assert_close(clone.iterate(state), solver.iterate(state), rtol=0, atol=0)
    with pytest.raises(ValueError, match="policy_average"):
        DeepHAMSolver(economy, KS_TINY).load_state_dict(sd)
    plain = DeepHAMSolver(economy, KS_TINY)
    assert plain.policy is plain.iterate is plain.actor and plain.average is None
    with pytest.raises(ValueError, match="policy_average"):
        DeepHAMSolver(economy, config).load_state_dict(copy.deepcopy(plain.state_dict()))
    for bad in (1.0, -0.1):
        with pytest.raises(ConfigError, match="policy_average"):
            DeepHAMSolver(economy, {**KS_TINY, "policy_average": bad})


def test_value_spread_starts_the_value_simulations_from_spread_states(monkeypatch):
    """``value_spread``: the value fit's simulations start from states spread as the policy steps' (a mean-one
    log-normal factor per household above the borrowing limit); without it, from the drawn states themselves."""
    import agents.solvers.deepham as deepham

    economy = ks(n=50)
    base = {**KS_TINY, "ergodic_economies": 64, "ergodic_periods": 40, "start_spread": 0.5,
            "value": {**KS_TINY["value"], "economies": 64}}
    seen = []
    real = deepham.value_dataset
    monkeypatch.setattr(deepham, "value_dataset",
                        lambda eco, policy, start, *a, **kw: seen.append(start) or real(eco, policy, start, *a, **kw))
    for extra in ({"value_spread": False}, {"value_spread": True}, {"value_spread": True, "value_spread_scale": 0.5}):
        DeepHAMSolver(economy, {**base, **extra}).fit_value()
    torch.testing.assert_close(seen[0]["k"], DeepHAMSolver(economy, base)._draw_starts(64, fresh=True)["k"])
    low = economy.feature_bounds("k")[0]
    for spread, sigma in ((seen[1], 0.5), (seen[2], 0.25)):  # the same draws, then the factor of σ·scale
        ratio = ((spread["k"] - low) / (seen[0]["k"] - low)).log()
        assert abs(float(ratio.std()) - sigma) < 0.03 and abs(float(ratio.mean()) + sigma**2 / 2) < 0.03
    with pytest.raises(ConfigError, match="value_spread = true needs start_spread"):
        DeepHAMSolver(economy, {**KS_TINY, "value_spread": True})
    DeepHAMSolver(economy, {**KS_TINY, "value_spread": True, "start_spread_end": 0.3})  # a spread later: valid
    with pytest.raises(ConfigError, match="value_spread_scale .* no effect without value_spread"):
        DeepHAMSolver(economy, {**KS_TINY, "start_spread": 0.5, "value_spread_scale": 0.5})
    for bad in (0.0, -0.5):
        with pytest.raises(ConfigError, match="value_spread_scale"):
            DeepHAMSolver(economy, {**base, "value_spread": True, "value_spread_scale": bad})


def test_log_wealth_critics_see_the_log_distance_to_the_borrowing_limit():
    """value.log_wealth: the critics' own inputs gain log((k − k̲)/scale + LOG_FLOOR), k̲ the economy's lower bound
    of k; finite with a finite gradient at the bound; refused for an economy whose state has no lower bound."""
    from agents.value import LOG_FLOOR, ValueConfig, make_value

    for economy in (ks(6), hetagents_env.make_economy("Aiyagari-v0", n_agents=6, borrowing_limit=-1.0)):
        plain = make_value(economy, ValueConfig(), summary="gm", seed=3)
        logged = make_value(economy, ValueConfig(log_wealth=True), summary="gm", seed=3)
        state = economy.initial_state(3, economy.generator(1))
        low, scale = economy.feature_bounds("k")[0], dict(logged.inputs.scale)["k"]
        state["k"] = low + (state["k"] - low) * torch.rand(state["k"].shape, generator=torch.Generator().manual_seed(0))
        inputs = logged.own_inputs(state)
        torch.testing.assert_close(inputs[..., :-1], plain.own_inputs(state))
        expected = torch.log((state["k"].double() - low) / scale + LOG_FLOOR)
        torch.testing.assert_close(inputs[..., -1].double(), expected, rtol=1e-5, atol=1e-5)
        assert logged.n_own == plain.n_own + 1
        state["k"] = torch.full_like(state["k"], low).requires_grad_(True)  # every household at the limit
        value = logged(state)
        (grad,) = torch.autograd.grad(value.sum(), state["k"])
        assert torch.isfinite(value).all() and torch.isfinite(grad).all() and grad.abs().sum() > 0
        index = torch.tensor([[0], [2], [5]])  # one learner per economy: the log column is gathered with the rest
        torch.testing.assert_close(logged(state.detach(), index), logged(state.detach()).gather(1, index))
    with pytest.raises(ConfigError, match="'x'.*no finite lower bound.*log_wealth"):
        make_value(hetagents_env.make_economy("Investment-v0", n_agents=4), ValueConfig(log_wealth=True))
    with pytest.raises(ConfigError, match="not own features"):
        ValueEnsemble(critic_features(ks(4)), log_own=(("z", 0.0),))
