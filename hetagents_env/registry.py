"""Environment ids and the front door :func:`make`."""

from __future__ import annotations

from .core import Economy
from .env import EconomyEnv
from .investment import InvestmentEconomy
from .krusell_smith import KrusellSmithEconomy

ECONOMIES: dict[str, type[Economy]] = {cls.env_id: cls for cls in (InvestmentEconomy, KrusellSmithEconomy)}
NAMESPACE = "hetagents/"


def list_envs() -> list[str]:
    """The known environment ids (each also accepted with the ``"hetagents/"`` prefix)."""
    return sorted(ECONOMIES)


def economy_class(env_id: str) -> type[Economy]:
    """The Economy class of ``env_id``; an unknown id raises ``ValueError`` listing the known ones."""
    if not isinstance(env_id, str):
        raise ValueError(f"env_id must be a string, got {env_id!r}; known ids: {', '.join(list_envs())}")
    name = env_id[len(NAMESPACE) :] if env_id.startswith(NAMESPACE) else env_id
    try:
        return ECONOMIES[name]
    except KeyError:
        raise ValueError(f"unknown environment id {env_id!r}; known ids: {', '.join(list_envs())}") from None


def make_economy(env_id: str, *, n_agents: int | None = None, device=None, dtype=None, **params) -> Economy:
    """The pure economy of ``env_id`` (no state, no RNG): ``make_economy("Investment-v0", nu=1.5)``."""
    return economy_class(env_id)(n_agents, device=device, dtype=dtype, **params)


def make(
    env_id: str,
    *,
    num_envs: int = 1,
    n_agents: int | None = None,
    device=None,
    dtype=None,
    seed: int | None = None,
    max_episode_steps: int | None = None,
    check_actions: bool = True,
    **params,
) -> EconomyEnv:
    """A batched torch environment of ``num_envs`` economies of ``n_agents`` agents each.

    ``params`` are the economy's parameters (e.g. ``nu=1.5`` for the investment economy); an unknown keyword raises
    ``TypeError``, an out-of-range value ``ValueError``. The pure functions are at ``env.economy``.

    >>> env = make("Investment-v0", num_envs=4, n_agents=8, seed=0)
    >>> obs, info = env.reset()
    >>> obs, reward, terminated, truncated, info = env.step(env.economy.lq_policy(env.state))
    >>> tuple(reward.shape)
    (4, 8)
    """
    economy = make_economy(env_id, n_agents=n_agents, device=device, dtype=dtype, **params)
    return EconomyEnv(
        economy, num_envs, seed=seed, max_episode_steps=max_episode_steps, check_actions=check_actions
    )
