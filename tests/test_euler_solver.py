"""The Euler-residual solver: a fast linear-model solve against the exact LQ policy, a Krusell–Smith solve, and the
Solver interface (config validation, registry, hooks, budgets, checkpoints)."""

from __future__ import annotations

import math
import time
import warnings

import pytest
import torch

import agents
import hetagents_env
from agents.config import ConfigError
from agents.evaluate import lq_errors
from agents import schedules
from agents.solvers import EulerConfig, EulerSolver, list_solvers, make_solver

#: the benchmark's φ(Identity) recipe: the published network (49,409 parameters) on x − 0.9, the output level
#: started at the data policy's mean action, validation every 32 steps, a 2e-7 stopping threshold
FAST_IDENTITY = {
    "network": {"phi": "identity", "shift": [["x", 0.9]]},
    "init_level": "data_policy",
    "lr": 1e-3,
    "val_every": 32,
    "val_threshold": 2e-7,
}


def investment(n: int = 128, **params):
    return hetagents_env.make_economy("Investment-v0", n_agents=n, **params)


def small_ks(n: int = 16):
    return hetagents_env.make_economy("KrusellSmith-v0", n_agents=n)


def test_identity_solve_of_the_linear_model_is_accurate_within_seconds():
    economy = investment()
    solver = make_solver("euler", economy, {**FAST_IDENTITY, "seed": 0})
    start = time.perf_counter()
    metrics = solver.train()
    elapsed = time.perf_counter() - start
    errors = lq_errors(solver.policy, economy, solver.val_states)
    assert errors["rel"] < 5e-3, f"relative error {errors['rel']:.2%} after {solver.epoch} epochs"
    assert metrics["val_mse"] < 1e-6
    assert elapsed < 20.0  # a few seconds on a laptop core; generous for shared CI machines
    # the judge on fresh test paths from the run's X_0 agrees
    result = agents.evaluate_solver(solver, initial_state="solver", trajectories=8)
    assert result.lq_rel_error < 5e-3 and result.euler_mse < 1e-5


def test_lq_data_policy_is_an_exact_zero_of_the_training_loss():
    economy = investment(64, dtype=torch.float64)
    solver = make_solver("euler", economy, {"network": {"phi": "identity"}, "seed": 1})
    eps = economy.euler_residual(economy.lq_policy, solver.train_states, **solver.residual_options)
    assert float(eps.abs().max()) < 1e-12


def test_krusell_smith_solve_lowers_the_residual():
    economy = small_ks()
    solver = make_solver("euler", economy, {"seed": 0, "train_trajectories": 8, "val_trajectories": 4,
                                            "horizon": 8, "batch_size": 16})
    fixed = solver.val_states.clone()
    before = solver.mse(fixed)
    solver.train(steps=25)
    after = solver.mse(fixed)
    assert after < 0.5 * before, (before, after)
    assert solver.step == 25


def test_anchor_band_rescales_the_paths_capital_and_keeps_its_shape():
    economy = small_ks()
    k_ss = economy.params.steady_state_capital
    solver = make_solver("euler", economy, {"seed": 3, "train_trajectories": 64, "horizon": 0,
                                            "anchor_band": (0.5, 2.0), "anchor_fraction": 1.0})
    K = solver.train_states["k"].mean(-1) / k_ss
    assert float(K.min()) >= 0.5 - 1e-5 and float(K.max()) <= 2.0 + 1e-5
    assert float(K.max() - K.min()) > 0.5  # spread over the band, not one level
    # continuing paths: the previous end states are rescaled, each economy's cross-section keeps its shape
    ends = solver._ends["train"]
    again = solver._anchor(ends)
    ratio = again["k"] / ends["k"]
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-5)
    # anchor_fraction = 0: nothing moves
    still = make_solver("euler", economy, {"seed": 3, "horizon": 0, "anchor_band": (0.5, 2.0),
                                           "anchor_fraction": 0.0})
    assert torch.allclose(still.train_states["k"], torch.full_like(still.train_states["k"], k_ss))


