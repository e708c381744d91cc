"""Every registered solver on every registered economy: it trains a few steps and its policy gives valid actions,
or — where its ``requires`` are not met — it is refused with an error naming the solver, the economy and what is
missing. A new economy or a new solver is covered here the moment it is registered (tiny settings per solver,
none per economy: the solvers read everything else from the economy's self-description)."""

from __future__ import annotations

import math

import pytest
import torch

import agents
import hetagents_env
from agents.config import ConfigError
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


def test_every_economy_has_a_supporting_solver_of_each_family():
    for env_id in ENV_IDS:
        economy = hetagents_env.make_economy(env_id, n_agents=4)
        for name in ("euler", "deepham", "td0", "ppo", "ddpg", "td3", "sac"):
            assert agents.solvers.SOLVERS[name].supports(economy), (name, env_id)
