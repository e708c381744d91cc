"""Reproduce Kahou et al.'s Tables 1 and 2 (N-firm investment economy, Euler-residual method) on this machine.

For each row (φ identity / moments / ReLU on the linear model ν = 1; φ moments / ReLU on ν = 1.5; φ(ReLU) at
N ∈ {128, 1024, 8192}) and each seed: build the economy, train the Euler solver, judge the trained policy on 32 test
paths from the run's X_0 (``agents.evaluate``), and apply the published success rule:

* validation MSE < 1e-6 reached (the solver converged),
* ν = 1: relative policy error on the validation states ≤ 20 %; ν ≠ 1: mean X_T of the test paths in [0.1, 10],
* test MSE ≤ 1e-4.

Reported per row: medians over the successful seeds of wall time (data simulation + training, the stopping rule's
validations included; the final reporting passes excluded), train / test / val MSE, |u − u_ref| and the relative
error, the parameter count and the success rate — side by side with the published numbers.

Recipes (``--recipe``):

* ``tuned`` (default): the published algorithm (LQ-simulated data from one X_0, Adam, batch 16, 7-node quadrature,
  one standardised draw, stop when the validation MSE falls below a threshold) and the published networks, with:
  the network's output level started at the data policy's mean action (``init_level="data_policy"``: the
  published initialisation lands on the explosive root of the Euler equation in 20–80 % of the seeds), learning
  rates per φ, validation every 32 steps with a 2e-7 threshold for φ identity / ReLU, re-simulation every 2 epochs
  for ν = 1.5, and for φ(Identity) the input x centred at x0_mean = 0.9 (``network.shift``; the bias-free
  network is then b + s·(X̄ − 0.9) instead of b + s·X̄, whose two directions are nearly collinear on data with
  X̄ ≈ 0.9: ~100 instead of ~700 steps, same 49,409 parameters; the row ``linear-identity-uncentred`` keeps the
  published inputs). The exact settings are in ``RECIPES``.
* ``published``: the published hyper-parameters (PyTorch default initialisation, lr 7.5e-4 / 1e-4 / 1e-3,
  StepLR(50, 0.8); ν = 1.5: lr 1e-4, StepLR(10, 0.8), re-simulation every 5 epochs).

The φ-MLP rows use the network's exact O(B·N) evaluation of a bias-free ReLU φ on a scalar state
(``homogeneous_fast_path``); ``--rows linear-relu-general-path`` measures the same row with the ordinary
per-agent MLP evaluation.

Usage::

    python benchmarks/kahou_tables.py                           # tuned recipe, all rows, 10 seeds
    python benchmarks/kahou_tables.py --recipe tuned published  # and the published hyper-parameters
    python benchmarks/kahou_tables.py --quick                   # 3 seeds, N-scaling at 128 and 1024 only
                                                                # (writes kahou_tables_quick.json/.md)
    python benchmarks/kahou_tables.py --seeds 100 --rows linear-relu nonlinear-relu --threads 2
    python benchmarks/kahou_tables.py --merge a.json b.json     # combine earlier result files, no runs

Writes ``benchmarks/results/kahou_tables.json`` (every run, the medians, the machine; one section per recipe)
and ``benchmarks/results/kahou_tables.md`` (one table per section). Progress goes to stdout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import agents  # noqa: E402
import hetagents_env  # noqa: E402
from _common import RESULTS, machine_info, with_machine_line  # noqa: E402
from agents.evaluate import lq_errors  # noqa: E402
from agents.jsonable import dumps  # noqa: E402

#: published medians (slides Tables 1 and 2); time in seconds, params in thousands
PUBLISHED = {
    "linear-identity": dict(time=42, params=49.4, train=4.1e-6, test=3.3e-7, val=3.3e-7, abs=2.9e-5, rel=0.10e-2),
    "linear-moments": dict(time=55, params=49.8, train=1.4e-6, test=7.6e-7, val=7.6e-7, abs=2.8e-5, rel=0.09e-2),
    "linear-relu": dict(time=107, params=66.8, train=3.7e-6, test=3.3e-7, val=3.3e-7, abs=2.7e-5, rel=0.09e-2),
    "nonlinear-moments": dict(time=26, params=49.8, train=6.0e-6, test=5.0e-6, val=3.8e-6),
    "nonlinear-relu": dict(time=60, params=67.1, train=1.4e-5, test=4.7e-6, val=3.3e-6),
}

#: the rows: economy (ν, N), network (φ and overrides of the recipe's network), the published row compared with
ROWS = {
    "linear-identity": dict(nu=1.0, n=128, phi="identity", published="linear-identity"),
    "linear-identity-uncentred": dict(
        nu=1.0, n=128, phi="identity", published="linear-identity", network={"shift": []}, solver={"lr": 2e-3},
    ),
    "linear-moments": dict(nu=1.0, n=128, phi="moments", published="linear-moments"),
    "linear-relu": dict(nu=1.0, n=128, phi="mlp", published="linear-relu"),
    "linear-relu-general-path": dict(
        nu=1.0, n=128, phi="mlp", published="linear-relu", network={"homogeneous_fast_path": False}
    ),
    "nonlinear-moments": dict(nu=1.5, n=128, phi="moments", published="nonlinear-moments"),
    "nonlinear-relu": dict(nu=1.5, n=128, phi="mlp", published="nonlinear-relu"),
    "scaling-relu-N1024": dict(nu=1.0, n=1024, phi="mlp"),
    "scaling-relu-N8192": dict(nu=1.0, n=8192, phi="mlp"),
}
#: rows run by default (the general-path row costs ~10× more: ask for it with --rows)
DEFAULT_ROWS = [r for r in ROWS if r != "linear-relu-general-path"]

#: solver settings per recipe and (φ, ν); anything not listed is the EulerConfig default (the published setup:
#: 16 + 8 LQ-simulated paths of 64 states from one X_0, batch 16, Adam, 7-node quadrature, one standardised draw,
#: validation once per epoch, stop below 1e-6, at most 100 epochs)
RECIPES = {
    "published": {
        ("identity", 1.0): {"lr": 7.5e-4},
        ("moments", 1.0): {"lr": 1e-4},
        ("mlp", 1.0): {"lr": 1e-3},
        ("moments", 1.5): {"lr": 1e-4, "lr_step_epochs": 10, "resimulate_every": 5},
        ("mlp", 1.5): {"lr": 1e-4, "lr_step_epochs": 10, "resimulate_every": 5},
    },
    "tuned": {
        # the published network on x − x0_mean (see the module docstring)
        ("identity", 1.0): {"network": {"shift": [["x", 0.9]]}, "lr": 1e-3,
                            "init_level": "data_policy", "val_every": 32, "val_threshold": 2e-7},
        ("moments", 1.0): {"lr": 3e-4, "init_level": "data_policy"},
        ("mlp", 1.0): {"lr": 1e-3, "init_level": "data_policy", "val_every": 32, "val_threshold": 2e-7},
        ("moments", 1.5): {"lr": 3e-4, "init_level": "data_policy", "resimulate_every": 2},
        ("mlp", 1.5): {"lr": 1e-3, "init_level": "data_policy", "resimulate_every": 2},
    },
}


def solver_config(row: dict, recipe: str, seed: int) -> dict:
    """The recipe's settings for the row's (φ, ν), then the row's own overrides."""
    base = RECIPES[recipe][(row["phi"], row["nu"])]
    config = {**base, **row.get("solver", {})}
    config["network"] = {**base.get("network", {}), "phi": row["phi"], **row.get("network", {})}
    config["seed"] = seed
    return config