def test_spread_copies_disperse_wealth_keep_each_mean_and_are_not_continued():
    economy = small_ks()
    cfg = {"seed": 1, "train_trajectories": 8, "val_trajectories": 4, "horizon": 4}
    plain = make_solver("euler", economy, cfg)
    spread = make_solver("euler", economy, {**cfg, "spread_copies": 2, "spread_sigma": 1.0})
    n = plain.train_states.batch_size[0]
    assert spread.train_states.batch_size[0] == 3 * n and spread.val_states.batch_size[0] == plain.val_states.batch_size[0]
    own, copies = spread.train_states[:n], spread.train_states[n:].reshape(2, n)
    for copy in copies:
        # same aggregate state (so the same prices), the same shocks, more dispersed wealth, above the borrowing limit
        torch.testing.assert_close(copy["k"].mean(-1), own["k"].mean(-1), rtol=1e-5, atol=1e-5)
        assert torch.equal(copy["e"], own["e"]) and torch.equal(copy["z"], own["z"])
        assert float(copy["k"].std(-1).mean()) > 2 * float(own["k"].std(-1).mean())
        assert float(copy["k"].min()) >= economy.borrowing_limit
    # the continued paths are the policy's own: their ends are a state of the simulated paths, not of a copy
    assert spread._ends["train"].batch_size[0] == cfg["train_trajectories"]
    assert torch.equal(spread._ends["train"]["k"], own.reshape(8, 5)[:, -1]["k"])


@pytest.mark.parametrize("band", [(0.0, 2.0), (2.0, 1.0), (0.5, float("inf"))])
def test_bad_anchor_band(band):
    with pytest.raises(ConfigError, match="anchor_band"):
        EulerConfig(anchor_band=band)


def test_nonlinear_model_uses_the_linear_lq_data_and_resimulates():
    economy = investment(16, nu=1.5)
    solver = make_solver("euler", economy, {"network": {"phi": "identity"}, "train_trajectories": 2,
                                            "val_trajectories": 1, "horizon": 7, "max_epochs": 2, "seed": 0})
    assert solver.config.resimulate_every == 5  # the default for ν ≠ 1
    first = solver.train_states["x"].clone()
    solver.config = solver.config.replace(resimulate_every=1)
    solver.train()
    assert solver.epoch == 2
    assert not torch.equal(first, solver.train_states["x"])  # re-simulated with the network at epoch 1


# ---------------------------------------------------------------------------------------------- interface
def test_registry_and_unknown_names():
    assert "euler" in list_solvers()
    assert isinstance(agents.make_solver("euler", investment(8), {"horizon": 3}), EulerSolver)
    with pytest.raises(ValueError, match="unknown solver 'nope'"):
        make_solver("nope", investment(8))


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"learning_rate": 1e-3}, "unknown key 'learning_rate'"),
        ({"network": {"phi_width": 3}}, "unknown key 'phi_width' in DeepSetsConfig"),
        ({"lr": -1.0}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"data_policy": "random"}, "data_policy"),
        ({"lr_schedule": "cosine", "lr_min_factor": 1.0}, "lr_min_factor"),
    ],
)
def test_bad_config_raises_naming_the_key(bad, words):
    with pytest.raises(ConfigError, match=words):
        make_solver("euler", investment(8), bad)


def test_lq_data_needs_an_lq_economy():
    with pytest.raises(ConfigError, match="data_policy"):
        make_solver("euler", small_ks(), {"data_policy": "lq", "horizon": 2})


def test_economy_defaults_and_overrides():
    ks = small_ks()
    default = EulerSolver.default_config(ks)
    solver = make_solver("euler", ks, {"lr": 5e-4, "horizon": 2, "train_trajectories": 2, "val_trajectories": 1})
    assert solver.config.lr == 5e-4
    assert solver.config.network == default.network  # nested defaults kept when not overridden
    assert solver.config.network.head == "sigmoid"
    cfg = EulerConfig.from_dict({"network": {"phi": "moments"}})
    assert cfg.network.phi == "moments" and cfg.network.rho_widths == (128, 128, 128, 128)


def test_callback_progress_steps_and_budget():
    solver = make_solver("euler", investment(16), {"network": {"phi": "identity"}, "horizon": 7, "seed": 0,
                                                   "batch_size": 8, "val_threshold": 0.0})
    seen, ticks = [], []
    solver.train(steps=5, callback=seen.append, progress=lambda done, total: ticks.append((done, total)))
    assert solver.step == 5 and ticks[-1] == (5, 5) and seen and seen[-1]["step"] == 5
    # a callback returning True stops at the next logging point (the end of an epoch)
    solver.train(callback=lambda m: True)
    assert solver.history[-1]["epoch"] == solver.epoch
    t0 = solver.wall_time
    solver.train(budget=0.2)
    assert solver.wall_time - t0 < 5.0
    with pytest.raises(ValueError, match="steps"):
        solver.train(steps=-1)


