"""One experiment from a validated config to a trained, judged, logged solver: :func:`run_experiment`.

The run directory (``<run.output_dir>/<run.name or config-name-timestamp>``)::

    config.yaml          the fully resolved config (re-runnable: python -m train <dir>/config.yaml)
    metrics.jsonl        one JSON object per logging point of the solver ({"step": ..., "train_loss": ...})
    judge.json           the judge's EvaluationResult (agents.evaluate), judge.md the same as a table
    figures/*.png        the papers' figures (train.plots)
    checkpoints/*.pt     step_<step>.pt, atomic, weights_only-loadable (train.checkpoint)
    summary.json         status, exit code, reason, steps, wall time, final metrics, the judge's headline numbers
    wandb/               the W&B run (offline runs: upload with `wandb sync`)

Exit codes: 0 ok; 1 unexpected error; 2 bad config, or a ``--resume`` that cannot continue (another config, no
intact checkpoint); 3 NaN/inf loss or parameters (the last good checkpoint is kept); 4 not converged within the
steps/budget (``run.require_convergence``; everything is still written); 130 interrupted.

``--resume`` continues from the newest checkpoint that loads and was written for this config; newer files that do
not (damaged, truncated, another run's) are named in a one-line warning each on stderr, renamed to
``<name>.unusable`` and listed in summary.json (``skipped_checkpoints``). None usable: exit 2 listing every file tried.

Under ``torchrun`` (``WORLD_SIZE`` > 1; see :mod:`agents.distributed`) the run is data-parallel: every process
trains (its own simulated economies, gradients averaged by DistributedDataParallel, the same stopping decisions);
only rank 0 creates the run directory, logs, checkpoints and runs the judge. The solver must support it (euler,
deepham); ``--resume`` is refused (a checkpoint holds rank 0's data stream only).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import random
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import yaml

from .checkpoint import (
    CheckpointDir, CheckpointError, check_run, differing_keys, load_checkpoint, reason_of, rng_state, set_rng_state,
    to_device,
)
from .config import ConfigFileError, Experiment
from .logger import MetricsFile, WandbRun, jsonable, resolve_mode

__all__ = [
    "EXIT_CONFIG", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_NONFINITE", "EXIT_NOT_CONVERGED", "EXIT_OK",
    "RunResult", "TrainError", "judge_scalars", "run_experiment",
]

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_NONFINITE, EXIT_NOT_CONVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
#: the sections of a config that must match when a run is resumed (they define what the checkpoint is)
RESUME_FIXED = ("env", "solver", "run.seed", "run.dtype")


class TrainError(RuntimeError):
    """An error of a run (after the config was validated); ``exit_code`` as above."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclasses.dataclass
class RunResult:
    run_dir: Path | None
    """None on the processes of a distributed run other than rank 0"""
    status: str
    """ok, not_converged, nonfinite, interrupted"""
    exit_code: int
    message: str
    solver: Any = None
    result: Any = None
    """the judge's EvaluationResult (None if the run failed before it or eval is disabled)"""
    history: list = dataclasses.field(default_factory=list)
    final_metrics: dict = dataclasses.field(default_factory=dict)
    figures: dict = dataclasses.field(default_factory=dict)
    checkpoint: Path | None = None
    step: int = 0
    wall_time: float = 0.0
    wandb_hint: str | None = None


# ---------------------------------------------------------------------------------------------- helpers
def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_json(path: Path, data: Any) -> None:
    _write_text(path, json.dumps(_finite_json(data), indent=2) + "\n")