def run_one(
    name: str, row: dict, recipe: str, seed: int, test_trajectories: int, budget: float | None = None
) -> dict:
    """Train and judge one seed of one row; ``budget``: at most this many seconds of training (None: the stopping
    rule only). The returned dict's ``budget_hit`` says whether the budget, not the stopping rule, ended training."""
    economy = hetagents_env.make_economy("Investment-v0", n_agents=row["n"], nu=row["nu"])
    solver = agents.make_solver("euler", economy, solver_config(row, recipe, seed))
    metrics = solver.train(budget=budget)
    result = agents.evaluate_solver(solver, initial_state="solver", trajectories=test_trajectories, seed=10_000 + seed)
    if row["nu"] == 1.0:
        val_rel = lq_errors(solver.policy, economy, solver.val_states)["rel"]
        transversality = val_rel <= 0.2
    else:
        val_rel = None
        transversality = 0.1 <= result.aggregates["mean_x"]["final_mean"] <= 10.0
    success = bool(solver.converged and transversality and result.euler_mse <= 1e-4)
    return {
        "row": name, "seed": seed, "success": success, "converged": solver.converged, "time": solver.wall_time,
        "cpu_time": solver.cpu_time,
        "epochs": solver.epoch, "steps": solver.step, "params": result.n_params,
        "train": metrics["train_mse"], "val": metrics["val_mse"], "test": result.euler_mse,
        "abs": result.lq_abs_error, "rel": result.lq_rel_error, "val_rel": val_rel,
        "mean_x_T": result.aggregates["mean_x"]["final_mean"], "N": row["n"], "budget": budget,
        "budget_hit": bool(budget is not None and not solver.converged and solver.wall_time >= 0.99 * budget),
    }


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None and math.isfinite(r[key])]
    return statistics.median(values) if values else None


