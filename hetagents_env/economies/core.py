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
import dataclasses
import math
from typing import Callable, ClassVar, Literal

import torch
from tensordict import TensorDict

from .params import Params, check_count  # noqa: F401  (Params: the annotation of Economy.Params)

Policy = Callable[[TensorDict], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class Features:
    """Which state entries feed a network, and their normalisation (an economy's own description).

    Attributes:
        set: per-agent keys (each ``(B, N)``) whose values are summarised over the population (φ's input).
        own: per-agent keys given to the network as agent i's own state.
        aggregate: per-economy keys (each ``(B,)``) of the exogenous aggregate state.
        scale: ``{key: c}``: the entry is divided by c before use (e.g. k / k_ss).
        shift: ``{key: m}``: m is subtracted from the entry before the scaling: (value − m) / c.
    """

    set: tuple[str, ...]
    own: tuple[str, ...] = ()
    aggregate: tuple[str, ...] = ()
    scale: tuple[tuple[str, float], ...] = ()
    shift: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not self.set:
            raise ValueError("a network needs at least one set feature (the per-agent entries summarised over agents)")

    def replace(self, **changes) -> "Features":
        return dataclasses.replace(self, **changes)


class Economy(abc.ABC):
    """Base class of the batched economies.

    Args:
        n_agents: number of agents ``N`` in each economy (≥ 1).
        device: torch device of every tensor (default CPU).
        dtype: floating dtype of every real tensor (default ``torch.float32``; ``torch.float64`` allowed).
        **params: the model's parameters (see the subclass's ``Params`` dataclass); unknown names raise
            ``TypeError``, out-of-range values and values that do not fit ``dtype`` ``ValueError``.
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
    #: known ranges of observation features by name (``agent_features`` and ``aggregate_features``); a feature
    #: not listed is unbounded. Economies whose bounds depend on parameters override :meth:`feature_bounds`.
    observation_bounds: ClassVar[dict[str, tuple[float, float]]] = {}
    #: name of the registered solver that computes this economy's reference solution (``None``: none, or an exact
    #: solution instead: :meth:`exact_policy`); may be a property when it depends on the parameters
    reference_solver: ClassVar[str | None] = None
    #: periods the cross-section needs to approach its ergodic distribution from :meth:`initial_state` (episode
    #: lengths and burn-ins of solvers and the judge); ``None``: not stated (short-memory economies)
    mixing_periods: ClassVar[int | None] = None
    #: the state entry holding the discrete aggregate state (an index, shape (B,)), if the economy has one
    aggregate_state_key: ClassVar[str | None] = None

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
        # a value that only float64 holds (k_init = 1e300 in float32) is refused here, not at the first reset
        self.params = self.Params.from_kwargs(**params).check_dtype(self.dtype)

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

    # ------------------------------------------------------------------ self-description (read by solvers, judge, CLI)
    @property
    def discount(self) -> float:
        """The agents' discount factor β (every economy's parameters have ``beta``)."""
        return float(self.params.beta)

    @property
    def aggregate_states(self) -> int:
        """Number of discrete aggregate exogenous states (``state[aggregate_state_key]``); 0: none."""
        return 0

    def feature_bounds(self, name: str) -> tuple[float, float]:
        """(low, high) of the observation feature ``name`` (``±inf`` where unbounded)."""
        return self.observation_bounds.get(name, (-math.inf, math.inf))

    def features(self) -> Features:
        """The natural network inputs: every per-agent state entry summarised and given as own state, every
        per-economy entry as aggregate state, unscaled. Economies override it with their own choice."""
        state = self.initial_state(1, self.generator(0))
        per_agent = tuple(k for k, v in state.items() if v.dim() == 2)
        aggregate = tuple(k for k, v in state.items() if v.dim() == 1)
        return Features(set=per_agent, own=per_agent, aggregate=aggregate)

    def centred_features(self) -> Features:
        """Inputs centred and scaled to O(1) around the initial state, for networks with hidden biases (DeepHAM,
        the RL baselines). Default: :meth:`features`."""
        return self.features()

    @property
    def action_head(self) -> Literal["sigmoid", "linear"]:
        """A network's natural output head: ``"sigmoid"`` for an action that is a share in [0, 1], else
        ``"linear"`` (an unbounded quantity)."""
        return "sigmoid" if (self.action_low, self.action_high) == (0.0, 1.0) else "linear"

    def neutral_action(self) -> float:
        """A constant action that keeps the endogenous state where the initial state puts it (a neutral starting
        policy: the steady-state consumption share, replacement investment, ...)."""
        raise NotImplementedError(f"{type(self).__name__} does not define a neutral action")

    @property
    def action_scale(self) -> float:
        """The typical size of an action around the neutral one (the unit in which a linear head's output and
        exploration noise are expressed). Default: |neutral action|, or 1 if that is 0."""
        return abs(self.neutral_action()) or 1.0

    def neutral_policy(self) -> Policy:
        """``state -> neutral_action()`` for every agent, shape (B, N)."""
        value, key = self.neutral_action(), self.endogenous_key
        return lambda state: torch.full_like(state[key], value)

    def price_taking_transition(
        self, state: TensorDict, action: torch.Tensor, shocks: TensorDict
    ) -> tuple[TensorDict, torch.Tensor]:
        """:meth:`transition_and_reward` with every agent taking the aggregates as given: the same values, but
        gradients flow only through each agent's own state and action, never through the aggregates (prices, K)
        its state contributes to with weight 1/N (fictitious play towards the competitive equilibrium)."""
        raise NotImplementedError(f"{type(self).__name__} does not define a price-taking transition")

    def relative_euler_error(self, policy: Policy, state: TensorDict) -> torch.Tensor:
        """The Euler-equation gap in unit-free form, g = 1 − c/c_EE (c_EE: what the Euler equation asks for), shape
        (B, N): |g| is the unit-free Euler error of an unconstrained agent (g > 0: it saves too much)."""
        raise NotImplementedError(f"{type(self).__name__} does not define a unit-free Euler error")

    def consumption_of(self, state: TensorDict, action: torch.Tensor) -> torch.Tensor:
        """Each agent's consumption (B, N) when it takes ``action`` at ``state`` (economies with consumers)."""
        raise NotImplementedError(f"{type(self).__name__} has no consumption")

    @property
    def crra_gamma(self) -> float | None:
        """γ when the per-period reward is a CRRA utility of consumption u(c) = c^(1−γ)/(1−γ) (log at γ = 1), so
        that value differences convert into consumption equivalents; None otherwise (e.g. profits)."""
        return None

    def residual_options(self, *, generator: torch.Generator | None = None, nodes: int = 7,
                         standardize: bool = True) -> dict:
        """Keyword options of :meth:`euler_residual` for a fixed, replayable evaluation (quadrature nodes, a fixed
        draw from ``generator``); default: none (an exact expectation)."""
        return {}

    def expectation_nodes(self, **options) -> int:
        """How many successor states one Euler-residual evaluation visits per state (memory planning)."""
        return int(options.get("nodes", options.get("samples", 1)))

    def exact_policy(self) -> Policy | None:
        """The exact equilibrium policy where one is known in closed form (e.g. the LQ solution), else None."""
        return None

    def exact_value(self) -> Callable[[TensorDict], torch.Tensor] | None:
        """The exact value ``state -> (B, N)`` of :meth:`exact_policy`, where known, else None."""
        return None

    def data_policy(self) -> Policy | None:
        """A known policy to simulate a solver's first training data from (e.g. the linear model's LQ policy for
        every ν of the investment economy), or None: the solver simulates with its own initial policy."""
        return self.exact_policy()

    def provides(self, name: str) -> bool:
        """Whether this economy implements ``name`` (an attribute, or a method the base class only declares)."""
        if name in _DECLARED:
            return getattr(type(self), name) is not getattr(Economy, name)
        return hasattr(self, name)

    def with_dtype(self, dtype: torch.dtype) -> "Economy":
        """This economy (same N, device and parameters) in another floating dtype; ``self`` if already it."""
        if dtype == self.dtype:
            return self
        return type(self)(self.n_agents, device=self.device, dtype=dtype, **self.params.to_dict())

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


#: methods the base class declares without implementing them (see :meth:`Economy.provides`)
_DECLARED = frozenset({"neutral_action", "price_taking_transition", "relative_euler_error", "consumption_of"})


def _check_buffer(out: TensorDict, batch_size: int) -> None:
    """Raise ``ValueError`` unless ``out`` is a shock buffer for ``batch_size`` economies."""
    if not isinstance(out, TensorDict) or tuple(out.batch_size) != (batch_size,):
        got = list(out.batch_size) if isinstance(out, TensorDict) else type(out).__name__
        raise ValueError(f"out must be a shock buffer with batch_size [{batch_size}] (Economy.shock_buffer), got {got}")
