"""RL baselines (PPO, DDPG, TD3) against DeepHAM and the Euler-residual solver on both economies, under one budget,
one judge.

    python benchmarks/rl_baselines.py [--quick] [--budget 600] [--ks-budget 300] [--agent-steps 30e6]
                                      [--ks-agent-steps 10e6] [--check-every 20]
                                      [--economies investment ks]
                                      [--solvers ppo ddpg td3 deepham euler] [--seed 0]
                                      [--threads 1] [--no-bellman] [--no-td0] [--td0-steps 3000]
                                      [--out benchmarks/results]

For each economy (the linear investment economy, ν = 1, N = 128; Krusell–Smith, N = 50) and each solver: train
with a fixed budget of wall time (``--budget`` / ``--ks-budget`` seconds) and of environment agent-steps
(``--agent-steps`` / ``--ks-agent-steps``: economies × agents × periods; RL solvers only; whichever comes first),
then judge with
:func:`agents.evaluate_solver` on common random numbers (32 paths × 64 states from one initial draw):

* TD(0): the value of the exact LQ policy learnt by ``"td0"`` against its known value (relative error, R²);
* investment: relative policy error vs the exact LQ solution, Euler-residual MSE, and the training time at which
  the judge's relative error first fell to 2 % (the judge run every ``--check-every`` seconds of training; its
  time is not counted);
* Krusell–Smith: Euler residuals (Fischer–Burmeister: MSE and mean |ε|), the ergodic mean K and the total
  discounted utility Σ_{t<2000} β^t log c (32 economies after a 1,000-period burn-in; published ≈ 39.3–39.4 and
  ≈ 104.3), and (unless ``--no-bellman``) the Bellman error of the RL solvers' own critics with a reduced
  :mod:`agents.bellman` protocol.

The Euler solver and DeepHAM run through ``agents.make_solver("euler" / "deepham", economy)`` with their defaults
(Euler: the published setup for the investment economy; DeepHAM: price-taking fictitious play for the investment
economy, the published run for Krusell–Smith — 10,000 policy steps, far more than the budget allows, so it is cut
by the wall-time budget), capped by the same wall-time budget (no agent-step cap: they do not simulate through the
environment). ``--quick``: small budgets and judges for CI (about two
minutes); it writes ``rl_baselines_quick.*`` so the full results are not overwritten. One torch thread by default:
on a busy shared machine MKL's thread pool makes small ops slow with 2 threads.
Writes ``rl_baselines[_quick].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import agents  # noqa: E402
import agents.solvers.rl  # noqa: E402,F401  (registers "td0", "ppo", "ddpg", "td3")
import hetagents_env  # noqa: E402
from _common import RESULTS, machine_info, result_stem, setup_torch, with_machine_line, write_results  # noqa: E402

ECONOMIES = {"investment": ("Investment-v0", 128), "ks": ("KrusellSmith-v0", 50)}
TARGET = 0.02
QUICK_RL = {
    "ppo": {"num_envs": 8, "rollout_steps": 32, "minibatch": 64},
    "ddpg": {"num_envs": 8, "warmup": 16, "batch_size": 16, "log_every": 50},
    "td3": {"num_envs": 8, "warmup": 16, "batch_size": 16, "log_every": 50},
}
QUICK_EULER = {"investment": {"max_epochs": 3}, "ks": {"max_epochs": 2, "train_trajectories": 16}}
QUICK_DEEPHAM = {
    "investment": {"steps": 20, "value": {"epochs": 5}},
    "ks": {"batch_size": 16, "horizon": 30, "burn_in": 100, "ergodic_economies": 16, "ergodic_periods": 40,
           "val_every": 10, "val_economies": 8, "value_every": 20,
           "value": {"economies": 16, "periods": 200, "horizon": 100, "start_every": 25, "epochs": 5}},
}
SOLVERS = ["ppo", "ddpg", "td3", "deepham", "euler"]
ERGODIC = {"economies": 32, "burn_in": 1000, "periods": 2000}
BELLMAN = {"economies": 16, "burn_in": 1000, "periods": 400, "samples": 10, "z_draws": 0}
QUICK_ERGODIC = {"economies": 8, "burn_in": 100, "periods": 200}
QUICK_BELLMAN = {"economies": 4, "burn_in": 100, "periods": 50, "samples": 4, "z_draws": 0}


def sizes(args) -> tuple[dict, dict]:
    """(ergodic-statistics sizes, Bellman-judge sizes) for this run."""
    return (QUICK_ERGODIC, QUICK_BELLMAN) if args.quick else (ERGODIC, BELLMAN)


def load() -> list[float]:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else [math.nan] * 3


def solver_config(name: str, economy_key: str, args) -> dict:
    if name in ("euler", "deepham"):  # their defaults; no agent-step cap (no environment steps)
        quick = QUICK_EULER if name == "euler" else QUICK_DEEPHAM
        return dict(quick[economy_key]) if args.quick else {}
    config = {"seed": args.seed}
    agent_steps = args.agent_steps if economy_key == "investment" else args.ks_agent_steps
    if agent_steps:
        config["total_agent_steps"] = agent_steps
    if args.quick:
        config.update(QUICK_RL[name])
    return config


@torch.no_grad()
def ergodic_stats(policy, economy, sizes: dict, seed: int = 11) -> dict:
    """Mean / sd of K over ``periods`` after ``burn_in`` and Σ_t β^t log c (mean over economies and households)."""
    from agents.bellman import BellmanConfig, simulate_states

    _, stats = simulate_states(policy, economy, BellmanConfig(**sizes, samples=1, seed=seed))
    return stats


def run(name: str, economy_key: str, args) -> dict:
    env_id, n = ECONOMIES[economy_key]
    economy = hetagents_env.make_economy(env_id, n_agents=n)
    budget = args.budget if economy_key == "investment" else args.ks_budget
    solver = agents.make_solver(name, economy, solver_config(name, economy_key, args))
    curve: list[dict] = []
    last_check = [-math.inf]

    def callback(metrics: dict) -> None:
        line = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
        print(f"[{economy_key}/{name}] {json.dumps(line)}", flush=True)
        if economy_key == "investment" and solver.wall_time - last_check[0] >= args.check_every:
            last_check[0] = solver.wall_time
            r = agents.evaluate(solver.policy, economy, trajectories=8)
            curve.append({"wall_time": solver.wall_time, "agent_steps": getattr(solver, "agent_steps", None),
                          "lq_rel_error": r.lq_rel_error, "euler_mse": r.euler_mse})

    load_start = load()
    solver.train(budget=budget, callback=callback)
    result = agents.evaluate_solver(solver, trajectories=4 if args.quick else 32)
    row = {
        "economy": economy_key, "env_id": env_id, "n_agents": n, "solver": name, "budget_s": budget,
        "train_seconds": solver.wall_time, "agent_steps": getattr(solver, "agent_steps", None),
        "steps": solver.metrics.get("step"), "config": solver.config.to_dict(), "final_metrics": solver.metrics,
        "load_start": load_start, "load_end": load(),
        "euler_mse": result.euler_mse, "euler_mean_abs": result.euler_mean_abs,
        "lq_rel_error": result.lq_rel_error, "lq_abs_error": result.lq_abs_error,
        "aggregates": result.aggregates, "n_params": result.n_params, "curve": curve,
    }
    if economy_key == "investment":
        hit = [c for c in curve if c["lq_rel_error"] is not None and c["lq_rel_error"] <= TARGET]
        if not hit and result.lq_rel_error is not None and result.lq_rel_error <= TARGET:  # reached after the last check
            hit = [{"wall_time": solver.wall_time, "agent_steps": getattr(solver, "agent_steps", None)}]
        row["time_to_2pct"] = hit[0]["wall_time"] if hit else None
        row["agent_steps_to_2pct"] = hit[0]["agent_steps"] if hit else None
    else:
        row["ergodic"] = ergodic_stats(solver.policy, economy, sizes(args)[0])
        value = getattr(solver, "value", None)
        if args.bellman and value is not None:
            from agents.bellman import bellman_error

            b = bellman_error(solver.policy, value, economy, sizes(args)[1])
            row["bellman"] = {"optimality": b.optimality, "optimality_se": b.optimality_se,
                              "expectation": b.expectation, "expectation_se": b.expectation_se,
                              "config": b.config}
    print(json.dumps({k: v for k, v in row.items() if k not in ("config", "curve", "final_metrics")}), flush=True)
    return row


def run_td0(args) -> dict:
    """TD(0) evaluation of the exact LQ policy (investment economy, N = 128) against its known value."""
    economy = hetagents_env.make_economy("Investment-v0", n_agents=128)
    config = {"seed": args.seed, **({"num_envs": 16, "log_every": 50} if args.quick else {})}
    solver = agents.make_solver("td0", economy, config)

    def callback(metrics: dict) -> None:
        line = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
        print(f"[investment/td0] {json.dumps(line)}", flush=True)

    steps = 100 if args.quick else args.td0_steps
    solver.train(steps=steps, callback=callback)
    errors = solver.value_errors()
    row = {"economy": "investment", "solver": "td0", "policy": "lq", "steps": steps,
           "train_seconds": solver.wall_time, "agent_steps": solver.agent_steps, "config": solver.config.to_dict(),
           "test_states": solver.test_states.batch_size[0], **errors}
    print(json.dumps({k: v for k, v in row.items() if k != "config"}), flush=True)
    return row


def deepham_context(path: Path = Path(__file__).resolve().parent / "results" / "deepham_ks.json") -> list[str]:
    """DeepHAM / classical rows of ``deepham_ks.json`` (not re-run here; the full Bellman protocol), for context."""
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    rows = [
        f"{r['label']}: {r['train_seconds'] / 60:.0f} min, Bellman {r['bellman']['optimality']:.4f}, mean K "
        f"{r['bellman']['mean_K']:.2f}, total utility {r['bellman']['total_utility']:.2f}"
        for r in data.get("rows", []) if "bellman" in r
    ]
    if not rows:
        return []
    return [f"For context, from `deepham_ks.md` ({data.get('date')}; full Bellman protocol, not re-run here): "
            + "; ".join(rows) + ".", ""]


def fmt(value, spec: str = ".3g", none: str = "–") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return none
    return format(value, spec)


def steps_text(row: dict) -> str:
    return f"{row['agent_steps']:,}" if row.get("agent_steps") else "–"


def to_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"RL baselines vs DeepHAM and the Euler solver — {'quick (CI) run, ' if result['quick'] else ''}"
        f"{m['threads']} torch thread(s), load average {m['load_start'][0]:.1f} → {m['load_end'][0]:.1f} on "
        f"{m['cpus']} shared CPUs, torch {m['torch']}, {result['date']}. Budgets: {result['budget']} s (investment), "
        f"{result['ks_budget']} s (Krusell–Smith) of wall time per solver"
        + (f", and {result['agent_steps']:,} / {result['ks_agent_steps']:,} environment agent-steps per RL solver "
           "(whichever comes first)" if result["agent_steps"] else "")
        + f". Judge: `agents.evaluate_solver`, {4 if result['quick'] else 32} paths × 64 states from one initial draw, "
        "common random numbers.",
        "",
    ]
    if result.get("note"):  # e.g. how a merged run was produced (see --merge)
        lines += [result["note"], ""]
    inv = [r for r in result["rows"] if r["economy"] == "investment"]
    if inv:
        lines += [
            "**Linear investment economy (ν = 1, N = 128)** — relative policy error vs the exact LQ solution.",
            "",
            "| solver | train time (s) | agent-steps | time to ≤ 2 % (s) | LQ rel. error | mean abs(u − u_LQ) | "
            "Euler MSE | params |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in inv:
            lines.append(
                f"| {r['solver']} | {r['train_seconds']:.0f} | {steps_text(r)}"
                f" | {fmt(r.get('time_to_2pct'), '.0f', 'not reached')} | {100 * r['lq_rel_error']:.2f} % | "
                f"{fmt(r['lq_abs_error'], '.2e')} | {fmt(r['euler_mse'], '.2e')} | {r['n_params']:,} |"
            )
        lines.append("")
    td0 = result.get("td0")
    if td0:
        lines += [
            f"**TD(0) policy evaluation** of the LQ policy (investment, N = 128, {td0['config']['num_envs']} economies,"
            f" {td0['steps']:,} steps = {td0['agent_steps']:,} agent-transitions, {td0['train_seconds']:.0f} s) "
            f"against its exact value (a discounted Lyapunov equation): relative value error "
            f"{100 * td0['value_rel_error']:.2f} %, R² of the value's variation across states {td0['value_r2']:.3f} "
            f"({td0['test_states']} test states × 128 firms).",
            "",
        ]
    ks = [r for r in result["rows"] if r["economy"] == "ks"]
    erg, bell = result["ergodic_sizes"], result["bellman_sizes"]
    if ks:
        lines += [
            "**Krusell–Smith (N = 50)** — Euler residuals (Fischer–Burmeister) on the judge's paths; ergodic mean K "
            f"and total utility Σ_(t<{erg['periods']}) β^t log c over {erg['economies']} economies after a "
            f"{erg['burn_in']:,}-period burn-in (published, T = 2000: ≈ 39.3–39.4 and ≈ 104.3); Bellman error "
            "(optimality / expectation) of the solver's own critic, reduced protocol "
            f"({bell['economies']} economies × {bell['samples']} periods after {bell['burn_in']:,}, exact E over Z'; "
            "published DeepHAM ≈ 0.015–0.019, KS algorithm 0.025–0.049).",
            "",
            "| solver | train time (s) | agent-steps | Euler MSE | mean abs(ε) | mean K | sd K | total utility | "
            "Bellman (opt. / exp.) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in ks:
            e, b = r["ergodic"], r.get("bellman")
            bell = f"{b['optimality']:.4f} / {b['expectation']:.4f}" if b else "–"
            lines.append(
                f"| {r['solver']} | {r['train_seconds']:.0f} | {steps_text(r)}"
                f" | {fmt(r['euler_mse'], '.2e')} | {fmt(r['euler_mean_abs'], '.2e')} | {e['mean_K']:.2f} | "
                f"{e['sd_K']:.2f} | {e['total_utility']:.2f} | {bell} |"
            )
        lines.append("")
        lines += deepham_context()
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small budgets for CI")
    parser.add_argument("--budget", type=float, default=None, help="seconds per solver, investment (600)")
    parser.add_argument("--ks-budget", type=float, default=None, help="seconds per solver, Krusell-Smith (300)")
    parser.add_argument("--agent-steps", type=float, default=None,
                        help="environment agent-step budget per RL solver, investment (30e6; 0: none)")
    parser.add_argument("--ks-agent-steps", type=float, default=None,
                        help="environment agent-step budget per RL solver, Krusell-Smith (10e6; 0: none)")
    parser.add_argument("--check-every", type=float, default=None, help="seconds of training between judge checks")
    parser.add_argument("--economies", nargs="+", default=["investment", "ks"], choices=sorted(ECONOMIES))
    parser.add_argument("--solvers", nargs="+", default=SOLVERS, choices=SOLVERS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-bellman", dest="bellman", action="store_false")
    parser.add_argument("--no-td0", dest="td0", action="store_false", help="skip the TD(0) value check")
    parser.add_argument("--td0-steps", type=int, default=3000)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--render", metavar="JSON", help="only re-write the markdown of an existing result file")
    parser.add_argument("--merge", metavar="JSON", nargs="+",
                        help="with --render: first merge the rows (and TD(0)) of these result files into it")
    parser.add_argument("--note", help="with --render: a sentence printed under the header")
    args = parser.parse_args(argv)
    if args.render:
        result = json.loads(Path(args.render).read_text())
        for other in map(json.loads, map(Path.read_text, map(Path, args.merge or []))):
            result["rows"] += other["rows"]
            result["td0"] = result.get("td0") or other.get("td0")
            for key in ("budget", "ks_budget", "agent_steps", "ks_agent_steps"):
                result[key] = max(result[key], other[key])
            for key in ("load_end", "load_average_after"):
                result["machine"][key] = max(result["machine"][key], other["machine"][key])
        if args.note:
            result["note"] = args.note
        if args.merge or args.note:
            Path(args.render).write_text(json.dumps(result, indent=2))
        md = with_machine_line(result, to_markdown(result))
        Path(args.render).with_suffix(".md").write_text(md)
        print(md)
        return result
    args.budget = args.budget if args.budget is not None else (20.0 if args.quick else 600.0)
    args.ks_budget = args.ks_budget if args.ks_budget is not None else (10.0 if args.quick else 300.0)
    args.agent_steps = int(args.agent_steps if args.agent_steps is not None else (0 if args.quick else 30e6))
    args.ks_agent_steps = int(args.ks_agent_steps if args.ks_agent_steps is not None else (0 if args.quick else 10e6))
    args.check_every = args.check_every if args.check_every is not None else (5.0 if args.quick else 20.0)
    setup_torch(args.threads, "cpu")
    machine = machine_info("cpu")
    print(f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}, "
          f"load average {load()}", flush=True)
    load_start = load()
    td0 = run_td0(args) if args.td0 else None
    rows = [run(name, key, args) for key in args.economies for name in args.solvers]
    result = {
        "benchmark": "rl_baselines", "date": machine["date"][:10], "quick": args.quick, "budget": args.budget,
        "ks_budget": args.ks_budget, "agent_steps": args.agent_steps, "ks_agent_steps": args.ks_agent_steps,
        "seed": args.seed, "ergodic_sizes": sizes(args)[0], "bellman_sizes": sizes(args)[1],
        "machine": {**machine, "load_start": load_start, "load_end": load(), "load_average_after": load()},
        "td0": td0, "rows": rows,
    }
    paths = write_results(args.out, result_stem("rl_baselines", args.quick), result, to_markdown(result))
    print(paths[1].read_text())
    return result


if __name__ == "__main__":
    main()
