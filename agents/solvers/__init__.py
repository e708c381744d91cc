"""Solvers: every one behind the :class:`~agents.solvers.base.Solver` interface, built by :func:`make_solver`.

Every module (and sub-package) of this package is imported here, so a solver module that decorates its class with
``@register_solver("name")`` is known to :func:`make_solver`, the command line and the judge as soon as the file
exists. Registered today: ``euler`` (Kahou et al.), ``deepham`` (Han, Yang & E), ``td0``, ``ppo``, ``ddpg``,
``td3``, ``sac`` (RL baselines on torchrl), ``ks_classical`` (Maliar, Maliar & Valli 2010) and
``aiyagari_stationary`` (the stationary Aiyagari equilibrium); :func:`list_solvers` lists them.
"""

import importlib
import pkgutil

from .base import Solver
from .registry import SOLVERS, list_solvers, make_solver, register_solver
from .deepham import DeepHAMConfig, DeepHAMSolver
from .euler import EulerConfig, EulerSolver
from .krusell_smith import ClassicalKSConfig, ClassicalKSSolver
from .rl import DDPGSolver, PPOSolver, SACSolver, TD0Solver, TD3Solver

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "SOLVERS", "ClassicalKSConfig", "ClassicalKSSolver", "DDPGSolver", "DeepHAMConfig", "DeepHAMSolver", "EulerConfig",
    "EulerSolver", "PPOSolver", "SACSolver", "Solver", "TD0Solver", "TD3Solver", "list_solvers", "make_solver",
    "register_solver",
]
