"""Learning-rate schedules: closed-form factors of a training position, applied through ``torch.optim.lr_scheduler``.

One function per shape gives the factor by which the base learning rate is multiplied at a position:

* :func:`step_decay` — ``decay ** floor(t / every)`` (the published Euler schedule: ×0.8 every 50 epochs);
* :func:`cosine` — from 1 at t = 0 down to ``min_factor`` at t = 1 (t is a fraction of the run, clamped at 1);
* :func:`geometric` — ``ratio ** t``: from 1 at t = 0 to ``ratio`` at t = 1 (clamped at 1), e.g. lr → lr_end;
* :func:`linear_warmup` — ``(k + 1) / steps`` at step k < steps, then 1.

:class:`PositionLR` (a :class:`~torch.optim.lr_scheduler.LambdaLR`) owns setting every parameter group's learning
rate: at each ``step()`` it reads the factors at the solver's current position (the solver's own counters — epoch,
step, fraction of the run — not the scheduler's step counter) and sets ``base_lr · f1 · f2 ⋯``, multiplied left to
right. Call ``step()`` right before each optimizer step: it sets the learning rate of the step about to be taken, so
the learning rate after a resume or after a change of position between calls is the position's.

Why closed forms rather than StepLR / CosineAnnealingLR / ExponentialLR: those update the learning rate recursively
(their chainable form) and drift from the closed form in the last bits; the solvers' published numbers are the
closed form's.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch

__all__ = ["PositionLR", "cosine", "geometric", "linear_warmup", "scaled", "step_decay"]

Factors = float | tuple[float, ...]


def step_decay(t: float, *, every: float, decay: float) -> float:
    """``decay ** floor(t / every)``: ×decay every ``every`` units of t."""
    return decay ** math.floor(t / every)


def cosine(t: float, *, min_factor: float = 0.0) -> float:
    """Cosine from 1 (t = 0) to ``min_factor`` (t ≥ 1)."""
    t = min(t, 1.0)
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * t))


def geometric(t: float, *, ratio: float) -> float:
    """``ratio ** t``, t clamped at 1: from 1 to ``ratio`` (the learning rate lr · ratio = lr_end at the end)."""
    return ratio ** min(t, 1.0)


def linear_warmup(step: int, *, steps: int) -> float:
    """``(step + 1) / steps`` during the first ``steps`` steps (0-based ``step``), then 1."""
    return (step + 1) / steps if step < steps else 1.0


def scaled(base: float, factors: Factors) -> float:
    """``base · f1 · f2 ⋯`` multiplied left to right (one factor or a tuple of them)."""
    for factor in factors if isinstance(factors, tuple) else (factors,):
        base = base * factor
    return base


class PositionLR(torch.optim.lr_scheduler.LambdaLR):
    """A LambdaLR whose factor is a closed-form function of the solver's position: ``factors()`` (no argument: it
    reads the solver's counters) returns one factor or a tuple of them, and every parameter group's learning rate is
    set to :func:`scaled` ``(base_lr, factors())`` — the base learning rate being the group's learning rate when the
    scheduler was built. Call :meth:`step` right before each optimizer step.

    The schedule needs no checkpoint of its own: the position is in the solver's checkpoint."""

    def __init__(self, optimizer: torch.optim.Optimizer, factors: Callable[[], Factors]) -> None:
        super().__init__(optimizer, lambda _: factors())
        self._first = True

    def get_lr(self) -> list[float]:
        return [scaled(base, factors(self.last_epoch)) for factors, base in zip(self.lr_lambdas, self.base_lrs)]

    def step(self) -> None:  # type: ignore[override]
        """Set every group's learning rate to the one at the current position (before the optimizer step)."""
        if not getattr(self, "_first", False):  # (the initial step, from LambdaLR's constructor, is not warned about)
            super().step()
            return
        self._first = False
        with warnings.catch_warnings():  # torch's order warning is about counter-based schedules: not this one
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)` before", UserWarning)
            super().step()
