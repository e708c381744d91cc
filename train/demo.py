"""Simulation demo: step both economies in batch and print aggregate statistics.

    python -m train.demo [--num-envs 256] [--steps 400] [--device cpu] [--seed 0]

Investment economy (N = 128 firms) under its exact LQ policy; Krusell–Smith economy (N = 50 households) under a
fixed consumption share that keeps capital near its ergodic level. Neither is trained: this shows the tensor core
at work (and its Euler residuals) until a solver is run with ``python -m train``.
"""

from __future__ import annotations

import argparse
import time

import torch

import hetagents_env


def _fmt(values: dict[str, torch.Tensor]) -> str:
    return "  ".join(f"{k}={float(v.mean()):.4f}" for k, v in values.items())


def investment_demo(num_envs: int, steps: int, device: str, seed: int) -> None:
    env = hetagents_env.make("Investment-v0", num_envs=num_envs, device=device, seed=seed)
    eco = env.economy
    h0, h1 = eco.lq_coefficients()
    env.reset()
    start = time.perf_counter()
    total_reward = torch.zeros(num_envs, device=env.device)
    for t in range(steps):
        _, reward, *_ = env.step(eco.lq_policy(env.state))
        total_reward += reward.mean(-1) * eco.params.beta**t
    elapsed = time.perf_counter() - start
    residual = eco.euler_residual(eco.lq_policy, env.state)
    print(f"Investment-v0: {num_envs} economies x {eco.n_agents} firms, {steps} steps in {elapsed:.2f}s "
          f"({num_envs * eco.n_agents * steps / elapsed / 1e6:.1f} M agent-steps/s)")
    print(f"  LQ policy u = {h0:.10f} + ({h1:.10f}) mean(X);  steady state mean X = {h0 / (eco.params.delta - h1):.4f}")
    print(f"  after {steps} steps: {_fmt(eco.aggregates(env.state))}")
    print(f"  discounted profit per firm {float(total_reward.mean()):.4f};  "
          f"Euler residual of the LQ policy: max |eps| = {float(residual.abs().max()):.2e}")


def krusell_smith_demo(num_envs: int, steps: int, device: str, seed: int, share: float = 0.066) -> None:
    env = hetagents_env.make("KrusellSmith-v0", num_envs=num_envs, device=device, seed=seed)
    eco = env.economy
    env.reset()
    action = torch.full((num_envs, eco.n_agents), share, device=env.device)
    z_prev, same_z, K_path, unemp = env.state["z"], 0, [], {0: [], 1: []}
    start = time.perf_counter()
    for _ in range(steps):
        env.step(action)
        z = env.state["z"]
        same_z += int((z == z_prev).sum())
        z_prev = z
        K_path.append(env.state["k"].mean(-1))
        u = 1.0 - env.state["e"].mean(-1)
        for s in (0, 1):
            unemp[s].append(u[z == s])
    elapsed = time.perf_counter() - start
    K = torch.stack(K_path[steps // 2 :])
    ur = {s: float(torch.cat(unemp[s]).mean()) for s in (0, 1)}
    residual = eco.euler_residual(lambda s: torch.full_like(s["k"], share), env.state)
    print(f"KrusellSmith-v0: {num_envs} economies x {eco.n_agents} households, {steps} steps in {elapsed:.2f}s "
          f"({num_envs * eco.n_agents * steps / elapsed / 1e6:.1f} M agent-steps/s)")
    print(f"  fixed consumption share {share}: mean K (2nd half) = {float(K.mean()):.3f}, sd over time = "
          f"{float(K.std(0).mean()):.3f};  P(Z stays) = {same_z / (steps * num_envs):.4f} (model 0.875)")
    print(f"  unemployment bad/good = {ur[0]:.4f} / {ur[1]:.4f} (model 0.10 / 0.04);  {_fmt(eco.aggregates(env.state))}")
    print(f"  Euler residual of this (untrained) rule: mean {float(residual.mean()):+.4f} "
          f"(> 0: saves too much, < 0: consumes too much)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    investment_demo(args.num_envs, args.steps, args.device, args.seed)
    krusell_smith_demo(args.num_envs, args.steps, args.device, args.seed)


if __name__ == "__main__":
    main()
