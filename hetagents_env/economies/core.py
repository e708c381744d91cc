"""The Economy interface: batched, pure tensor functions of ``B`` economies with ``N`` agents each.

Conventions shared by every economy:

* state: a :class:`tensordict.TensorDict` with ``batch_size=[B]``; per-agent entries are ``(B, N)`` and aggregate
  entries ``(B,)``.
* action: one real number per agent, ``(B, N)``, in the economy's dtype and on its device.
* randomness is drawn only by :meth:`Economy.sample_shocks` and :meth:`Economy.initial_state`, each from an
  explicit ``torch.Generator``; :meth:`Economy.transition` is a pure, differentiable function of
  ``(state, action, shocks)``, so a path can be replayed on common random numbers or differentiated through.
* nothing loops over agents or economies in Python: every function is a handful of tensor operations.

A *policy* is any callable ``policy(state) -> action`` with ``action`` of shape ``(B, N)``; ``nn.Module`` policies
from :mod:`agents` qualify, and so do plain functions such as
:meth:`hetagents_env.economies.investment.InvestmentEconomy.lq_policy`.
"""

from __future__ import annotations

import abc
from typing import Callable, ClassVar

import torch
from tensordict import TensorDict

from .params import Params, check_count

Policy = Callable[[TensorDict], torch.Tensor]


