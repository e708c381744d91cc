"""Solvers side by side on one economy, each under the same wall-time budget, judged against the economy's reference.

    python benchmarks/solver_comparison.py CONFIG [CONFIG ...] --name NAME [--budget 120] [--quick] [--threads 1]
                                           [--set key=value ...] [--wandb offline|online|disabled] [--no-figures]
    python benchmarks/solver_comparison.py configs/aiyagari_*.yaml --name aiyagari_solvers     # the README's table

Each config (``python -m train``'s YAML: economy, solver, eval settings; ``--set`` overrides apply to every one) is
trained from its seed for at most ``--budget`` seconds (or its own ``run.steps``), then scored by the one judge
(:func:`agents.evaluate.evaluate_solver`) with the reference-based metrics: unit-free Euler errors on the
reference's common test states and on the policy's own ergodic set, the policy's own stationary distribution (mean
K, wealth Gini, Wasserstein-1 distance of wealth to the reference's) and the consumption-equivalent welfare loss
against the reference. The configs must describe the same economy (id, N, parameters): the reference is solved
once (cached) and every solver is scored against that one reference.

Writes ``benchmarks/results/NAME.{json,md}`` (``NAME_quick`` with ``--quick``: a 20 s budget) and the figures
``NAME_wealth.png`` (each solver's stationary distribution of w over the reference's), ``NAME_euler_errors.png``
(log10 unit-free errors on the common test states) and ``NAME_k_paths.png`` (aggregate K of every solver and the
reference from the same ergodic cross-section on the same shocks, seeded from the judge's eval seed), linked from
the markdown (:func:`agents.reference_judge.comparison_samples` gives the samples). The table and the figures are
also logged to one W&B run (``--wandb``; default ``disabled`` with ``--quick``, else ``offline``: no account needed;
written under ``--wandb-dir``, default ``benchmarks/logs/``, which git ignores; upload with ``wandb sync``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import (  # noqa: E402
    KS_EULER_FACTOR, KS_GINI_TOLERANCE, KS_K_TOLERANCE, RESULTS, WELFARE_LOSS_PCT, add_wandb_arguments, finish_machine, log_result_run, machine_info, result_stem, setup_torch, wandb_mode,
    write_results,
)

import agents  # noqa: E402
from agents.evaluate import evaluate_solver  # noqa: E402
from agents.networks import count_parameters  # noqa: E402
from agents.reference import Reference, reference_for  # noqa: E402
from agents.reference_judge import (  # noqa: E402
    ComparisonSamples, comparison_samples, headline_metrics, score_against_reference,
)
from train.config import load_experiment  # noqa: E402

#: where the W&B run goes by default (git-ignored)
#: (row key, W&B column) of the logged table
TABLE_COLUMNS = [
    ("label", "solver"), ("config", "config"), ("train_s", "train (s)"), ("parameters", "parameters"),
    ("euler_test_mean", "Euler, common states (mean)"), ("euler_test_p99", "Euler, common states (p99)"),
    ("euler_own_mean", "Euler, own set (mean)"), ("K_mean", "stationary K"), ("K_reference", "stationary K (ref.)"),
    ("wealth_gini", "wealth Gini"), ("wealth_gini_reference", "wealth Gini (ref.)"), ("wasserstein", "W1"),
    ("wasserstein_noise", "W1 noise"), ("welfare_pct", "welfare loss (%)"), ("welfare_se_pct", "welfare loss s.e."),
    ("self_consistency_euler_mse", "Euler MSE (own paths)"),
]
#: figure name -> (file suffix, alt text)
FIGURES = {
    "wealth": ("wealth", "stationary distribution of each solver against the reference"),
    "euler_errors": ("euler_errors", "unit-free Euler errors on the common test states"),
    "k_paths": ("k_paths", "aggregate K on common shocks"),
}


def run_one(path: Path, budget: float, seed_everything, *, overrides: Sequence[str] = (),
            reference: Reference | bool = True, shocks_seed: int | None = None,
            figures: bool = True) -> tuple[dict, ComparisonSamples | None]:
    """Train the config's solver under ``budget`` seconds and judge it against ``reference``; one result row and,
    where there is a reference (and ``figures``), the samples for the figures (paths on the shocks of
    ``shocks_seed``, default the config's eval seed)."""
    exp = load_experiment(path, overrides)
    seed_everything(exp.run.seed)
    economy = exp.economy()
    solver = agents.make_solver(exp.solver_name, economy, exp.solver_config)
    steps = exp.run.steps
    start = time.perf_counter()
    solver.train(steps=steps, budget=budget)
    train_s = time.perf_counter() - start
    kw = exp.evaluate_kwargs()
    judged = evaluate_solver(solver, **{**kw, "reference": reference})
    row = {
        "config": str(path), "solver": exp.solver_name, "economy": exp.env.id, "n_agents": economy.n_agents,
        "params": economy.params.to_dict(), "train_s": train_s, "budget_s": budget,
        "parameters": count_parameters(solver.policy), "train_metrics": solver.metrics,
        "reference": judged.reference.get("source") if judged.reference else None,
        **headline_metrics(judged.reference), "self_consistency_euler_mse": judged.euler_mse,
    }
    print(f"{exp.solver_name:20s} train {train_s:7.1f} s  K {row['K_mean']}  Gini {row['wealth_gini']}  "
          f"welfare {row['welfare_pct']} %  Euler(test) {row['euler_test_mean']}", flush=True)
    samples = None
    if figures and isinstance(reference, Reference):
        samples = comparison_samples(solver.policy, solver.economy, reference,
                                     seed=kw["seed"] if shocks_seed is None else shocks_seed)
        row["figure_data"] = samples.summary()
    return row, samples


def reference_row(reference: Reference) -> dict:
    """The reference itself scored by the judge (its own Euler errors set the bar's Euler criterion)."""
    eco = reference.economy
    return {
        "config": None, "solver": f"reference ({reference.source})", "is_reference": True, "economy": eco.env_id,
        "n_agents": eco.n_agents, "params": eco.params.to_dict(), "train_s": reference.metadata.get("solve_time"),
        "budget_s": None, "parameters": None, "reference": reference.source,
        **headline_metrics(score_against_reference(reference.policy, eco, reference)),
        "self_consistency_euler_mse": None,
    }


def _f(value, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def accuracy_bar(row: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[str] | None:
    """The criteria of the accuracy bar (``_common``: K, wealth Gini, welfare loss, Euler error vs the reference row's)
    that ``row`` misses ([] = meets the bar; None: nothing to check against)."""
    if row.get("K_mean") is None or row.get("K_reference") is None:
        return None
    missed = []
    if abs(row["K_mean"] / row["K_reference"] - 1.0) > KS_K_TOLERANCE:
        missed.append("K")
    if row.get("wealth_gini") is not None and abs(row["wealth_gini"] - row["wealth_gini_reference"]) > KS_GINI_TOLERANCE:
        missed.append("Gini")
    if row.get("welfare_pct") is not None and row["welfare_pct"] > WELFARE_LOSS_PCT:
        missed.append("welfare")
    own = [r for r in rows if r.get("is_reference") and r.get("euler_test_mean")]
    if own and row.get("euler_test_mean") is not None \
            and row["euler_test_mean"] > KS_EULER_FACTOR * own[0]["euler_test_mean"]:
        missed.append("Euler")
    return missed


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
        "self-consistency measure, for comparison. Bar: stationary K within 1 % of the reference's, wealth Gini within "
        "0.02, welfare loss ≤ 0.05 %, Euler error on the common states ≤ 2× the reference's own (its row, scored by "
        "the same judge: welfare 0 and W1 at the noise level by construction); "
        "the column names what a row misses. Train: the seconds used (a solver stops at its first check after the "
        "budget; DeepHAM's value simulation before its first step is not interruptible).",
        "",
        "| solver | train (s) | parameters | Euler, common states | Euler, own set | stationary K | wealth Gini | W1 (noise) "
        "| welfare loss (%) | Euler MSE (own paths) | bar |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        se = f" ± {r['welfare_se_pct']:.2g}" if r.get("welfare_se_pct") is not None else ""
        lines.append(
            f"| {r.get('label', r['solver'])} | {_f(r['train_s'], '.0f')} | {_f(r['parameters'], ',')} | {_f(r['euler_test_mean'], '.2e')} | "
            f"{_f(r['euler_own_mean'], '.2e')} | {_f(r['K_mean'], '.3f')} ({_f(r['K_reference'], '.3f')}) | "
            f"{_f(r['wealth_gini'], '.3f')} ({_f(r['wealth_gini_reference'], '.3f')}) | "
            f"{_f(r['wasserstein'], '.3g')} ({_f(r['wasserstein_noise'], '.2g')}) | {_f(r['welfare_pct'], '.3g')}{se} | "
            f"{_f(r['self_consistency_euler_mse'], '.2e')} | {_bar_cell(accuracy_bar(r, rows))} |"
        )
    figures = result.get("figures") or {}
    if figures:
        lines += ["", "Figures: each solver's stationary distribution of w (line) over the reference's (grey); the "
                  "distribution of log10 unit-free errors on the common test states; aggregate K of every solver and "
                  "the reference from the same ergodic cross-section on the same shocks "
                  f"(seed {result.get('shocks_seed')}).", ""]
        lines += [f"![{FIGURES[name][1]}]({link})" for name, link in figures.items() if name in FIGURES]
    return "\n".join(lines) + "\n"


def _bar_cell(missed: list[str] | None) -> str:
    return "–" if missed is None else ("**met**" if not missed else "misses " + ", ".join(missed))


def labels_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The solver name, or the config's stem where two configs use the same solver."""
    names = [r["solver"] for r in rows]
    return [n if names.count(n) == 1 else Path(r["config"]).stem for n, r in zip(names, rows)]


def _link(path: Path) -> str:
    """A figure's link in the markdown: relative to the repository root (the README embeds the result file)."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.name


def draw_figures(samples: Mapping[str, ComparisonSamples], out: Path, stem: str) -> dict[str, Path]:
    """The comparison's figures from each solver's samples (label -> samples), as ``{name: path}``."""
    from train import plots

    if not samples:
        return {}
    first = next(iter(samples.values()))
    ref = f"reference ({first.reference_source})"
    paths: dict[str, Path] = {}
    wealth = {label: s.wealth for label, s in samples.items() if s.wealth is not None}
    if wealth:
        paths["wealth"] = plots.stationary_distribution_figure(
            wealth, first.wealth_reference, out / f"{stem}_wealth.png", key=first.key, agent_name=first.agent_name,
            reference_label=ref)
    if first.error_kind is not None:
        drawn = plots.euler_error_distribution_figure(
            {label: s.errors_test for label, s in samples.items()}, out / f"{stem}_euler_errors.png",
            reference=first.errors_test_reference, reference_label=ref, kind=first.error_kind)
        if drawn is not None:
            paths["euler_errors"] = drawn
    z = first.aggregate_state if first.aggregate_states > 1 else None
    paths["k_paths"] = plots.common_shock_paths_figure(
        {label: s.K_paths for label, s in samples.items()}, out / f"{stem}_k_paths.png",
        reference=first.K_paths_reference, reference_label=ref, aggregate_state=z,
        aggregate_state_key=first.aggregate_state_key or "", ylabel=f"K (mean {first.key})",
        title=f"aggregate K on common shocks (seed {first.shocks_seed}): same start from the reference's ergodic set, "
              "same draws")
    return paths


def log_wandb(result: dict, figures: Mapping[str, Path], mode: str, directory: Path, stem: str) -> str | None:
    """The table (``wandb.Table``) and the figures in one W&B run; returns the upload hint of an offline run."""
    return log_result_run(
        mode=mode, directory=directory, name=stem, job_type="solver_comparison",
        config={k: v for k, v in result.items() if k not in ("rows", "machine")},
        table=([c for _, c in TABLE_COLUMNS], [[r.get(k) for k, _ in TABLE_COLUMNS] for r in result["rows"]]),
        figures=dict(figures), tags=[str(r.get("economy")) for r in result["rows"]])


def _reference(path: Path, overrides: Sequence[str]) -> tuple[Reference | bool, str | None]:
    """The economy's reference, solved once (cached) for every config; (True, reason) when there is none."""
    exp = load_experiment(path, overrides)
    kw = exp.evaluate_kwargs()
    try:
        found = reference_for(exp.economy(), cache_dir=kw.get("reference_cache"), config=kw.get("reference_config"),
                              log=lambda line: print(f"judge: {line}", file=sys.stderr, flush=True))
    except Exception as err:  # noqa: BLE001 - the judge then reports the reason in each row
        reason = f"{type(err).__name__}: {err}"
        warnings.warn(f"no reference: {reason}", RuntimeWarning, stacklevel=2)
        return True, reason
    return (found, None) if found is not None else (True, f"{exp.env.id} has no reference solution")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", type=Path)
    parser.add_argument("--name", required=True, help="result file stem (benchmarks/results/NAME.{json,md})")
    parser.add_argument("--budget", type=float, default=120.0, help="wall-time seconds per solver")
    parser.add_argument("--quick", action="store_true", help="a 20 s budget, NAME_quick results")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="key=value",
                        help="override for every config (repeatable), e.g. --set env.n_agents=20")
    add_wandb_arguments(parser)
    parser.add_argument("--no-figures", action="store_true", help="the table only")
    args = parser.parse_args(argv)
    device = setup_torch(args.threads, "cpu")
    machine = machine_info(device)
    print(f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}", flush=True)
    from train.run import seed_everything

    budget = 20.0 if args.quick else args.budget
    economies = {}
    exps = [load_experiment(path, args.overrides) for path in args.configs]
    for path, exp in zip(args.configs, exps):  # one economy for all, checked before anything trains
        economies.setdefault((exp.env.id, exp.env.n_agents, repr(exp.economy().params)), []).append(str(path))
    if len(economies) > 1:
        raise SystemExit("the configs describe different economies; compare solvers on one: "
                         + "; ".join(f"{key[0]} N = {key[1]}: {', '.join(paths)}" for key, paths in economies.items()))
    reference, reason = _reference(args.configs[0], args.overrides)
    figures_on = not args.no_figures
    eval_seed = exps[0].eval.seed  # the common shocks of every solver's K path
    rows, samples = [], {}
    if isinstance(reference, Reference):
        rows.append(reference_row(reference))
    for path in args.configs:
        row, sample = run_one(path, budget, seed_everything, overrides=args.overrides, reference=reference,
                              shocks_seed=eval_seed, figures=figures_on)
        rows.append(row)
        samples[str(path)] = sample
    for row, label in zip(rows, labels_of(rows)):
        row["label"] = label
        row["bar_missed"] = accuracy_bar(row, rows)
    stem = result_stem(args.name, args.quick)
    figures = {}
    if figures_on:
        drawn = {r["label"]: samples.get(r["config"]) for r in rows}
        figures = draw_figures({label: sample for label, sample in drawn.items() if sample is not None},
                               args.out, stem)
    result = {"benchmark": "solver_comparison", "name": args.name, "date": machine["date"][:10], "quick": args.quick,
              "budget_s": budget, "overrides": list(args.overrides), "shocks_seed": None, "machine": machine,
              "rows": rows, "figures": {name: _link(path) for name, path in figures.items()}}
    if reason is not None:
        result["reference_unavailable"] = reason
    if any(s is not None for s in samples.values()):
        result["shocks_seed"] = next(s.shocks_seed for s in samples.values() if s is not None)
    finish_machine(machine)
    paths = write_results(args.out, stem, result, to_markdown(result))
    hint = log_wandb(result, figures, wandb_mode(args.wandb, quick=args.quick), args.wandb_dir / stem, stem)
    print(paths[1].read_text())
    for path in figures.values():
        print(f"figure: {path}")
    if hint:
        print(hint)
    return result


if __name__ == "__main__":
    main()