def _finite_json(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return _finite_json(value.item())
    return value


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def _select(data: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = data.get(part) if isinstance(data, Mapping) else None
    return data


def judge_scalars(result) -> dict[str, Any]:
    """The judge's headline numbers: every top-level number of the result, the aggregates' statistics and the
    reference section's numbers (``reference.<path>``, e.g. ``reference.welfare.mean_pct``)."""
    if result is None:
        return {}
    data = result.to_dict()
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("seed",):
            out[key] = value
    for name, stats in (data.get("aggregates") or {}).items():
        for stat, value in stats.items():
            out[f"aggregates.{name}.{stat}"] = value
    ref = data.get("reference") or {}
    if ref.get("status") == "scored":
        for path in REFERENCE_SCALARS:
            value = result.reference_metric(path)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"reference.{path}"] = value
    return out


#: the reference section's numbers reported as scalars (W&B summary, summary.json)
REFERENCE_SCALARS = (
    "errors_test.mean", "errors_test.p99", "errors_test.max", "errors_test.log10_mean", "errors_own.mean",
    "errors_own.p99", "errors_own.max", "stationary.wasserstein", "stationary.wasserstein_noise",
    "stationary.policy.K_mean", "stationary.policy.K_sd", "stationary.policy.wealth_gini",
    "stationary.policy.consumption_gini", "stationary.reference.K_mean", "stationary.reference.wealth_gini",
    "welfare.mean_pct", "welfare.se_pct",
)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if 1e-3 <= abs(value) < 1e5 or value == 0 else f"{value:.3e}"
    return str(value)


def _reference_rows(result) -> list[tuple[str, str]]:
    """The reference section as (metric, value) rows: first in the table, the judge's primary metrics."""
    ref = result.reference
    if ref is None:
        return []
    if ref.get("status") != "scored":
        return [("reference metrics", f"skipped: {ref.get('reason')}")]
    m = result.reference_metric
    origin = "exact" if ref.get("source") == "exact" else (
        f"{ref.get('source')}, {'cached' if ref.get('cached') else 'solved now'}"
        + (f" (solve {ref['solve_time']:.3g} s)" if isinstance(ref.get("solve_time"), (int, float)) else "")
        + (f", converged = {ref.get('converged')}" if ref.get("converged") is not None else ""))
    rows = [("reference", origin)]
    for where, label in (("errors_test", "common test states"), ("errors_own", "own ergodic set")):
        err = m(where)
        if err:
            what = "unit-free Euler error abs(1 - c/c_EE)" if err.get("kind") == "relative_euler" else \
                "relative policy error abs(u - u_ref)/abs(u_ref)"
            rows.append((f"{what}, {label}: mean / p99 / max",
                         f"{_fmt(err['mean'])} / {_fmt(err['p99'])} / {_fmt(err['max'])} "
                         f"(log10 mean {err['log10_mean']:.2f})"))
    welfare = m("welfare")
    if welfare:
        name = "welfare loss, consumption equivalent" if welfare["kind"] == "consumption_equivalent" else \
            "welfare loss, relative value"
        se = f" ± {welfare['se_pct']:.2g}" if welfare.get("se_pct") is not None else ""
        rows.append((f"{name} (%, > 0: worse than the reference)", f"{welfare['mean_pct']:.4g}{se}"))
    stat = m("stationary")
    if stat:
        pol, ref_stat = stat["policy"], stat["reference"]
        rows.append(("Wasserstein-1 of wealth to the reference (noise level)",
                     f"{_fmt(stat['wasserstein'])} ({_fmt(stat['wasserstein_noise'])})"))
        pairs = [("K mean", "K_mean"), ("K sd", "K_sd"), ("wealth Gini", "wealth_gini"),
                 ("consumption Gini", "consumption_gini"), ("wealth p10", "wealth_p10"), ("wealth p50", "wealth_p50"),
                 ("wealth p90", "wealth_p90"), ("wealth p99", "wealth_p99")]
        for label, key in pairs:
            if pol.get(key) is not None:
                rows.append((f"stationary {label}: policy / reference", f"{_fmt(pol[key])} / {_fmt(ref_stat[key])}"))
        rows.append(("stationary simulation", f"{stat['economies']} economies from the reference's ergodic set "
                     f"(reached in {ref.get('ergodic_burn_in')} periods from the initial state), burn-in "
                     f"{stat['burn_in']} periods ({stat.get('burn_in_rule')}), {stat['periods']} recorded"))
    return rows


def judge_table(result) -> list[tuple[str, str]]:
    """(metric, formatted value) rows of the judge's result: the reference-based metrics first, then the
    self-consistency measures (marked: a wrong policy can score well on them), then the rest."""
    rows = _reference_rows(result)
    rows += [("Euler residual MSE, own paths (self-consistency)", _fmt(result.euler_mse)),
             ("mean abs. Euler residual, own paths (self-consistency)", _fmt(result.euler_mean_abs))]
    if result.bellman is not None:
        rows.append(("Bellman error (self-consistency)", _fmt(result.bellman_error)))
    if result.den_haan is not None:
        rows.append(("Den Haan statistic, mean / max % (self-consistency)",
                     f"{_fmt(result.den_haan.get('mean_pct'))} / {_fmt(result.den_haan.get('max_pct'))}"))
    if result.lq_abs_error is not None:
        rows += [("policy error vs LQ, mean abs.", _fmt(result.lq_abs_error)),
                 ("policy error vs LQ, relative", f"{100 * result.lq_rel_error:.3g} %"),
                 ("policy error vs LQ, max abs.", _fmt(result.lq_max_abs_error))]
    labels = {"wall_time": "training wall time (s)", "n_params": "parameters", "eval_time": "judge time (s)"}
    for key, value in judge_scalars(result).items():
        if key.startswith(("aggregates.", "reference.")) or key in (
                "euler_mse", "euler_mean_abs", "lq_abs_error", "lq_rel_error", "lq_max_abs_error", "n_agents",
                "trajectories", "horizon"):
            continue
        rows.append((labels.get(key, key), _fmt(value)))
    for name, stats in result.aggregates.items():
        rows.append((f"{name} on the test paths: mean (sd)", f"{_fmt(stats['mean'])} ({_fmt(stats['sd'])})"))
    return rows


def judge_markdown(result) -> str:
    head = (f"Judge: {result.solver} on {result.economy}, N = {result.n_agents}, {result.trajectories} test paths × "
            f"{result.horizon + 1} states, seed {result.seed}\n\n")
    lines = ["| metric | value |", "|---|---|"] + [f"| {m} | {v} |" for m, v in judge_table(result)]
    return head + "\n".join(lines) + "\n"


#: substrings of the metric names that are training losses / objectives (a non-finite one stops the run)
LOSS_KEYS = ("loss", "objective")


def _is_loss(key: str) -> bool:
    return any(k in key for k in LOSS_KEYS)


def _nonfinite(metrics: Mapping[str, Any], solver) -> str | None:
    """Why the run must stop: a non-finite loss-like metric or a non-finite parameter/buffer (None if fine)."""
    for key, value in metrics.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if _is_loss(key) and number and not math.isfinite(value):
            return f"{key} = {value}"
    for name in ("policy", "value"):
        module = getattr(solver, name, None)
        if isinstance(module, torch.nn.Module):
            for pname, tensor in module.state_dict().items():
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    return f"non-finite {name} parameter {pname}"
    return None


def _step_of(metrics: Mapping[str, Any], fallback: int) -> int:
    for key in ("step", "iteration"):
        value = metrics.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return fallback


def _loss_and_metric(metrics: Mapping[str, Any]) -> str:
    """ "loss=... metric=..." for the progress bar and messages: the first training loss/objective and the first
    validation-like metric of the solver's metrics."""
    def number(key: str) -> bool:
        return isinstance(metrics.get(key), (int, float)) and not isinstance(metrics.get(key), bool)

    loss = next((k for k in metrics if _is_loss(k) and not k.startswith("val") and number(k)), None)
    metric = next((k for k in ("val_mse", "alm_change", "bellman_error") if number(k)), None)
    metric = metric or next((k for k in metrics if k.startswith("val") and number(k)), None)
    return " ".join(f"{k}={metrics[k]:.3g}" for k in (loss, metric) if k is not None)


def make_run_dir(exp: Experiment) -> Path:
    root = Path(exp.run.output_dir)
    if exp.run.name:
        path = root / exp.run.name
        if path.exists() and any(path.iterdir()):
            raise ConfigFileError(exp.path, "run.name", f"run directory {path} exists: resume it with --resume {path} "
                                                        "or choose another run.name")
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = root / f"{exp.name}-{stamp}"
        i = 1
        while path.exists():
            path = root / f"{exp.name}-{stamp}-{i}"
            i += 1
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_resumable(exp: Experiment, run_dir: Path) -> None:
    """The config must agree with the saved one on what defines the checkpoint (env, solver, seed, dtype); every
    differing key is named."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        raise ConfigFileError(str(run_dir), None, "not a run directory (no config.yaml)")
    saved = yaml.safe_load(saved_path.read_text())
    now = exp.to_dict()
    keys = [k for key in RESUME_FIXED for k in differing_keys(_select(saved, key), _select(now, key), key)]
    if keys:
        changes = "; ".join(f"{k}: {_select(saved, k)!r}, now {_select(now, k)!r}" for k in keys)
        raise ConfigFileError(exp.path, ", ".join(keys), f"differ{'s' if len(keys) == 1 else ''} from the run being "
                                                          f"resumed ({saved_path}: {changes})")


def run_identity(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint must have been written under to continue this run: the values of :data:`RESUME_FIXED`."""
    return {key: _select(resolved, key) for key in RESUME_FIXED}


def _restore(exp: Experiment, ckpts: CheckpointDir, identity: Mapping[str, Any]):
    """(solver, checkpoint data, path, skipped): the solver restored from the newest usable checkpoint, or fresh with
    (None, None) when the run has none yet. ``skipped``: the :class:`CheckpointError` of each newer unusable file.
    Every file unusable: :class:`ConfigFileError` listing them (nothing was written)."""
    solver, skipped = _make_solver(exp), []
    for _, path in reversed(ckpts.files()):
        try:
            data = load_checkpoint(path)
            check_run(data, path, identity)
        except CheckpointError as err:
            skipped.append(err)
            continue
        try:
            solver.load_state_dict(to_device(data["solver"], solver.economy.device))
            set_rng_state(data["rng"])
        except Exception as err:  # written by another version of the solver; it may be half loaded: start afresh
            skipped.append(CheckpointError(path, f"does not fit the solver ({reason_of(err)})"))
            solver = _make_solver(exp)
            continue
        return solver, data, path, skipped
    if skipped:
        tried = "; ".join(f"{err.path.name}: {err.reason}" for err in skipped)
        raise ConfigFileError(str(ckpts.path), None, f"no intact checkpoint to resume from (tried {tried}); move "
                                                     "them away to restart this run from step 0, or start a new run")
    return solver, None, None, skipped


# ---------------------------------------------------------------------------------------------- the run
def run_experiment(
    exp: Experiment,
    *,
    resume: str | os.PathLike | None = None,
    out: TextIO | None = None,
    figures: bool | None = None,
) -> RunResult:
    """Train, judge and log ``exp``; see the module docstring. ``resume``: a run directory to continue.

    Raises :class:`~train.config.ConfigFileError` (bad config / not resumable) before anything runs and
    :class:`TrainError` for unexpected errors; NaN, non-convergence and interruption are returned as a
    :class:`RunResult` with the exit code (everything that could be written is written).

    Launched by torchrun (``WORLD_SIZE`` > 1), it starts the process group (NCCL on CUDA, gloo on CPU), trains
    data-parallel, and destroys the group at the end; the processes other than rank 0 only train and return a
    :class:`RunResult` without a run directory.
    """
    from agents import distributed

    if exp.solver_config is None:
        raise ConfigFileError(exp.path, "solver", "the solver section was not validated")
    if distributed.launched():
        _check_distributable(exp, resume)
    started = distributed.init_from_env(exp.device, timeout_minutes=exp.run.dist_timeout)
    try:
        if distributed.is_distributed() and not distributed.is_main():
            return _train_worker(exp)
        return _run_main(exp, resume=resume, out=out, figures=figures)
    finally:
        if started:
            # every rank leaves together: a rank that tears its gloo pairs down while rank 0 still judges can abort
            # in gloo's shutdown ("terminate called without an active exception")
            try:
                distributed.barrier()
            finally:
                distributed.destroy()


def _check_distributable(exp: Experiment, resume) -> None:
    from agents.solvers import SOLVERS

    if resume is not None:
        raise ConfigFileError("command line", None, "--resume is not supported under torchrun (a checkpoint holds "
                                                    "rank 0's data stream only): resume in a single process")
    cls = SOLVERS[exp.solver_name]
    if not cls.supports_distributed:
        known = ", ".join(sorted(name for name, c in SOLVERS.items() if c.supports_distributed))
        raise ConfigFileError(exp.path, "solver.name", f"solver {exp.solver_name!r} cannot train distributed "
                                                       f"(torchrun); solvers that can: {known}")


def _remaining(exp: Experiment, solver, start_step: int) -> tuple[int | None, float | None]:
    """(steps, budget) left to train after ``start_step`` steps and ``solver.wall_time`` seconds."""
    steps = None if exp.run.steps is None else max(0, exp.run.steps - start_step)
    budget = None if exp.run.budget is None else exp.run.budget - solver.wall_time
    if budget is not None and budget <= 0:
        steps, budget = 0, None
    return steps, budget


def _make_solver(exp: Experiment):
    """The solver of ``exp`` on this process's device, after seeding the global RNGs."""
    import agents
    from agents import distributed

    torch.set_num_threads(exp.run.threads)
    seed_everything(exp.run.seed)
    economy = exp.economy(device=distributed.process_device(exp.device))
    return agents.make_solver(exp.solver_name, economy, exp.solver_config)


def _train_worker(exp: Experiment) -> RunResult:
    """A distributed run's rank r > 0: train in step with the others, write nothing."""
    from agents import distributed

    solver = _make_solver(exp)
    steps, budget = _remaining(exp, solver, 0)
    try:
        final = solver.train(steps, budget=budget)
    except Exception as err:
        raise TrainError(f"rank {distributed.rank()}: {type(err).__name__}: {err}") from err
    return RunResult(None, "ok", EXIT_OK, "", solver=solver, history=list(solver.history), final_metrics=final,
                     step=_step_of(final, 0), wall_time=solver.wall_time)


def _run_main(
    exp: Experiment,
    *,
    resume: str | os.PathLike | None = None,
    out: TextIO | None = None,
    figures: bool | None = None,
) -> RunResult:
    """The run of a single process, or of rank 0 of a distributed one (run directory, logs, judge)."""
    from tqdm.auto import tqdm

    import agents
    from agents import distributed

    out = out or sys.stdout
    try:
        resolve_mode(exp.logger.mode.value if exp.logger.mode is not None else None)
    except ValueError as err:
        raise ConfigFileError(exp.path, "logger.mode", str(err)) from None
    if resume is not None:
        run_dir = Path(resume)
        check_resumable(exp, run_dir)
    else:
        run_dir = make_run_dir(exp)
    say = lambda *a: print(*a, file=out, flush=True)  # noqa: E731
    resolved = exp.to_dict()
    identity = run_identity(resolved)
    figures = exp.logger.figures if figures is None else figures
    ckpts = CheckpointDir(run_dir / "checkpoints", keep=exp.run.keep_checkpoints)
    metrics_file = MetricsFile(run_dir / "metrics.jsonl")
    start_step, last_good, skipped = 0, None, []
    if resume is not None:  # before anything is written: a run without a usable checkpoint stays as it was
        solver, data, last_good, skipped = _restore(exp, ckpts, identity)
        for err in skipped:
            aside = ckpts.set_aside(err.path)
            print(f"warning: {err}; renamed to {aside.name}", file=sys.stderr, flush=True)
        if last_good is not None:
            start_step = int(data["step"])
            metrics_file.truncate_after(start_step)
            say(f"resuming {run_dir} from {last_good.name} (step {start_step})")
        else:
            metrics_file.path.unlink(missing_ok=True)
            say(f"resuming {run_dir}: no checkpoint yet, starting from step 0")
    else:
        solver = _make_solver(exp)
    _write_text(run_dir / "config.yaml", exp.to_yaml())
    world = distributed.world_size()
    if world > 1:
        batch = getattr(solver.config, "batch_size", None)
        say(f"distributed: {world} processes ({distributed.dist.get_backend()}), each simulating its own economies"
            + (f"; global batch = {world} × {batch} = {world * batch}" if batch else ""))
    say(f"run directory: {run_dir}")

    wandb_id_file = run_dir / "wandb_run_id"
    wandb = WandbRun(
        exp.logger.mode.value if exp.logger.mode is not None else None, directory=run_dir, config=resolved,
        project=exp.logger.project, entity=exp.logger.entity, group=exp.logger.group, tags=exp.logger.tags,
        name=exp.logger.name or run_dir.name, notes=exp.description or None,
        run_id=wandb_id_file.read_text().strip() if resume is not None and wandb_id_file.exists() else None,
    )
    if wandb.id:
        _write_text(wandb_id_file, wandb.id + "\n")

    state = {"step": start_step, "count": 0, "last_ckpt": start_step, "failure": None, "pending": None,
             "progress_done": 0}
    remaining_steps, remaining_budget = _remaining(exp, solver, start_step)
    bar = tqdm(total=None if remaining_steps is None else start_step + remaining_steps, initial=start_step,
               unit="step", dynamic_ncols=True, file=sys.stderr, disable=not exp.logger.progress, mininterval=0.25,
               desc=f"{exp.solver_name}", leave=True)
    train_start = time.perf_counter()

    def save_checkpoint(step: int) -> Path:
        payload = {"solver": solver.state_dict(), "rng": rng_state(), "config": identity,
                   "trainer": {"step": step, "wall_time": solver.wall_time}}
        return ckpts.save(step, payload)

    def callback(metrics: dict[str, Any]) -> bool:
        step = _step_of(metrics, start_step + state["progress_done"])
        state["step"] = step
        bad = _nonfinite(metrics, solver)
        if bad is not None:
            state["failure"] = f"{bad} at step {step}"
            metrics_file.append(step, metrics)
            return True
        state["count"] += 1
        if state["count"] % exp.logger.every == 0:
            metrics_file.append(step, metrics)
            wandb.log_scalars(metrics, step)
            state["pending"] = None
        else:
            state["pending"] = (step, dict(metrics))
        text = _loss_and_metric(metrics)
        if remaining_budget is not None:
            text += f" budget_left={max(0.0, remaining_budget - (time.perf_counter() - train_start)):.0f}s"
        bar.set_postfix_str(text, refresh=False)
        if exp.run.checkpoint_every and step - state["last_ckpt"] >= exp.run.checkpoint_every:
            state["checkpoint"] = save_checkpoint(step)
            state["last_ckpt"] = step
        return False

    def progress(done: int, total: int | None) -> None:
        state["progress_done"] = done
        if total is not None and bar.total != start_step + total:
            bar.total = start_step + total
        bar.update(start_step + done - bar.n)

    status, code, message, final = "ok", EXIT_OK, "", {}
    try:
        try:
            final = solver.train(remaining_steps, budget=remaining_budget, callback=callback, progress=progress)
        except KeyboardInterrupt:
            bar.close()
            latest = ckpts.latest()
            where = f"the last checkpoint ({latest.name})" if latest else "the start (no checkpoint yet)"
            message = (f"interrupted at step {state['step']}; continue from {where} with: "
                       f"python -m train --resume {run_dir}")
            hint = wandb.finish(exit_code=EXIT_INTERRUPTED)
            _write_json(run_dir / "summary.json", {"status": "interrupted", "exit_code": EXIT_INTERRUPTED,
                                                   "message": message, "step": state["step"]})
            return RunResult(run_dir, "interrupted", EXIT_INTERRUPTED, message, solver=solver, step=state["step"],
                             history=list(solver.history), wandb_hint=hint)
        bar.close()
        final = dict(final or solver.metrics)
        step = _step_of(final, state["step"])
        state["step"] = step
        failure = state["failure"] or (None if (bad := _nonfinite(final, solver)) is None else f"{bad} at step {step}")
        if failure is not None:
            latest = ckpts.latest()
            keep = f"last good checkpoint: {latest}" if latest else "no checkpoint was written"
            message = f"non-finite training: {failure}; stopped ({keep})"
            wandb.summary({"status": "nonfinite"})
            hint = wandb.finish(exit_code=EXIT_NONFINITE)
            _write_json(run_dir / "summary.json", {
                "status": "nonfinite", "exit_code": EXIT_NONFINITE, "message": message, "step": step,
                "checkpoint": str(latest) if latest else None, "final_metrics": jsonable(final)})
            return RunResult(run_dir, "nonfinite", EXIT_NONFINITE, message, solver=solver, step=step,
                             history=list(solver.history), final_metrics=final, checkpoint=latest, wandb_hint=hint)
        if state["pending"] is not None:
            metrics_file.append(*state["pending"])
            wandb.log_scalars(state["pending"][1], state["pending"][0])
        checkpoint = save_checkpoint(step)
        say(f"trained {step - start_step} step(s) (total {step}) in {solver.wall_time:.2f} s: "
            f"{_loss_and_metric(final) or final}")

        # ----- the judge
        result = None
        if exp.eval.enabled:
            # the reference (where the economy has one) is scored when exact or cached; eval.options.reference=true
            # solves it once first (said on the console), false skips it
            judge_kwargs = {"log": lambda line: say(f"judge: {line}"), **exp.evaluate_kwargs()}
            result = agents.evaluate_solver(solver, **judge_kwargs)
            result.to_json(run_dir / "judge.json")
            _write_text(run_dir / "judge.md", judge_markdown(result))
            say(judge_markdown(result))
            rows = judge_table(result)
            wandb.table("judge/table", ["metric", "value"], rows)
            by = result.euler_by_period
            wandb.table("judge/euler_by_period", ["t", "mean", "lo", "hi", "mse"],
                        list(zip(by["t"], by["mean"], by["lo"], by["hi"], by["mse"])))

        # ----- figures
        fig_paths: dict[str, Path] = {}
        if figures:
            from .plots import run_figures  # matplotlib only when figures are drawn

            fig_paths = run_figures(solver, result, solver.history, run_dir / "figures", exp.evaluate_kwargs())
            wandb.images(fig_paths)
            say(f"figures: {', '.join(str(p) for p in fig_paths.values())}")

        # ----- convergence
        converged = getattr(solver, "converged", final.get("converged"))
        if converged is False and exp.run.require_convergence:
            if exp.run.steps is not None and step >= exp.run.steps:
                limit = f"run.steps = {exp.run.steps} reached"
            elif exp.run.budget is not None and solver.wall_time >= exp.run.budget:
                limit = f"run.budget = {exp.run.budget:g} s used"
            else:
                limit = "the solver's own limit reached (e.g. max_epochs)"
            status, code = "not_converged", EXIT_NOT_CONVERGED
            message = (f"not converged after {step} step(s) and {solver.wall_time:.3g} s ({limit}): "
                       f"{_loss_and_metric(final) or 'see metrics.jsonl'}")
        elif converged is False:
            message = "finished (the solver did not report convergence; run.require_convergence = false)"
        else:
            message = "finished" + (" (converged)" if converged else "")

        summary = {
            "status": status, "exit_code": code, "message": message, "step": step,
            "steps_this_session": step - start_step,
            "wall_time": solver.wall_time, "converged": converged, "final_metrics": jsonable(final),
            "judge": judge_scalars(result), "checkpoint": str(checkpoint),
            "figures": {k: str(v) for k, v in fig_paths.items()}, "wandb_mode": wandb.mode, "world_size": world,
        }
        if resume is not None:
            summary["resumed_from"] = str(last_good) if last_good else None
            summary["skipped_checkpoints"] = [f"{err.path.name}: {err.reason}" for err in skipped]
        wandb.summary({**{f"final/{k}": v for k, v in jsonable(final).items()},
                       **{f"judge/{k}": v for k, v in judge_scalars(result).items()}, "status": status})
        hint = wandb.finish(exit_code=code)
        if hint:
            summary["wandb_offline_dirs"] = [str(d) for d in wandb.offline_dirs]
            say(hint)
        _write_json(run_dir / "summary.json", summary)
        return RunResult(run_dir, status, code, message, solver=solver, result=result, history=list(solver.history),
                         final_metrics=final, figures=fig_paths, checkpoint=checkpoint, step=step,
                         wall_time=solver.wall_time, wandb_hint=hint)
    except Exception as err:
        bar.close()
        (run_dir / "error.log").write_text(traceback.format_exc())
        try:
            wandb.finish(exit_code=EXIT_ERROR)
        except Exception:  # pragma: no cover
            pass
        _write_json(run_dir / "summary.json", {"status": "error", "exit_code": EXIT_ERROR,
                                               "message": f"{type(err).__name__}: {err}", "step": state["step"]})
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise TrainError(f"{type(err).__name__}: {first} (traceback: {run_dir / 'error.log'})") from err
