"""Time to accuracy: every solver's accuracy against wall time, scored by the judge against each economy's reference.

    python benchmarks/time_to_accuracy.py [--budget 120] [--economies investment ks] [--checkpoints 15 30 60 ...]
                                          [--configs CONFIG ...] [--set KEY=VALUE ...] [--no-welfare] [--quick]
                                          [--threads 1]
                                          [--out benchmarks/results]

Economies and their accuracy bars (issue 19):

* ``investment``: the linear N-firm investment economy (ν = 1, N = 128). Bar: mean relative policy error against
  the exact LQ policy on the judge's common test states ≤ 0.1 %.
* ``ks``: Krusell–Smith (DeepHAM calibration, N = 50), reference the classical continuum solution (``ks_classical``,
  solved once and cached). Bar, all three: the policy's stationary mean K within 1 % of the reference's, its wealth
  Gini within 0.02 of the reference's, and its mean unit-free Euler error |1 − c/c_EE| on the common test states
  ≤ 2 × the reference policy's own.

Solvers: every shipped config ``configs/investment_*.yaml`` / ``configs/ks_*.yaml`` (by glob: a config added
later is picked up) whose economy (id, parameters, N) is the benchmark's and whose solver is registered and supports
it (``Solver.supports``). Exceptions, recorded with their reason in the result: ``td0`` (policy evaluation of a
fixed policy: it learns no policy), configs of another economy (ν = 1.5; N = 10,000), configs whose solver is not
registered, and ``ks_classical`` with the continuum simulation, whose N only sizes the judge's simulation: it runs at
the benchmark's N. Registered solvers that support the economy but have no shipped config are listed too.

Protocol, per config: seed as ``python -m train`` does, build the solver (its setup counts: the clock starts
before the constructor), and train ONCE for at most ``--budget`` seconds of wall time (and the config's own
``run.steps`` / stopping rule) through ``Solver.train(steps, budget=..., progress=hook)``. The ``progress`` hook,
which every solver calls after every step, copies the policy (``copy.deepcopy``, ~1 ms) the first time the clock
passes each checkpoint (default 15 s, 30 s, 1, 2, 5, 10, 20 min, those ≤ the budget, and the budget itself). After
training the copies are scored one by one with the judge's reference-based metrics
(:func:`agents.reference_judge.score_against_reference`: errors at the common test states and on the policy's own
ergodic set, stationary distribution, welfare): **the judge's time never runs on the solver's clock** and is
reported separately. Why one call rather than repeated ``train(budget=chunk)`` calls: the RL solvers' cosine
learning-rate schedule spans one call (a chunked run would restart it every chunk), the Euler and RL solvers' budget
deadlines are wall-clock (a judge inside a callback would eat training time), and ``ks_classical`` compares its budget
with its total clock, not with the seconds of the current call.

A checkpoint's policy is the one the solver held at the end of the first step that finished after the checkpoint
(its time is recorded: a solver whose first step ends after several checkpoints gets one point for the latest of
them). When a solver stops by itself before the budget (converged, or its configured steps done) its final policy is
scored at its actual time ("end"): it is the policy it holds at every later checkpoint. A row that never meets the bar
says "not reached" — so does one whose budget ends before the first checkpoint: nothing is extrapolated.

Writes ``time_to_accuracy.json`` (every point, the bars, the references, the machine), ``time_to_accuracy.md``
(the README tables) and ``time_to_accuracy_<economy>.png`` (accuracy against time); ``--quick`` (10 s budget,
checkpoints 2.5 / 5 / 10 s, DeepHAM left out: its setup alone takes minutes) writes ``time_to_accuracy_quick.*``.
``--score-runs RUN_DIR ...`` (with one ``--economies``) trains nothing and scores the kept checkpoints of
``python -m train`` runs — e.g. a ``torchrun`` run on both cores — the same way: a summary row per run (its first
checkpoint at the bar, and how many from there on are at it: does it hold?) and a row per checkpoint.
``--merge A.json B.json`` combines runs of one budget (e.g. a config added after a run: ``--configs NEW.yaml
--name x`` then ``--merge time_to_accuracy_main.json x.json``), or ``--score-runs`` files (their runs side by side;
``--labels`` names the runs in the tables, e.g. by their overrides and seed); ``--render`` rewrites the tables and
plots of a result file; ``--list`` prints what would run.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    INVESTMENT_POLICY_ERROR, KS_EULER_FACTOR, KS_GINI_TOLERANCE, KS_K_TOLERANCE, RESULTS, finish_machine, machine_info,
    result_stem, setup_torch, write_results,
)

#: default checkpoints, seconds of solver wall time
CHECKPOINTS = (15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0)
QUICK_CHECKPOINTS = (2.5, 5.0, 10.0)
QUICK_BUDGET = 10.0

#: the accuracy bars: INVESTMENT_POLICY_ERROR, KS_* in _common (the same bar as the solver comparison's)

#: the benchmark's economies: env id, keyword arguments of make_economy, config glob, label
ECONOMIES: dict[str, dict[str, Any]] = {
    "investment": {"env_id": "Investment-v0", "make": {"n_agents": 128, "nu": 1.0}, "glob": "investment_*.yaml",
                   "label": "Investment economy, ν = 1 (N = 128)"},
    "ks": {"env_id": "KrusellSmith-v0", "make": {"n_agents": 50}, "glob": "ks_*.yaml",
           "label": "Krusell–Smith (N = 50)"},
}

#: solvers that learn no policy (recorded as skipped with this reason)
NOT_POLICY_SOLVERS = {
    "td0": "policy evaluation: TD(0) learns the value of a fixed policy (the economy's data policy), not a policy",
}


#: solvers left out of a ``--quick`` run (with this reason): their setup alone outlasts a quick budget by minutes
QUICK_SKIP = {
    "deepham": "--quick: the published setup (2,000-period burn-in, first value fit) takes minutes before the first "
               "step, and the solver checks its budget only between steps",
}


def n_free(exp) -> bool:
    """Whether a config's N only sizes the judge's simulation, not its algorithm (then it runs at the benchmark's
    N): the classical Krusell–Smith solver with the continuum (histogram) simulation."""
    return exp.solver_name == "ks_classical" and getattr(exp.solver_config, "simulation", None) == "histogram"


# ---------------------------------------------------------------------------------------------- selection
def benchmark_economy(key: str):
    import hetagents_env

    spec = ECONOMIES[key]
    return hetagents_env.make_economy(spec["env_id"], **spec["make"])


#: the override this benchmark adds itself when a config's N differs from the benchmark economy's (not a --set)
SIZE_OVERRIDE = "env.n_agents="


def select_configs(key: str, paths: list[Path] | None = None, quick: bool = False,
                   extra: list[str] | tuple[str, ...] = ()) -> tuple[list[dict], list[dict]]:
    """``(runs, skipped)`` for economy ``key``: the configs to run (dicts with path, overrides, solver) and the
    skipped ones / registered solvers without a config (dicts with what and why). ``extra``: ``key=value``
    overrides applied to every config (``--set``), recorded in each run's overrides."""
    from agents.solvers.registry import SOLVERS
    from train.config import ConfigFileError, load_experiment

    spec = ECONOMIES[key]
    target = benchmark_economy(key)
    explicit = paths is not None
    if paths is None:
        paths = sorted((ROOT / "configs").glob(spec["glob"]))
    runs, skipped, covered = [], [], set()
    for path in paths:
        name = _rel(path)
        try:
            exp = load_experiment(path, check_solver=False)
        except ConfigFileError as err:
            skipped.append({"config": name, "reason": f"config does not load: {err}"})
            continue
        if exp.env.id != spec["env_id"]:
            continue  # another economy's config (only when given explicitly)
        if exp.solver_name not in SOLVERS:
            skipped.append({"config": name, "solver": exp.solver_name,
                            "reason": f"solver {exp.solver_name!r} is not registered"})
            continue
        try:
            exp = load_experiment(path, list(extra))
        except ConfigFileError as err:
            skipped.append({"config": name, "solver": exp.solver_name, "reason": f"config does not load: {err}"})
            continue
        overrides: list[str] = list(extra)
        economy = exp.economy(device="cpu")
        if economy.params != target.params:
            diff = {k: v for k, v in economy.params.to_dict().items() if target.params.to_dict().get(k) != v}
            skipped.append({"config": name, "solver": exp.solver_name,
                            "reason": f"another economy: parameters {diff} (benchmark: "
                                      f"{ {k: target.params.to_dict()[k] for k in diff} })"})
            continue
        if economy.n_agents != target.n_agents:
            if n_free(exp):
                overrides.append(f"{SIZE_OVERRIDE}{target.n_agents}")
            else:
                skipped.append({"config": name, "solver": exp.solver_name,
                                "reason": f"another economy: N = {economy.n_agents:,} (benchmark: N = "
                                          f"{target.n_agents}); its N enters the algorithm"})
                continue
        if exp.solver_name in NOT_POLICY_SOLVERS:
            skipped.append({"config": name, "solver": exp.solver_name, "reason": NOT_POLICY_SOLVERS[exp.solver_name]})
            covered.add(exp.solver_name)
            continue
        if quick and exp.solver_name in QUICK_SKIP:
            skipped.append({"config": name, "solver": exp.solver_name, "reason": QUICK_SKIP[exp.solver_name]})
            covered.add(exp.solver_name)
            continue
        if not SOLVERS[exp.solver_name].supports(target):
            skipped.append({"config": name, "solver": exp.solver_name, "reason": "the solver does not support it"})
            continue
        runs.append({"config": name, "path": str(path), "overrides": overrides, "solver": exp.solver_name})
        covered.add(exp.solver_name)
    for solver, cls in sorted(SOLVERS.items()):
        if explicit:
            break  # only the configs asked for
        if solver not in covered and cls.supports(target):
            skipped.append({"solver": solver, "reason": NOT_POLICY_SOLVERS.get(
                solver, "supports the economy; no shipped config of it")})
    return runs, skipped


