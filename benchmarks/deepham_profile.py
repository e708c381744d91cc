"""Where DeepHAM's time goes on Krusell–Smith (N = 50): setup, value fits and policy steps, measured.

    python benchmarks/deepham_profile.py [--quick] [--configs configs/ks_deepham_1fm.yaml ...] [--steps K]
                                         [--warmup W] [--step-threads 1 2] [--grid NAME=V1,V2 ...] [--threads 1]
                                         [--out benchmarks/results]

For each config (default: the two shipped DeepHAM Krusell–Smith configs, the published setup: 384 economies per
step, T = 149, float64, value refit every 2,000 steps), built as ``python -m train`` builds it
(``train.config.load_experiment`` + ``agents.make_solver``):

1. **Setup.** The solver's construction (ergodic burn-in, first start-state set, validation states) and the first
   value fit (the solver's own ``_begin``, which fits the value before the first policy step; split into simulating
   the data set, ``value_dataset``, and the regression, ``fit_ensemble``) are timed separately; so are one
   validation (``validate``: 384 economies × T periods, no gradients) and one refresh of the start-state set
   (``_record_starts``: 250 more periods of the ergodic economies).
2. **Policy steps.** The solver's own ``_train_step`` (draw start states, the objective's forward, backward, Adam
   step) is timed for every combination of the levers, each a config override: ``solver.dtype`` float64 (published)
   / float32, ``solver.batch_size`` 384 / 128 / 64, ``solver.horizon`` 149 / 75, ``solver.compile`` (one period of
   the unroll through ``torch.compile``; off by default: ``--grid compile=false,true`` adds it, its compilation
   falls in the warm-up steps; compiled settings run at the first thread count only, since torch.compile recompiles
   when the thread count changes), ``solver.compile_periods`` (periods per compiled call, with ``compile`` only: 1 by
   default, ``--grid compile_periods=1,4``) and torch threads 1 / 2 (``torch.set_num_threads``, switched between
   steps of the same solver); ``--grid NAME=V1,V2`` replaces a lever's values (the first: the config's own setting;
   a config already float32 and compiled: ``--grid dtype=float32 compile=true``). After ``--warmup`` steps per setting,
   ``--steps`` steps are taken round-robin over all settings (each setting sees the same stretches of a noisy
   machine); reported: the median seconds per step, steps/s, economy-periods/s (B · T / s) and the speed-up over
   the published setting of the same run. Each step is split into phases by timing the solver's own pieces
   (``_draw_starts``, the loss = the objective's forward, ``optimizer.step`` = Adam; backward = the rest of
   ``optimizer_step``: zero_grad + backward). The lever solvers other than the published one are built with a
   short burn-in (``--lever-burn-in``) and no value fit: neither changes the shapes or the number of operations
   of a step.
3. **Profile.** Two policy steps of the published setting and of its float32 variant under
   ``torch.profiler.profile(activities=[ProfilerActivity.CPU])``: the top 15 ops by self CPU time (name, self CPU %
   of the profile, self CPU total, calls), the number of ``aten::`` op calls per step and their mean self time.
4. **Projection.** A full run of the config (``steps`` policy steps, a value fit before the first and every
   ``value_every``, a refresh of the start states whenever they are used up, a validation every ``val_every``)
   projected from these measurements, by part.

``--quick`` shrinks every size (8 economies per step, T = 10, tiny ergodic and value sets; lever grid batch 8 / 4,
horizon 10 / 5) to check the script end to end in seconds; its numbers say nothing about the full-size costs.
Writes ``deepham_profile[_quick][TAG].json`` and ``.md``. The machine is shared and noisy: compare ratios within one
run; the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import (  # noqa: E402
    RESULTS, finish_machine, load_average, machine_info, result_stem, setup_torch, write_results,
)
from agents.solvers import deepham  # noqa: E402

CONFIGS = ["configs/ks_deepham_1fm.yaml", "configs/ks_deepham_1gm.yaml"]

#: the levers (full size); the first value of each is the published setting
GRID = {"dtype": ["float64", "float32"], "batch_size": [384, 128, 64], "horizon": [149, 75], "compile": [False],
        "compile_periods": [1]}
#: quick mode: tiny sizes for an end-to-end check (validation and value refits never fall inside the timed steps)
QUICK = {"batch_size": 8, "horizon": 10, "burn_in": 20, "ergodic_economies": 16, "ergodic_periods": 40,
         "val_economies": 8, "val_every": 1000, "value_every": 1000,
         "value": {"economies": 16, "periods": 60, "horizon": 40, "start_every": 10, "epochs": 2, "batch_size": 16}}
QUICK_GRID = {"dtype": ["float64", "float32"], "batch_size": [8, 4], "horizon": [10, 5], "compile": [False],
              "compile_periods": [1]}


def flag(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(text)
    return text.lower() == "true"


#: how ``--grid`` values are read, per lever
LEVER_TYPES = {"dtype": str, "batch_size": int, "horizon": int, "compile": flag, "compile_periods": int}
#: torch.compile's per-function recompile limit while the grid runs: every compiled lever solver compiles the same
#: function (``DeepHAMSolver._periods``) for its own shapes, and past the default limit (8) it would run eager
RECOMPILE_LIMIT = 64
TOP_OPS = 15


# ---------------------------------------------------------------------------------------------- building
def flatten(prefix: str, values: dict[str, Any]) -> list[str]:
    """``{"a": 1, "value": {"b": 2}}`` -> ``["solver.a=1", "solver.value.b=2"]`` (config overrides)."""
    out = []
    for key, value in values.items():
        if isinstance(value, dict):
            out += flatten(f"{prefix}{key}.", value)
        else:
            out.append(f"{prefix}{key}={value}")
    return out


def config_path(path: str) -> Path:
    p = Path(path)
    return p if p.exists() or p.is_absolute() else ROOT / p


def build(config: str, overrides: list[str]):
    """The solver of ``config`` + ``overrides`` on the CPU, as the training CLI builds it; returns (solver, seconds
    of construction)."""
    from agents import make_solver
    from train.config import load_experiment

    exp = load_experiment(config_path(config), overrides)
    economy = exp.economy("cpu")
    start = time.perf_counter()
    solver = make_solver(exp.solver_name, economy, exp.solver_config)
    return solver, time.perf_counter() - start


def setting_overrides(setting: dict[str, Any]) -> list[str]:
    return [f"solver.{key}={value}" for key, value in setting.items()]


# ---------------------------------------------------------------------------------------------- timed steps
class StepTimer:
    """Runs the solver's own ``_train_step`` and splits its wall time by wrapping the solver's pieces: drawing the
    start states (``_draw_starts``), the loss (the objective's forward), Adam's ``step``; the rest of the step is
    ``optimizer_step``'s zero_grad + backward (and the loss's ``float``)."""

    def __init__(self, solver) -> None:
        self.solver = solver
        self.phase = {"draw": 0.0, "forward": 0.0, "adam": 0.0}
        solver._prepare_steps()  # what _begin does, without the value fit
        solver._loss = self._timed(solver._loss, "forward")
        solver._draw_starts = self._timed(solver._draw_starts, "draw")
        solver.optimizer.step = self._timed(solver.optimizer.step, "adam")

    def _timed(self, fn, key):
        @functools.wraps(fn)  # keeps the marks others left on it (the LR scheduler's on optimizer.step)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.phase[key] += time.perf_counter() - start

        return wrapper

    def step(self) -> dict[str, float]:
        """One policy step; returns its total wall time and the phases (seconds)."""
        for key in self.phase:
            self.phase[key] = 0.0
        start = time.perf_counter()
        metrics = self.solver._train_step()
        total = time.perf_counter() - start
        if metrics is not None:  # a validation (or value refit) inside a timed step would spoil the timing
            raise RuntimeError(f"a validation ran at step {self.solver.step}: raise solver.val_every")
        out = {"total": total, **self.phase}
        out["backward"] = max(0.0, total - sum(self.phase.values()))
        return out


def median_phases(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def measure_grid(config: str, base: list[str], grid: dict[str, list], threads: list[int], steps: int, warmup: int,
                 published_solver, lever_burn_in: int) -> tuple[list[dict[str, Any]], dict[tuple, StepTimer]]:
    """Median step times of every lever setting × thread count, round-robin (see the module docstring); also
    the step timers by setting (a tuple of the grid's values, in its order)."""
    names = list(grid)
    settings = [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]
    # periods per compiled call mean nothing without compile (the solver refuses the combination)
    settings = [s for s in settings if s.get("compile") or s.get("compile_periods", 1) == 1]
    timers = []
    for setting in settings:
        if all(setting[n] == grid[n][0] for n in names):  # the published setting: the already-built solver
            solver = published_solver
        else:
            solver, _ = build(config, base + setting_overrides(setting) + [f"solver.burn_in={lever_burn_in}"])
        timers.append(StepTimer(solver))
    # a compiled step at the first thread count only: torch.compile guards on the thread count, so switching it
    # recompiles, and past torch's recompile limit (8 per function) it silently runs eager
    pairs = [(i, th) for th in threads for i, s in enumerate(settings) if not s.get("compile") or th == threads[0]]
    samples = {pair: [] for pair in pairs}
    actual = {}
    for th in threads:  # warm-up
        torch.set_num_threads(th)
        for i in (i for i, t in pairs if t == th):
            actual[(i, th)] = torch.get_num_threads()
            for _ in range(warmup):
                timers[i].step()
    load_start = load_average()
    for _ in range(steps):  # one step of every setting per round; the thread count switched once per pass
        for th in threads:
            torch.set_num_threads(th)
            for i in (i for i, t in pairs if t == th):
                samples[(i, th)].append(timers[i].step())
    load_end = load_average()
    rows = []
    for (i, th), got in samples.items():
        med = median_phases(got)
        s = settings[i]
        rows.append({
            **s, "threads": th, "torch_threads": actual[(i, th)], "steps": len(got),
            "median_s": med["total"], "min_s": min(g["total"] for g in got), "max_s": max(g["total"] for g in got),
            "steps_per_s": 1.0 / med["total"], "economy_periods_per_s": s["batch_size"] * s["horizon"] / med["total"],
            "phases_median_s": {k: v for k, v in med.items() if k != "total"},
            "published": all(s[n] == grid[n][0] for n in names) and th == threads[0],
            "load_average_start": load_start, "load_average_end": load_end,
        })
    base_row = next(r for r in rows if r["published"])
    for r in rows:
        r["speedup_vs_published"] = base_row["median_s"] / r["median_s"]
        r["economy_periods_ratio"] = r["economy_periods_per_s"] / base_row["economy_periods_per_s"]
    by_setting = {tuple(s[n] for n in names): t for s, t in zip(settings, timers)}
    return rows, by_setting


# ---------------------------------------------------------------------------------------------- profile
def profile_steps(timer: StepTimer, steps: int = 2, top: int = TOP_OPS) -> dict[str, Any]:
    """``steps`` policy steps under the CPU profiler: the top ops by self CPU time and op-call statistics."""
    from torch.profiler import ProfilerActivity, profile

    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            timer.step()
    wall = time.perf_counter() - start
    events = list(prof.key_averages())
    total_us = sum(e.self_cpu_time_total for e in events) or 1.0
    aten = [e for e in events if e.key.startswith("aten::")]
    aten_calls = sum(e.count for e in aten)
    aten_us = sum(e.self_cpu_time_total for e in aten)
    backward_nodes = [e for e in events if e.key.endswith("Backward0") or e.key.endswith("Backward1")
                      or e.key.startswith("autograd::")]
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {
        "steps": steps, "torch_threads": torch.get_num_threads(), "profiled_wall_s_per_step": wall / steps,
        "self_cpu_total_s_per_step": total_us / 1e6 / steps, "ops_share_of_wall": total_us / 1e6 / wall,
        "aten_calls_per_step": aten_calls / steps, "aten_self_share": aten_us / total_us,
        "aten_mean_self_us": aten_us / max(aten_calls, 1),
        # dtype conversions (in float32, among others the casts of Python-float operands of the elementwise ops)
        "to_copy_calls_per_step": sum(e.count for e in events if e.key == "aten::_to_copy") / steps,
        "autograd_node_self_share": sum(e.self_cpu_time_total for e in backward_nodes) / total_us,
        "top": [{"name": e.key, "self_cpu_pct": 100.0 * e.self_cpu_time_total / total_us,
                 "self_cpu_total_ms": e.self_cpu_time_total / 1e3, "calls": e.count,
                 "self_cpu_us_per_call": e.self_cpu_time_total / max(e.count, 1)} for e in ranked],
    }


# ---------------------------------------------------------------------------------------------- one config
@contextlib.contextmanager
def timed_module_functions(module, which: dict[str, tuple[dict, str]]):
    """Within the block, ``module.NAME`` (a function the solver calls by that name) adds its wall time to
    ``which[NAME] = (totals, key)``; restored afterwards."""
    originals = {name: getattr(module, name) for name in which}

    def timed(fn, totals, key):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[key] += time.perf_counter() - start

        return wrapper

    try:
        for name, (totals, key) in which.items():
            setattr(module, name, timed(originals[name], totals, key))
        yield
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


def run_config(config: str, args, base: list[str], grid: dict[str, list], taken: int) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    print(f"== {config}: building (torch threads {torch.get_num_threads()}, load {load_average()})", flush=True)
    solver, construct_s = build(config, base)
    cfg = solver.config
    if taken >= min(cfg.val_every, cfg.value_every):
        raise SystemExit(f"{config}: {taken} policy steps per solver would reach a validation or value refit "
                         f"(val_every {cfg.val_every}, value_every {cfg.value_every}): fewer --steps / --warmup")
    differ = {k: (getattr(cfg, k), v[0]) for k, v in grid.items() if getattr(cfg, k) != v[0]}
    if differ:  # the grid's first values are the setting every ratio is taken against
        raise SystemExit(f"{config}: the config's {differ} (config, grid) differ from the grid's published setting")
    fit_parts = {"simulate": 0.0, "regress": 0.0}
    with timed_module_functions(deepham, {"value_dataset": (fit_parts, "simulate"),
                                          "fit_ensemble": (fit_parts, "regress")}):
        start = time.perf_counter()
        solver._begin(None, None)  # sets the loss and fits the value before the first policy step
        fit_s = time.perf_counter() - start
    fit_metrics = dict(solver.value_metrics)
    start = time.perf_counter()
    solver.validate()
    validate_s = time.perf_counter() - start
    start = time.perf_counter()
    solver.starts = solver._record_starts()  # one refresh of the start-state set (same size: the order stays valid)
    refresh_s = time.perf_counter() - start
    setup = {"construct_s": construct_s, "first_value_fit_s": fit_s, "value_fit_parts_s": fit_parts,
             "validate_s": validate_s,
             "ergodic_refresh_s": refresh_s, "start_states": int(solver.starts.batch_size[0]),
             "value_fit_metrics": fit_metrics, "torch_threads": torch.get_num_threads()}
    print(f"   construction {construct_s:.2f} s, first value fit {fit_s:.2f} s, one validation {validate_s:.2f} s, "
          f"one ergodic refresh {refresh_s:.2f} s", flush=True)

    rows, timers = measure_grid(config, base, grid, args.step_threads, args.steps, args.warmup, solver,
                                args.lever_burn_in)
    torch.set_num_threads(args.threads)

    # profile: the published setting and its float32 variant (the grid's solvers, already warm)
    profiles = {}
    published = next(r for r in rows if r["published"])
    for dtype in grid["dtype"]:
        key = tuple(dtype if name == "dtype" else published[name] for name in grid)
        profiles[dtype] = profile_steps(timers[key])
        print(f"   profile {dtype}: {profiles[dtype]['aten_calls_per_step']:.0f} aten calls per step, "
              f"{profiles[dtype]['aten_mean_self_us']:.1f} µs self each", flush=True)

    # projection of a full run from the measurements
    fits = 1 + len(range(cfg.value_every, cfg.steps, cfg.value_every))
    validations = cfg.steps // cfg.val_every
    refreshes = cfg.steps * cfg.batch_size // setup["start_states"] if cfg.start_states == "ergodic" else 0
    parts = {"construction": construct_s, "value_fits": fits * fit_s, "policy_steps": cfg.steps * published["median_s"],
             "ergodic_refreshes": refreshes * refresh_s, "validations": validations * validate_s}
    total = sum(parts.values())
    projection = {"steps": cfg.steps, "value_fits": fits, "validations": validations,
                  "ergodic_refreshes": refreshes, "parts_s": parts,
                  "total_s": total, "shares": {k: v / total for k, v in parts.items()},
                  "note": "later value fits are warm-started with the same epochs: timed as the first"}
    return {"config": config, "solver": cfg.to_dict(), "setup": setup, "grid": rows, "profiles": profiles,
            "projection": projection}


# ---------------------------------------------------------------------------------------------- markdown
def fmt_s(x: float) -> str:
    if x >= 60:
        return f"{x / 60:.1f} min"
    if x >= 1:
        return f"{x:.2f} s"
    return f"{x * 1e3:.1f} ms"


def compiled(row: dict) -> str:
    if not row.get("compile"):
        return "no"
    k = row.get("compile_periods", 1)
    return "yes" if k == 1 else f"yes, {k} periods per call"


def grid_table(rows: list[dict]) -> list[str]:
    lines = ["| dtype | B | T | compiled | threads | median / step | steps/s | econ-periods/s | speed-up | draw | "
             "forward | backward | Adam |", "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: r["threads"]):  # the grid's order (published first) per thread count
        p = r["phases_median_s"]
        tag = " (published)" if r["published"] else ""
        lines.append(
            f"| {r['dtype']}{tag} | {r['batch_size']} | {r['horizon']} | {compiled(r)} | "
            f"{r['torch_threads']} | "
            f"{fmt_s(r['median_s'])} | "
            f"{r['steps_per_s']:.2f} | {r['economy_periods_per_s']:,.0f} | {r['speedup_vs_published']:.2f}× | "
            f"{fmt_s(p['draw'])} | {fmt_s(p['forward'])} | {fmt_s(p['backward'])} | {fmt_s(p['adam'])} |")
    return lines


def profile_table(profile: dict) -> list[str]:
    lines = ["| op | self CPU % | self CPU total | calls | µs / call |", "|---|---:|---:|---:|---:|"]
    for t in profile["top"]:
        lines.append(f"| `{t['name']}` | {t['self_cpu_pct']:.1f} | {t['self_cpu_total_ms']:.1f} ms | {t['calls']:,} | "
                     f"{t['self_cpu_us_per_call']:.1f} |")
    return lines


def ratio(rows: list[dict], **match) -> float | None:
    """Speed-up over the published setting of the row that differs from it only in ``match``."""
    base = next(r for r in rows if r["published"])
    for r in rows:
        if all(r.get(k) == match.get(k, base.get(k))
               for k in ("dtype", "batch_size", "horizon", "compile", "compile_periods", "threads")):
            return r["speedup_vs_published"]
    return None


def findings(c: dict, grid: dict[str, list], threads: list[int]) -> list[str]:
    """What dominates, in words, from the numbers of one config."""
    rows, proj = c["grid"], c["projection"]
    base = next(r for r in rows if r["published"])
    shares = proj["shares"]
    order = sorted(shares, key=shares.get, reverse=True)
    out = [f"* A full run projected from these timings: {fmt_s(proj['total_s'])}; "
           + ", ".join(f"{k.replace('_', ' ')} {100 * shares[k]:.0f} %" for k in order) + "."]
    ph = base["phases_median_s"]
    tot = base["median_s"]
    out.append(f"* A published policy step ({fmt_s(tot)}): forward {100 * ph['forward'] / tot:.0f} %, backward "
               f"{100 * ph['backward'] / tot:.0f} %, Adam {100 * ph['adam'] / tot:.0f} %, drawing start states "
               f"{100 * ph['draw'] / tot:.0f} %.")
    prof = c["profiles"][base["dtype"]]
    top3 = ", ".join(f"`{t['name']}` {t['self_cpu_pct']:.0f} %" for t in prof["top"][:3])
    out.append(f"* Profile ({base['dtype']}): top self CPU {top3}; {prof['aten_calls_per_step']:,.0f} `aten::` op "
               f"calls per step at a mean {prof['aten_mean_self_us']:.1f} µs self time each "
               f"({100 * prof['aten_self_share']:.0f} % "
               f"of the self CPU time); autograd node bookkeeping {100 * prof['autograd_node_self_share']:.0f} %. "
               f"The ops' self CPU time is {fmt_s(prof['self_cpu_total_s_per_step'])} of the "
               f"{fmt_s(prof['profiled_wall_s_per_step'])} profiled step ({100 * prof['ops_share_of_wall']:.0f} %; the "
               f"rest: Python between the ops and the profiler's own cost); unprofiled step {fmt_s(tot)}.")
    alt = grid["dtype"][1] if len(grid["dtype"]) > 1 else None
    if alt in c["profiles"]:
        other = c["profiles"][alt]
        out.append(f"* {alt} runs {other['aten_calls_per_step']:,.0f} `aten::` calls per step against "
                   f"{prof['aten_calls_per_step']:,.0f} in {base['dtype']}, `aten::_to_copy` "
                   f"{other['to_copy_calls_per_step']:,.0f} against {prof['to_copy_calls_per_step']:,.0f} (dtype "
                   f"conversions), mean self time per call {other['aten_mean_self_us']:.1f} µs against "
                   f"{prof['aten_mean_self_us']:.1f} µs.")
    levers = []
    r = ratio(rows, dtype=alt) if alt else None
    if r:
        levers.append(f"{alt} {r:.2f}×")
    for b in grid["batch_size"][1:]:
        r = ratio(rows, batch_size=b)
        row = next(x for x in rows if x["batch_size"] == b and x["dtype"] == base["dtype"]
                   and x["horizon"] == base["horizon"] and x.get("compile") == base.get("compile")
                   and x.get("compile_periods") == base.get("compile_periods") and x["threads"] == base["threads"])
        if r:
            levers.append(f"B = {b} {r:.2f}× (per economy-period {row['economy_periods_ratio']:.2f}×)")
    for h in grid["horizon"][1:]:
        r = ratio(rows, horizon=h)
        if r:
            levers.append(f"T = {h} {r:.2f}×")
    if True in grid.get("compile", [])[1:]:
        r = ratio(rows, compile=True)
        if r:
            levers.append(f"torch.compile of a period {r:.2f}×")
    for k in grid.get("compile_periods", [])[1:]:
        one, many = ratio(rows, compile=True, compile_periods=1), ratio(rows, compile=True, compile_periods=k)
        if one and many:
            levers.append(f"{k} periods per compiled call {many / one:.2f}× over one period per call")
    for th in threads[1:]:
        r = ratio(rows, threads=th)
        if r:
            levers.append(f"{th} threads {r:.2f}×")
    best = max(rows, key=lambda x: x["speedup_vs_published"])
    out.append("* One lever at a time, speed-up of a step over the published one: " + "; ".join(levers)
               + f". Fastest step: {best['dtype']}, B = {best['batch_size']}, T = {best['horizon']}, "
                 f"{best['torch_threads']} thread(s), {best['speedup_vs_published']:.2f}× (fewer samples per step "
                 "for smaller B or T: a time-to-accuracy question, not measured here).")
    return out


def to_markdown(result: dict) -> str:
    quick = result["quick"]
    title = "where the time goes" + (" (QUICK: tiny sizes, not representative)" if quick else "")
    lines = [f"DeepHAM on Krusell–Smith, N = 50: {title}. "
             f"Median over {result['steps']} policy steps per setting after {result['warmup']} warm-up step(s), "
             f"round-robin over the settings; speed-up = published step time / this step time, same run. "
             f"Load average {result['machine']['load_average_before'][0]} → "
             f"{result['machine'].get('load_average_after', ['?'])[0]}.", ""]
    for c in result["configs"]:
        s = c["setup"]
        lines += [f"### `{Path(c['config']).name}`", "",
                  f"Setup ({s['torch_threads']} torch thread(s)): construction (ergodic burn-in) "
                  f"{fmt_s(s['construct_s'])}, "
                  f"first value fit {fmt_s(s['first_value_fit_s'])} (simulating the data set "
                  f"{fmt_s(s['value_fit_parts_s']['simulate'])}, regression "
                  f"{fmt_s(s['value_fit_parts_s']['regress'])}), one validation {fmt_s(s['validate_s'])}, one "
                  f"refresh of the {s['start_states']:,} start states {fmt_s(s['ergodic_refresh_s'])}.", "",
                  "**Policy steps** (phases: medians of the solver's own pieces; backward = zero_grad + backward)", ""]
        lines += grid_table(c["grid"])
        p = c["projection"]
        lines += ["", f"**Projected full run** ({p['steps']:,} steps at the measured median of the published "
                  f"setting, {p['value_fits']} value fits, {p['ergodic_refreshes']} refreshes of the start-state set, "
                  f"{p['validations']} validations)", "",
                  "| part | time | share |", "|---|---:|---:|"]
        for key, value in p["parts_s"].items():
            lines.append(f"| {key.replace('_', ' ')} | {fmt_s(value)} | {100 * p['shares'][key]:.1f} % |")
        lines.append(f"| total | {fmt_s(p['total_s'])} | |")
        for dtype, prof in c["profiles"].items():
            lines += ["", f"**Profile, {dtype}** ({prof['steps']} policy steps, {prof['torch_threads']} thread(s); "
                      f"top {len(prof['top'])} ops by self CPU time; {prof['aten_calls_per_step']:,.0f} aten calls "
                      f"per step, {prof['aten_mean_self_us']:.1f} µs self each)", ""]
            lines += profile_table(prof)
        lines += ["", "**What dominates** (from the numbers above)", ""]
        lines += findings(c, result["grid_levers"], result["step_threads"])
        lines.append("")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main
def parse_lever(item: str, parser: argparse.ArgumentParser) -> dict[str, list]:
    """``--grid`` item ``name=v1,v2`` (the first value: the config's own setting, against which ratios are taken)."""
    name, _, values = item.partition("=")
    if name not in LEVER_TYPES or not values:
        parser.error(f"--grid {item!r}: write NAME=V1,V2,... with NAME one of {', '.join(LEVER_TYPES)}")
    try:
        return {name: [LEVER_TYPES[name](v) for v in values.split(",")]}
    except ValueError:
        parser.error(f"--grid {item!r}: a value is not a {'bool (true / false)' if name == 'compile' else LEVER_TYPES[name].__name__}")

def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds; writes deepham_profile_quick.*")
    parser.add_argument("--configs", nargs="+", default=CONFIGS, help="DeepHAM configs (default: the two KS ones)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per setting (default 10; quick 3)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps per setting (default 2; quick 1)")
    parser.add_argument("--step-threads", type=int, nargs="+", default=[1, 2],
                        help="torch thread counts of the policy-step grid (default 1 2)")
    parser.add_argument("--lever-burn-in", type=int, default=None,
                        help="burn-in of the lever solvers other than the published one (default 100; quick 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of setup and profile (default 1)")
    parser.add_argument("--grid", nargs="+", action="extend", default=None, metavar="NAME=V1,V2",
                        help="replace a lever's values (dtype, batch_size, horizon, compile, compile_periods), the "
                             "config's own first; e.g. --grid batch_size=384,64 compile=false,true")
    parser.add_argument("--tag", default="", help="suffix of the result file (deepham_profile[_quick]TAG.*), so that a "
                                                   "run of other levers keeps the default grid's file")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.steps = args.steps if args.steps is not None else (3 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.lever_burn_in = args.lever_burn_in if args.lever_burn_in is not None else (5 if args.quick else 100)
    if args.steps < 1 or args.warmup < 0 or min(args.step_threads) < 1:
        parser.error("--steps must be >= 1, --warmup >= 0, --step-threads >= 1")

    taken = (args.warmup + args.steps) * len(args.step_threads) + 2  # + the profile's steps
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    setup_torch(args.threads, "cpu")
    threads_before = torch.get_num_threads()
    machine = machine_info("cpu")
    print(f"torch {torch.__version__}, torch.get_num_threads() = {threads_before}, load average "
          f"{machine['load_average_before']}", flush=True)
    base = flatten("solver.", QUICK) if args.quick else []
    grid = dict(QUICK_GRID if args.quick else GRID)
    for item in args.grid or []:
        grid.update(parse_lever(item, parser))
    try:
        configs = [run_config(c, args, base, grid, taken) for c in args.configs]
    finally:
        torch.set_num_threads(threads_before)
    finish_machine(machine)
    result = {"benchmark": "deepham_profile", "date": machine["date"][:10], "quick": args.quick, "machine": machine,
              "steps": args.steps, "warmup": args.warmup, "step_threads": args.step_threads,
              "lever_burn_in": args.lever_burn_in, "grid_levers": grid, "base_overrides": base, "configs": configs}
    paths = write_results(args.out, result_stem("deepham_profile", args.quick, tag=args.tag), result, to_markdown(result))
    print(paths[1].read_text())
    return result


if __name__ == "__main__":
    main()
