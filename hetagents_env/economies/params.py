"""Validated, frozen parameter sets.

Each economy declares its parameters as a frozen dataclass whose fields carry an allowed range in their metadata
(``field(default=..., metadata=interval(lo, hi, ...))``). Construction checks every value: a bad one raises
``ValueError`` naming the parameter, the value and the allowed range; an unknown keyword raises ``TypeError`` naming
it and listing the known ones. Nothing downstream has to re-check.

An economy then checks its parameters against the dtype it computes in (:meth:`Params.check_dtype`): a value that is
fine as a Python float but overflows that dtype (``k_init = 1e300`` in float32) is refused there, naming the
parameter, the value and the dtype, before any tensor is built.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any, ClassVar

import torch


@dataclasses.dataclass(frozen=True)
class Interval:
    """A real interval; ``lo``/``hi`` may be infinite, each end open or closed."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_closed: bool = True
    hi_closed: bool = True

    def __contains__(self, value: float) -> bool:
        above = value >= self.lo if self.lo_closed else value > self.lo
        below = value <= self.hi if self.hi_closed else value < self.hi
        return above and below

    def __str__(self) -> str:
        left = "[" if self.lo_closed and math.isfinite(self.lo) else "("
        right = "]" if self.hi_closed and math.isfinite(self.hi) else ")"
        return f"{left}{self.lo:g}, {self.hi:g}{right}"


def interval(lo: float = -math.inf, hi: float = math.inf, *, open_lo: bool = False, open_hi: bool = False) -> dict:
    """Field metadata declaring the allowed range of a scalar parameter."""
    return {"interval": Interval(lo, hi, not open_lo, not open_hi)}


def check_in(name: str, value: Any, allowed: Interval) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` naming ``name``, the value and the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ValueError(f"parameter {name!r} must be a real number in {allowed}, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value not in allowed:  # an infinite end of a range is open, as printed
        raise ValueError(f"parameter {name!r} = {value!r} is out of range: allowed {allowed}")
    return value


def check_fits(name: str, value: float, dtype: torch.dtype) -> float:
    """``value`` rounded to ``dtype``, or ``ValueError`` naming ``name``, the value and the dtype when it overflows
    there (a finite float64 beyond the dtype's largest finite number). Values that round towards 0 or onto an end of
    their range are kept: the economies compute with the Python floats and accept them."""
    rounded = torch.tensor(float(value), dtype=torch.float64).to(dtype).item()
    if math.isfinite(value) and not math.isfinite(rounded):
        raise ValueError(f"parameter {name!r} = {value!r} does not fit {dtype}: it overflows to {rounded} (largest "
                         f"finite magnitude {torch.finfo(dtype).max:.4g}); use float64 or a smaller value")
    return rounded


def _reals(name: str, value: Any) -> Iterator[tuple[str, float]]:
    """(label, value) of every float in a parameter: itself, or the entries of a (nested) tuple/list. Integers are
    counts and choices (``n_states``), never tensor values."""
    if isinstance(value, float):
        yield name, value
    elif isinstance(value, (tuple, list)):
        for i, entry in enumerate(value):
            yield from _reals(f"{name}[{i}]", entry)


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """An integer count ≥ ``minimum`` (numbers of agents, economies, steps)."""
    if isinstance(value, bool) or not isinstance(value, int) and not (hasattr(value, "__index__")):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} = {value} is out of range: allowed integers >= {minimum}")
    return value


@dataclasses.dataclass(frozen=True)
class Params:
    """Base class: range-checks every field with ``interval`` metadata after construction.

    Subclasses add fields and may override ``_validate`` for cross-field checks (call ``super()._validate()``).
    """

    model_name: ClassVar[str] = "economy"

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        for f in dataclasses.fields(self):
            allowed = f.metadata.get("interval")
            if allowed is not None:
                # frozen dataclass: normalise ints to floats through object.__setattr__
                object.__setattr__(self, f.name, check_in(f.name, getattr(self, f.name), allowed))

    def check_dtype(self, dtype: torch.dtype) -> "Params":
        """``self`` if every float (scalars and the entries of tuples) is finite in ``dtype``, else ``ValueError``
        naming the parameter, the value and the dtype (:func:`check_fits`)."""
        for f in dataclasses.fields(self):
            for label, value in _reals(f.name, getattr(self, f.name)):
                check_fits(label, value, dtype)
        return self

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "Params":
        """Build from keywords, rejecting unknown ones with a ``TypeError`` that names them."""
        unknown = sorted(set(kwargs) - set(cls.names()))
        if unknown:
            raise TypeError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))} for the {cls.model_name}; "
                f"known parameters: {', '.join(cls.names())}"
            )
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "Params":
        return self.from_kwargs(**{**self.to_dict(), **changes})

