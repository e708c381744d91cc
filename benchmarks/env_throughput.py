"""Agent-steps per second of both economies: the batched torch core vs a straightforward numpy loop.

    python benchmarks/env_throughput.py [--quick] [--threads 2] [--device cpu] [--out benchmarks/results]

One *step* = draw the period's shocks + transition + per-agent reward, for B economies of N agents, measured eagerly
and with ``transition_and_reward`` fused by ``torch.compile`` (the ``EconomyEnv(compile=True)`` path). The baseline
does the same maths with numpy, looping over the economies in Python (what a first implementation looks like).
Writes ``env_throughput.json`` (machine, threads, torch version, date, every measurement) and ``env_throughput.md``
(the README table). Timings are medians over repeats; on a shared machine compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hetagents_env  # noqa: E402
from facade_overhead import measure_facades  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from facade_overhead import to_markdown as facades_markdown  # noqa: E402

SHAPES = [(384, 50), (1024, 128), (64, 10_000), (1, 1_000_000)]
QUICK_SHAPES = [(384, 50), (1024, 128), (64, 10_000)]


# ---------------------------------------------------------------------- numpy baselines (loop over economies)
def numpy_investment_step(x, u, rng, p):
    """x, u: (B, N) arrays. Returns (x', reward) computed one economy at a time."""
    x_next, reward = np.empty_like(x), np.empty_like(x)
    for b in range(x.shape[0]):
        w = rng.standard_normal(x.shape[1])
        omega = rng.standard_normal()
        price = p.alpha0 - p.alpha1 * np.mean(x[b] ** p.nu)
        reward[b] = price * x[b] - 0.5 * p.gamma * u[b] ** 2
        x_next[b] = (1 - p.delta) * x[b] + u[b] + p.sigma * w + p.eta * omega
    return x_next, reward


def numpy_ks_step(k, e, z, share, rng, eco):
    """k, e, share: (B, N); z: (B,) int. Returns (k', e', z', reward) one economy at a time."""
    p = eco.params
    zv, lab, tax = eco.z_values.numpy(), eco.labour.numpy(), eco.tax.numpy()
    prob_z, prob_u = eco.prob_z.numpy(), eco.prob_unemployed_next.numpy()
    k_next, e_next, z_next, reward = np.empty_like(k), np.empty_like(e), np.empty_like(z), np.empty_like(k)
    for b in range(k.shape[0]):
        zb = z[b]
        ratio = k[b].mean() / lab[zb]
        R = 1 - p.delta + zv[zb] * p.alpha * ratio ** (p.alpha - 1)
        w = zv[zb] * (1 - p.alpha) * ratio**p.alpha
        cash = R * k[b] + w * ((1 - tax[zb]) * p.lbar * e[b] + p.mu * (1 - e[b]))
        floor = np.minimum(0.25 * cash, p.c_min)
        c = np.minimum(np.maximum(share[b] * cash, floor), cash - floor)
        reward[b] = np.log(c)
        k_next[b] = cash - c
        z_next[b] = int(rng.random() >= prob_z[zb, 0])
        p_u = prob_u[zb, z_next[b]][e[b].astype(int)]
        e_next[b] = (rng.random(k.shape[1]) >= p_u).astype(k.dtype)
    return k_next, e_next, z_next, reward


# ---------------------------------------------------------------------- timing
def _median_time(fn, repeats: int, min_time: float = 0.2) -> float:
    fn()  # warm-up
    inner = 1
    while True:  # enough inner iterations to last ~min_time / repeats
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        if time.perf_counter() - t > min_time / repeats or inner >= 1024:
            break
        inner *= 2
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(
    env_id: str, b: int, n: int, device: str, repeats: int, numpy_baseline: bool, compile_step: bool = True
) -> dict:
    """Median seconds per step (and agent-steps/s) of the eager step, the ``torch.compile``-d step (shocks drawn
    eagerly from the generator, transition + reward fused by inductor) and the numpy loop."""
    eco = hetagents_env.make_economy(env_id, n_agents=n, device=device)
    gen = eco.generator(0)
    state = eco.initial_state(b, gen)
    if env_id == "Investment-v0":
        action = eco.lq_policy(state).contiguous()
    else:
        action = torch.full((b, n), 0.066, device=eco.device, dtype=eco.dtype)

    compiled = torch.compile(eco.transition_and_reward, dynamic=False)

    def torch_step(fused=eco.transition_and_reward):
        with torch.no_grad():
            fused(state, action, eco.sample_shocks(state, gen))
        _sync(eco.device)

    row = {"env": env_id, "B": b, "N": n, "agents": b * n, "device": str(eco.device)}
    row["torch_s"] = _median_time(torch_step, repeats)
    row["torch_agent_steps_per_s"] = b * n / row["torch_s"]
    if compile_step:
        start = time.perf_counter()
        torch_step(compiled)
        row["compile_s"] = time.perf_counter() - start
        row["compiled_s"] = _median_time(lambda: torch_step(compiled), repeats)
        row["compiled_agent_steps_per_s"] = b * n / row["compiled_s"]
    if numpy_baseline:
        rng = np.random.default_rng(0)
        if env_id == "Investment-v0":
            x, u = state["x"].cpu().numpy(), action.cpu().numpy()
            np_step = lambda: numpy_investment_step(x, u, rng, eco.params)  # noqa: E731
        else:
            k, e, z = (state[key].cpu().numpy() for key in ("k", "e", "z"))
            s = action.cpu().numpy()
            np_step = lambda: numpy_ks_step(k, e, z, s, rng, eco)  # noqa: E731
        row["numpy_loop_s"] = _median_time(np_step, max(3, repeats // 2))
        row["numpy_agent_steps_per_s"] = b * n / row["numpy_loop_s"]
        row["speedup"] = row["numpy_loop_s"] / min(row["torch_s"], row.get("compiled_s", float("inf")))
    return row


def to_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Env step throughput ({m['device']}, {m['threads']} torch thread(s), torch {m['torch']}, {result['date']}; "
        f"load average before/after {m['load_average_before'][0]:.1f}/{m['load_average_after'][0]:.1f} on 2 shared "
        "cores): agent-steps/s of shocks + transition + reward.",
        "",
        "| economy | B | N | torch eager (M agent-steps/s) | torch.compile (M/s) | numpy loop (M/s) | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def mega(r: dict, key: str) -> str:
        return f"{r[key] / 1e6:.1f}" if key in r else "–"

    for r in result["rows"]:
        spd = f"{r['speedup']:.0f}×" if "speedup" in r else "–"
        lines.append(
            f"| {r['env']} | {r['B']} | {r['N']:,} | {mega(r, 'torch_agent_steps_per_s')} | "
            f"{mega(r, 'compiled_agent_steps_per_s')} | {mega(r, 'numpy_agent_steps_per_s')} | {spd} |"
        )
    if "facades" in result:
        lines += ["", "Overhead of each interface over the core (same B, N):", "", facades_markdown(result["facades"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the largest shape, fewer repeats")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--no-numpy", action="store_true", help="skip the numpy baseline")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    parser.add_argument("--no-facades", action="store_true", help="skip the facade-overhead table")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (5 if args.quick else 11)
    device = torch.device(args.device)
    machine = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_before": list(os.getloadavg()),
    }
    print(f"torch {torch.__version__}, device {args.device}, torch.get_num_threads() = {torch.get_num_threads()}")
    rows = []
    for env_id in ("Investment-v0", "KrusellSmith-v0"):
        for b, n in QUICK_SHAPES if args.quick else SHAPES:
            row = measure(
                env_id, b, n, args.device, repeats, numpy_baseline=not args.no_numpy, compile_step=not args.no_compile
            )
            rows.append(row)
            print(
                f"{env_id:16s} B={b:5d} N={n:8d}: torch {row['torch_agent_steps_per_s'] / 1e6:8.1f} M/s"
                + (f"  compiled {row['compiled_agent_steps_per_s'] / 1e6:8.1f} M/s" if "compiled_s" in row else "")
                + (f"  numpy loop {row['numpy_agent_steps_per_s'] / 1e6:7.2f} M/s  x{row['speedup']:.0f}"
                   if "speedup" in row else ""),
                flush=True,
            )
    machine["load_average_after"] = list(os.getloadavg())
    result = {"benchmark": "env_throughput", "date": date.today().isoformat(), "machine": machine, "rows": rows}
    if not args.no_facades:  # the overhead of each library facade over the core at (B, N) = (64, 128)
        result["facades"] = measure_facades(64, 128, steps=20 if args.quick else 50, threads=args.threads,
                                            repeats=3 if args.quick else 7, device=args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    (args.out / f"env_throughput{suffix}.json").write_text(json.dumps(result, indent=2))
    (args.out / f"env_throughput{suffix}.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return result


if __name__ == "__main__":
    main()