def row_label(row: dict) -> str:
    """A run's name in the tables: its config file, then the overrides it ran with (``--set``; ``env.n_agents``)."""
    return " ".join([f"`{Path(row['config']).name}`", *(f"`{o}`" for o in row.get("overrides", ()))])


def _rel(path: Path | str) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------- the bar
def reference_summary(reference) -> dict[str, Any]:
    """The reference's own numbers the bar is measured against (Krusell–Smith: its Euler error at the common test
    states, its stationary K and Gini under the judge's protocol)."""
    from agents.reference_judge import score_against_reference

    out: dict[str, Any] = {"source": reference.source, "key": reference.key,
                           "solve_time": reference.metadata.get("solve_time")}
    if not _exact(out):  # an exact reference has no errors or distribution of its own to measure against
        own = score_against_reference(reference.policy, reference.economy, reference, welfare=False,
                                      stationary=False)
        stats = _stationary_stats(reference.stationary)
        out.update(euler_test_mean=own["errors_test"]["mean"], K_mean=stats["K_mean"],
                   wealth_gini=stats["wealth_gini"], euler_test_aggregate=own["errors_test"].get("aggregate_mean"),
                   euler_test_individual=own["errors_test"].get("individual_mean"))
    return out


def _stationary_stats(sample) -> dict[str, Any]:
    from agents.reference_metrics import stationary_stats

    return stationary_stats(sample)


