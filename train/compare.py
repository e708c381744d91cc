"""``python -m train.compare CONFIG1 CONFIG2 ... [--seeds 5]``: several solvers, one table, a few figures.

Every config is validated first (nothing runs if one is bad). Then each config is trained ``--seeds`` times
(``run.seed`` = its own seed + 0, 1, ...; an explicit ``solver.seed`` moves along) and judged on COMMON RANDOM NUMBERS:
every run uses the judge's own initial state and the same ``eval.seed`` (``--eval-seed``, default: the first
config's), so on one economy every solver faces the same test paths.

Writes to ``--out`` (default ``runs/compare-<timestamp>``)::

    table.md, table.csv   one row per config: solver, economy, parameters, seeds, wall time, Euler MSE, policy error
                          against the LQ solution (investment, ν = 1) or Bellman error (when the judge has one),
                          ergodic K, parameter count (medians over seeds)
    runs.csv              one row per (config, seed)
    figures/*.png         overlays per economy: Euler residuals over t, learning curves, mean capital paths
    runs/<config>-seed<s>/  each run's own directory (config, metrics, judge, checkpoints)

and logs the table (``wandb.Table``) and the figures to one W&B run (``job_type="compare"``).

    python -m train.compare configs/investment_linear_euler_identity.yaml configs/investment_linear_euler_relu.yaml
    python -m train.compare configs/ks_classical.yaml configs/ks_euler.yaml --seeds 3 --set env.n_agents=1000
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


from .config import ConfigFileError, Experiment, load_experiment
from .logger import WandbRun
from .run import EXIT_CONFIG, EXIT_ERROR, EXIT_OK, RunResult, TrainError, run_experiment

__all__ = ["COLUMNS", "compare", "main"]

#: (column, header) of the comparison table
COLUMNS = [
    ("config", "config"), ("solver", "solver"), ("economy", "economy"), ("params", "params"), ("n_agents", "N"),
    ("seeds", "seeds ok"), ("wall_time", "wall time (s)"), ("euler_mse", "Euler MSE"),
    ("lq_rel_error", "policy error vs LQ (rel.)"), ("bellman_error", "Bellman error"), ("ergodic_K", "ergodic K"),
    ("n_params", "parameters"),
]
RUN_COLUMNS = ["config", "solver", "economy", "params", "n_agents", "seed", "status", "step", "wall_time", "euler_mse",
               "euler_mean_abs", "lq_abs_error", "lq_rel_error", "bellman_error", "ergodic_K", "n_params", "run_dir",
               "message"]


def _economy_params(exp: Experiment) -> str:
    """The economy parameters that differ from the defaults, e.g. ``nu=1.5``."""
    import hetagents_env

    defaults = hetagents_env.economy_class(exp.env.id).Params().to_dict()
    given = hetagents_env.economy_class(exp.env.id).Params.from_kwargs(**exp.env.params).to_dict()
    diff = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in given.items() if defaults.get(k) != v]
    return ", ".join(diff) or "defaults"


def _run_row(exp: Experiment, label: str, seed: int, res: RunResult | None, error: str | None) -> dict[str, Any]:
    from .plots import capital_key

    row: dict[str, Any] = {
        "config": label, "solver": exp.solver_name, "economy": exp.env.id, "params": _economy_params(exp),
        "n_agents": exp.env.n_agents if exp.env.n_agents is not None else exp.economy().n_agents, "seed": seed,
    }
    if res is None:
        return {**row, "status": "error", "message": error}
    result = res.result
    row.update(status=res.status, step=res.step, wall_time=res.wall_time, run_dir=str(res.run_dir),
               message=res.message)
    if result is not None:
        key = capital_key(list(result.aggregates))
        row.update(
            euler_mse=result.euler_mse, euler_mean_abs=result.euler_mean_abs, lq_abs_error=result.lq_abs_error,
            lq_rel_error=result.lq_rel_error, bellman_error=getattr(result, "bellman_error", None),
            ergodic_K=result.aggregates[key]["mean"] if key else None, n_params=result.n_params,
        )
    return row


def _median(values: Sequence[Any]) -> float | None:
    vals = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return statistics.median(vals) if vals else None


def summarize(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per config: medians over its seeds that produced a judge result."""
    table = []
    for label in dict.fromkeys(r["config"] for r in rows):
        group = [r for r in rows if r["config"] == label]
        judged = [r for r in group if r.get("euler_mse") is not None]
        first = group[0]
        table.append({
            "config": label, "solver": first["solver"], "economy": first["economy"], "params": first["params"],
            "n_agents": first["n_agents"], "seeds": f"{sum(r['status'] == 'ok' for r in group)}/{len(group)}",
            **{k: _median([r.get(k) for r in judged]) for k in
               ("wall_time", "euler_mse", "lq_rel_error", "bellman_error", "ergodic_K", "n_params")},
        })
        if table[-1]["n_params"] is not None:
            table[-1]["n_params"] = int(round(table[-1]["n_params"]))
    return table


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if key == "lq_rel_error":
        return f"{100 * value:.3g} %"
    if key == "n_params":
        return f"{int(value):,}"
    if key in ("wall_time", "ergodic_K"):
        return f"{value:.4g}"
    if isinstance(value, float):
        return f"{value:.3e}"
    return str(value)


