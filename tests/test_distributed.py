"""Data-parallel training under torchrun (2 CPU processes, gloo): the Euler solver's loss curve and parameters equal
one process's on the union of the two processes' minibatches; DeepHAM's processes stay identical; the agent-sharded
DeepSets network equals the unsharded one; ``torchrun -m train`` writes one run directory with the judge.

Two torchrun launches (``tests/distributed_script.py`` once for the first three, the CLI once), ≈ 15 s each.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import hetagents_env
from agents import distributed
from agents.solvers import DeepHAMSolver, EulerSolver
from agents.value import regression_loss, value_dataset
from train.config import ConfigFileError, load_experiment
from train.run import run_experiment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from distributed_script import DEEPHAM, DEEPHAM_N, EULER, EULER_N, EULER_STEPS  # noqa: E402


# A worker killed by std::terminate from one of Gloo's C++ threads (seen once in three CI runs on 2026-11-30, not
# reproducible: rank 1 SIGABRT with only this line of output; Gloo's threads at process teardown are a known source)
GLOO_ABORT = "terminate called without an active exception"


def torchrun(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 and GLOO_ABORT in proc.stderr and "Traceback" not in proc.stderr.split(GLOO_ABORT)[0]:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)  # once more
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    path = tmp_path_factory.mktemp("distributed") / "result.pt"
    torchrun([str(ROOT / "tests" / "distributed_script.py"), str(path)])
    return torch.load(path, weights_only=False)


# ---------------------------------------------------------------------------------------------- the reference
def emulated_rank(monkeypatch, rank: int, solver_cls=EulerSolver, n_agents: int = EULER_N, config=EULER):
    """A solver as process ``rank`` of 2 builds it (its data stream), in this single process."""
    economy = hetagents_env.make_economy("Investment-v0", n_agents=n_agents, dtype=torch.float64)
    with monkeypatch.context() as m:
        m.setattr(distributed, "is_distributed", lambda: True)
        m.setattr(distributed, "rank", lambda: rank)
        return solver_cls(economy, config)


def union_batch_reference(ranks: list[EulerSolver], steps: int) -> tuple[list[float], torch.Tensor]:
    """One network, one optimiser (rank 0's, as DDP broadcasts rank 0's parameters), each step's minibatch the
    union of the ranks' minibatches (each rank shuffles its own data with its own generator every epoch)."""
    solver = ranks[0]
    cfg = solver.config
    n = solver.train_states.batch_size[0]
    losses = []
    while len(losses) < steps:
        shuffled = [r.train_states[torch.randperm(n, generator=r.rng)] for r in ranks]
        for start in range(0, n, cfg.batch_size):
            batch = torch.cat([s[start : start + cfg.batch_size] for s in shuffled])
            loss = solver.residual(batch).square().mean()
            solver.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            solver.optimizer.step()
            losses.append(float(loss.detach()))
            if len(losses) == steps:
                break
    return losses, torch.cat([p.detach().reshape(-1) for p in solver.policy.parameters()])


def test_two_processes_match_one_process_with_the_union_batch(result, monkeypatch):
    assert result["world_size"] == 2 and result["backend"] == "gloo"
    euler = result["euler"]
    ranks = [emulated_rank(monkeypatch, r) for r in range(2)]
    # each process simulated exactly its own seed stream's economies, and the two streams differ
    for r in range(2):
        torch.testing.assert_close(euler["data"][r], ranks[r].train_states["x"], rtol=0, atol=0)
    assert (euler["data"][0] - euler["data"][1]).abs().max() > 1e-3
    losses, params = union_batch_reference(ranks, EULER_STEPS)
    assert len(euler["global"]) == EULER_STEPS
    np.testing.assert_allclose(euler["global"], losses, rtol=1e-9, atol=0)
    torch.testing.assert_close(euler["params"][0], params, rtol=1e-9, atol=1e-12)
    # the processes' parameters are identical; the global loss is not one process's own loss
    torch.testing.assert_close(euler["params"][0], euler["params"][1], rtol=0, atol=0)
    for r in range(2):
        assert np.max(np.abs(np.array(euler["local"][r]) - losses) / np.array(losses)) > 1e-3
    # the logged metrics are the global ones
    assert euler["metrics"]["step"] == EULER_STEPS and np.isfinite(euler["metrics"]["val_mse"])


