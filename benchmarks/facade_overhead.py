"""Overhead of the library facades over the core: agent-steps/s through each interface at the same (B, N).

    python benchmarks/facade_overhead.py [--b 64] [--n 128] [--steps 50] [--repeats 7] [--threads 2] [--quick]

Rows per economy: the core ``EconomyEnv`` and, at the same ``B``, the Gymnasium vector env (numpy out, and torch
out), the native TorchRL env (``step_and_maybe_reset``, what collectors call) and TorchRL's ``GymWrapper`` around
the Gymnasium facade; then, with one economy (their natural unit), the core at ``B = 1``, the single Gymnasium
``Env`` and the PettingZoo ``ParallelEnv`` (per-agent dicts). ``overhead`` = core agent-steps/s at the same ``B``
divided by the facade's (1.0 = free). A step is a fixed valid action (no policy): only the env is timed.

Writes ``benchmarks/results/facade_overhead.json`` and ``.md`` (``facade_overhead_quick.*`` with ``--quick``).
``measure_facades`` is also called by ``env_throughput.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hetagents_env  # noqa: E402
from _common import RESULTS, finish_machine, machine_info, result_stem, setup_torch, write_results  # noqa: E402

ENV_IDS = tuple(hetagents_env.list_envs())  # every registered economy


def _median_step_time(step: Callable[[], None], steps: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean seconds per call of ``step`` over ``steps`` calls (after a warm-up)."""
    for _ in range(min(steps, 5)):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def _steppers(env_id: str, b: int, n: int, device: str) -> dict[str, tuple[int, Callable[[], Callable[[], None]]]]:
    """api name -> (number of economies, factory returning a zero-argument step function on a reset env)."""
    value = hetagents_env.make_economy(env_id, n_agents=2).neutral_action()  # a sensible constant action
    common = {"n_agents": n, "device": device, "seed": 0}

    def core(num_envs: int):
        def build():
            env = hetagents_env.make(env_id, num_envs=num_envs, **common)
            env.reset()
            action = torch.full((num_envs, n), value, dtype=env.dtype, device=env.device)
            return lambda: env.step(action)

        return build

    def gym_vector(return_torch: bool):
        def build():
            env = hetagents_env.make(env_id, api="gymnasium", num_envs=b, return_torch=return_torch, **common)
            env.reset()
            action = torch.full((b, n), value, dtype=env.economy.dtype, device=env.economy.device)
            action = action if return_torch else action.cpu().numpy()
            return lambda: env.step(action)

        return build

    def gym_single():
        from hetagents_env.interfaces.gymnasium import EconomyGymEnv

        env = EconomyGymEnv(env_id, **common)
        env.reset()
        action = env.action_space.sample() * 0 + value
        return lambda: env.step(action)

    def pettingzoo():
        env = hetagents_env.make(env_id, api="pettingzoo", **common)
        env.reset()
        actions = {agent: env.action_space(agent).sample() * 0 + value for agent in env.possible_agents}
        return lambda: env.step(actions)

    def torchrl_loop(env):
        key = env.action_keys[0]  # ("agents", "action") (B, N, 1) natively; "action" (B, N) through GymWrapper
        spec = env.full_action_spec[key]
        action = torch.full(spec.shape, value, dtype=spec.dtype, device=spec.device)
        state = {"td": env.reset().set(key, action)}

        def step():
            _, td = env.step_and_maybe_reset(state["td"])
            state["td"] = td.set(key, action)

        return step

    def torchrl_native():
        return torchrl_loop(hetagents_env.make(env_id, api="torchrl", num_envs=b, **common))

    def torchrl_gym_wrapper():
        from torchrl.envs import GymWrapper

        # torchrl's GymWrapper takes SAME_STEP or DISABLED autoreset, not Gymnasium's default NEXT_STEP
        return torchrl_loop(GymWrapper(hetagents_env.make(env_id, api="gymnasium", num_envs=b,
                                                          autoreset_mode="DISABLED", **common)))

    return {
        "core": (b, core(b)),
        "gymnasium-vector (numpy)": (b, gym_vector(False)),
        "gymnasium-vector (torch)": (b, gym_vector(True)),
        "torchrl": (b, torchrl_native),
        "torchrl GymWrapper(gymnasium)": (b, torchrl_gym_wrapper),
        "core (B=1)": (1, core(1)),
        "gymnasium Env": (1, gym_single),
        "pettingzoo": (1, pettingzoo),
    }


def measure_facades(
    b: int = 64,
    n: int = 128,
    steps: int = 50,
    threads: int | None = None,
    repeats: int = 7,
    env_ids: tuple[str, ...] = ENV_IDS,
    device: str = "cpu",
    apis: tuple[str, ...] | None = None,
) -> list[dict]:
    """Agent-steps/s through the core and each facade; one row per (economy, api), medians of ``repeats``.

    ``threads`` sets ``torch.set_num_threads`` (``None``: leave it). Rows: ``env``, ``api``, ``B`` (economies
    stepped: ``b``, or 1 for the single-economy interfaces), ``N``, ``steps``, ``repeats``, ``threads``,
    ``s_per_step``, ``agent_steps_per_s`` and ``overhead`` (core agent-steps/s at the same ``B`` / this row's).
    ``apis`` restricts the rows (names as in the table; the matching core rows are always measured).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    rows = []
    with torch.no_grad():
        for economy_id in env_ids:
            core_rate: dict[int, float] = {}
            for api, (num_envs, build) in _steppers(economy_id, b, n, device).items():
                if apis is not None and api not in apis and not api.startswith("core"):
                    continue
                seconds = _median_step_time(build(), steps, repeats)
                rate = num_envs * n / seconds
                if api.startswith("core"):
                    core_rate[num_envs] = rate
                rows.append(
                    {
                        "env": economy_id, "api": api, "B": num_envs, "N": n, "steps": steps, "repeats": repeats,
                        "threads": torch.get_num_threads(), "device": device, "s_per_step": seconds,
                        "agent_steps_per_s": rate, "overhead": core_rate[num_envs] / rate,
                    }
                )
    return rows


def to_markdown(rows: list[dict]) -> str:
    """The README table of :func:`measure_facades` rows."""
    lines = [
        "| economy | interface | B | N | agent-steps/s | µs/step | overhead vs core |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['env']} | {r['api']} | {r['B']} | {r['N']} | {r['agent_steps_per_s']:,.0f} | "
            f"{r['s_per_step'] * 1e6:,.0f} | {r['overhead']:.1f}× |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--b", type=int, default=64, help="economies per batch (B)")
    parser.add_argument("--n", type=int, default=128, help="agents per economy (N)")
    parser.add_argument("--steps", type=int, default=50, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="20 steps x 3 repeats")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    steps, repeats = (20, 3) if args.quick else (args.steps, args.repeats)
    device = setup_torch(args.threads, args.device)
    machine = machine_info(device)
    print(f"torch {torch.__version__}, device {args.device}, torch.get_num_threads() = {torch.get_num_threads()}")
    rows = measure_facades(args.b, args.n, steps, args.threads, repeats, device=args.device)
    print(to_markdown(rows))
    result = {"benchmark": "facade_overhead", "date": machine["date"][:10], "quick": args.quick,
              "machine": finish_machine(machine), "rows": rows}
    paths = write_results(args.out, result_stem("facade_overhead", args.quick, device), result,
                          f"Overhead of each interface over the core (same B, N):\n\n{to_markdown(rows)}")
    print("wrote", *paths)
    return rows


if __name__ == "__main__":
    main()
