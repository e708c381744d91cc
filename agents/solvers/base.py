"""The one interface every solver implements, and the registry behind :func:`agents.make_solver`.

A solver is built as ``Solver(economy, config)`` and then

* ``solver.train(steps=None, budget=None, callback=None, progress=None) -> dict`` trains for at most ``steps``
  gradient steps and/or ``budget`` seconds of wall time (both None: the config's own stopping rule), calling
  ``callback(metrics: dict)`` at every logging point (a truthy return value stops training) and
  ``progress(done: int, total: int | None)`` after every step (for progress bars); it returns the final metrics;
* ``solver.policy`` is an ``nn.Module`` mapping an economy state TensorDict to actions ``(B, N)``;
  ``solver.value`` is an optional ``nn.Module`` state -> per-agent values ``(B, N)`` (None if the solver has none);
* ``solver.state_dict()`` / ``solver.load_state_dict(sd)`` checkpoint everything needed to resume;
* ``solver.wall_time`` is the accumulated wall-clock seconds spent setting up and training, ``solver.cpu_time``
  the CPU seconds of this process over the same intervals (≈ the wall time an idle machine would show for a
  single-threaded run; useful on shared machines);
* ``solver.metrics`` the latest metrics, ``solver.history`` the list of all logged metrics;
* ``solver.initial_state`` the state the solver's simulations start from, if it has one (the judge may reuse it).

Under torchrun a solver with ``supports_distributed = True`` trains data-parallel (:mod:`agents.distributed`):
every process calls ``train`` with the same arguments, simulates its own data, and takes every stopping decision
identically (``_log`` all-reduces the callback's stop; rank 0 alone passes a callback).

The command line and the judge use nothing else. Adding a solver = a subclass decorated with
``@register_solver("name")`` and a :class:`~agents.config.Config` subclass for its settings.
"""

from __future__ import annotations

import abc
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

SOLVERS: dict[str, type["Solver"]] = {}


def register_solver(name: str):
    """Class decorator: make ``cls`` available as ``make_solver(name, ...)``."""

    def wrap(cls: type[Solver]) -> type[Solver]:
        if name in SOLVERS and SOLVERS[name] is not cls:
            raise ValueError(f"a solver named {name!r} is already registered ({SOLVERS[name].__name__})")
        cls.name = name
        SOLVERS[name] = cls
        return cls

    return wrap


def list_solvers() -> list[str]:
    return sorted(SOLVERS)


def make_solver(name: str, economy: Economy, config: Config | Mapping[str, Any] | None = None) -> "Solver":
    """The solver registered as ``name`` for ``economy``; ``config`` a mapping or the solver's Config instance.

    Keys absent from a mapping take the solver's defaults for this economy (``Solver.default_config(economy)``).
    """
    try:
        cls = SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown solver {name!r}; known solvers: {', '.join(list_solvers())}") from None
    return cls(economy, config)


class Solver(abc.ABC):
    """Base class: config resolution, wall-time accounting, metric history and checkpoint plumbing."""

    name: ClassVar[str] = "solver"
    Config: ClassVar[type[Config]] = Config
    #: trains data-parallel under torchrun (see :mod:`agents.distributed`); others refuse a distributed run
    supports_distributed: ClassVar[bool] = False
    #: what the solver needs from an economy, checked once when it is built: names the economy must provide
    #: (:meth:`Economy.provides`), or ``(description, predicate(economy) -> bool)`` pairs. Empty: any economy.
    requires: ClassVar[tuple[str | tuple[str, Callable[[Economy], bool]], ...]] = ()

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
        self.config = self.Config.build(config, base=self.default_config(economy))
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
    @abc.abstractmethod
    def train(
        self,
        steps: int | None = None,
        *,
        budget: float | None = None,
        callback: Callback | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Train; see the module docstring."""

    def state_dict(self) -> dict[str, Any]:
        sd = {"solver": self.name, "config": self.config.to_dict(), "policy": self.policy.state_dict(),
              "wall_time": self.wall_time, "cpu_time": self.cpu_time, "history": list(self.history)}
        if self.value is not None:
            sd["value"] = self.value.state_dict()
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if state_dict.get("solver", self.name) != self.name:
            raise ValueError(f"checkpoint of solver {state_dict['solver']!r} loaded into {self.name!r}")
        self.policy.load_state_dict(state_dict["policy"])
        if self.value is not None and "value" in state_dict:
            self.value.load_state_dict(state_dict["value"])
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


def torch_dtype(name: str) -> torch.dtype:
    """``"float32"`` / ``"float64"`` -> the torch dtype (a config's ``dtype`` field)."""
    try:
        return {"float32": torch.float32, "float64": torch.float64}[name]
    except KeyError:
        raise ConfigError(f"dtype must be 'float32' or 'float64', got {name!r}") from None
