"""Agent-steps per second of both economies: the batched torch core vs a straightforward numpy loop.

    python benchmarks/env_throughput.py [--quick] [--threads 2] [--device cpu] [--out benchmarks/results]

One *step* = draw the period's shocks + transition + per-agent reward, for B economies of N agents. Columns
(agent-steps per second = B·N / seconds per step):

* **eager (before)**: ``economy.transition_and_reward(state, action, economy.sample_shocks(state, gen))`` — fresh
  shock arrays every step, every elementwise op a separate pass over memory (the step before issue #9);
* **eager + shock buffer**: :class:`hetagents_env.FusedStep` without compile — shocks drawn in place into a buffer
  allocated once;
* **fused / compiled (after)**: ``FusedStep(compile=True)``, what ``EconomyEnv(compile=True)`` runs — the buffer
  plus ``transition_and_reward`` fused by ``torch.compile`` (inductor);
* a numpy baseline doing the same maths looping over the economies in Python (what a first implementation looks like).

All columns draw the same random numbers from the same generator state (tests/test_fused_step.py). Writes
``env_throughput.json`` (machine, threads, torch version, date, every measurement) and ``env_throughput.md`` (the
README table); ``--quick`` writes ``env_throughput_quick.*``, a CUDA run ``env_throughput_cuda.*``. Timings are
medians over repeats; on a shared machine compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hetagents_env  # noqa: E402
from _common import (  # noqa: E402
    RESULTS, finish_machine, machine_info, result_stem, setup_torch, step_inputs, write_results,
)
from facade_overhead import measure_facades  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from facade_overhead import to_markdown as facades_markdown  # noqa: E402

SHAPES = [(384, 50), (1024, 128), (64, 10_000), (1, 1_000_000)]
QUICK_SHAPES = [(384, 50), (1024, 128), (64, 10_000)]


# ---------------------------------------------------------------------- numpy baselines (loop over economies)
def numpy_investment_step(arrays, u, rng, eco):
    """state arrays {"x": (B, N)}, u: (B, N). Returns (x', reward) computed one economy at a time."""
    x, p = arrays["x"], eco.params
    x_next, reward = np.empty_like(x), np.empty_like(x)
    for b in range(x.shape[0]):
        w = rng.standard_normal(x.shape[1])
        omega = rng.standard_normal()
        price = p.alpha0 - p.alpha1 * np.mean(x[b] ** p.nu)
        reward[b] = price * x[b] - 0.5 * p.gamma * u[b] ** 2
        x_next[b] = (1 - p.delta) * x[b] + u[b] + p.sigma * w + p.eta * omega
    return x_next, reward


def numpy_ks_step(arrays, share, rng, eco):
    """state arrays {"k", "e": (B, N); "z": (B,) int}, share: (B, N). Returns (k', e', z', reward) one economy at a
    time."""
    k, e, z = arrays["k"], arrays["e"], arrays["z"]
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


#: the hand-written numpy loops the tensor core is compared with, by economy (others: no numpy column)
NUMPY_LOOPS = {"Investment-v0": numpy_investment_step, "KrusellSmith-v0": numpy_ks_step}


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
    """Median seconds per step (and agent-steps/s) of the eager step (before), the step with a preallocated shock
    buffer, the fused ``torch.compile``-d step (after; shock buffer + transition and reward fused by inductor) and
    the numpy loop."""
    eco, gen, state, action = step_inputs(env_id, b, n, device, ks_share=0.066)

    def before_step():  # fresh shock arrays, eager maths
        with torch.no_grad():
            eco.transition_and_reward(state, action, eco.sample_shocks(state, gen))
        _sync(eco.device)

    def after_step(step: hetagents_env.FusedStep):
        with torch.no_grad():
            step(state, action, gen)
        _sync(eco.device)

    row = {"env": env_id, "B": b, "N": n, "agents": b * n, "device": str(eco.device)}
    row["torch_s"] = _median_time(before_step, repeats)
    row["torch_agent_steps_per_s"] = b * n / row["torch_s"]
    buffered = hetagents_env.FusedStep(eco, b, compile=False)
    row["buffered_s"] = _median_time(lambda: after_step(buffered), repeats)
    row["buffered_agent_steps_per_s"] = b * n / row["buffered_s"]
    if compile_step:
        fused = hetagents_env.FusedStep(eco, b, compile=True)
        start = time.perf_counter()
        after_step(fused)
        row["compile_s"] = time.perf_counter() - start
        row["compiled_s"] = _median_time(lambda: after_step(fused), repeats)
        row["compiled_agent_steps_per_s"] = b * n / row["compiled_s"]
        row["gain"] = row["torch_s"] / row["compiled_s"]
    numpy_loop = NUMPY_LOOPS.get(env_id)
    if numpy_baseline and numpy_loop is not None:
        rng = np.random.default_rng(0)
        arrays = {key: value.cpu().numpy() for key, value in state.items()}
        np_step = lambda: numpy_loop(arrays, action.cpu().numpy(), rng, eco)  # noqa: E731
        row["numpy_loop_s"] = _median_time(np_step, max(3, repeats // 2))
        row["numpy_agent_steps_per_s"] = b * n / row["numpy_loop_s"]
        row["speedup"] = row["numpy_loop_s"] / min(row["torch_s"], row.get("compiled_s", float("inf")))
    return row


def to_markdown(result: dict) -> str:
    """The README table (the machine line is added by ``_common.write_results``)."""
    lines = [
        "Env step throughput: million agent-steps/s of shocks + transition + reward. *eager (before)*: fresh shock "
        "arrays and eager maths; *+ shock buffer*: shocks drawn in place (`FusedStep`); *fused/compiled (after)*: "
        "the buffer + `torch.compile` of `transition_and_reward` (`EconomyEnv(compile=True)`); gain = after / before; "
        "speed-up = best torch / numpy loop over economies.",
        "",
        "| economy | B | N | eager (before) | + shock buffer | fused/compiled (after) | gain | numpy loop | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def mega(r: dict, key: str) -> str:
        return f"{r[key] / 1e6:.1f}" if key in r else "–"

    for r in result["rows"]:
        spd = f"{r['speedup']:.0f}×" if "speedup" in r else "–"
        gain = r.get("gain", r["torch_s"] / r["compiled_s"] if "compiled_s" in r else None)
        lines.append(
            f"| {r['env']} | {r['B']} | {r['N']:,} | {mega(r, 'torch_agent_steps_per_s')} | "
            f"{mega(r, 'buffered_agent_steps_per_s')} | {mega(r, 'compiled_agent_steps_per_s')} | "
            f"{'–' if gain is None else f'{gain:.1f}×'} | {mega(r, 'numpy_agent_steps_per_s')} | {spd} |"
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
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    device = setup_torch(args.threads, args.device)
    repeats = args.repeats or (5 if args.quick else 11)
    machine = machine_info(device)
    print(f"torch {torch.__version__}, device {args.device}, torch.get_num_threads() = {torch.get_num_threads()}")
    rows = []
    for economy_id in hetagents_env.list_envs():
        for b, n in QUICK_SHAPES if args.quick else SHAPES:
            row = measure(
                economy_id, b, n, args.device, repeats, numpy_baseline=not args.no_numpy, compile_step=not args.no_compile
            )
            rows.append(row)
            print(
                f"{economy_id:16s} B={b:5d} N={n:8d}: eager {row['torch_agent_steps_per_s'] / 1e6:8.1f} M/s"
                f"  buffer {row['buffered_agent_steps_per_s'] / 1e6:8.1f} M/s"
                + (f"  fused {row['compiled_agent_steps_per_s'] / 1e6:8.1f} M/s" if "compiled_s" in row else "")
                + (f"  numpy loop {row['numpy_agent_steps_per_s'] / 1e6:7.2f} M/s  x{row['speedup']:.0f}"
                   if "speedup" in row else ""),
                flush=True,
            )
    result = {"benchmark": "env_throughput", "date": machine["date"][:10], "quick": args.quick, "machine": machine,
              "rows": rows}
    if not args.no_facades:  # the overhead of each library facade over the core at (B, N) = (64, 128)
        result["facades"] = measure_facades(64, 128, steps=20 if args.quick else 50, threads=args.threads,
                                            repeats=3 if args.quick else 7, device=args.device)
    finish_machine(machine)
    paths = write_results(args.out, result_stem("env_throughput", args.quick, device), result, to_markdown(result))
    print(paths[1].read_text())
    print("wrote", *paths)
    return result


if __name__ == "__main__":
    main()
