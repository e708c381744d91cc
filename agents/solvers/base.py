"""The one interface every solver implements (the registry behind :func:`agents.make_solver` is
:mod:`agents.solvers.registry`).

A solver is built as ``Solver(economy, config)`` and then

* ``solver.train(steps=None, budget=None, callback=None, progress=None) -> dict`` trains for at most ``steps``
  steps and/or ``budget`` seconds of the solver's clock (both None: the config's own stopping rule), calling
  ``callback(metrics: dict)`` at every logging point (a truthy return value stops training) and
  ``progress(done: int, total: int | None)`` after every step (for progress bars); it returns the final metrics
  (with ``wall_time`` and ``cpu_time``);
* ``solver.policy`` is an ``nn.Module`` mapping an economy state TensorDict to actions ``(B, N)``;
  ``solver.value`` is an optional ``nn.Module`` state -> per-agent values ``(B, N)`` (None if the solver has none);
* ``solver.state_dict()`` / ``solver.load_state_dict(sd)`` checkpoint everything needed to resume;
* ``solver.wall_time`` is the accumulated wall-clock seconds spent setting up and training, ``solver.cpu_time``
  the CPU seconds of this process over the same intervals (≈ the wall time an idle machine would show for a
  single-threaded run; useful on shared machines);
* ``solver.metrics`` the latest metrics, ``solver.history`` the list of all logged metrics;
* ``Solver.progress_metrics`` the names of the metrics a progress bar shows, in order (e.g. the training loss, then
  the validation metric); a name may be missing from some logged metrics;
* ``solver.initial_state`` the state the solver's simulations start from, if it has one (the judge may reuse it).

``train`` is one template (:meth:`Solver.train`) that does the bookkeeping — the arguments, the clock, the budget,
progress, logging and the stop by the callback — around hooks in which a solver writes its algorithm:

* ``_begin(steps, budget) -> int | None`` — per-call setup (e.g. a first value fit); returns the call's planned
  number of steps: ``steps`` when given, else what the config's own rule leaves (None: no count — the budget or
  ``_done`` ends the call; 0: nothing to do);
* ``_train_step() -> dict | None`` — one step (a minibatch, a policy step, an iteration of a fixed point): the
  metrics to log when it is a logging point of the solver's own, else None;
* ``_metrics() -> dict`` — the metrics now, logged when the call stops at a step that returned None;
* ``_done() -> bool`` — after every step (and its log): the solver has finished (converged, diverged); may raise
  an error found by the step after its metrics were logged;
* ``_end(done)`` — after the last step of the call, on the clock (``done`` steps were taken);
* ``_finish(final) -> dict`` — the final metrics from a copy of the latest, off the clock.

A step's wall time counts towards the budget, a callback's does not (the clock stops while it runs); the budget is
checked after every step and a call that it stops logs its last step. Under torchrun a solver with
``supports_distributed = True`` trains data-parallel (:mod:`agents.distributed`): every process calls ``train``
with the same arguments, simulates its own data, and takes every stopping decision identically (rank 0's clock
decides the budget, ``_log`` all-reduces the callback's stop; rank 0 alone passes a callback).

The command line and the judge use nothing else. Adding a solver = a subclass decorated with
``@register_solver("name")`` and a :class:`~agents.config.Config` subclass for its settings.
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from tensordict import TensorDict
from torch import nn

from hetagents_env.economies.core import Economy

from .. import distributed
from ..config import Config, ConfigError

Callback = Callable[[dict[str, Any]], Any]
Progress = Callable[[int, "int | None"], Any]

class Solver(abc.ABC):
    """Base class: config resolution, the training template (:meth:`train` and its hooks), wall-time accounting,
    metric history and checkpoint plumbing."""

    name: ClassVar[str] = "solver"
    Config: ClassVar[type[Config]] = Config
    #: trains data-parallel under torchrun (see :mod:`agents.distributed`); others refuse a distributed run
    supports_distributed: ClassVar[bool] = False
    #: what the solver needs from an economy, checked once when it is built: names the economy must provide
    #: (:meth:`Economy.provides`), or ``(description, predicate(economy) -> bool)`` pairs. Empty: any economy.
    requires: ClassVar[tuple[str | tuple[str, Callable[[Economy], bool]], ...]] = ()
    #: the metrics a progress bar shows, in order (e.g. the training loss, then the validation metric)
    progress_metrics: ClassVar[tuple[str, ...]] = ()

    policy: nn.Module
    value: nn.Module | None = None
    initial_state: TensorDict | None = None

    def __init__(self, economy: Economy, config: Config | Mapping[str, Any] | None = None) -> None:
        if not isinstance(economy, Economy):
            raise ValueError(f"economy must be a hetagents_env Economy, got {type(economy).__name__}")
        missing = self.missing_requirements(economy)
        if missing:
            raise ConfigError(
                f"solver {self.name!r} cannot solve {economy.env_id} (parameters {economy.params}): the economy "
                f"lacks {'; '.join(missing)}"
            )
        self.economy = economy
        # a Config instance is already valid (e.g. the CLI's, validated once when the file was read)
        self.config = config if isinstance(config, self.Config) else self.Config.build(
            config, base=self.default_config(economy))
        self.history: list[dict[str, Any]] = []
        self.metrics: dict[str, Any] = {}
        self.wall_time = 0.0
        self.cpu_time = 0.0
        self._clock: float | None = None
        self._cpu_clock = 0.0

    @classmethod
    def missing_requirements(cls, economy: Economy) -> list[str]:
        """The entries of :attr:`requires` that ``economy`` does not meet (empty: the solver applies)."""
        missing = []
        for need in cls.requires:
            if isinstance(need, str):
                if not economy.provides(need):
                    missing.append(need)
            elif not need[1](economy):
                missing.append(need[0])
        return missing

    @classmethod
    def supports(cls, economy: Economy) -> bool:
        """Whether this solver applies to ``economy`` (all of :attr:`requires` met)."""
        return not cls.missing_requirements(economy)

    @classmethod
    def default_config(cls, economy: Economy) -> Config:
        """The solver's defaults for ``economy`` (override to specialise per economy)."""
        return cls.Config()

    @classmethod
    def reference_config(cls, economy: Economy) -> Config:
        """The settings with which this solver computes ``economy``'s reference solution for the judge
        (:func:`agents.reference.reference_for`, when ``economy.reference_solver`` names it): accurate rather than
        fast, solved once and cached. Default: :meth:`default_config`."""
        return cls.default_config(economy)

    # ------------------------------------------------------------------ the interface
    def train(
        self,
        steps: int | None = None,
        *,
        budget: float | None = None,
        callback: Callback | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Train for ``steps`` more steps and/or ``budget`` more seconds, or by the config's own rule (see the module
        docstring); returns the final metrics."""
        steps, budget = check_budget(steps, budget)
        self._start_clock()
        self._deadline = None if budget is None else self._elapsed() + budget
        try:
            total = self._begin(steps, budget)
            done, stop = 0, total == 0
            while not stop:
                metrics = self._train_step()
                done += 1
                if progress is not None:
                    progress(done, total)
                # the budget: rank 0's clock decides for every process
                out_of_time = self._deadline is not None and distributed.broadcast_flag(self._out_of_time())
                last = done == total or out_of_time
                if metrics is None and last:
                    metrics = self._metrics()
                asked = metrics is not None and self._log(metrics, callback)
                finished = self._done()
                if finished and metrics is None:  # the solver stopped itself at a step that logged nothing
                    self._log(self._metrics(), callback)
                stop = finished or last or asked
            self._end(done)
        finally:
            self._stop_clock()
            self._deadline = None
        final = self._finish(dict(self.metrics))
        final.update(wall_time=self.wall_time, cpu_time=self.cpu_time)
        self.metrics = final
        return final

    # ------------------------------------------------------------------ the hooks of train (module docstring)
    def _begin(self, steps: int | None, budget: float | None) -> int | None:
        """Per-call setup; the call's planned number of steps (default: ``steps``)."""
        return steps

    def _train_step(self) -> dict[str, Any] | None:
        """One step; the metrics to log if it is a logging point, else None."""
        raise NotImplementedError(f"{type(self).__name__} implements neither train() nor _train_step()")

    def _metrics(self) -> dict[str, Any]:
        """The metrics now (logged when a call stops at a step that logged nothing)."""
        raise NotImplementedError(f"{type(self).__name__}._metrics")

    def _done(self) -> bool:
        """Whether the solver has finished (checked after every step and its log)."""
        return False

    def _end(self, done: int) -> None:
        """After the call's last step (``done`` steps), on the clock."""

    def _finish(self, final: dict[str, Any]) -> dict[str, Any]:
        """The final metrics (``final``: a copy of the latest metrics), off the clock."""
        return final

    def state_dict(self) -> dict[str, Any]:
        sd = {"solver": self.name, "config": self.config.to_dict(), "policy": self.policy.state_dict(),
              "wall_time": self.wall_time, "cpu_time": self.cpu_time, "history": list(self.history)}
        if self.value is not None:
            sd["value"] = self.value.state_dict()
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self._load_run(state_dict)
        self.policy.load_state_dict(state_dict["policy"])
        if self.value is not None and "value" in state_dict:
            self.value.load_state_dict(state_dict["value"])

    def _load_run(self, state_dict: Mapping[str, Any]) -> None:
        """The checkpoint's solver name checked; its clocks, history and latest metrics restored."""
        if state_dict.get("solver", self.name) != self.name:
            raise ValueError(f"checkpoint of solver {state_dict['solver']!r} loaded into {self.name!r}")
        self.wall_time = float(state_dict.get("wall_time", 0.0))
        self.cpu_time = float(state_dict.get("cpu_time", 0.0))
        self.history = list(state_dict.get("history", []))
        self.metrics = dict(self.history[-1]) if self.history else {}

    # ------------------------------------------------------------------ helpers for subclasses
    def _start_clock(self) -> None:
        self._clock = time.perf_counter()
        self._cpu_clock = time.process_time()

    def _stop_clock(self) -> None:
        if self._clock is not None:
            self.wall_time += time.perf_counter() - self._clock
            self.cpu_time += time.process_time() - self._cpu_clock
            self._clock = None

    def _elapsed(self) -> float:
        """Accumulated wall time including the running interval."""
        running = 0.0 if self._clock is None else time.perf_counter() - self._clock
        return self.wall_time + running

    _deadline: float | None = None
    """the solver's clock (:meth:`_elapsed`) at which the current ``train`` call's budget runs out (None: no budget)"""

    def _out_of_time(self) -> bool:
        """Whether this process's clock has passed the current call's budget (False without one)."""
        return self._deadline is not None and self._elapsed() >= self._deadline

    _ddp = None

    def _data_parallel(self, module: nn.Module, loss: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """``loss`` itself, or in a distributed run ``loss`` through DistributedDataParallel around ``module`` (built
        once): one module whose forward is the whole loss, so that the several calls of ``module`` per loss are one
        forward for DDP and the gradients are averaged over the processes."""
        if not distributed.is_distributed():
            return loss
        if self._ddp is None:
            self._ddp = distributed.wrap_loss(module, loss)
        return self._ddp

    def _log(self, metrics: dict[str, Any], callback: Callback | None) -> bool:
        """Record ``metrics``; returns True when the callback asks to stop (on any process of a distributed run:
        every process must call this at the same points). Callback time is not counted."""
        self.metrics = metrics
        self.history.append(metrics)
        stop = False
        if callback is not None:
            self._stop_clock()
            try:
                stop = bool(callback(metrics))
            finally:
                self._start_clock()
        # distributed runs: one process's stop (e.g. rank 0's callback) stops them all, at the same step
        return distributed.any_flag(stop)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.economy!r}, config={self.config!r})"