def _exact(ref: dict[str, Any]) -> bool:
    """Whether the economy's reference is its exact policy: then the bar is the policy error; else the stationary
    distribution and the Euler errors against the reference solver's (decided by the reference, not the economy)."""
    return ref["source"] == "exact"


def bar_of(ref: dict[str, Any]) -> dict[str, Any]:
    """The bar in words and numbers."""
    if _exact(ref):
        return {"policy_error_max": INVESTMENT_POLICY_ERROR,
                "text": f"mean relative policy error vs the exact LQ policy on the common test states ≤ "
                        f"{100 * INVESTMENT_POLICY_ERROR:.1f} %"}
    return {"K_tolerance": KS_K_TOLERANCE, "gini_tolerance": KS_GINI_TOLERANCE, "euler_factor": KS_EULER_FACTOR,
            "euler_max": KS_EULER_FACTOR * ref["euler_test_mean"],
            "text": f"stationary K within {100 * KS_K_TOLERANCE:.0f} % of the reference's ({ref['K_mean']:.3f}), "
                    f"wealth Gini within {KS_GINI_TOLERANCE} of its {ref['wealth_gini']:.3f}, mean unit-free Euler "
                    f"error on the common test states ≤ {KS_EULER_FACTOR:g} × the reference's "
                    f"{ref['euler_test_mean']:.2e}"}


def check_bar(metrics: dict[str, Any], bar: dict[str, Any]) -> dict[str, Any]:
    """``{"met": bool, criterion: {"value", "limit", "ok"}, ...}`` for one scored point (``metrics`` as returned by
    :func:`point_metrics`); a point without metrics (invalid policy output) does not meet it."""
    if metrics.get("error"):
        return {"met": False}
    if "policy_error_max" in bar:
        value = metrics["euler_test_mean"]
        crit = {"policy_error": {"value": value, "limit": bar["policy_error_max"],
                                 "ok": value is not None and value <= bar["policy_error_max"]}}
    else:
        k_dev = abs(metrics["K_mean"] / metrics["K_reference"] - 1.0)
        g_dev = abs(metrics["wealth_gini"] - metrics["wealth_gini_reference"])
        euler = metrics["euler_test_mean"]
        crit = {
            "K": {"value": k_dev, "limit": bar["K_tolerance"], "ok": k_dev <= bar["K_tolerance"]},
            "gini": {"value": g_dev, "limit": bar["gini_tolerance"], "ok": g_dev <= bar["gini_tolerance"]},
            "euler": {"value": euler, "limit": bar["euler_max"], "ok": euler <= bar["euler_max"]},
        }
    return {"met": all(c["ok"] for c in crit.values()), **crit}