def summarise(runs: list[dict]) -> dict:
    good = [r for r in runs if r["success"]]
    summary = {"success_rate": len(good) / len(runs), "seeds": len(runs)}  # medians over the successful runs
    for key in ("time", "cpu_time", "epochs", "train", "test", "val", "abs", "rel"):
        summary[key] = median(good, key)
    summary["params"] = runs[0]["params"]
    summary["time_all"] = median(runs, "time")
    return summary


def fmt(value, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "time":
        return f"{value:.2f}" if value < 10 else f"{value:.0f}"
    if kind == "params":
        return f"{value / 1000:.1f}"
    if kind == "rel":
        return f"{100 * value:.3f} %"
    if kind == "rate":
        return f"{100 * value:.0f} %"
    return f"{value:.1e}"


def markdown_section(results: dict, meta: dict) -> str:
    lines = [
        f"### Recipe `{meta['recipe']}`",
        "",
        f"{meta['seeds']} seeds per row (fewer where noted), torch {meta['torch']}, {meta['threads']} thread(s) on "
        f"{meta['cpu_count']} CPU core(s), {meta['date']}; load average before / after: {meta['load_before']} / "
        f"{meta['load_after']}.",
        "",
        "| row | N | ν | time (s) | CPU (s) | params (K) | train MSE | test MSE | val MSE | abs(u − u_ref) | "
        "rel. error | success |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in results.items():
        s, row = entry["summary"], entry["row"]
        published = PUBLISHED.get(row.get("published", ""), {})

        def cell(key: str, kind: str) -> str:
            mine = fmt(s.get(key), kind)
            if key not in published:
                return mine
            theirs = f"{published[key]:.1f}" if kind == "params" else fmt(published[key], kind)
            return f"**{mine}** / {theirs}"

        label = name if s["seeds"] == meta["seeds"] else f"{name} ({s['seeds']} seeds)"
        lines.append(
            f"| {label} | {row['n']} | {row['nu']:g} | {cell('time', 'time')} | {fmt(s.get('cpu_time'), 'time')} | "
            f"{cell('params', 'params')} | {cell('train', 'mse')} | {cell('test', 'mse')} | {cell('val', 'mse')} | "
            f"{cell('abs', 'mse')} | {cell('rel', 'rel')} | {fmt(s['success_rate'], 'rate')} |"
        )
    return "\n".join(lines) + "\n"


def markdown(sections: list[dict], machine: dict | None = None) -> str:
    """The tables of ``sections``; the first line states the machine (``machine``, else the first section's meta)."""
    if machine is None and sections:
        meta = sections[0]["meta"]
        machine = {"machine": meta.get("machine"), "cpu": meta.get("processor"), "cpus": meta.get("cpu_count"),
                   "threads": meta.get("threads"), "torch": meta.get("torch"), "date": meta.get("date")}
    head = [
        "## Kahou et al. Tables 1–2 on this machine (`benchmarks/kahou_tables.py`)",
        "",
        "Medians over the successful seeds (published success rule: val MSE < 1e-6 reached, relative error on the "
        "validation states ≤ 20 % for ν = 1 or mean X_T ∈ [0.1, 10] for ν ≠ 1, test MSE ≤ 1e-4). A cell reads "
        "**this run** / published (Kahou et al., slides Tables 1–2, 100 seeds, hardware not documented). "
        "Time: wall-clock seconds of data simulation + training (the stopping rule's validations included); "
        "CPU: CPU seconds of the process over the same time (≈ the wall time on an idle core for a single thread).",
        "",
    ]
    body = "\n".join(head) + "\n" + "\n".join(markdown_section(sec["rows"], sec["meta"]) for sec in sections)
    return with_machine_line({"machine": machine}, body)


def run_section(recipe: str, rows: list[str], seeds: int, args) -> dict:
    meta = {
        "recipe": recipe, "seeds": seeds, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "processor": platform.processor(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_before": _load(), "argv": sys.argv[1:],
    }
    results: dict[str, dict] = {}
    started = time.perf_counter()
    for name in rows:
        row = ROWS[name]
        row_seeds = min(seeds, args.general_path_seeds) if name == "linear-relu-general-path" else seeds
        runs = []
        for seed in range(1, row_seeds + 1):
            run = run_one(name, row, recipe, seed, args.test_trajectories)
            runs.append(run)
            rel = "" if run["rel"] is None else f" rel={100 * run['rel']:.3f}%"
            print(f"  [{recipe}] {name} seed {seed}: success={run['success']} time={run['time']:.2f}s "
                  f"cpu={run['cpu_time']:.2f}s epochs={run['epochs']} val={run['val']:.1e} test={run['test']:.1e}{rel}",
                  flush=True)
        results[name] = {"row": row, "config": solver_config(row, recipe, 0),
                         "published": PUBLISHED.get(row.get("published", "")), "summary": summarise(runs), "runs": runs}
        s = results[name]["summary"]
        print(f"[{recipe}] {name}: success {100 * s['success_rate']:.0f}%  median time {fmt(s['time'], 'time')} s  "
              f"test {fmt(s['test'], 'mse')}  val {fmt(s['val'], 'mse')}  rel {fmt(s['rel'], 'rel')}", flush=True)
    meta["load_after"] = _load()
    meta["total_time"] = time.perf_counter() - started
    return {"meta": meta, "rows": results}


def load_sections(path: Path) -> list[dict]:
    """Sections of an earlier result file (also the older single-section layout {"meta", "rows"})."""
    data = json.loads(Path(path).read_text())
    if "sections" in data:
        return data["sections"]
    return [{"meta": data["meta"], "rows": data["rows"]}]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per row (published: 100)")
    parser.add_argument("--quick", action="store_true", help="3 seeds, N-scaling without N = 8192")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=None, help="rows to run (default: all)")
    parser.add_argument("--recipe", nargs="+", choices=list(RECIPES), default=["tuned"],
                        help="one section per recipe (the published recipe runs the rows with published numbers)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: these small matmuls gain little from a second thread, and on "
                             "a shared 2-core machine OpenMP contention made 2 threads ~7x slower)")
    parser.add_argument("--test-trajectories", type=int, default=32)
    parser.add_argument("--general-path-seeds", type=int, default=3,
                        help="seeds of the (≈10× slower) linear-relu-general-path row")
    parser.add_argument("--merge", nargs="+", type=Path, default=None,
                        help="do not run: combine the sections of these result files into the output")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    parser.add_argument("--tag", default=None,
                        help="suffix of the output file names (kahou_tables<tag>.json/.md; default '' or '_quick')")
    args = parser.parse_args(argv)
    if args.tag is None:
        args.tag = "_quick" if args.quick else ""
    machine = None

    if args.merge:
        sections = [sec for path in args.merge for sec in load_sections(path)]
    else:
        torch.set_num_threads(max(1, args.threads))
        print(f"torch.get_num_threads() = {torch.get_num_threads()}", flush=True)
        machine = machine_info("cpu")
        seeds = 3 if args.quick and args.seeds == 10 else args.seeds
        sections = []
        for recipe in args.recipe:
            rows = args.rows or [r for r in DEFAULT_ROWS if not (args.quick and r == "scaling-relu-N8192")]
            if recipe == "published":  # the rows with published numbers, in the published network
                rows = [r for r in rows if ROWS[r].get("published") and r != "linear-identity-uncentred"]
            sections.append(run_section(recipe, rows, seeds, args))
    args.out.mkdir(parents=True, exist_ok=True)
    out_json = args.out / f"kahou_tables{args.tag}.json"
    out_md = args.out / f"kahou_tables{args.tag}.md"
    payload = {"published": PUBLISHED, "sections": sections}
    if machine is not None:
        payload["machine"] = machine
    out_json.write_text(dumps(payload, indent=2) + "\n")  # strict JSON: NaN as null
    table = markdown(sections, machine)
    out_md.write_text(table)
    print(table)
    print(f"wrote {out_json} and {out_md}")
    return sections


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    main()
