"""Simulation demo: step every registered economy in batch and print its aggregate statistics.

    python -m train.demo [--num-envs 256] [--steps 400] [--device cpu] [--seed 0] [--env Aiyagari-v0 ...]

Each economy runs under the policy it describes itself: its exact policy where it has one (the investment
economy's LQ policy), else its neutral policy (the constant share that keeps assets at their initial level).
Nothing is trained: this shows the tensor core at work, and the Euler residual of that policy, until a solver is
run with ``python -m train``.
"""

from __future__ import annotations

import argparse
import time

import torch

import hetagents_env


def _fmt(values: dict[str, torch.Tensor]) -> str:
    return "  ".join(f"{k}={float(v.mean()):.4f}" for k, v in values.items())


def demo(env_id: str, num_envs: int, steps: int, device: str, seed: int) -> dict[str, float]:
    """Simulate ``steps`` periods of ``num_envs`` economies of ``env_id``; print and return a summary."""
    env = hetagents_env.make(env_id, num_envs=num_envs, device=device, seed=seed)
    eco = env.economy
    exact = eco.exact_policy()
    policy, name = (exact, "exact policy") if exact is not None else (
        eco.neutral_policy(), f"neutral action {eco.neutral_action():.4f}")
    env.reset()
    total = torch.zeros(num_envs, device=env.device, dtype=env.dtype)
    start = time.perf_counter()
    for t in range(steps):
        _, reward, *_ = env.step(policy(env.state))
        total += reward.mean(-1) * eco.discount**t
    elapsed = time.perf_counter() - start
    residual = eco.euler_residual(policy, env.state)
    print(f"{env_id}: {num_envs} economies x {eco.n_agents} {eco.agent_name}s under its {name}, {steps} steps in "
          f"{elapsed:.2f}s ({num_envs * eco.n_agents * steps / elapsed / 1e6:.1f} M agent-steps/s)")
    print(f"  after {steps} steps: {_fmt(eco.aggregates(env.state))}")
    print(f"  discounted reward per agent {float(total.mean()):.4f};  Euler residual of the policy: mean "
          f"{float(residual.mean()):+.2e}, max |eps| {float(residual.abs().max()):.2e}")
    return {"discounted_reward": float(total.mean()), "max_abs_residual": float(residual.abs().max())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env", nargs="*", default=None, help="economies to run (default: every registered one)")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    for name in args.env or hetagents_env.list_envs():
        demo(name, args.num_envs, args.steps, args.device, args.seed)


if __name__ == "__main__":
    main()
