"""Every registered solver on every registered economy: it trains a few steps and its policy gives valid actions,
or — where its ``requires`` are not met — it is refused with an error naming the solver, the economy and what is
missing. A new economy or a new solver is covered here the moment it is registered (tiny settings per solver,
none per economy: the solvers read everything else from the economy's self-description)."""

from __future__ import annotations

import math
import time

import pytest
import torch

import agents
import hetagents_env
from agents.config import ConfigError
from agents.networks import CallablePolicy
from agents.solvers.base import Solver
from conftest import ENV_IDS

#: small settings per solver (nothing economy-specific); a solver missing here runs with its own defaults
TINY = {
    "euler": dict(train_trajectories=4, val_trajectories=2, horizon=4, batch_size=8, max_epochs=1),
    "deepham": dict(batch_size=4, horizon=5, burn_in=5, ergodic_economies=4, ergodic_periods=8, ergodic_skip=2,
                    value_every=100, val_every=100, val_economies=4,
                    value=dict(economies=4, periods=40, horizon=20, start_every=10, epochs=1)),
    "td0": dict(num_envs=4, horizon=8, eval_trajectories=2),
    "ppo": dict(num_envs=4, horizon=8, rollout_steps=4, epochs=1, minibatch=8),
    "ddpg": dict(num_envs=4, horizon=8, warmup=4, buffer_size=64, batch_size=8),
    "td3": dict(num_envs=4, horizon=8, warmup=4, buffer_size=64, batch_size=8),
    "sac": dict(num_envs=4, horizon=8, warmup=1, buffer_size=64, batch_size=8),
    "ks_classical": dict(k_points=20, periods=60, burn_in=10, max_alm_iterations=2, policy_tol=1e-4),
    "aiyagari_stationary": dict(),
}
STEPS = 2
CASES = [(solver, env_id) for solver in agents.list_solvers() for env_id in ENV_IDS]


@pytest.mark.parametrize("solver_name, env_id", CASES)
def test_every_solver_trains_on_every_economy_it_supports(solver_name, env_id):
    torch.manual_seed(0)
    cls = agents.solvers.SOLVERS[solver_name]
    economy = hetagents_env.make_economy(env_id, n_agents=8, dtype=torch.float64)
    config = {k: v for k, v in TINY.get(solver_name, {}).items() if k in cls.Config.__dataclass_fields__}
    if "dtype" in cls.Config.__dataclass_fields__ and solver_name not in ("deepham",):
        config["dtype"] = "float64"
    if not cls.supports(economy):
        with pytest.raises(ConfigError) as err:
            agents.make_solver(solver_name, economy, config)
        message = str(err.value)
        assert solver_name in message and env_id in message and "lacks" in message
        for missing in cls.missing_requirements(economy):
            assert missing in message
        return
    solver = agents.make_solver(solver_name, economy, config)
    metrics = solver.train(steps=STEPS)
    assert isinstance(metrics, dict)
    state = economy.initial_state(3, economy.generator(1))
    with torch.no_grad():
        action = solver.policy(state)
    assert tuple(action.shape) == (3, economy.n_agents)
    assert bool(torch.isfinite(action).all())
    lo, hi = economy.action_low, economy.action_high
    assert bool((action >= lo).all()) and bool((action <= hi).all()), (float(action.min()), float(action.max()))
    if solver.value is not None:
        with torch.no_grad():
            value = solver.value(state)
        assert tuple(value.shape) == (3, economy.n_agents) and bool(torch.isfinite(value).all())
    assert math.isfinite(solver.wall_time)
    # the progress bar's metric names: distinct names, and some of them in what the solver logged
    names = cls.progress_metrics
    assert isinstance(names, tuple) and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
    if names:
        assert any(name in m for m in solver.history for name in names), (names, solver.history[-1:])


def test_every_economy_has_a_supporting_solver_of_each_family():
    for env_id in ENV_IDS:
        economy = hetagents_env.make_economy(env_id, n_agents=4)
        for name in ("euler", "deepham", "td0", "ppo", "ddpg", "td3", "sac"):
            assert agents.solvers.SOLVERS[name].supports(economy), (name, env_id)


@pytest.mark.parametrize("solver_name, env_id", [("euler", "Investment-v0"), ("deepham", "KrusellSmith-v0"),
                                                 ("ks_classical", "KrusellSmith-v0"),
                                                 ("aiyagari_stationary", "Aiyagari-v0")])
