"""Scaling in the number of agents N: the env step, and the Euler solver on the linear investment economy.

    python benchmarks/scaling.py [--quick] [--device cpu|cuda] [--threads 1] [--rerun-kahou] [--seeds 3]
                                 [--budget 300] [--skip-env] [--skip-euler] [--out benchmarks/results]

1. **Env step** (``scaling_env.png``): seconds per step (shocks + transition + reward) of B = 8 economies against
   N = 10², …, 10⁶ (quick: up to 10⁵), both economies, *eager (before)* = fresh shock arrays and eager maths and
   *fused (after)* = :class:`hetagents_env.FusedStep` with ``torch.compile`` (compilation excluded); medians as
   in ``env_throughput.py``; log-log.
2. **Euler solver** (``scaling_euler.png``): the Kahou et al. φ(ReLU) run (``kahou_tables.py``, recipe ``tuned``:
   published network, ν = 1) at N ∈ {128, 1024, 8192, 65536}: wall time of data simulation + training and the
   relative policy error against the exact LQ solution, medians over the successful seeds (the published success
   rule of ``kahou_tables.py``). N ≤ 8192 is read from ``kahou_tables.json`` (10 seeds, the same code) unless
   ``--rerun-kahou``; N = 65536 is run here with ``--seeds`` seeds, each capped at ``--budget`` seconds of
   training (a seed stopped by the budget is recorded as such, ``budget_hit``). Quick: N ∈ {128, 1024, 8192}, one
   seed, run here, 120 s budget.

Writes ``scaling.json``, ``scaling.md`` (with the figures embedded) and the two PNGs (``scaling_quick*`` with
``--quick``, ``scaling_cuda*`` on a GPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import hetagents_env  # noqa: E402
from _common import (  # noqa: E402
    RESULTS, finish_machine, machine_info, result_stem, setup_torch, step_inputs, write_results,
)
from env_throughput import _median_time, _sync  # noqa: E402

ENV_IDS = ("Investment-v0", "KrusellSmith-v0")
ENV_B = 8
ENV_NS = [10**2, 10**3, 10**4, 10**5, 10**6]
QUICK_ENV_NS = [10**2, 10**3, 10**4, 10**5]
EULER_NS = [128, 1024, 8192, 65536]
QUICK_EULER_NS = [128, 1024, 8192]
#: kahou_tables.py rows holding the φ(ReLU), ν = 1 runs at each N
KAHOU_ROWS = {128: "linear-relu", 1024: "scaling-relu-N1024", 8192: "scaling-relu-N8192"}


# ---------------------------------------------------------------------- env step vs N
def env_step_times(env_id: str, b: int, n: int, device: str, repeats: int) -> dict:
    """Median seconds per step, eager (before) and fused/compiled (after), for B = ``b``, N = ``n``."""
    eco, gen, state, action = step_inputs(env_id, b, n, device)
    fused = hetagents_env.FusedStep(eco, b, compile=True)

    def eager():
        with torch.no_grad():
            eco.transition_and_reward(state, action, eco.sample_shocks(state, gen))
        _sync(eco.device)

    def after():
        with torch.no_grad():
            fused(state, action, gen)
        _sync(eco.device)

    start = time.perf_counter()
    after()
    compile_s = time.perf_counter() - start
    row = {"env": env_id, "B": b, "N": n, "agents": b * n, "eager_s": _median_time(eager, repeats),
           "fused_s": _median_time(after, repeats), "compile_s": compile_s}
    row["gain"] = row["eager_s"] / row["fused_s"]
    return row


def plot_env(rows: list[dict], path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for env_id, color in zip(ENV_IDS, ("C0", "C1")):
        sel = [r for r in rows if r["env"] == env_id]
        if not sel:
            continue
        ns = [r["N"] for r in sel]
        ax.loglog(ns, [r["eager_s"] for r in sel], "o--", color=color, label=f"{env_id} eager (before)")
        ax.loglog(ns, [r["fused_s"] for r in sel], "s-", color=color, label=f"{env_id} fused/compiled (after)")
    ax.set_xlabel("agents per economy N")
    ax.set_ylabel(f"seconds per step (B = {ENV_B})")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------- Euler solver vs N
def kahou_rows(path: Path) -> dict[int, dict]:
    """N -> the row's runs and summary from the recipe-``tuned`` section of a kahou_tables result file."""
    if not path.exists():
        return {}
    found: dict[int, dict] = {}
    for section in json.loads(path.read_text()).get("sections", []):
        if section["meta"].get("recipe") != "tuned":
            continue
        for n, name in KAHOU_ROWS.items():
            if name in section["rows"] and n not in found:
                entry = section["rows"][name]
                found[n] = {"runs": entry["runs"], "source": f"{path.name} (row {name}, {section['meta']['date']})"}
    return found


