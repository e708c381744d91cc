"""Solvers: every one behind the :class:`~agents.solvers.base.Solver` interface, built by :func:`make_solver`.

Registered solvers: ``"euler"`` (Euler-residual minimisation, Kahou et al.), ``"ks_classical"`` (the classical
Krusell–Smith algorithm of Maliar, Maliar & Valli 2010).
"""

from .base import SOLVERS, Solver, list_solvers, make_solver, register_solver
from .euler import EulerConfig, EulerSolver
from .krusell_smith import ClassicalKSConfig, ClassicalKSSolver

__all__ = ["SOLVERS", "ClassicalKSConfig", "ClassicalKSSolver", "EulerConfig", "EulerSolver", "Solver", "list_solvers", "make_solver", "register_solver"]
from .deepham import DeepHAMConfig, DeepHAMSolver  # noqa: E402,F401  (registers "deepham")
from .rl import DDPGSolver, PPOSolver, TD0Solver, TD3Solver  # noqa: E402,F401  (registers "td0", "ppo", "ddpg", "td3")
