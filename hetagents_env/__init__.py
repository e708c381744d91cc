"""hetagents_env: heterogeneous-agent economies as batched torch step functions.

``make(env_id, num_envs=B, n_agents=N, ...)`` returns a stateful batched env; ``env.economy`` holds the pure
functions (``initial_state``, ``sample_shocks``, ``transition``, ``reward``, ``observe``, ``euler_residual``).
"""

from .core import Economy, Policy
from .env import EconomyEnv, FusedStep
from .investment import InvestmentEconomy, InvestmentParams
from .krusell_smith import KrusellSmithEconomy, KrusellSmithParams
from .registry import economy_class, list_envs, make, make_economy

# Gymnasium ids "hetagents/Investment-v0", "hetagents/KrusellSmith-v0" (gymnasium imports in ~0.05 s; the
# pettingzoo and torchrl facades are imported only when used: hetagents_env.pettingzoo / hetagents_env.torchrl)
from .gymnasium import register_envs as _register_gymnasium_envs

_register_gymnasium_envs()

__all__ = [
    "Economy",
    "EconomyEnv",
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
]
__version__ = "0.1.0"
