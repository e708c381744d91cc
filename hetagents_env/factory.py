"""The front door :func:`make`: an economy of the registry behind the interface the caller asks for."""

from __future__ import annotations

from .economies import economy_class, make_economy
from .interfaces.env import EconomyEnv

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

    * ``"torch"`` (default): :class:`~hetagents_env.interfaces.env.EconomyEnv`, torch tensors in and out.
    * ``"gymnasium"``: :class:`hetagents_env.interfaces.gymnasium.EconomyVectorEnv` (a ``gymnasium.vector.VectorEnv``);
      also takes ``autoreset_mode=`` (default ``NEXT_STEP``, as Gymnasium), ``render_mode=``, ``return_torch=``,
      ``action_bound=``.
    * ``"pettingzoo"``: :class:`hetagents_env.interfaces.pettingzoo.EconomyParallelEnv` (one economy: ``num_envs`` must be 1);
      also takes ``action_bound=``, ``render_mode=``.
    * ``"torchrl"``: :class:`hetagents_env.interfaces.torchrl.EconomyTorchRLEnv` (a ``torchrl.envs.EnvBase``, batch
      ``[num_envs]``); also takes ``action_bound=``.

    The facades are imported on first use (torchrl is slow to import); each delegates to an ``EconomyEnv``. Every
    returned env survives pickle / deepcopy / cloudpickle, and a copy draws its own shocks (see ``EconomyEnv``).
    Stable-Baselines3 over B economies: :class:`hetagents_env.interfaces.sb3.EconomySB3VecEnv`.

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
        from .interfaces.gymnasium import EconomyVectorEnv

        return EconomyVectorEnv(env_id, num_envs, **common, **params)
    if api == "pettingzoo":
        if num_envs != 1:
            raise ValueError(f"api='pettingzoo' runs one economy per env: num_envs must be 1, got {num_envs!r}")
        from .interfaces.pettingzoo import EconomyParallelEnv

        return EconomyParallelEnv(env_id, **common, **params)
    from .interfaces.torchrl import EconomyTorchRLEnv

    return EconomyTorchRLEnv(env_id, num_envs, **common, **params)