def markdown(table: Sequence[Mapping[str, Any]], eval_seed: int) -> str:
    head = "| " + " | ".join(h for _, h in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_cell(k, r.get(k)) for k, _ in COLUMNS) + " |" for r in table]
    note = (f"\nMedians over seeds; judged on common random numbers (eval seed {eval_seed}, the judge's own initial "
            "state). Policy error: mean |u − u_LQ| / |u_LQ| against the exact LQ policy (investment economy, "
            "ν = 1).\n")
    return "\n".join([head, rule, *body]) + "\n" + note


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})


def _labels(paths: Sequence[str]) -> list[str]:
    stems = [Path(p).stem for p in paths]
    return [s if stems.count(s) == 1 else f"{i}-{s}" for i, s in enumerate(stems)]


def compare(
    configs: Sequence[str],
    *,
    seeds: int = 1,
    overrides: Sequence[str] = (),
    out: str | Path | None = None,
    eval_seed: int | None = None,
    wandb_mode: str | None = None,
    figures: bool = True,
    run_figures: bool = False,
    progress: bool = False,
    stream=None,
) -> dict[str, Any]:
    """Train and judge every config ``seeds`` times; write the tables and figures; returns a dict with ``table``,
    ``rows``, ``out``, ``figures`` and ``failed`` (runs that errored or went non-finite)."""
    stream = stream or sys.stdout
    labels = _labels(configs)
    base = [load_experiment(c, overrides) for c in configs]  # validate everything before running anything
    eval_seed = base[0].eval.seed if eval_seed is None else int(eval_seed)
    out = Path(out) if out is not None else Path(base[0].run.output_dir) / (
        "compare-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    plans = []
    for config, label, exp in zip(configs, labels, base):
        for j in range(seeds):
            seed = exp.run.seed + j
            extra = [f"run.seed={seed}", "logger.mode=disabled", f"logger.figures={str(run_figures).lower()}",
                     f"logger.progress={str(progress).lower()}", "eval.initial_state=judge", f"eval.seed={eval_seed}"]
            if "seed" in exp.solver_section:
                extra.append(f"solver.seed={int(exp.solver_section['seed']) + j}")
            planned = load_experiment(config, [*overrides, *extra])
            planned.run.output_dir, planned.run.name = str(out / "runs"), f"{label}-seed{seed}"
            plans.append((label, seed, planned))

    rows, results = [], {}
    for label, seed, exp in plans:
        print(f"[compare] {label} seed {seed} ...", file=stream, flush=True)
        res, error = None, None
        try:
            res = run_experiment(exp, out=io.StringIO())
        except (TrainError, ConfigFileError) as err:
            error = str(err)
        row = _run_row(exp, label, seed, res, error)
        rows.append(row)
        print(f"[compare] {label} seed {seed}: {row['status']}"
              + (f", Euler MSE {row['euler_mse']:.3e}" if row.get("euler_mse") is not None else "")
              + (f" ({row['message']})" if row["status"] != "ok" else ""), file=stream, flush=True)
        if res is not None and res.result is not None and label not in results:
            results[label] = (exp, res)

    table = summarize(rows)
    md = markdown(table, eval_seed)
    (out / "table.md").write_text(md)
    _write_csv(out / "table.csv", table, [k for k, _ in COLUMNS])
    _write_csv(out / "runs.csv", rows, RUN_COLUMNS)

    fig_paths: dict[str, Path] = {}
    if figures and results:
        fig_paths = _overlays(results, out / "figures", eval_seed)

    wandb = WandbRun(wandb_mode if wandb_mode is not None else (
        base[0].logger.mode.value if base[0].logger.mode is not None else None),
        directory=out, config={"configs": list(configs), "seeds": seeds, "overrides": list(overrides),
                               "eval_seed": eval_seed}, project=base[0].logger.project, entity=base[0].logger.entity,
        group=base[0].logger.group, job_type="compare", name=out.name)
    wandb.table("compare/table", [h for _, h in COLUMNS], [[r.get(k) for k, _ in COLUMNS] for r in table])
    wandb.table("compare/runs", RUN_COLUMNS, [[r.get(k) for k in RUN_COLUMNS] for r in rows])
    wandb.images(fig_paths)
    hint = wandb.finish()
    print(md, file=stream)
    print(f"[compare] wrote {out / 'table.md'}, {out / 'table.csv'}, {out / 'runs.csv'}"
          + (f", {len(fig_paths)} figure(s) in {out / 'figures'}" if fig_paths else ""), file=stream)
    if hint:
        print(hint, file=stream)
    failed = [r for r in rows if r["status"] in ("error", "nonfinite", "interrupted")]
    return {"table": table, "rows": rows, "out": out, "figures": fig_paths, "failed": failed, "markdown": md}


def _overlays(results: Mapping[str, tuple[Experiment, RunResult]], directory: Path, eval_seed: int) -> dict[str, Path]:
    """Per economy (id + parameters + N): residuals, learning curves and mean capital paths on common shocks."""
    from . import plots

    groups: dict[str, dict[str, tuple[Experiment, RunResult]]] = {}
    for label, (exp, res) in results.items():
        key = f"{exp.env.id} {_economy_params(exp)} N={res.solver.economy.n_agents}"
        groups.setdefault(key, {})[label] = (exp, res)
    out: dict[str, Path] = {}
    for i, (key, members) in enumerate(groups.items()):
        tag = members[next(iter(members))][0].env.id.split("-")[0].lower() + (f"_{i}" if len(groups) > 1 else "")
        out[f"euler_residuals_{tag}"] = plots.overlay_euler_residuals(
            {label: res.result for label, (_, res) in members.items()}, directory / f"euler_residuals_{tag}.png",
            title=key)
        curves = plots.overlay_learning_curves({label: res.history for label, (_, res) in members.items()},
                                               directory / f"learning_curves_{tag}.png")
        if curves is not None:
            out[f"learning_curves_{tag}"] = curves
        series, name = {}, None
        for label, (exp, res) in members.items():
            kw = exp.evaluate_kwargs()
            paths = plots.test_paths(res.solver, trajectories=min(kw["trajectories"], 16), horizon=kw["horizon"],
                                     seed=eval_seed, burn_in=kw["burn_in"], initial_state="judge")
            aggs = res.solver.economy.aggregates(paths.reshape(-1))
            name = plots.capital_key(list(aggs))
            series[label] = aggs[name].double().reshape(paths.batch_size[0], -1).mean(0).cpu().numpy()
        if name is not None:
            out[f"capital_paths_{tag}"] = plots.overlay_paths(
                series, directory / f"capital_paths_{tag}.png", ylabel=f"mean {name} over test paths",
                title=f"{key}: common shocks (eval seed {eval_seed})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.compare", description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", metavar="CONFIG")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per config (default 1)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="key=value",
                        help="override for every config (repeatable), e.g. --set run.steps=200")
    parser.add_argument("--out", help="output directory (default runs/compare-<timestamp>)")
    parser.add_argument("--eval-seed", type=int, help="the judge's seed for every run (default: the first config's)")
    parser.add_argument("--wandb-mode", choices=["online", "offline", "disabled"],
                        help="W&B mode of the comparison run (default: the first config's logger.mode)")
    parser.add_argument("--no-figures", action="store_true", help="skip the overlay figures")
    parser.add_argument("--run-figures", action="store_true", help="also draw every run's own figures")
    parser.add_argument("--progress", action="store_true", help="progress bars of the individual runs")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        print("error: --seeds must be >= 1", file=sys.stderr)
        return EXIT_CONFIG
    try:
        report = compare(args.configs, seeds=args.seeds, overrides=args.overrides, out=args.out,
                         eval_seed=args.eval_seed, wandb_mode=args.wandb_mode, figures=not args.no_figures,
                         run_figures=args.run_figures, progress=args.progress)
    except ConfigFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    if report["failed"]:
        print(f"error: {len(report['failed'])} of {len(report['rows'])} run(s) failed (status column of "
              f"{report['out'] / 'runs.csv'})", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
