"""Solvers side by side on one economy, each under the same wall-time budget, judged against the economy's reference.

    python benchmarks/solver_comparison.py CONFIG [CONFIG ...] --name NAME [--budget 120] [--quick] [--threads 1]
    python benchmarks/solver_comparison.py configs/aiyagari_*.yaml --name aiyagari_solvers     # the README's table

Each config (``python -m train``'s YAML: economy, solver, eval settings) is trained from its seed for at most
``--budget`` seconds (or its own ``run.steps``), then scored by the one judge (:func:`agents.evaluate.evaluate_solver`)
with the reference-based metrics: unit-free Euler errors on the reference's common test states and on the policy's
own ergodic set, the policy's own stationary distribution (mean K, wealth Gini, Wasserstein-1 distance of wealth to
the reference's) and the consumption-equivalent welfare loss against the reference. The configs must describe the
same economy (id, N, parameters): the reference is solved once and cached. Writes
``benchmarks/results/NAME.{json,md}`` (``NAME_quick`` with ``--quick``: a 20 s budget).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import RESULTS, finish_machine, machine_info, result_stem, setup_torch, write_results  # noqa: E402

import agents  # noqa: E402
from agents.evaluate import evaluate_solver  # noqa: E402
from agents.networks import count_parameters  # noqa: E402
from train.config import load_experiment  # noqa: E402


def run_one(path: Path, budget: float, seed_everything) -> dict:
    """Train the config's solver under ``budget`` seconds and judge it; one result row."""
    exp = load_experiment(path)
    seed_everything(exp.run.seed)
    economy = exp.economy()
    solver = agents.make_solver(exp.solver_name, economy, exp.solver_config)
    steps = exp.run.steps
    start = time.perf_counter()
    solver.train(steps=steps, budget=budget)
    train_s = time.perf_counter() - start
    judged = evaluate_solver(solver, **{**exp.evaluate_kwargs(), "reference": True})
    m = judged.reference_metric
    stationary = m("stationary") or {}
    policy_stats, reference_stats = stationary.get("policy", {}), stationary.get("reference", {})
    row = {
        "config": str(path), "solver": exp.solver_name, "economy": exp.env.id, "n_agents": economy.n_agents,
        "params": economy.params.to_dict(), "train_s": train_s, "budget_s": budget,
        "parameters": count_parameters(solver.policy), "train_metrics": solver.metrics,
        "reference": judged.reference.get("source") if judged.reference else None,
        "euler_test_mean": m("errors_test.mean"), "euler_test_p99": m("errors_test.p99"),
        "euler_own_mean": m("errors_own.mean"), "welfare_pct": m("welfare.mean_pct"),
        "welfare_se_pct": m("welfare.se_pct"), "wasserstein": stationary.get("wasserstein"),
        "wasserstein_noise": stationary.get("wasserstein_noise"),
        "K_mean": policy_stats.get("K_mean"), "K_reference": reference_stats.get("K_mean"),
        "wealth_gini": policy_stats.get("wealth_gini"), "wealth_gini_reference": reference_stats.get("wealth_gini"),
        "consumption_gini": policy_stats.get("consumption_gini"),
        "self_consistency_euler_mse": judged.euler_mse,
    }
    print(f"{exp.solver_name:20s} train {train_s:7.1f} s  K {row['K_mean']}  Gini {row['wealth_gini']}  "
          f"welfare {row['welfare_pct']} %  Euler(test) {row['euler_test_mean']}", flush=True)
    return row


def _f(value, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def to_markdown(result: dict) -> str:
    rows = result["rows"]
    first = rows[0] if rows else {}
    lines = [
        f"{first.get('economy', '?')} (N = {first.get('n_agents', '?')}): every solver under a {result['budget_s']:g} s "
        f"budget (one torch thread), judged against the reference ({first.get('reference') or 'none'}). "
        "Euler: unit-free |1 − c/c_EE| (mean) on the reference's common test states and on the policy's own ergodic "
        "set; stationary K and wealth Gini of the policy's own long-run distribution (reference in brackets); W1: "
        "Wasserstein-1 distance of its wealth distribution to the reference's (noise level: the reference against "
        "itself on other draws); welfare: consumption-equivalent loss in % of lifetime consumption against the "
        "reference, prices from the reference equilibrium (> 0: worse). Euler MSE on its own paths is the old "
        "self-consistency measure, for comparison.",
        "",
        "| solver | train (s) | parameters | Euler, common states | Euler, own set | stationary K | wealth Gini | W1 (noise) "
        "| welfare loss (%) | Euler MSE (own paths) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        se = f" ± {r['welfare_se_pct']:.2g}" if r.get("welfare_se_pct") is not None else ""
        lines.append(
            f"| {r['solver']} | {r['train_s']:.0f} | {r['parameters']:,} | {_f(r['euler_test_mean'], '.2e')} | "
            f"{_f(r['euler_own_mean'], '.2e')} | {_f(r['K_mean'], '.3f')} ({_f(r['K_reference'], '.3f')}) | "
            f"{_f(r['wealth_gini'], '.3f')} ({_f(r['wealth_gini_reference'], '.3f')}) | "
            f"{_f(r['wasserstein'], '.3g')} ({_f(r['wasserstein_noise'], '.2g')}) | {_f(r['welfare_pct'], '.3g')}{se} | "
            f"{_f(r['self_consistency_euler_mse'], '.2e')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", type=Path)
    parser.add_argument("--name", required=True, help="result file stem (benchmarks/results/NAME.{json,md})")
    parser.add_argument("--budget", type=float, default=120.0, help="wall-time seconds per solver")
    parser.add_argument("--quick", action="store_true", help="a 20 s budget, NAME_quick results")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    device = setup_torch(args.threads, "cpu")
    machine = machine_info(device)
    print(f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}", flush=True)
    from train.run import seed_everything

    budget = 20.0 if args.quick else args.budget
    economies = {}
    for path in args.configs:  # one economy for all, checked before anything trains
        exp = load_experiment(path)
        economies.setdefault((exp.env.id, exp.env.n_agents, repr(exp.economy().params)), []).append(str(path))
    if len(economies) > 1:
        raise SystemExit("the configs describe different economies; compare solvers on one: "
                         + "; ".join(f"{key[0]} N = {key[1]}: {', '.join(paths)}" for key, paths in economies.items()))
    rows = [run_one(path, budget, seed_everything) for path in args.configs]
    result = {"benchmark": "solver_comparison", "name": args.name, "date": machine["date"][:10], "quick": args.quick,
              "budget_s": budget, "machine": machine, "rows": rows}
    finish_machine(machine)
    paths = write_results(args.out, result_stem(args.name, args.quick), result, to_markdown(result))
    print(paths[1].read_text())
    return result


if __name__ == "__main__":
    main()