def test_a_wall_clock_budget_stops_every_process_at_the_same_step(result):
    first, second = result["euler"]["budget_steps"]
    assert first == second > EULER_STEPS


def data_parallel_value_fit(ranks: list[DeepHAMSolver]) -> None:
    """The value fit of 2 processes, emulated: each simulates half the economies on its own stream; the target
    statistics and the calibration are over the union; each step takes half the minibatch from each process's own
    shuffle and applies the mean of the two gradients (rank 0's critics and optimiser)."""
    main = ranks[0]
    cfg = dataclasses.replace(main.config.value, economies=math.ceil(main.config.value.economies / 2))
    data = []
    for r in ranks:
        start = r._draw_starts(cfg.economies, fresh=True, sigma=r.value_spread_at(r.step))
        data.append(value_dataset(r.sim, r._no_grad_policy, start, cfg, r.rng))
    targets = torch.cat([t for _, t in data])
    value = main.value
    value.set_target_stats(float(targets.mean()), float(targets.std()))
    ys = [(t - value.target_mean) / value.target_std for _, t in data]
    value.calibrate(torch.cat([s for s, _ in data]), torch.cat(ys))
    s, batch = data[0][0].batch_size[0], math.ceil(cfg.batch_size / 2)
    total, step = cfg.epochs * math.ceil(s / batch), 0
    value.requires_grad_(True)
    while step < total:
        orders = [torch.randperm(s, generator=r.rng) for r in ranks]
        for i in range(0, s, batch):
            losses = [regression_loss(value, st[o[i : i + batch]], y[o[i : i + batch]])
                      for (st, _), y, o in zip(data, ys, orders)]
            main.value_optimizer.zero_grad(set_to_none=True)
            (sum(losses) / 2).backward()
            main.value_optimizer.step()
            step += 1
            if step >= total:
                break
    value.requires_grad_(False)
    for r in ranks:
        r.value_fits += 1


def test_deepham_two_processes_match_the_averaged_gradient_of_both_streams(result, monkeypatch):
    """DeepHAM: each step's update is Adam on the mean of the two processes' gradients, each on its own start states
    and shocks; a value fit is one regression on the union of both processes' simulations (half the economies each),
    every minibatch half from each process's own shuffle, gradients averaged."""
    ranks = [emulated_rank(monkeypatch, r, DeepHAMSolver, DEEPHAM_N, DEEPHAM) for r in range(2)]
    main, other = ranks
    cfg = main.config

    def fit_value():
        other.actor.load_state_dict(main.actor.state_dict())  # rank 1 simulates its half under the same policy
        data_parallel_value_fit(ranks)
        other.value.load_state_dict(main.value.state_dict())

    fit_value()
    for step in range(cfg.steps):
        if step > 0 and step % cfg.value_every == 0:
            fit_value()
        for group in main.optimizer.param_groups:
            group["lr"] = main.lr_at(step)
        other.actor.load_state_dict(main.actor.state_dict())
        for solver in ranks:
            solver.actor.zero_grad(set_to_none=True)
            (-solver.objective(solver._draw_starts(cfg.batch_size))).backward()
        for p_main, p_other in zip(main.actor.parameters(), other.actor.parameters(), strict=True):
            p_main.grad = (p_main.grad + p_other.grad) / 2
        main.optimizer.step()
    d = result["deepham"]
    params = torch.cat([p.detach().reshape(-1) for p in main.actor.parameters()])
    torch.testing.assert_close(d["actor"][0], params, rtol=1e-9, atol=1e-12)
    value = torch.cat([p.detach().reshape(-1) for p in main.value.parameters()])
    torch.testing.assert_close(d["value"][0], value, rtol=1e-9, atol=1e-12)
    assert (d["actor"][0] - d["before"]).abs().max() > 1e-4  # it trained: the comparison is not vacuous


def test_a_data_parallel_value_fit_of_unequal_data_sets_fails_on_every_process(result):
    assert result["unequal"] == [result["unequal"][0]] * 2 and "same data-set size" in result["unequal"][0]


