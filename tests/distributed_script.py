"""Run by ``tests/test_distributed.py`` under ``torchrun --nproc_per_node=2`` (gloo, CPU): data-parallel Euler and
DeepHAM training (its data-parallel value fits included) and the agent-sharded DeepSets network. Rank 0 writes what the test checks to ``argv[1]``
(``torch.save``); nothing is asserted here, so that a wrong result is reported by pytest with its numbers.

Not a test module itself (pytest collects ``test_*.py`` only).
"""

from __future__ import annotations

import copy
import sys

import torch
import torch.distributed as dist
from tensordict import TensorDict

import hetagents_env
from agents import distributed
from agents.networks import make_actor
from agents.solvers import DeepHAMSolver, EulerSolver
from agents.value import fit_ensemble, value_dataset

#: the Euler run: φ identity, N = 16, 2 paths × 16 states per rank, batch 8 per rank, 24 steps = 6 epochs, float64
EULER = {
    "network": {"phi": "identity", "rho_widths": [16, 16], "hidden_bias": True},
    "train_trajectories": 2, "val_trajectories": 1, "horizon": 15, "batch_size": 8, "lr": 1e-3,
    "lr_schedule": "constant", "val_threshold": 0.0, "val_every": 0, "init_level": "data_policy", "seed": 3,
}
EULER_N, EULER_STEPS = 16, 24

#: a tiny DeepHAM run on the investment economy (its price-taking defaults, shortened)
DEEPHAM = {
    "horizon": 8, "batch_size": 2, "steps": 6, "value_every": 3, "val_every": 2, "val_economies": 2,
    "value": {"economies": 4, "periods": 24, "horizon": 12, "start_every": 6, "epochs": 2, "batch_size": 8},
    "seed": 5,
}
DEEPHAM_N = 8


def gather(obj):
    """Every rank's ``obj``, in rank order (on every rank)."""
    out = [None] * distributed.world_size()
    dist.all_gather_object(out, obj)
    return out


def flat_params(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).clone()


def euler() -> dict:
    economy = hetagents_env.make_economy("Investment-v0", n_agents=EULER_N, dtype=torch.float64)
    solver = EulerSolver(economy, EULER)
    local, global_ = [], []

    def progress(done, total):  # every step, on every rank (a collective: fine, the ranks step together)
        local.append(float(solver.last_loss))
        global_.append(distributed.all_reduce_mean(float(solver.last_loss)))

    metrics = solver.train(EULER_STEPS, progress=progress)
    data = gather(solver.train_states["x"].clone())
    params = gather(flat_params(solver.policy))
    # a wall-clock budget: rank 0's clock decides, so both ranks stop after the same step (else: a deadlock)
    budget_steps = gather(solver.train(10**6, budget=0.5)["step"])
    return {"global": global_, "local": gather(local), "data": data, "params": params, "metrics": metrics,
            "state_dict": {k: v.clone() for k, v in solver.policy.state_dict().items()},
            "budget_steps": budget_steps}


def deepham() -> dict:
    economy = hetagents_env.make_economy("Investment-v0", n_agents=DEEPHAM_N, dtype=torch.float64)
    solver = DeepHAMSolver(economy, DEEPHAM)
    before = flat_params(solver.actor)
    metrics = solver.train()
    return {"actor": gather(flat_params(solver.actor)), "value": gather(flat_params(solver.value)),
            "starts": gather(solver.starts["x"].clone()), "before": before, "metrics": gather(metrics)}


def unequal_value_fit() -> str:
    """A data-parallel value fit whose processes hold data sets of different sizes: the error every process raises."""
    economy = hetagents_env.make_economy("Investment-v0", n_agents=DEEPHAM_N, dtype=torch.float64)
    solver = DeepHAMSolver(economy, DEEPHAM)
    cfg = solver.config.value
    states, targets = value_dataset(solver.sim, solver._no_grad_policy, solver._draw_starts(2, fresh=True), cfg)
    keep = targets.shape[0] - distributed.rank()  # rank 1 drops a state
    try:
        fit_ensemble(solver.value, states[:keep], targets[:keep], cfg, data_parallel=True)
    except ValueError as error:
        return str(error)
    return "no error"


def sharded() -> dict:
    """The agent-sharded DeepSets: each rank holds half the agents of every economy."""
    out = {}
    cases = {
        # Krusell–Smith: φ an MLP (tanh), own (k, e) and aggregate z inputs
        "ks_mlp": ("KrusellSmith-v0", {"phi": "mlp", "latent": 3, "phi_widths": [8], "rho_widths": [8],
                                       "activation": "tanh", "hidden_bias": True}),
        # investment: the published φ(ReLU) with its exact O(B·N) fast path (mean of x⁺ and x⁻)
        "inv_relu": ("Investment-v0", {"phi": "mlp", "latent": 2, "phi_widths": [8], "rho_widths": [8]}),
        "inv_moments": ("Investment-v0", {"phi": "moments", "rho_widths": [8]}),
    }
    r, w = distributed.rank(), distributed.world_size()
    for name, (env_id, config) in cases.items():
        economy = hetagents_env.make_economy(env_id, n_agents=16, dtype=torch.float64)
        state = economy.initial_state(3, economy.generator(0))
        n = economy.n_agents // w
        sl = slice(r * n, (r + 1) * n)
        shard = TensorDict({k: (v[:, sl] if v.dim() == 2 else v) for k, v in state.items()}, batch_size=[3])
        weights = torch.linspace(-1.0, 2.0, 3 * economy.n_agents, dtype=torch.float64).reshape(3, -1)
        full_net = make_actor(economy, config, seed=1)
        full = full_net(state)
        (full * weights).sum().backward()
        net = copy.deepcopy(full_net).shard_agents()
        net.zero_grad(set_to_none=True)
        mine = net(shard)
        (mine * weights[:, sl]).sum().backward()  # this shard's part of the same loss
        grads = [p.grad.clone() for p in net.parameters()]
        for g in grads:
            dist.all_reduce(g)  # the sum over the shards of their losses' gradients = the full loss's gradient
        out[name] = {"full": full.detach()[:, sl], "sharded": mine.detach(),
                     "full_grads": [p.grad.clone() for p in full_net.parameters()], "sharded_grads": grads}
    return {"rank": r, "cases": out, "all": gather(out)}


def main(path: str) -> None:
    torch.set_num_threads(1)
    assert distributed.init_from_env("cpu", timeout_minutes=2.0)
    try:
        result = {"world_size": distributed.world_size(), "backend": dist.get_backend(), "euler": euler(),
                  "deepham": deepham(), "sharded": sharded(), "unequal": gather(unequal_value_fit())}
        if distributed.is_main():
            torch.save(result, path)
        distributed.barrier()
    finally:
        distributed.destroy()


if __name__ == "__main__":
    main(sys.argv[1])
