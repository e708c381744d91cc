"""The front door :func:`make`: an economy of the registry behind the interface the caller asks for."""

from __future__ import annotations

from .economies import economy_class
from .interfaces._facade import build_core
from .interfaces.options import EnvOptions, takes_options

#: the interfaces :func:`make` can return
APIS = ("torch", "gymnasium", "pettingzoo", "torchrl")


@takes_options
def make(env_id: str, *, api: str = "torch", num_envs: int = 1, options: EnvOptions | None = None, **kwargs):
    """A batched environment of ``num_envs`` economies of ``n_agents`` agents each, through the interface ``api``.

    ``options`` and ``kwargs``: the :class:`~hetagents_env.interfaces.options.EnvOptions` (``n_agents``, ``device``,
    ``dtype``, ``seed``, ``max_episode_steps``, ``check_actions``, ``compile``, ``action_bound``, documented there),
    as one object and/or as keywords (a keyword replaces the object's field); every other keyword is one of the
    economy's parameters (e.g. ``nu=1.5`` for the investment economy) or of the facade (below). An unknown keyword
    raises ``TypeError``, an out-of-range value ``ValueError``. The pure functions are at ``env.economy``.

    ``api`` (one core, thin facades; an unknown value raises ``ValueError`` listing the allowed ones):

    * ``"torch"`` (default): :class:`~hetagents_env.interfaces.env.EconomyEnv`, torch tensors in and out (no action
      box: ``action_bound`` raises ``TypeError``).
    * ``"gymnasium"``: :class:`hetagents_env.interfaces.gymnasium.EconomyVectorEnv` (a ``gymnasium.vector.VectorEnv``);
      also takes ``autoreset_mode=`` (default ``NEXT_STEP``, as Gymnasium), ``render_mode=``, ``return_torch=``.
    * ``"pettingzoo"``: :class:`hetagents_env.interfaces.pettingzoo.EconomyParallelEnv` (one economy: ``num_envs`` must be 1);
      also takes ``render_mode=``.
    * ``"torchrl"``: :class:`hetagents_env.interfaces.torchrl.EconomyTorchRLEnv` (a ``torchrl.envs.EnvBase``, batch
      ``[num_envs]``).

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
    economy_class(env_id)  # an unknown id fails here, before the options are checked or a facade is imported
    if api == "torch":
        options = EnvOptions.from_kwargs(options, **kwargs)
        if options.action_bound is not None:
            raise TypeError(
                f"action_bound={options.action_bound!r} sets the action box of the facades (api='gymnasium', "
                "'pettingzoo', 'torchrl'); api='torch' has none"
            )
        return build_core(env_id, num_envs, options)
    if api == "gymnasium":
        from .interfaces.gymnasium import EconomyVectorEnv

        return EconomyVectorEnv(env_id, num_envs, options=options, **kwargs)
    if api == "pettingzoo":
        if num_envs != 1:
            raise ValueError(f"api='pettingzoo' runs one economy per env: num_envs must be 1, got {num_envs!r}")
        from .interfaces.pettingzoo import EconomyParallelEnv

        return EconomyParallelEnv(env_id, options=options, **kwargs)
    from .interfaces.torchrl import EconomyTorchRLEnv

    return EconomyTorchRLEnv(env_id, num_envs, options=options, **kwargs)