class Economy(abc.ABC):
    """Base class of the batched economies.

    Args:
        n_agents: number of agents ``N`` in each economy (≥ 1).
        device: torch device of every tensor (default CPU).
        dtype: floating dtype of every real tensor (default ``torch.float32``; ``torch.float64`` allowed).
        **params: the model's parameters (see the subclass's ``Params`` dataclass); unknown names raise
            ``TypeError``, out-of-range values ``ValueError``.
    """

    #: the registry id, e.g. ``"Investment-v0"``
    env_id: ClassVar[str]
    #: prefix of agent names in multi-agent APIs, e.g. ``"firm"``
    agent_name: ClassVar[str]
    #: the parameter dataclass
    Params: ClassVar[type[Params]]
    #: default number of agents (the published calibration)
    default_n_agents: ClassVar[int]
    #: names of the per-agent features in ``observe(state)["agents"]`` (last dim)
    agent_features: ClassVar[tuple[str, ...]]
    #: the per-agent endogenous state that the actions move (capital), a key of the state TensorDict
    endogenous_key: ClassVar[str]
    #: names of the aggregate features in ``observe(state)["aggregate"]`` (last dim)
    aggregate_features: ClassVar[tuple[str, ...]]
    #: bounds of a single agent's action (``±inf`` when unbounded); the economics may clip inside the bounds
    action_low: ClassVar[float] = -float("inf")
    action_high: ClassVar[float] = float("inf")

    def __init__(
        self,
        n_agents: int | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **params,
    ) -> None:
        self.n_agents = check_count("n_agents", self.default_n_agents if n_agents is None else n_agents)
        self.device = torch.device("cpu" if device is None else device)
        self.dtype = torch.float32 if dtype is None else dtype
        if not isinstance(self.dtype, torch.dtype) or not self.dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating torch.dtype (float32 or float64), got {dtype!r}")
        self.params = self.Params.from_kwargs(**params)

    # ------------------------------------------------------------------ the pure functions
    @abc.abstractmethod
    def initial_state(self, batch_size: int, generator: torch.Generator | None = None) -> TensorDict:
        """Draw ``batch_size`` independent initial states (batch ``[batch_size]``)."""

    @abc.abstractmethod
    def sample_shocks(
        self, state: TensorDict, generator: torch.Generator | None = None, *, out: TensorDict | None = None
    ) -> TensorDict:
        """Draw the exogenous randomness of one period for every economy in ``state``.

        ``out``: a buffer from :meth:`shock_buffer` (same batch size) to draw into in place and return, so a hot loop
        allocates no shock arrays; the values are exactly those drawn without ``out`` from the same generator state.
        """

    @abc.abstractmethod
    def transition(self, state: TensorDict, action: torch.Tensor, shocks: TensorDict) -> TensorDict:
        """Next state given this period's actions and shocks. Pure and differentiable w.r.t. ``action``."""

    @abc.abstractmethod
    def reward(self, state: TensorDict, action: torch.Tensor) -> torch.Tensor:
        """Per-agent period payoff, shape ``(B, N)``."""

    @abc.abstractmethod
    def observe(self, state: TensorDict) -> TensorDict:
        """Observation: ``"agents"`` ``(B, N, len(agent_features))`` with each agent's own state and
        ``"aggregate"`` ``(B, len(aggregate_features))`` with the public aggregate state."""

    @abc.abstractmethod
    def aggregates(self, state: TensorDict) -> dict[str, torch.Tensor]:
        """Summary statistics of each economy, each of shape ``(B,)`` (for printing and logging)."""

    @abc.abstractmethod
    def euler_residual(self, policy: Policy, state: TensorDict, **options) -> torch.Tensor:
        """Per-agent residual of the equilibrium (Euler) condition under ``policy``, shape ``(B, N)``."""

    # ------------------------------------------------------------------ composed helpers
    def transition_and_reward(
        self, state: TensorDict, action: torch.Tensor, shocks: TensorDict
    ) -> tuple[TensorDict, torch.Tensor]:
        """``(transition(state, action, shocks), reward(state, action))``; economies override it to share the
        work the two have in common. Pure, so it can be ``torch.compile``-d (see :class:`~hetagents_env.EconomyEnv`)."""
        return self.transition(state, action, shocks), self.reward(state, action)

    def shock_buffer(self, batch_size: int) -> TensorDict:
        """A preallocated shock TensorDict for ``sample_shocks(..., out=buffer)`` (its initial values are arbitrary)."""
        state = TensorDict({}, batch_size=[check_count("batch_size", batch_size)], device=self.device)
        return self.sample_shocks(state, self.generator(0))

    def step(
        self, state: TensorDict, action: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[TensorDict, torch.Tensor]:
        """One period: ``(next_state, reward)`` with freshly drawn shocks."""
        return self.transition_and_reward(state, action, self.sample_shocks(state, generator))

    def rollout(
        self, policy: Policy, state: TensorDict, steps: int, generator: torch.Generator | None = None
    ) -> TensorDict:
        """Simulate ``steps`` periods under ``policy``; returns the ``steps + 1`` states, batch ``[B, steps + 1]``.

        The loop runs over time only. Gradients flow when the caller's grad mode allows it.
        """
        states = [state]
        for _ in range(check_count("steps", steps, minimum=0)):
            state = self.transition(state, policy(state), self.sample_shocks(state, generator))
            states.append(state)
        return torch.stack(states, dim=1)

    def generator(self, seed: int | None = None) -> torch.Generator:
        """A ``torch.Generator`` on this economy's device, seeded (or non-deterministically seeded if ``None``)."""
        gen = torch.Generator(device=self.device)
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
        return gen

    def check_action(self, action: torch.Tensor, batch_size: int) -> None:
        """Raise ``ValueError`` unless ``action`` is a finite ``(batch_size, N)`` tensor of our dtype and device."""
        expected = (batch_size, self.n_agents)
        if not isinstance(action, torch.Tensor):
            raise ValueError(
                f"action must be a torch.Tensor of shape {expected}, dtype {self.dtype}, device {self.device}; "
                f"got {type(action).__name__}"
            )
        if tuple(action.shape) != expected:
            raise ValueError(f"action must have shape {expected} (num_envs, n_agents), got {tuple(action.shape)}")
        if action.dtype != self.dtype:
            raise ValueError(f"action must have dtype {self.dtype}, got {action.dtype}")
        if action.device != self.device:
            raise ValueError(f"action must be on device {self.device}, got {action.device}")
        if not bool(torch.isfinite(action).all()):
            bad = int((~torch.isfinite(action)).sum())
            raise ValueError(f"action must be finite, got {bad} NaN/inf entries")

    def tensor(self, value) -> torch.Tensor:
        """``value`` as a tensor of this economy's dtype on its device."""
        return torch.as_tensor(value, dtype=self.dtype, device=self.device)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_agents={self.n_agents}, device={self.device}, dtype={self.dtype}, "
            f"params={self.params})"
        )


def _check_buffer(out: TensorDict, batch_size: int) -> None:
    """Raise ``ValueError`` unless ``out`` is a shock buffer for ``batch_size`` economies."""
    if not isinstance(out, TensorDict) or tuple(out.batch_size) != (batch_size,):
        got = list(out.batch_size) if isinstance(out, TensorDict) else type(out).__name__
        raise ValueError(f"out must be a shock buffer with batch_size [{batch_size}] (Economy.shock_buffer), got {got}")