def check_budget(steps: int | None, budget: float | None) -> tuple[int | None, float | None]:
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
        raise ValueError(f"steps must be a non-negative integer or None, got {steps!r}")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0):
        raise ValueError(f"budget must be a positive number of seconds or None, got {budget!r}")
    return steps, budget


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params, grad_clip: float | None
                   ) -> torch.Tensor:
    """Zero the gradients, backpropagate ``loss``, clip the gradient norm of ``params`` (unless ``grad_clip`` is
    None), step; returns the detached loss."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return loss.detach()


def spread_endogenous(economy: Economy, states: TensorDict, sigma: float, generator: torch.Generator | None, *,
                      keep_mean: bool) -> TensorDict:
    r"""A copy of ``states`` whose endogenous state above its lower bound (0 where the economy states none),
    :math:`w_i - \underline w`, is multiplied by a log-normal factor :math:`e^{\sigma\varepsilon_i}` per agent,
    ε_i ~ N(0, 1): rescaled so that each economy's cross-sectional mean is unchanged (``keep_mean``: prices too), or
    divided by :math:`e^{\sigma^2/2}` (mean-one factor: the mean unchanged in expectation). Never below the bound."""
    key = economy.endogenous_key
    low = economy.feature_bounds(key)[0]
    low = low if math.isfinite(low) else 0.0
    above = states[key] - low
    noise = torch.randn(above.shape, generator=generator, device=economy.device, dtype=above.dtype)
    spread = above * torch.exp(sigma * noise - (0.0 if keep_mean else 0.5 * sigma**2))
    if keep_mean:
        spread = spread * (above.mean(-1, keepdim=True) / spread.mean(-1, keepdim=True).clamp_min(1e-12))
    out = states.clone()
    out[key] = spread + low
    return out
