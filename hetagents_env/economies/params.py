"""Validated, frozen parameter sets.

Each economy declares its parameters as a frozen dataclass whose fields carry an allowed range in their metadata
(``field(default=..., metadata=interval(lo, hi, ...))``), validated by the mechanism of :mod:`hetagents_env.validation`
(the same one the solvers' configurations use). Construction checks every value: a bad one raises ``ValueError``
(a :class:`~hetagents_env.validation.ValidationError` whose ``key`` is the parameter) naming the parameter, the value
and the allowed range; an unknown keyword raises ``TypeError`` (an
:class:`~hetagents_env.validation.UnknownKeyError`) naming it and listing the known ones. Nothing downstream has to
re-check.

An economy then checks its parameters against the dtype it computes in (:meth:`Params.check_dtype`): a value that is
fine as a Python float but overflows that dtype (``k_init = 1e300`` in float32) is refused there, naming the
parameter, the value and the dtype, before any tensor is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, ClassVar

import torch

from ..validation import (  # noqa: F401  (the economies' modules import these from here)
    Interval,
    UnknownKeyError,
    Validated,
    ValidationError,
    check_count,
    check_fits,
    check_in,
    choices,
    interval,
)


def _reals(name: str, value: Any) -> Iterator[tuple[str, float]]:
    """(label, value) of every float in a parameter: itself, or the entries of a (nested) tuple/list. Integers are
    counts and choices (``n_states``), never tensor values."""
    if isinstance(value, float):
        yield name, value
    elif isinstance(value, (tuple, list)):
        for i, entry in enumerate(value):
            yield from _reals(f"{name}[{i}]", entry)


@dataclasses.dataclass(frozen=True)
class Params(Validated):
    """Base class: range-checks every field with ``interval`` metadata on construction (as a finite real number,
    stored as a float), then runs ``_validate``.

    Subclasses add fields and may override ``_validate`` for cross-field checks (call ``super()._validate()``); a
    ``ValueError`` whose message starts with ``parameter 'name'`` is attributed to that parameter (its ``key``).
    """

    model_name: ClassVar[str] = "economy"
    strict_types: ClassVar[bool] = False  # the other fields (matrices, counts) are checked by _validate

    @classmethod
    def label(cls, name: str) -> str:
        return f"parameter {name!r}"

    @classmethod
    def unknown_message(cls, unknown: list[str], known: list[str]) -> str:
        return (f"unknown parameter(s) {', '.join(map(repr, unknown))} for the {cls.model_name}; "
                f"known parameters: {', '.join(known)}")

    def check_dtype(self, dtype: torch.dtype) -> "Params":
        """``self`` if every float (scalars and the entries of tuples) is finite in ``dtype``, else ``ValueError``
        naming the parameter, the value and the dtype (:func:`~hetagents_env.validation.check_fits`)."""
        for f in dataclasses.fields(self):
            for label, value in _reals(f.name, getattr(self, f.name)):
                check_fits(label, value, dtype, key=f.name)
        return self

    @classmethod
    def names(cls) -> list[str]:
        return cls.keys()

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "Params":
        """Build from keywords, rejecting unknown ones with a ``TypeError`` that names them."""
        cls.check_keys(sorted(set(kwargs) - set(cls.names())))
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "Params":
        return self.from_kwargs(**{**self.to_dict(), **changes})
