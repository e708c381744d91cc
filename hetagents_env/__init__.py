"""hetagents_env: heterogeneous-agent economies as batched torch step functions.

Two sub-packages with :func:`make` above both:

* :mod:`hetagents_env.economies` — the :class:`Economy` interface and the models (pure tensor functions, exact and
  reference solutions' ingredients); an economy is one module that registers itself with ``@register_economy``;
* :mod:`hetagents_env.interfaces` — the stateful batched env and the Gymnasium, PettingZoo and TorchRL facades.

``make(env_id, num_envs=B, n_agents=N, ...)`` returns a stateful batched env; ``env.economy`` holds the pure functions
(``initial_state``, ``sample_shocks``, ``transition``, ``reward``, ``observe``, ``euler_residual``). The keywords
every interface shares are the fields of :class:`EnvOptions`; ``make(env_id, options=EnvOptions(...))`` takes them as
one object.
"""

from ._version import __version__  # noqa: F401
from .economies import Economy, Policy, economy_class, list_envs, make_economy, register_economy
from .economies.aiyagari import AiyagariEconomy, AiyagariParams
from .economies.households import HouseholdEconomy
from .economies.investment import InvestmentEconomy, InvestmentParams
from .economies.krusell_smith import KrusellSmithEconomy, KrusellSmithParams
from .factory import make
from .interfaces import EconomyEnv, EnvOptions, FusedStep

# Gymnasium ids "hetagents/<id>" for every registered economy, now and later (gymnasium imports in ~0.05 s; the
# pettingzoo and torchrl facades are imported only when used: hetagents_env.interfaces.pettingzoo / .torchrl)
from .interfaces.gymnasium import register_envs as _register_gymnasium_envs

_register_gymnasium_envs()

__all__ = [
    "AiyagariEconomy",
    "AiyagariParams",
    "HouseholdEconomy",
    "Economy",
    "EconomyEnv",
    "EnvOptions",
    "FusedStep",
    "InvestmentEconomy",
    "InvestmentParams",
    "KrusellSmithEconomy",
    "KrusellSmithParams",
    "Policy",
    "economy_class",
    "list_envs",
    "make",
    "make_economy",
    "register_economy",
]