def euler_row(n: int, runs: list[dict], source: str) -> dict:
    """Per-N summary: medians over the successful seeds (wall time, LQ relative error), success rate, budget."""
    import kahou_tables

    summary = kahou_tables.summarise(runs)
    return {"N": n, "source": source, "seeds": len(runs), "success_rate": summary["success_rate"],
            "time_s": summary["time"], "time_all_s": summary["time_all"], "rel_error": summary["rel"],
            "rel_error_all": kahou_tables.median(runs, "rel"), "val_mse": summary["val"],
            "budget_hit": sum(bool(r.get("budget_hit")) for r in runs), "budget": runs[0].get("budget"),
            "runs": runs}


def run_euler(n: int, seeds: int, budget: float | None) -> list[dict]:
    """Train and judge the Kahou φ(ReLU) row at N = ``n`` for seeds 1..``seeds`` (kahou_tables.run_one)."""
    import kahou_tables

    row = {"nu": 1.0, "n": n, "phi": "mlp"}
    runs = []
    for seed in range(1, seeds + 1):
        run = kahou_tables.run_one(f"scaling-relu-N{n}", row, "tuned", seed, test_trajectories=32, budget=budget)
        runs.append(run)
        print(f"  Euler N={n} seed {seed}: success={run['success']} time={run['time']:.1f}s "
              f"rel={100 * run['rel']:.3f}% budget_hit={run['budget_hit']}", flush=True)
    return runs