def point_metrics(section: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one reference section that the tables show (the judge's :func:`headline_metrics`)."""
    from agents.reference_judge import headline_metrics

    return headline_metrics(section)


# ---------------------------------------------------------------------------------------------- one run
def plan_checkpoints(checkpoints: list[float], budget: float) -> list[float]:
    """The checkpoints ≤ ``budget``, and the budget itself as the last one (none if the budget is below the
    first checkpoint)."""
    plan = sorted(c for c in set(checkpoints) if c <= budget)
    if plan and plan[-1] < budget:
        plan.append(budget)
    return plan


def train_with_snapshots(run: dict, budget: float, checkpoints: list[float], device, seed_everything) -> dict:
    """Build and train one config's solver once, copying its policy at the checkpoints; see the module docstring.
    Returns the run record with ``snapshots`` (policies not yet scored)."""
    import agents
    from train.config import load_experiment

    exp = load_experiment(run["path"], run["overrides"])
    seed_everything(exp.run.seed)
    plan = plan_checkpoints(checkpoints, budget)
    snapshots: list[dict] = []
    state = {"next": 0, "steps": 0, "copy_s": 0.0}
    t0 = time.perf_counter()
    solver = agents.make_solver(exp.solver_name, exp.economy(device=device), exp.solver_config)
    setup_s = time.perf_counter() - t0

    def snapshot(label: float | None, now: float) -> None:
        start = time.perf_counter()
        policy = copy.deepcopy(solver.policy)
        state["copy_s"] += time.perf_counter() - start
        snapshots.append({"checkpoint": label, "time": now, "steps": state["steps"], "policy": policy})

    def progress(done: int, total: int | None) -> None:
        state["steps"] += 1
        now = time.perf_counter() - t0
        crossed = None
        while state["next"] < len(plan) and now >= plan[state["next"]]:
            crossed = plan[state["next"]]
            state["next"] += 1
        if crossed is not None:
            snapshot(crossed, now)

    remaining = budget - setup_s
    error = None
    if remaining > 0:
        try:
            solver.train(exp.run.steps, budget=remaining, progress=progress)
        except Exception as err:  # noqa: BLE001 - a failing solver is a row of the table, not the end of the run
            error = f"{type(err).__name__}: {err}"
    end = time.perf_counter() - t0
    by_budget = end >= budget - max(0.5, 0.01 * budget)
    last_steps = snapshots[-1]["steps"] if snapshots else -1
    if error is None and last_steps != state["steps"]:
        if not by_budget:  # stopped by itself: its final policy is the one it holds from now on
            snapshot(None, end)
        elif state["next"] < len(plan) and plan[state["next"]] == budget:
            snapshot(budget, end)  # the budget's checkpoint, reached between the last step's hook and its deadline
            state["next"] += 1
    metrics = dict(solver.metrics)
    if remaining <= 0:
        stop = f"setup took {setup_s:.1f} s, the whole budget"
    elif error is not None:
        stop = f"failed: {error}"
    elif by_budget:
        stop = "budget"
    elif metrics.get("converged"):
        stop = "converged"
    elif metrics.get("diverged"):
        stop = "diverged"
    else:
        stop = "finished its configured run"
    return {
        **{k: v for k, v in run.items() if k != "path"}, "economy_n": solver.economy.n_agents,
        "budget_s": budget, "setup_s": setup_s, "train_end_s": end, "stopped_by": stop, "steps": state["steps"],
        "solver_wall_time": solver.wall_time, "solver_cpu_time": solver.cpu_time, "snapshot_copy_s": state["copy_s"],
        "final_train_metrics": _plain_metrics(metrics), "planned_checkpoints": plan,
        "missed_checkpoints": plan[state["next"]:], "snapshots": snapshots, "_economy": solver.economy,
    }


def _plain_metrics(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}


def score_run(record: dict, reference, bar: dict, welfare: bool) -> dict:
    """Score each snapshot of ``record`` (in place; the policies are dropped) and fill the time to the bar."""
    from agents.policy_check import InvalidPolicyOutput
    from agents.reference_judge import score_against_reference

    economy = record.pop("_economy")
    points, judge_total = [], 0.0
    for snap in record.pop("snapshots"):
        policy = snap.pop("policy")
        if isinstance(policy, torch.nn.Module):
            policy.eval()
        start = time.perf_counter()
        try:
            with torch.no_grad():
                section = score_against_reference(policy, economy, reference, welfare=welfare)
            metrics = point_metrics(section)
        except (InvalidPolicyOutput, ValueError, RuntimeError) as err:
            metrics = {"error": f"{type(err).__name__}: {err}"}
        judge_s = time.perf_counter() - start
        judge_total += judge_s
        points.append({**snap, "judge_s": judge_s, **metrics, "bar": check_bar(metrics, bar)})
    record["points"] = points
    record["judge_s"] = judge_total
    first = next((p for p in points if p["bar"]["met"]), None)
    record["time_to_bar_s"] = None if first is None else first["time"]
    record["time_to_bar_checkpoint"] = None if first is None else first["checkpoint"]
    record["final"] = points[-1] if points else None
    if first is None:
        if not points:
            plan = record["planned_checkpoints"]
            why = ("budget below the first checkpoint" if not plan else
                   f"no step ended after {plan[0]:g} s" if record["stopped_by"] == "budget" else record["stopped_by"])
            record["not_reached"] = f"not reached (no policy scored: {why})"
        else:
            record["not_reached"] = "not reached"
    return record


# ---------------------------------------------------------------------------------------------- output
def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def _f(value, fmt: str) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def _pct(value: float | None) -> str:
    """A fraction in % with two significant digits (0.00012 -> "0.012 %")."""
    if value is None:
        return "–"
    return f"{100 * value:.3g} %" if 100 * value >= 1 else f"{100 * value:.2g} %"


def _point_cell(p: dict) -> str:
    """A checkpoint's accuracy in one cell (investment: policy error; KS: ΔK % / ΔGini / Euler ÷ reference's)."""
    if p.get("error"):
        return "invalid output"
    mark = " ✓" if p["bar"]["met"] else ""
    if "policy_error" in p["bar"]:
        return f"{_pct(p['euler_test_mean'])}{mark}"
    b = p["bar"]
    return (f"{100 * (p['K_mean'] / p['K_reference'] - 1):+.1f} % / {b['gini']['value']:.3f} / "
            f"{p['euler_test_mean'] / (b['euler']['limit'] / KS_EULER_FACTOR):.1f}×{mark}")


def economy_markdown(key: str, section: dict, budget: float) -> str:
    label, bar, ref = ECONOMIES[key]["label"], section["bar"], section["reference"]
    rows, exact = section["rows"], _exact(section["reference"])
    lines = [f"#### {label}", "", f"Bar: {bar['text']}. Budget {budget:g} s of wall time per solver "
             "(setup included); judge time excluded from the solver's clock and shown separately.", ""]
    if exact:
        lines += ["| solver | config | time to the bar | stopped by | final time | steps | policy error | "
                  "welfare loss (%) | judge (s) |", "|---|---|---:|---|---:|---:|---:|---:|---:|"]
    else:
        lines += ["| solver | config | time to the bar | stopped by | final time | steps | stationary K | "
                  "wealth Gini | Euler, common states | welfare loss (%) | judge (s) |",
                  "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        reached = _fmt_time(r["time_to_bar_s"]) if r["time_to_bar_s"] is not None else r["not_reached"]
        f = r["final"] or {}
        stopped = r["stopped_by"]
        if stopped == "budget" and r["train_end_s"] > 1.1 * r["budget_s"] + 5:  # a step (or setup) that ran long
            stopped = f"budget, overran to {_fmt_time(r['train_end_s'])}"
        head = (f"| {r['solver']} | {row_label(r)} | {reached} | {stopped} | {_fmt_time(f.get('time'))} | "
                f"{f.get('steps', '–')} |")
        welfare = _f(f.get("welfare_pct"), ".3g") + (f" ± {f['welfare_se_pct']:.2g}" if f.get("welfare_se_pct") else "")
        if f.get("error"):
            lines.append(head + f" {f['error'][:60]} |" + (" |" * (2 if exact else 4))
                         + f" {r['judge_s']:.1f} |")
        elif exact:
            lines.append(head + f" {_pct(f.get('euler_test_mean'))} | {welfare} | "
                         f"{r['judge_s']:.1f} |")
        else:
            lines.append(head + f" {_f(f.get('K_mean'), '.2f')} ({_f(f.get('K_reference'), '.2f')}) | "
                         f"{_f(f.get('wealth_gini'), '.3f')} ({_f(f.get('wealth_gini_reference'), '.3f')}) | "
                         f"{_f(f.get('euler_test_mean'), '.2e')} ({ref['euler_test_mean']:.2e}) | {welfare} | "
                         f"{r['judge_s']:.1f} |")
    # the curve: accuracy at each checkpoint
    plan = sorted({c for r in rows for c in r["planned_checkpoints"]})
    if rows and plan:
        cell_doc = ("policy error" if exact else
                    "K − K_ref (%) / |Gini − Gini_ref| / Euler error ÷ the reference's")
        lines += ["", f"Accuracy at each checkpoint ({cell_doc}; ✓ bar met; *end*: the solver stopped by itself, "
                  "its final policy):", "",
                  "| solver | config | " + " | ".join(_fmt_time(c) for c in plan) + " | end |",
                  "|---|---|" + "---:|" * (len(plan) + 1)]
        for r in rows:
            cells = {c: "" for c in plan}
            end = ""
            for p in r["points"]:
                cell = _point_cell(p)
                if p["checkpoint"] is None:
                    end = f"{cell} ({_fmt_time(p['time'])})"
                else:
                    late = p["time"] > 1.1 * p["checkpoint"] + 1.0
                    cells[p["checkpoint"]] = cell + (f" (at {_fmt_time(p['time'])})" if late else "")
            lines.append(f"| {r['solver']} | {row_label(r)} | "
                         + " | ".join(cells[c] or "–" for c in plan) + f" | {end or '–'} |")
    if section["skipped"]:
        lines += ["", "Not run: " + "; ".join(
            f"{('`' + Path(s['config']).name + '`') if s.get('config') else s['solver']}: {s['reason']}"
            for s in section["skipped"]) + "."]
    return "\n".join(lines) + "\n"


def to_markdown(result: dict) -> str:
    rows = [r for section in result["economies"].values() for r in section.get("rows", [])]
    chosen = any(not o.startswith(SIZE_OVERRIDE) for r in rows for o in r.get("overrides", ()))  # --set, not sizes
    what = ("each row a config with the overrides it names, trained once" if chosen
            else "each shipped config trained once")
    lines = [
        f"Time to accuracy (`benchmarks/time_to_accuracy.py`): {what} for at most "
        f"{result['budget_s']:g} s of wall time ({result['machine']['threads']} torch thread(s)); its policy copied "
        "when the clock passes each checkpoint and scored afterwards by the judge against the economy's reference "
        "(the judge's time is not on the solver's clock). Time to the bar: the first scored policy that meets it "
        "(its actual time; checkpoints are only as fine as the solver's steps).",
        "",
    ]
    if len(result.get("runs", [])) > 1:
        lines += [_merged_from(result), ""]
    for key, section in result["economies"].items():
        lines.append(economy_markdown(key, section, result["budget_s"]))
    return "\n".join(lines)


def plot(key: str, section: dict, path: Path) -> Path | None:
    """Accuracy against solver wall time, one line per config (log scales), the bar dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = [r for r in section["rows"] if any(not p.get("error") for p in r["points"])]
    if _exact(section["reference"]):
        panels = [("relative policy error vs LQ", lambda p: p["euler_test_mean"], section["bar"]["policy_error_max"])]
    else:
        b = section["bar"]
        panels = [
            ("|K / K_ref − 1|", lambda p: abs(p["K_mean"] / p["K_reference"] - 1), b["K_tolerance"]),
            ("|Gini − Gini_ref|", lambda p: abs(p["wealth_gini"] - p["wealth_gini_reference"]), b["gini_tolerance"]),
            ("Euler error, common states", lambda p: p["euler_test_mean"], b["euler_max"]),
        ]
    fig, axes = plt.subplots(1, len(panels), figsize=(max(8.0, 4.6 * len(panels)), 4.6), squeeze=False)
    for ax, (title, value, limit) in zip(axes[0], panels):
        for r in rows:
            pts = [p for p in r["points"] if not p.get("error")]
            xs = [max(p["time"], 1e-2) for p in pts]
            ys = [max(value(p), 1e-8) for p in pts]
            line, = ax.plot(xs, ys, marker="o", label=f"{r['solver']} ({Path(r['config']).stem})")
            met = [(x, y) for x, y, p in zip(xs, ys, pts) if p["bar"]["met"]]
            if met:  # the points that meet the whole bar
                ax.plot(*zip(*met), linestyle="none", marker="*", markersize=13, color=line.get_color(),
                        markeredgecolor="k")
        ax.axhline(limit, color="k", linestyle="--", linewidth=1, label="bar (★: the whole bar met)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        lo, hi = ax.get_xlim()
        ticks = [t for t in (1, 2, 5, 15, 30, 60, 120, 300, 600, 1200, 3600) if lo <= t <= hi]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("solver wall time (s)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    ncol = min(2 if len(panels) == 1 else 4, len(labels))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(f"{ECONOMIES[key]['label']}: accuracy vs time (budget {section['budget_s']:g} s)")
    fig.tight_layout(rect=(0, 0.05 + 0.045 * math.ceil(len(labels) / ncol), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- runs of the CLI
def score_saved_runs(key: str, run_dirs: list[Path], welfare: bool, log) -> dict:
    """Score the kept checkpoints of ``python -m train`` runs (e.g. a ``torchrun`` run, which this script cannot
    launch itself) against economy ``key``'s reference and bar: each run's ``config.yaml`` builds its solver, each
    ``checkpoints/step_*.pt`` is loaded into it and its policy judged; the time of a point is the solver's own
    clock saved in the checkpoint (``wall_time``: setup and training, on rank 0 for a distributed run)."""
    import agents
    from agents.reference import reference_for
    from agents.reference_judge import score_against_reference
    from train.checkpoint import CheckpointDir, load_checkpoint, to_device
    from train.config import load_experiment

    target = benchmark_economy(key)
    reference = reference_for(target, solve=True, log=log)
    ref = reference_summary(reference)
    bar = bar_of(ref)
    runs = []
    for run_dir in run_dirs:
        files = CheckpointDir(run_dir / "checkpoints").files()
        if not (run_dir / "config.yaml").is_file() or not files:
            raise SystemExit(f"--score-runs {run_dir}: not a run directory with config.yaml and checkpoints/step_*.pt")
        exp = load_experiment(run_dir / "config.yaml")
        economy = exp.economy(device="cpu")
        if economy.env_id != target.env_id or economy.params != target.params or economy.n_agents != target.n_agents:
            raise SystemExit(f"--score-runs {run_dir}: the run's economy is not the benchmark's "
                             f"{ECONOMIES[key]['label']}")
        solver = agents.make_solver(exp.solver_name, economy, exp.solver_config)
        points = []
        for step, path in files:
            data = load_checkpoint(path)
            solver.load_state_dict(to_device(data["solver"], economy.device))
            solver.policy.eval()
            with torch.no_grad():
                metrics = point_metrics(score_against_reference(solver.policy, target, reference, welfare=welfare))
            points.append({"checkpoint": path.name, "step": step, "time": data["solver"].get("wall_time"), **metrics,
                           "bar": check_bar(metrics, bar)})
            log(f"{run_dir.name}/{path.name}: bar {'met' if points[-1]['bar']['met'] else 'not met'}")
        runs.append({"run": str(run_dir), "solver": exp.solver_name, "points": points})
    return {"label": ECONOMIES[key]["label"], "reference": ref, "bar": bar, "runs": runs}


def _euler_split(d: dict) -> str:
    """"aggregate / individual" parts of an Euler error where the judge gave them, else ""."""
    if d.get("euler_test_aggregate") is None:
        return ""
    return f"{_f(d['euler_test_aggregate'], '.2e')} / {_f(d.get('euler_test_individual'), '.2e')}"


def saved_runs_markdown(section: dict) -> str:
    own = _euler_split(section.get("reference") or {})
    if own:
        own = (f" The Euler error's aggregate part (shared by every household of a test state: the aggregate law, "
               f"prices) and individual part (the rest: the individual policy's shape), the reference's own: {own}.")
    split = any(_euler_split(p) for run in section["runs"] for p in run["points"])
    lines = [f"#### {section['label']}: saved runs", "", f"Bar: {section['bar']['text']}.{own}", "",
             *_saved_runs_summary(section["runs"]), "", "<details><summary>Every checkpoint</summary>", "",
             "| run | checkpoint | step | solver time | stationary K | wealth Gini | Euler, common states"
             f"{' (aggregate / individual part)' if split else ''} | bar |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for run in section["runs"]:
        for p in run["points"]:
            parts = _euler_split(p)
            lines.append(f"| {_run_name(run)} | `{p['checkpoint']}` | {p['step']} | {_fmt_time(p['time'])} | "
                         f"{_f(p.get('K_mean'), '.2f')} ({_f(p.get('K_reference'), '.2f')}) | "
                         f"{_f(p.get('wealth_gini'), '.3f')} ({_f(p.get('wealth_gini_reference'), '.3f')}) | "
                         f"{_f(p.get('euler_test_mean'), '.2e')}{f' ({parts})' if parts else ''} | "
                         f"{'met' if p['bar']['met'] else 'not met'} |")
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def scored_runs_markdown(result: dict) -> str:
    """The tables of a --score-runs result, or of a merge of them (its sources first)."""
    head = [_merged_from(result), ""] if "merged_from" in result else []
    return "\n".join([*head, *(saved_runs_markdown(section) for section in result["saved_runs"].values())])


def _run_name(run: dict) -> str:
    """A saved run's name in the tables: its label (``--labels``), else its directory's name."""
    return run["label"] if run.get("label") else f"`{Path(run['run']).name}`"


def _saved_runs_summary(runs: list[dict]) -> list[str]:
    """One row per run: its first checkpoint at the bar, how many of the checkpoints from there on are at it (does it
    hold?), and its last checkpoint."""
    lines = ["| run | first at the bar | at the bar from then on | last: step, solver time | stationary K | "
             "wealth Gini | Euler, common states | bar |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for run in runs:
        points = run["points"]
        met = [i for i, p in enumerate(points) if p["bar"]["met"]]
        first = (f"step {points[met[0]]['step']}, {_fmt_time(points[met[0]]['time'])}" if met else "not reached")
        held = f"{len(met)} of {len(points) - met[0]}" if met else "–"
        last = points[-1] if points else {}
        lines.append(f"| {_run_name(run)} | {first} | {held} | {last.get('step', '–')}, "
                     f"{_fmt_time(last.get('time'))} | {_f(last.get('K_mean'), '.2f')} | "
                     f"{_f(last.get('wealth_gini'), '.3f')} | "
                     f"{_f(last.get('euler_test_mean'), '.2e')} | "
                     f"{'met' if last.get('bar', {}).get('met') else 'not met'} |")
    return lines


def label_runs(result: dict, labels: list[str] | None) -> None:
    """Give the saved runs of ``result`` (in order, over its economies) the names ``labels`` in the tables."""
    if labels is None:
        return
    runs = [run for section in result["saved_runs"].values() for run in section["runs"]]
    if len(labels) != len(runs):
        raise SystemExit(f"--labels: {len(labels)} label(s) for {len(runs)} saved run(s); give one per run")
    for run, label in zip(runs, labels):
        run["label"] = label


def main_score_runs(args, argv: list[str] | None) -> dict:
    if len(args.economies) != 1:
        raise SystemExit("--score-runs: name the runs' economy with exactly one --economies")
    setup_torch(args.threads, "cpu")
    machine = machine_info(torch.device("cpu"))
    section = score_saved_runs(args.economies[0], args.score_runs, not args.no_welfare,
                               lambda line: print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True))
    finish_machine(machine)
    result = {"benchmark": "time_to_accuracy", "mode": "saved runs", "date": machine["date"][:10], "machine": machine,
              "argv": sys.argv[1:] if argv is None else list(argv), "saved_runs": {args.economies[0]: section}}
    label_runs(result, args.labels)
    for path in write_results(args.out, args.name, result, scored_runs_markdown(result)):
        print("wrote", path)
    return result


# ---------------------------------------------------------------------------------------------- main
def run_economy(key: str, args, device, seed_everything, log) -> dict:
    from agents.reference import reference_for

    runs, skipped = select_configs(key, [Path(p) for p in args.configs] if args.configs else None, args.quick,
                                   args.set)
    economy = benchmark_economy(key)
    start = time.perf_counter()
    reference = reference_for(economy, solve=True, log=log)
    ref = {**reference_summary(reference), "load_s": time.perf_counter() - start}
    bar = bar_of(ref)
    log(f"{key}: {len(runs)} config(s): {', '.join(r['config'] for r in runs) or 'none'}; bar: {bar['text']}")
    rows = []
    for run in runs:
        log(f"{key}: training {run['config']} ({run['solver']}) for at most {args.budget:g} s")
        record = train_with_snapshots(run, args.budget, args.checkpoints, device, seed_everything)
        record = score_run(record, reference, bar, welfare=not args.no_welfare)
        rows.append(record)
        reached = _fmt_time(record["time_to_bar_s"]) if record["time_to_bar_s"] is not None else record["not_reached"]
        log(f"{key}: {run['config']}: stopped by {record['stopped_by']} at {record['train_end_s']:.1f} s, "
            f"{len(record['points'])} point(s) scored in {record['judge_s']:.1f} s; bar: {reached}")
    return {"label": ECONOMIES[key]["label"], "budget_s": args.budget, "reference": ref, "bar": bar, "rows": rows,
            "skipped": skipped}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=None,
                        help="wall-time seconds per solver and economy, setup included (default 120; --quick: 10)")
    parser.add_argument("--checkpoints", type=float, nargs="+", default=None,
                        help="seconds at which the policy is scored (default 15 30 60 120 300 600 1200; capped by "
                             "the budget, which is added as the last)")
    parser.add_argument("--economies", nargs="+", choices=list(ECONOMIES), default=list(ECONOMIES))
    parser.add_argument("--configs", nargs="+", type=Path, default=None,
                        help="only these configs (default: configs/investment_*.yaml and configs/ks_*.yaml)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="config overrides applied to every config run (e.g. solver.horizon=75 run.seed=1; "
                             "repeatable: --set a=1 --set b=2 applies both); recorded with each row")
    parser.add_argument("--no-welfare", action="store_true", help="skip the judge's welfare simulation")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_BUDGET:g} s budget, checkpoints 2.5 5 10; writes time_to_accuracy_quick.*")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="torch device of the solvers (the judge runs on the CPU "
                                                        "references as they are)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="time_to_accuracy", help="result file stem")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--score-runs", type=Path, nargs="+", default=None, metavar="RUN_DIR",
                        help="train nothing: score the kept checkpoints of `python -m train` runs (e.g. torchrun "
                             "runs) of the one --economies economy against its reference and bar; writes --name")
    parser.add_argument("--list", action="store_true", help="print which configs would run (and why not), run nothing")
    parser.add_argument("--render", type=Path, default=None, metavar="JSON",
                        help="only rewrite the markdown and plots of an earlier result file")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, metavar="JSON",
                        help="run nothing: combine result files of one budget (e.g. a run of a config added later), "
                             "or --score-runs files of one reference (their runs side by side), into --out/--name")
    parser.add_argument("--labels", nargs="+", default=None, metavar="LABEL",
                        help="with --score-runs or a --merge of scored runs: the runs' names in the tables, one per "
                             "run in order (default: the run directories' names)")
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = QUICK_BUDGET if args.quick else 120.0
    if args.checkpoints is None:
        args.checkpoints = list(QUICK_CHECKPOINTS if args.quick else CHECKPOINTS)
    if not args.budget > 0:
        parser.error(f"--budget must be > 0 seconds, got {args.budget:g}")
    if any(not c > 0 for c in args.checkpoints):
        parser.error("--checkpoints must be > 0 seconds")
    return args


def render(path: Path, out: Path | None = None, plots: bool = True) -> list[Path]:
    """Rewrite the markdown (and the plots) of an earlier result file, running nothing."""
    import json

    path = Path(path)
    result = json.loads(path.read_text())
    out = out or path.parent
    if "saved_runs" in result:  # a --score-runs result (or a merge of them): its tables, no plot
        return write_results(out, path.stem, result, scored_runs_markdown(result))
    paths = write_results(out, path.stem, result, to_markdown(result))
    if plots:
        paths += [plot(key, section, out / f"{path.stem}_{key}.png") for key, section in result["economies"].items()
                  if section["rows"]]
    return paths


def merge_results(paths: list[Path]) -> dict:
    """One result from several result files of the same budget: per economy, the rows of every file (a config run
    again replaces its earlier row), the skipped entries that no file ran, the machines of all runs."""
    import json

    results = [json.loads(Path(p).read_text()) for p in paths]
    scored = ["saved_runs" in r for r in results]
    if any(scored):
        if not all(scored):
            raise SystemExit("--merge: --score-runs files and training runs cannot be merged into one file")
        return _merge_saved_runs(paths, results)
    budgets = {r["budget_s"] for r in results}
    if len(budgets) > 1:
        raise SystemExit(f"--merge: the files have different budgets ({sorted(budgets)}); merge runs of one budget")
    merged = _merged_copy(paths, results)
    for other in results[1:]:
        for key, section in other["economies"].items():
            mine = merged["economies"].setdefault(key, copy.deepcopy(section))
            if mine is section:
                continue
            rows = {row_label(r): r for r in mine["rows"]}  # the same config with other overrides is another row
            rows.update({row_label(r): r for r in section["rows"]})
            mine["rows"] = sorted(rows.values(), key=lambda r: Path(r["config"]).name)  # the glob's order
            skipped = {(s.get("config"), s.get("solver")): s for s in mine["skipped"] + section["skipped"]}
            mine["skipped"] = list(skipped.values())
    for section in merged["economies"].values():  # what some file ran is not "not run"
        ran = {r["config"] for r in section["rows"]} | {r["solver"] for r in section["rows"]}
        section["skipped"] = [s for s in section["skipped"]
                              if s.get("config") not in ran and (s.get("config") or s.get("solver") not in ran)]
    return merged


def _merged_copy(paths: list[Path], results: list[dict]) -> dict:
    """The first result, with where every merged file came from (``merged_from``, and its machine as ``runs``)."""
    merged = copy.deepcopy(results[0])
    merged["merged_from"] = [str(p) for p in paths]
    merged["runs"] = [{"file": str(p), "machine": r["machine"], "argv": r.get("argv")} for p, r in zip(paths, results)]
    return merged


def _merged_from(result: dict) -> str:
    """"Merged from `a.json` (date, load average x → y); …" for a merged result."""
    return "Merged from " + "; ".join(
        f"`{Path(r['file']).name}` ({str(r['machine'].get('date', '?'))[:16]}, load average "
        f"{r['machine'].get('load_average_before', ['?'])[0]} → {r['machine'].get('load_average_after', ['?'])[0]})"
        for r in result["runs"]) + "."


def _merge_saved_runs(paths: list[Path], results: list[dict]) -> dict:
    """--score-runs files side by side: per economy, the runs of every file in order; one reference per economy."""
    merged = _merged_copy(paths, results)
    for path, other in zip(paths[1:], results[1:]):
        for key, section in other["saved_runs"].items():
            mine = merged["saved_runs"].get(key)
            if mine is None:
                merged["saved_runs"][key] = copy.deepcopy(section)
            elif mine["reference"].get("key") != section["reference"].get("key"):
                raise SystemExit(f"--merge: {path} scored {key} against another reference than {paths[0]}")
            else:
                mine["runs"] += copy.deepcopy(section["runs"])
    return merged


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.labels is not None and args.score_runs is None and args.merge is None:
        raise SystemExit("--labels names saved runs: use it with --score-runs or --merge")
    if args.merge is not None:
        result = merge_results(args.merge)
        if "saved_runs" in result:  # scored runs side by side: their tables, no plot
            label_runs(result, args.labels)
            for path in write_results(args.out, args.name, result, scored_runs_markdown(result)):
                print("wrote", path)
            return result
        if args.labels is not None:
            raise SystemExit("--labels names saved runs: these result files hold trained rows")
        stem = result_stem(args.name, result.get("quick", False), "cpu")
        out = write_results(args.out, stem, result, to_markdown(result))
        if not args.no_plot:
            out += [plot(key, section, args.out / f"{stem}_{key}.png")
                    for key, section in result["economies"].items() if section["rows"]]
        for path in out:
            print("wrote", path)
        return result
    if args.render is not None:
        for path in render(args.render, args.out if args.out != RESULTS else None, not args.no_plot):
            print("wrote", path)
        return {}
    if args.score_runs is not None:
        return main_score_runs(args, argv)
    if args.list:
        for key in args.economies:
            runs, skipped = select_configs(key, [Path(p) for p in args.configs] if args.configs else None, args.quick,
                                           args.set)
            shown = [r["config"] + "".join(" " + o for o in r["overrides"]) for r in runs]
            print(f"{key}: run {', '.join(shown)}")
            for s in skipped:
                print(f"  skip {s.get('config') or s['solver']}: {s['reason']}")
        return {}
    device = setup_torch(args.threads, args.device)
    machine = machine_info(device)
    from train.run import seed_everything

    def log(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)

    log(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), budget {args.budget:g} s, checkpoints "
        f"{', '.join(f'{c:g}' for c in plan_checkpoints(args.checkpoints, args.budget)) or 'none ≤ the budget'}")
    economies = {key: run_economy(key, args, device, seed_everything, log) for key in args.economies}
    finish_machine(machine)
    result = {"benchmark": "time_to_accuracy", "date": machine["date"][:10], "quick": args.quick,
              "budget_s": args.budget, "checkpoints": args.checkpoints, "welfare": not args.no_welfare,
              "machine": machine, "argv": sys.argv[1:] if argv is None else list(argv), "economies": economies}
    stem = result_stem(args.name, args.quick, device)
    paths = write_results(args.out, stem, result, to_markdown(result))
    if not args.no_plot:
        for key, section in economies.items():
            if section["rows"]:
                paths.append(plot(key, section, args.out / f"{stem}_{key}.png"))
    print(paths[1].read_text())
    log("wrote " + ", ".join(str(p) for p in paths))
    return result


if __name__ == "__main__":
    main()
