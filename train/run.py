"""One experiment from a validated config to a trained, judged, logged solver: :func:`run_experiment`.

The run directory (``<run.output_dir>/<run.name or config-name-timestamp>``)::

    config.yaml          the fully resolved config (re-runnable: python -m train <dir>/config.yaml)
    metrics.jsonl        one JSON object per logging point of the solver ({"step": ..., "train_loss": ...})
    judge.json           the judge's EvaluationResult (agents.evaluate), judge.md the same as a table
    figures/*.png        the papers' figures (train.plots)
    checkpoints/*.pt     step_<step>.pt, atomic, weights_only-loadable (train.checkpoint)
    summary.json         status, exit code, reason, steps, wall time, final metrics, the judge's headline numbers
    wandb/               the W&B run (offline runs: upload with `wandb sync`)

The JSON files are strict JSON (:mod:`agents.jsonable`): a NaN or infinite number is written as null. The progress
bar shows the metrics the solver names in ``progress_metrics``. One run is a :class:`TrainingRun`.

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
import math
import os
import random
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

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
    from agents.jsonable import dumps  # strict JSON, non-finite numbers as null (deferred: agents loads the economies)

    _write_text(path, dumps(data, indent=2) + "\n")


def _select(data: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = data.get(part) if isinstance(data, Mapping) else None
    return data


def judge_scalars(result) -> dict[str, Any]:
    """The judge's headline numbers (:meth:`agents.evaluate.EvaluationResult.scalars`; {} without a result)."""
    return {} if result is None else result.scalars()


#: substrings of the metric names that are training losses / objectives (a non-finite one stops the run)
LOSS_KEYS = ("loss", "objective")


def _is_loss(key: str) -> bool:
    return any(k in key for k in LOSS_KEYS)


def _nonfinite(metrics: Mapping[str, Any], solver) -> str | None:
    """Why the run must stop: a non-finite loss-like metric or a non-finite parameter/buffer (None if fine)."""
    for key, value in metrics.items():
        if _is_loss(key) and _is_number(value) and not math.isfinite(value):
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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _loss_and_metric(metrics: Mapping[str, Any], names: Sequence[str] = ()) -> str:
    """ "name=value ..." for the progress bar and messages: the metrics named by the solver's ``progress_metrics``
    (``names``) that ``metrics`` holds, in that order; for a solver that names none (or none of them is there), the
    first training loss/objective and the first validation metric (``val*``) of ``metrics``."""
    shown = [k for k in names if _is_number(metrics.get(k))]
    if not shown:
        loss = next((k for k in metrics if _is_loss(k) and not k.startswith("val") and _is_number(metrics[k])), None)
        metric = next((k for k in metrics if k.startswith("val") and _is_number(metrics[k])), None)
        shown = [k for k in (loss, metric) if k is not None]
    return " ".join(f"{k}={metrics[k]:.3g}" for k in shown)


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
    return TrainingRun(exp, resume=resume, out=out, figures=figures).run()


