"""The solver registry: ``@register_solver("name")`` on a :class:`~agents.solvers.base.Solver` subclass makes it
``make_solver("name", economy, config)`` for the command line, the judge's reference solutions and the benchmarks.

Apart from the package's front door (``agents/__init__.py`` re-exports the :class:`Solver` base class and imports
:mod:`agents.solvers` so that every solver registers), this is the only module of :mod:`agents.solvers` that the
rest of :mod:`agents` imports: the judge finds an economy's reference solver by name here and never imports a
solver module itself. Importing the package
:mod:`agents.solvers` imports every solver module, so a registered solver is known as soon as its file exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the registry must not import the solvers it lists
    from hetagents_env.economies.core import Economy

    from ..config import Config
    from .base import Solver

__all__ = ["SOLVERS", "list_solvers", "make_solver", "register_solver"]

SOLVERS: dict[str, type[Solver]] = {}


def register_solver(name: str):
    """Class decorator: make ``cls`` available as ``make_solver(name, ...)`` (and set ``cls.name``)."""

    def wrap(cls: type[Solver]) -> type[Solver]:
        if name in SOLVERS and SOLVERS[name] is not cls:
            raise ValueError(f"a solver named {name!r} is already registered ({SOLVERS[name].__name__})")
        cls.name = name
        SOLVERS[name] = cls
        return cls

    return wrap


def list_solvers() -> list[str]:
    """The registered solvers' names, sorted."""
    return sorted(SOLVERS)


def make_solver(name: str, economy: Economy, config: Config | Mapping[str, Any] | None = None) -> Solver:
    """The solver registered as ``name`` for ``economy``; ``config`` a mapping or the solver's Config instance.

    Keys absent from a mapping take the solver's defaults for this economy (``Solver.default_config(economy)``).
    """
    try:
        cls = SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown solver {name!r}; known solvers: {', '.join(list_solvers())}") from None
    return cls(economy, config)