def test_deepham_processes_train_identical_networks_on_their_own_economies(result):
    d = result["deepham"]
    torch.testing.assert_close(d["actor"][0], d["actor"][1], rtol=0, atol=0)
    torch.testing.assert_close(d["value"][0], d["value"][1], rtol=0, atol=0)
    assert (d["actor"][0] - d["before"]).abs().max() > 0  # it trained
    assert (d["starts"][0] - d["starts"][1]).abs().max() > 1e-3  # each process its own start states
    m0, m1 = d["metrics"]
    assert m0["step"] == m1["step"] == 6
    for key in ("train_objective", "val_objective", "val_utility", "value_mse"):
        assert m0[key] == m1[key] and np.isfinite(m0[key])  # all-reduced / broadcast: the same on every process


@pytest.mark.parametrize("case", ["ks_mlp", "inv_relu", "inv_moments"])
def test_agent_sharded_deepsets_equals_the_unsharded_network(result, case):
    for out in result["sharded"]["all"]:  # each process: its own agents' outputs and the full gradient
        c = out[case]
        torch.testing.assert_close(c["sharded"], c["full"], rtol=1e-12, atol=1e-12)
        for g_sharded, g_full in zip(c["sharded_grads"], c["full_grads"], strict=True):
            torch.testing.assert_close(g_sharded, g_full, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------- the command line
def test_torchrun_cli_writes_one_run_directory_with_the_judge(tmp_path):
    config = {
        "env": {"id": "Investment-v0", "n_agents": 16},
        "solver": {"name": "euler", "network": {"phi": "identity", "rho_widths": [16, 16], "hidden_bias": True},
                   "train_trajectories": 2, "val_trajectories": 1, "horizon": 15, "batch_size": 8},
        "eval": {"trajectories": 2, "horizon": 7},
        "logger": {"mode": "disabled", "progress": False, "figures": False},
        "run": {"steps": 8, "require_convergence": False, "output_dir": str(tmp_path / "runs"), "dtype": "float64",
                "checkpoint_every": 4},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = torchrun(["-m", "train", str(path)])
    assert "global batch = 2 × 8 = 16" in proc.stdout
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1, runs
    run = runs[0]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["world_size"] == 2 and summary["step"] == 8
    judge = json.loads((run / "judge.json").read_text())
    assert np.isfinite(judge["euler_mse"])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000004.pt", "step_00000008.pt"]


def test_torchrun_refuses_resume_and_solvers_without_data_parallel_training(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun would; the checks run before any process group starts
    exp = load_experiment({"env": {"id": "Investment-v0", "n_agents": 8}, "solver": {"name": "euler"},
                           "run": {"output_dir": str(tmp_path)}})
    with pytest.raises(ConfigFileError, match="--resume is not supported under torchrun"):
        run_experiment(exp, resume=tmp_path)
    exp = load_experiment({"env": {"id": "KrusellSmith-v0", "n_agents": 8}, "solver": {"name": "ks_classical"},
                           "run": {"output_dir": str(tmp_path)}})
    with pytest.raises(ConfigFileError, match="solver.name: solver 'ks_classical' cannot train distributed.*deepham"):
        run_experiment(exp)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------- single process
def test_rank_seeds_are_reproducible_and_distinct():
    seeds = [distributed.rank_seed(s, r) for s in range(3) for r in range(4)]
    assert len(set(seeds)) == len(seeds) and all(0 <= s < 2**63 for s in seeds)
    assert distributed.rank_seed(7, 1) == distributed.rank_seed(7, 1)
    child = np.random.SeedSequence(7).spawn(2)[1].generate_state(2, np.uint32)
    assert distributed.rank_seed(7, 1) == ((int(child[0]) << 32) | int(child[1])) & (2**63 - 1)


def test_without_a_process_group_everything_is_a_no_op():
    assert not distributed.is_distributed() and distributed.world_size() == 1 and distributed.is_main()
    assert not distributed.init_from_env("cpu")  # WORLD_SIZE unset: nothing starts
    gen = torch.Generator().manual_seed(3)
    before = gen.get_state()
    distributed.reseed(gen, 5)
    assert torch.equal(gen.get_state(), before)
    x = torch.tensor([1.0, 2.0])
    assert distributed.all_reduce_mean(x) is x and distributed.all_reduce_mean(2.5) == 2.5
    assert distributed.any_flag(True) and not distributed.broadcast_flag(False)
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
