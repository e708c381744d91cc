"""agents: everything that learns or solves — DeepSets networks, solvers behind one interface, and the judge.

>>> import hetagents_env, agents
>>> economy = hetagents_env.make_economy("Investment-v0")
>>> solver = agents.make_solver("euler", economy, {"network": {"phi": "identity"}, "lr": 7.5e-4})
>>> metrics = solver.train(steps=2)
>>> result = agents.evaluate_solver(solver, trajectories=4)   # the judge
"""

from .config import Config, ConfigError
from .evaluate import EvaluationResult, evaluate, evaluate_solver
from .networks import DeepSets, DeepSetsConfig, count_parameters, make_actor, make_critic, published_config
from . import solvers  # noqa: F401  (importing the package registers every solver module)
from .solvers.base import Solver
from .solvers.registry import list_solvers, make_solver, register_solver

__all__ = [
    "Config",
    "ConfigError",
    "DeepSets",
    "DeepSetsConfig",
    "EvaluationResult",
    "Solver",
    "count_parameters",
    "evaluate",
    "evaluate_solver",
    "list_solvers",
    "make_actor",
    "make_critic",
    "make_solver",
    "published_config",
    "register_solver",
]
