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


#: the interfaces :func:`make` can return
APIS = ("torch", "gymnasium", "pettingzoo", "torchrl")


def make(
    env_id: str,
    *,
    api: str = "torch",
    num_envs: int = 1,
    n_agents: int | None = None,
    device=None,
    dtype=None,
    seed: int | None = None,
    max_episode_steps: int | None = None,
    check_actions: bool = True,
    compile: bool = False,
    **params,
):
    """A batched environment of ``num_envs`` economies of ``n_agents`` agents each, through the interface ``api``.

    ``params`` are the economy's parameters (e.g. ``nu=1.5`` for the investment economy); an unknown keyword raises
    ``TypeError``, an out-of-range value ``ValueError``. The pure functions are at ``env.economy``.

    ``api`` (one core, thin facades; an unknown value raises ``ValueError`` listing the allowed ones):

    * ``"torch"`` (default): :class:`~hetagents_env.env.EconomyEnv`, torch tensors in and out.
    * ``"gymnasium"``: :class:`hetagents_env.gymnasium.EconomyVectorEnv` (a ``gymnasium.vector.VectorEnv``);
      also takes ``autoreset_mode=``, ``return_torch=``, ``action_bound=``.
    * ``"pettingzoo"``: :class:`hetagents_env.pettingzoo.EconomyParallelEnv` (one economy: ``num_envs`` must be 1);
      also takes ``action_bound=``.
    * ``"torchrl"``: :class:`hetagents_env.torchrl.EconomyTorchRLEnv` (a ``torchrl.envs.EnvBase``, batch
      ``[num_envs]``); also takes ``action_bound=``.

    The facades are imported on first use (torchrl is slow to import); each delegates to an ``EconomyEnv``.

    >>> env = make("Investment-v0", num_envs=4, n_agents=8, seed=0)
    >>> obs, info = env.reset()
    >>> obs, reward, terminated, truncated, info = env.step(env.economy.lq_policy(env.state))
    >>> tuple(reward.shape)
    (4, 8)
    """
    if api not in APIS:
        raise ValueError(f"unknown api {api!r}; allowed: {', '.join(map(repr, APIS))}")
    if api == "torch":
        economy = make_economy(env_id, n_agents=n_agents, device=device, dtype=dtype, **params)
        return EconomyEnv(
            economy,
            num_envs,
            seed=seed,
            max_episode_steps=max_episode_steps,
            check_actions=check_actions,
            compile=compile,
        )
    economy_class(env_id)  # an unknown id fails here, before a facade is imported
    common = dict(
        n_agents=n_agents, device=device, dtype=dtype, seed=seed, max_episode_steps=max_episode_steps,
        check_actions=check_actions, compile=compile,
    )
    if api == "gymnasium":
        from .gymnasium import EconomyVectorEnv

        return EconomyVectorEnv(env_id, num_envs, **common, **params)
    if api == "pettingzoo":
        if num_envs != 1:
            raise ValueError(f"api='pettingzoo' runs one economy per env: num_envs must be 1, got {num_envs!r}")
        from .pettingzoo import EconomyParallelEnv

        return EconomyParallelEnv(env_id, **common, **params)
    from .torchrl import EconomyTorchRLEnv

    return EconomyTorchRLEnv(env_id, num_envs, **common, **params)