def test_the_progress_metrics_are_numbers_in_the_last_logged_metrics(solver_name, env_id):
    params = {"aggregate_shock": "none"} if solver_name == "aiyagari_stationary" else {}
    economy = hetagents_env.make_economy(env_id, n_agents=8, dtype=torch.float64, **params)
    solver = agents.make_solver(solver_name, economy, TINY[solver_name])
    solver.train(steps=STEPS)
    names = type(solver).progress_metrics
    assert names and all(isinstance(solver.history[-1][name], float) for name in names)


# ---------------------------------------------------------------------------------------------- the train template
class _Countdown(Solver):
    """The template around trivial hooks: a step counts, logs every ``log_every`` steps, and the solver is done after
    ``finish_at`` steps in all; ``plan`` is the config's own number of steps; every hook call is recorded."""

    progress_metrics = ("n",)

    def __init__(self, economy, *, log_every=3, finish_at=None, plan=None, step_seconds=0.0):
        super().__init__(economy)
        self.policy = CallablePolicy(economy.neutral_policy())
        self.log_every, self.finish_at, self.plan, self.step_seconds = log_every, finish_at, plan, step_seconds
        self.n, self.calls = 0, []

    def _begin(self, steps, budget):
        self.calls.append(("begin", steps, budget, self._clock is not None))
        return self.plan if steps is None else steps

    def _train_step(self):
        self.n += 1
        if self.step_seconds:
            time.sleep(self.step_seconds)
        return self._metrics() if self.n % self.log_every == 0 else None

    def _metrics(self):
        return {"n": self.n, "wall_time": self._elapsed()}

    def _done(self):
        return self.finish_at is not None and self.n >= self.finish_at

    def _end(self, done):
        self.calls.append(("end", done, self._clock is not None))

    def _finish(self, final):
        self.calls.append(("finish", self._clock is None))
        return {**final, "finished": True}


def countdown(**kwargs) -> _Countdown:
    return _Countdown(hetagents_env.make_economy("Investment-v0", n_agents=4), **kwargs)


def test_the_template_steps_logs_at_its_points_and_at_the_last_step():
    solver, ticks, seen = countdown(), [], []
    final = solver.train(7, callback=seen.append, progress=lambda done, total: ticks.append((done, total)))
    assert [m["n"] for m in solver.history] == [3, 6, 7] and seen == solver.history
    assert ticks == [(k, 7) for k in range(1, 8)]
    assert solver.calls == [("begin", 7, None, True), ("end", 7, True), ("finish", True)]
    assert final["n"] == 7 and final["finished"] and final["wall_time"] == solver.wall_time > 0
    assert final["cpu_time"] == solver.cpu_time and solver.metrics == final
    assert solver.history[-1] is not final  # the final metrics are a copy: the history keeps what was logged
    # the config's own plan (steps=None), and a plan of zero steps
    solver.plan = 2
    solver.train()
    assert solver.n == 9 and solver.history[-1]["n"] == 9
    solver.plan = 0
    final = solver.train()
    assert solver.n == 9 and solver.calls[-2:] == [("end", 0, True), ("finish", True)] and final["finished"]
    solver.train(0)
    assert solver.n == 9


def test_the_template_stops_when_the_solver_is_done_or_the_callback_asks():
    solver = countdown(finish_at=5)
    solver.train()  # no plan: the solver's own rule ends it
    assert solver.n == 5 and [m["n"] for m in solver.history] == [3, 5]  # its stop is logged, like any stop
    solver = countdown()
    solver.train(100, callback=lambda metrics: metrics["n"] >= 6)
    assert solver.n == 6 and [m["n"] for m in solver.history] == [3, 6]


def test_the_template_budget_counts_steps_not_callbacks_and_logs_the_last_step():
    solver = countdown(step_seconds=0.02, log_every=1000)
    solver.train(budget=0.1)
    assert 0.1 <= solver.wall_time < 1.0 and 1 <= solver.n <= 5  # 0.02 s a step: out of time after 5 at most
    assert [m["n"] for m in solver.history] == [solver.n]  # stopped by the budget: the last step is logged
    assert solver._deadline is None and not solver._out_of_time()
    solver = countdown(log_every=1)
    solver.train(3, budget=10.0, callback=lambda metrics: time.sleep(0.1))
    assert solver.n == 3 and solver.wall_time < 0.1  # the callback's time is not the solver's


def test_the_template_checks_its_arguments_and_stops_the_clock_on_an_error():
    solver = countdown()
    with pytest.raises(ValueError, match="steps"):
        solver.train(-1)
    with pytest.raises(ValueError, match="budget"):
        solver.train(budget=0)

    def fail(metrics):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        solver.train(5, callback=fail)
    assert solver._clock is None and solver._deadline is None