def test_state_dict_round_trip():
    economy = investment(16)
    config = {"network": {"phi": "moments", "rho_widths": (16,)}, "horizon": 7, "seed": 3, "batch_size": 8}
    a = make_solver("euler", economy, config)
    a.train(steps=4)
    b = make_solver("euler", economy, {**config, "seed": 4})
    b.load_state_dict(a.state_dict())
    states = a.val_states
    with torch.no_grad():
        torch.testing.assert_close(a.policy(states), b.policy(states))
    assert b.step == a.step and torch.equal(a.train_states["x"], b.train_states["x"])
    # both continue identically
    a.train(steps=2)
    b.train(steps=2)
    with torch.no_grad():
        torch.testing.assert_close(a.policy(states), b.policy(states))


def record_lrs(solver) -> list[float]:
    """The learning rate of every optimizer step the solver takes from now on."""
    seen = []
    solver.optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    return seen


@pytest.mark.parametrize("schedule", [
    {"lr_schedule": "step", "lr_step_epochs": 2, "lr_decay": 0.7},
    {"lr_schedule": "cosine", "lr_min_factor": 0.1, "warmup_steps": 60, "lr": 7.5e-4},  # (lr·g)·w ≠ lr·(g·w) here
    {"lr_schedule": "constant", "warmup_steps": 3},
])
def test_the_learning_rate_is_the_closed_form_at_the_fractional_epoch_bit_for_bit(schedule):
    """Each step's learning rate is lr · schedule(epoch + start / n_train), times (step + 1) / warmup_steps during the
    warm-up, multiplied in that order; a call stopped mid-epoch restarts the epoch with a fresh pass."""
    solver = make_solver("euler", investment(8), {"horizon": 7, "batch_size": 5, "max_epochs": 5, "val_threshold": 0.0,
                                                  **schedule})
    cfg, n_train = solver.config, solver.train_states.batch_size[0]
    seen = record_lrs(solver)
    expected = []

    def closed_form(epoch: float, step: int) -> float:
        if cfg.lr_schedule == "step":
            lr = cfg.lr * cfg.lr_decay ** math.floor(epoch / cfg.lr_step_epochs)
        elif cfg.lr_schedule == "cosine":
            lr = cfg.lr * (cfg.lr_min_factor + (1 - cfg.lr_min_factor) * 0.5 *
                           (1 + math.cos(math.pi * min(epoch / cfg.max_epochs, 1.0))))
        else:
            lr = cfg.lr
        if cfg.warmup_steps and step < cfg.warmup_steps:
            lr *= (step + 1) / cfg.warmup_steps
        return lr

    def passes(steps: int) -> None:  # the positions of a call of `steps` steps (a fresh pass at the current epoch)
        epoch, start, step = solver.epoch, 0, solver.step
        for _ in range(steps):
            expected.append(closed_form(epoch + start / n_train, step))
            step, start = step + 1, start + cfg.batch_size
            if start >= n_train:
                epoch, start = epoch + 1, 0

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scheduler warning either
        for steps in (3, 2 * n_train // cfg.batch_size + 1, None):
            passes(steps if steps is not None else 10_000)
            solver.train(steps)
    del expected[len(seen):]
    assert seen == expected and len(seen) > 2 * n_train // cfg.batch_size
    assert solver.history[-1]["lr"] == seen[-1]


def test_position_lr_sets_every_group_to_the_base_times_the_factors_in_order():
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    optimizer = torch.optim.Adam([{"params": params[:1], "lr": 0.3}, {"params": params[1:], "lr": 7e-4}])
    position = {"t": 0.0}

    def factors() -> tuple[float, float]:
        return schedules.cosine(position["t"], min_factor=0.1), schedules.linear_warmup(2, steps=7)

    scheduler = schedules.PositionLR(optimizer, factors)
    for t in (0.0, 0.37, 1.0, 2.0):
        position["t"] = t
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            scheduler.step()
        g, w = factors()
        assert [group["lr"] for group in optimizer.param_groups] == [0.3 * g * w, 7e-4 * g * w]
        assert scheduler.get_last_lr() == [0.3 * g * w, 7e-4 * g * w]
        optimizer.step()
    assert schedules.cosine(2.0, min_factor=0.1) == 0.1 and schedules.geometric(3.0, ratio=0.01) == 0.01
    assert schedules.step_decay(4.9, every=2, decay=0.5) == 0.25 and schedules.linear_warmup(7, steps=7) == 1.0