def plot_euler(rows: list[dict], path: Path, title: str) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.6, 3.8))
    ns = [r["N"] for r in rows]
    times = [r["time_s"] if r["time_s"] is not None else r["time_all_s"] for r in rows]
    errors = [r["rel_error"] if r["rel_error"] is not None else r["rel_error_all"] for r in rows]
    ax1.loglog(ns, times, "o-")
    ax1.set_xlabel("firms N")
    ax1.set_ylabel("wall time (s): simulation + training")
    ax2.semilogx(ns, [float("nan") if e is None else 100 * e for e in errors], "o-", color="C2")
    ax2.set_xlabel("firms N")
    ax2.set_ylabel("relative error vs exact LQ policy (%)")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.grid(True, which="both", alpha=0.3)
    for r, t, e in zip(rows, times, errors):
        if r["budget_hit"]:
            ax1.annotate(f"{r['budget_hit']}/{r['seeds']} hit {r['budget']:.0f} s budget", (r["N"], t), fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------- report
def to_markdown(result: dict, stem: str) -> str:
    lines = []
    if result.get("env"):
        lines += [
            f"**Env step vs N** (B = {ENV_B}; seconds per step of shocks + transition + reward; eager (before) vs "
            "`FusedStep(compile=True)` (after)):",
            "",
            "| economy | N | B·N | eager (ms) | fused (ms) | gain |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in result["env"]:
            lines.append(f"| {r['env']} | {r['N']:,} | {r['agents']:,} | {1e3 * r['eager_s']:.3f} | "
                         f"{1e3 * r['fused_s']:.3f} | {r['gain']:.1f}× |")
        lines += ["", f"![env step time vs N](benchmarks/results/{stem}_env.png)", ""]
    if result.get("euler"):
        lines += [
            "**Euler solver vs N** (Kahou et al. φ(ReLU), published network, recipe `tuned`, ν = 1; medians over "
            "the successful seeds; success = the published rule of `kahou_tables.py`; time = data simulation + "
            "training):",
            "",
            "| N | seeds | success | wall time (s) | LQ rel. error | val MSE | budget | source |",
            "|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for r in result["euler"]:
            t = r["time_s"] if r["time_s"] is not None else r["time_all_s"]
            e = r["rel_error"] if r["rel_error"] is not None else r["rel_error_all"]
            budget = "none" if r["budget"] is None else f"{r['budget']:.0f} s ({r['budget_hit']} hit)"
            val = "–" if r["val_mse"] is None else f"{r['val_mse']:.1e}"
            err = "–" if e is None else f"{100 * e:.3f} %"
            lines.append(f"| {r['N']:,} | {r['seeds']} | {100 * r['success_rate']:.0f} % | {t:.1f} | "
                         f"{err} | {val} | {budget} | {r['source']} |")
        lines += ["", f"![Euler solver wall time and error vs N](benchmarks/results/{stem}_euler.png)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N ≤ 1e5 for the env, N ≤ 8192 and 1 seed for Euler")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=None, help="env timing repeats (default 7; quick 3)")
    parser.add_argument("--seeds", type=int, default=None, help="Euler seeds per N run here (default 3; quick 1)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of training per Euler seed (default 300; quick 120)")
    parser.add_argument("--rerun-kahou", action="store_true",
                        help="run N ≤ 8192 here instead of reading kahou_tables.json")
    parser.add_argument("--kahou-json", type=Path, default=RESULTS / "kahou_tables.json")
    parser.add_argument("--skip-env", action="store_true")
    parser.add_argument("--skip-euler", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    device = setup_torch(args.threads, args.device)
    repeats = args.repeats or (3 if args.quick else 7)
    seeds = args.seeds or (1 if args.quick else 3)
    budget = args.budget or (120.0 if args.quick else 300.0)
    if seeds < 1 or repeats < 1 or budget <= 0:
        parser.error("--seeds, --repeats and --budget must be positive")
    machine = machine_info(device)
    stem = result_stem("scaling", args.quick, device)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, device {device}, torch.get_num_threads() = {torch.get_num_threads()}",
          flush=True)
    result: dict = {"benchmark": "scaling", "date": machine["date"][:10], "quick": args.quick, "machine": machine,
                    "env_B": ENV_B, "env": [], "euler": []}
    if not args.skip_env:
        for economy_id in ENV_IDS:
            for n in QUICK_ENV_NS if args.quick else ENV_NS:
                row = env_step_times(economy_id, ENV_B, n, str(device), repeats)
                result["env"].append(row)
                print(f"{economy_id:16s} N={n:8d}: eager {1e3 * row['eager_s']:9.3f} ms  fused {1e3 * row['fused_s']:9.3f}"
                      f" ms  gain {row['gain']:.1f}x", flush=True)
        plot_env(result["env"], args.out / f"{stem}_env.png",
                 f"env step, B = {ENV_B}, {torch.get_num_threads()} thread(s), {machine['device']}")
    if not args.skip_euler:
        if device.type != "cpu":
            print("note: the Euler rows run on the CPU (kahou_tables.run_one builds CPU economies)", flush=True)
        reused = {} if (args.quick or args.rerun_kahou) else kahou_rows(args.kahou_json)
        for n in QUICK_EULER_NS if args.quick else EULER_NS:
            if n in reused:
                row = euler_row(n, reused[n]["runs"], reused[n]["source"])
            else:
                row = euler_row(n, run_euler(n, seeds, budget), f"this run ({machine['date'][:10]})")
            result["euler"].append(row)
            t = row["time_s"] if row["time_s"] is not None else row["time_all_s"]
            print(f"Euler N={n:6d}: success {100 * row['success_rate']:.0f}%  time {t:.1f} s  "
                  f"({row['source']})", flush=True)
        plot_euler(result["euler"], args.out / f"{stem}_euler.png",
                   f"Euler solver, φ(ReLU), ν = 1, {torch.get_num_threads()} thread(s)")
    finish_machine(machine)
    paths = write_results(args.out, stem, result, to_markdown(result, stem))
    print(paths[1].read_text())
    print("wrote", *paths)
    return result


if __name__ == "__main__":
    main()