class TrainingRun:
    """The run of a single process, or of rank 0 of a distributed one: its run directory, solver, checkpoints,
    metrics file, W&B run and progress bar, and the counters the solver's callbacks advance.

    Making one prepares everything before training: the run directory (new, or checked for ``--resume``), the
    solver (new, or restored from the newest usable checkpoint), config.yaml, the W&B run and the progress bar.
    :meth:`run` trains (:meth:`callback` and :meth:`progress` are the solver's hooks) and ends in one outcome:
    :meth:`interrupted`, :meth:`nonfinite`, :meth:`finished` (judge, figures, convergence), or :meth:`failed`.
    """

    def __init__(
        self,
        exp: Experiment,
        *,
        resume: str | os.PathLike | None = None,
        out: TextIO | None = None,
        figures: bool | None = None,
    ) -> None:
        from agents import distributed

        self.wandb_mode = exp.logger.mode.value if exp.logger.mode is not None else None
        try:
            resolve_mode(self.wandb_mode)
        except ValueError as err:
            raise ConfigFileError(exp.path, "logger.mode", str(err)) from None
        self.exp, self.resume, self.out = exp, resume, out or sys.stdout
        if resume is not None:
            self.run_dir = Path(resume)
            check_resumable(exp, self.run_dir)
        else:
            self.run_dir = make_run_dir(exp)
        self.resolved = exp.to_dict()
        self.identity = run_identity(self.resolved)
        self.figures = exp.logger.figures if figures is None else figures
        self.ckpts = CheckpointDir(self.run_dir / "checkpoints", keep=exp.run.keep_checkpoints)
        self.metrics_file = MetricsFile(self.run_dir / "metrics.jsonl")
        self.start_step, self.last_good, self.skipped = 0, None, []
        # on resume, before anything is written: a run without a usable checkpoint stays as it was
        self.solver = self._resumed_solver() if resume is not None else _make_solver(exp)
        self.progress_names = tuple(getattr(self.solver, "progress_metrics", ()) or ())
        _write_text(self.run_dir / "config.yaml", exp.to_yaml())
        self.world = distributed.world_size()
        if self.world > 1:
            batch = getattr(self.solver.config, "batch_size", None)
            globally = f"; global batch = {self.world} × {batch} = {self.world * batch}" if batch else ""
            self.say(f"distributed: {self.world} processes ({distributed.dist.get_backend()}), each simulating its own "
                     f"economies{globally}")
        self.say(f"run directory: {self.run_dir}")
        self.wandb = self._start_wandb()
        # the counters: the latest step, logging points seen, the step of the last checkpoint, the steps the
        # solver reported done, the reason to stop (non-finite numbers), the logging point not logged yet
        self.step, self.count, self.last_checkpoint, self.progress_done = self.start_step, 0, self.start_step, 0
        self.failure: str | None = None
        self.pending: tuple[int, dict[str, Any]] | None = None
        self.remaining_steps, self.remaining_budget = _remaining(exp, self.solver, self.start_step)
        self.bar = self._start_bar()
        self.train_start = time.perf_counter()

    # ------------------------------------------------------------------------------------------ setting up
    def say(self, *args: Any) -> None:
        print(*args, file=self.out, flush=True)

    def _resumed_solver(self):
        """The solver from the newest usable checkpoint (fresh if there is none yet); newer unusable files are set
        aside with a warning each."""
        solver, data, self.last_good, self.skipped = _restore(self.exp, self.ckpts, self.identity)
        for err in self.skipped:
            aside = self.ckpts.set_aside(err.path)
            print(f"warning: {err}; renamed to {aside.name}", file=sys.stderr, flush=True)
        if self.last_good is not None:
            self.start_step = int(data["step"])
            self.metrics_file.truncate_after(self.start_step)
            self.say(f"resuming {self.run_dir} from {self.last_good.name} (step {self.start_step})")
        else:
            self.metrics_file.path.unlink(missing_ok=True)
            self.say(f"resuming {self.run_dir}: no checkpoint yet, starting from step 0")
        return solver

    def _start_wandb(self) -> WandbRun:
        """The W&B run (a resumed run continues the W&B run of ``wandb_run_id``)."""
        logger, id_file = self.exp.logger, self.run_dir / "wandb_run_id"
        run_id = id_file.read_text().strip() if self.resume is not None and id_file.exists() else None
        wandb = WandbRun(
            self.wandb_mode, directory=self.run_dir, config=self.resolved, project=logger.project,
            entity=logger.entity, group=logger.group, tags=logger.tags, name=logger.name or self.run_dir.name,
            notes=self.exp.description or None, run_id=run_id,
        )
        if wandb.id:
            _write_text(id_file, wandb.id + "\n")
        return wandb

    def _start_bar(self):
        from tqdm.auto import tqdm

        total = None if self.remaining_steps is None else self.start_step + self.remaining_steps
        return tqdm(total=total, initial=self.start_step, unit="step", dynamic_ncols=True, file=sys.stderr,
                    disable=not self.exp.logger.progress, mininterval=0.25, desc=f"{self.exp.solver_name}",
                    leave=True)

    # ------------------------------------------------------------------------------------------ training
    def save_checkpoint(self, step: int) -> Path:
        payload = {"solver": self.solver.state_dict(), "rng": rng_state(), "config": self.identity,
                   "trainer": {"step": step, "wall_time": self.solver.wall_time}}
        return self.ckpts.save(step, payload)

    def callback(self, metrics: dict[str, Any]) -> bool:
        """The solver's hook at each logging point: True (stop) on a non-finite loss or parameter; else the metrics
        are logged (every ``logger.every``-th point), shown on the bar and checkpointed (``run.checkpoint_every``)."""
        step = self.step = _step_of(metrics, self.start_step + self.progress_done)
        bad = _nonfinite(metrics, self.solver)
        if bad is not None:
            self.failure = f"{bad} at step {step}"
            self.metrics_file.append(step, metrics)
            return True
        self.count += 1
        if self.count % self.exp.logger.every == 0:
            self.metrics_file.append(step, metrics)
            self.wandb.log_scalars(metrics, step)
            self.pending = None
        else:
            self.pending = (step, dict(metrics))
        text = _loss_and_metric(metrics, self.progress_names)
        if self.remaining_budget is not None:
            left = max(0.0, self.remaining_budget - (time.perf_counter() - self.train_start))
            text += f" budget_left={left:.0f}s"
        self.bar.set_postfix_str(text, refresh=False)
        every = self.exp.run.checkpoint_every
        if every and step - self.last_checkpoint >= every:
            self.save_checkpoint(step)
            self.last_checkpoint = step
        return False

    def progress(self, done: int, total: int | None) -> None:
        """The solver's hook for the bar: ``done`` of ``total`` steps of this session."""
        self.progress_done = done
        if total is not None and self.bar.total != self.start_step + total:
            self.bar.total = self.start_step + total
        self.bar.update(self.start_step + done - self.bar.n)

    def run(self) -> RunResult:
        """Train, then hand over to the outcome; an unexpected error is :meth:`failed`."""
        try:
            try:
                final = self.solver.train(self.remaining_steps, budget=self.remaining_budget, callback=self.callback,
                                          progress=self.progress)
            except KeyboardInterrupt:
                return self.interrupted()
            self.bar.close()
            final = dict(final or self.solver.metrics)
            self.step = _step_of(final, self.step)
            if self.failure is None and (bad := _nonfinite(final, self.solver)) is not None:
                self.failure = f"{bad} at step {self.step}"
            return self.finished(final) if self.failure is None else self.nonfinite(final)
        except Exception as err:
            self.failed(err)

    # ------------------------------------------------------------------------------------------ the outcomes
    def interrupted(self) -> RunResult:
        """Ctrl-C: exit 130 with the command that continues the run."""
        self.bar.close()
        latest = self.ckpts.latest()
        where = f"the last checkpoint ({latest.name})" if latest else "the start (no checkpoint yet)"
        message = (f"interrupted at step {self.step}; continue from {where} with: "
                   f"python -m train --resume {self.run_dir}")
        hint = self.wandb.finish(exit_code=EXIT_INTERRUPTED)
        _write_json(self.run_dir / "summary.json", {"status": "interrupted", "exit_code": EXIT_INTERRUPTED,
                                                    "message": message, "step": self.step})
        return RunResult(self.run_dir, "interrupted", EXIT_INTERRUPTED, message, solver=self.solver, step=self.step,
                         history=list(self.solver.history), wandb_hint=hint)

    def nonfinite(self, final: dict[str, Any]) -> RunResult:
        """A NaN/inf loss or parameter (:attr:`failure`): exit 3, the last good checkpoint kept, no judge."""
        latest = self.ckpts.latest()
        keep = f"last good checkpoint: {latest}" if latest else "no checkpoint was written"
        message = f"non-finite training: {self.failure}; stopped ({keep})"
        self.wandb.summary({"status": "nonfinite"})
        hint = self.wandb.finish(exit_code=EXIT_NONFINITE)
        _write_json(self.run_dir / "summary.json", {
            "status": "nonfinite", "exit_code": EXIT_NONFINITE, "message": message, "step": self.step,
            "checkpoint": str(latest) if latest else None, "final_metrics": jsonable(final)})
        return RunResult(self.run_dir, "nonfinite", EXIT_NONFINITE, message, solver=self.solver, step=self.step,
                         history=list(self.solver.history), final_metrics=final, checkpoint=latest, wandb_hint=hint)

    def finished(self, final: dict[str, Any]) -> RunResult:
        """Training ended normally: the last logging point and a checkpoint written, then the judge, the figures and
        the convergence check (exit 0, or 4 with ``run.require_convergence``), summary.json and the W&B summary."""
        if self.pending is not None:
            self.metrics_file.append(*self.pending)
            self.wandb.log_scalars(self.pending[1], self.pending[0])
        step, solver = self.step, self.solver
        checkpoint = self.save_checkpoint(step)
        self.say(f"trained {step - self.start_step} step(s) (total {step}) in {solver.wall_time:.2f} s: "
                 f"{_loss_and_metric(final, self.progress_names) or final}")
        result = self.judge() if self.exp.eval.enabled else None
        fig_paths = self.draw_figures(result) if self.figures else {}
        status, code, message, converged = self.convergence(final)
        scalars = judge_scalars(result)
        summary = {
            "status": status, "exit_code": code, "message": message, "step": step,
            "steps_this_session": step - self.start_step,
            "wall_time": solver.wall_time, "converged": converged, "final_metrics": jsonable(final),
            "judge": scalars, "checkpoint": str(checkpoint),
            "figures": {k: str(v) for k, v in fig_paths.items()}, "wandb_mode": self.wandb.mode,
            "world_size": self.world,
        }
        if self.resume is not None:
            summary["resumed_from"] = str(self.last_good) if self.last_good else None
            summary["skipped_checkpoints"] = [f"{err.path.name}: {err.reason}" for err in self.skipped]
        self.wandb.summary({**{f"final/{k}": v for k, v in jsonable(final).items()},
                            **{f"judge/{k}": v for k, v in scalars.items()}, "status": status})
        hint = self.wandb.finish(exit_code=code)
        if hint:
            summary["wandb_offline_dirs"] = [str(d) for d in self.wandb.offline_dirs]
            self.say(hint)
        _write_json(self.run_dir / "summary.json", summary)
        return RunResult(self.run_dir, status, code, message, solver=solver, result=result,
                         history=list(solver.history), final_metrics=final, figures=fig_paths, checkpoint=checkpoint,
                         step=step, wall_time=solver.wall_time, wandb_hint=hint)

    def judge(self):
        """The judge's :class:`~agents.evaluate.EvaluationResult`: judge.json, judge.md (also on the console) and
        the W&B tables. The reference (where the economy has one) is scored when exact or cached;
        eval.options.reference=true solves it once first (said on the console), false skips it."""
        import agents

        result = agents.evaluate_solver(self.solver, log=lambda line: self.say(f"judge: {line}"),
                                        **self.exp.evaluate_kwargs())
        result.to_json(self.run_dir / "judge.json")
        report = result.to_markdown()
        _write_text(self.run_dir / "judge.md", report)
        self.say(report)
        self.wandb.table("judge/table", ["metric", "value"], result.table_rows())
        by = result.euler_by_period
        self.wandb.table("judge/euler_by_period", ["t", "mean", "lo", "hi", "mse"],
                         list(zip(by["t"], by["mean"], by["lo"], by["hi"], by["mse"])))
        return result

    def draw_figures(self, result) -> dict[str, Path]:
        """The papers' figures (train.plots) in figures/, logged to W&B."""
        from .plots import run_figures  # matplotlib only when figures are drawn

        paths = run_figures(self.solver, result, self.solver.history, self.run_dir / "figures",
                            self.exp.evaluate_kwargs())
        self.wandb.images(paths)
        self.say(f"figures: {', '.join(str(p) for p in paths.values())}")
        return paths

    def convergence(self, final: Mapping[str, Any]) -> tuple[str, int, str, Any]:
        """(status, exit code, message, converged) of a finished run."""
        run, solver, step = self.exp.run, self.solver, self.step
        converged = getattr(solver, "converged", final.get("converged"))
        if converged is False and run.require_convergence:
            if run.steps is not None and step >= run.steps:
                limit = f"run.steps = {run.steps} reached"
            elif run.budget is not None and solver.wall_time >= run.budget:
                limit = f"run.budget = {run.budget:g} s used"
            else:
                limit = "the solver's own limit reached (e.g. max_epochs)"
            message = (f"not converged after {step} step(s) and {solver.wall_time:.3g} s ({limit}): "
                       f"{_loss_and_metric(final, self.progress_names) or 'see metrics.jsonl'}")
            return "not_converged", EXIT_NOT_CONVERGED, message, converged
        if converged is False:
            return "ok", EXIT_OK, "finished (the solver did not report convergence; run.require_convergence = false)", \
                converged
        return "ok", EXIT_OK, "finished" + (" (converged)" if converged else ""), converged

    def failed(self, err: Exception) -> NoReturn:
        """An unexpected error (called while handling it): error.log, summary.json, W&B closed; :class:`TrainError`
        (exit 1) naming the error and the log."""
        self.bar.close()
        (self.run_dir / "error.log").write_text(traceback.format_exc())
        try:
            self.wandb.finish(exit_code=EXIT_ERROR)
        except Exception:  # pragma: no cover
            pass
        _write_json(self.run_dir / "summary.json", {"status": "error", "exit_code": EXIT_ERROR,
                                                    "message": f"{type(err).__name__}: {err}", "step": self.step})
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise TrainError(f"{type(err).__name__}: {first} (traceback: {self.run_dir / 'error.log'})") from err
