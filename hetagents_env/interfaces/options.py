"""The options every interface is built from: one validated, frozen :class:`EnvOptions`.

``hetagents_env.make`` and the facades (Gymnasium, PettingZoo, TorchRL, Stable-Baselines3) share the same keywords:
the economy's size, device, dtype and parameters, the seed, the horizon, the action checks, compilation and the
action box. They are the fields of :class:`EnvOptions`, documented there and nowhere else. Every constructor takes
them either as one object (``options=EnvOptions(...)``) or as keywords, or both (the keywords then replace the
object's fields); :meth:`EnvOptions.from_kwargs` is the one place that turns keywords into options::

    opts = EnvOptions(n_agents=16, seed=0, max_episode_steps=50, params={"beta": 0.99})
    envs = hetagents_env.make("KrusellSmith-v0", api="gymnasium", num_envs=8, options=opts)
    same = hetagents_env.make("KrusellSmith-v0", api="gymnasium", num_envs=8, n_agents=16, seed=0,
                              max_episode_steps=50, beta=0.99)

What is not shared stays a keyword of the interface it belongs to: ``num_envs`` (the batch of the vector
interfaces; PettingZoo and the single Gymnasium env hold one economy), ``render_mode`` (not TorchRL),
``autoreset_mode`` and ``return_torch`` (the Gymnasium vector env).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch

from ..validation import check_count

__all__ = ["EnvOptions", "check_action_bound", "takes_options"]

F = TypeVar("F", bound=Callable[..., Any])


def check_action_bound(value: Any) -> float | None:
    """``value`` as the half-width of an action box (a finite number > 0) or ``None``; ``ValueError`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 < float(value) < math.inf):
        raise ValueError(f"action_bound must be a finite number > 0, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class EnvOptions:
    """How to build an environment of an economy, for every interface (``make`` and the facades).

    Construction checks every field and raises a one-line ``ValueError`` naming the field and the value. The
    economy's parameters (``params``) are checked by the economy itself when the env is built, since their names
    and ranges depend on the economy. Equal options build equal environments, whatever the interface.
    """

    n_agents: int | None = None
    """Agents per economy, an integer >= 1 (``None``: the economy's ``default_n_agents``)."""

    device: torch.device | str | None = None
    """Torch device of every tensor: a ``torch.device`` or a string such as ``"cuda:1"`` (``None``: CPU). Stored as a
    ``torch.device``."""

    dtype: torch.dtype | None = None
    """Floating torch dtype of every tensor, ``torch.float32`` or ``torch.float64`` (``None``: float32)."""

    seed: int | None = None
    """Seed of the first ``reset()`` given none (``None``: a non-deterministic seed); any integer."""

    max_episode_steps: int | None = None
    """Truncate every economy after this many steps, an integer >= 1 (``None``: never; the economies never
    terminate)."""

    check_actions: bool = True
    """Validate every action (shape, dtype, device, finiteness); turn off in hot loops."""

    compile: bool = False
    """Run the step's ``transition_and_reward`` through ``torch.compile`` (see
    :class:`~hetagents_env.interfaces.env.EconomyEnv`)."""

    action_bound: float | None = None
    """Half-width of the facades' action box where the economy's action is unbounded, a finite number > 0
    (``None``: 1; the investment economy: investment in ``[-1, 1]`` units of the good). Only the facades have action
    boxes: the plain torch env (``make(..., api="torch")``) refuses it."""

    params: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    """The economy's parameters by name (``{"nu": 1.5}``, a Krusell-Smith ``transition`` matrix, ...); as keywords
    they are every keyword that is not a field (``make(..., nu=1.5)``). Stored as a new dict."""

    def __post_init__(self) -> None:
        # messages name the keyword the user wrote: "n_agents must be an integer >= 1, got 2.5"
        def set_(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)  # the normalised value (the dataclass is frozen)

        for name in ("n_agents", "max_episode_steps"):
            value = getattr(self, name)
            if value is not None:
                set_(name, check_count(name, value))
        if self.device is not None:
            try:
                set_("device", torch.device(self.device))
            except (TypeError, RuntimeError, ValueError):
                raise ValueError(
                    f"device must be a torch.device, a device string such as 'cpu' or 'cuda:1', or None, "
                    f"got {self.device!r}"
                ) from None
        if self.dtype is not None and not (isinstance(self.dtype, torch.dtype) and self.dtype.is_floating_point):
            raise ValueError(f"dtype must be a floating torch.dtype (float32 or float64), got {self.dtype!r}")
        seed = self.seed
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int) and not hasattr(seed, "__index__"):
                raise ValueError(f"seed must be an integer or None, got {seed!r}")
            set_("seed", int(seed))
        for name in ("check_actions", "compile"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        set_("action_bound", check_action_bound(self.action_bound))
        if not isinstance(self.params, Mapping):
            raise ValueError(
                f"params must be a mapping of the economy's parameters by name, got {type(self.params).__name__}"
            )
        bad = [key for key in self.params if not isinstance(key, str)]
        if bad:
            raise ValueError(f"params must be keyed by parameter names (strings), got key {bad[0]!r}")
        set_("params", dict(self.params))

    # ------------------------------------------------------------------ keywords
    @classmethod
    def keywords(cls) -> tuple[str, ...]:
        """The fields given as keywords of their own (all but ``params``, whose entries are keywords instead)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "params")

    @classmethod
    def from_kwargs(cls, options: EnvOptions | None = None, /, **kwargs: Any) -> EnvOptions:
        """The options of a call ``f(..., options=options, **kwargs)``.

        A keyword named like a field (:meth:`keywords`) replaces that field of ``options`` (default: the defaults);
        any other keyword is an economy parameter, added to ``options.params`` (replacing one of the same name).
        An unknown parameter is the economy's ``TypeError`` when the env is built.
        """
        if options is None:
            options = cls()
        elif not isinstance(options, cls):
            raise ValueError(
                f"options must be an {cls.__name__} (or None), got {type(options).__name__}: pass a mapping's "
                "entries as keywords instead (**mapping)"
            )
        if not kwargs:
            return options
        fields = {name: kwargs.pop(name) for name in cls.keywords() if name in kwargs}
        if kwargs:
            fields["params"] = {**options.params, **kwargs}
        return dataclasses.replace(options, **fields)

    def economy_kwargs(self) -> dict[str, Any]:
        """The keywords of ``make_economy`` (size, device, dtype and parameters)."""
        return {"n_agents": self.n_agents, "device": self.device, "dtype": self.dtype, **self.params}

    def env_kwargs(self) -> dict[str, Any]:
        """The keywords of :class:`~hetagents_env.interfaces.env.EconomyEnv` (after the economy and ``num_envs``)."""
        return {
            "seed": self.seed, "max_episode_steps": self.max_episode_steps, "check_actions": self.check_actions,
            "compile": self.compile,
        }


def takes_options(func: F) -> F:
    """Give ``func`` — whose last two parameters are ``options=None`` and ``**kwargs``, handed to
    :meth:`EnvOptions.from_kwargs` — the signature its callers see: every field of :class:`EnvOptions` as a keyword
    (with its default), then ``**params``. For ``help()``, ``inspect.signature`` and editors; the call is unchanged."""
    signature = inspect.signature(func)
    parameters = list(signature.parameters.values())
    if parameters[-1].kind is not inspect.Parameter.VAR_KEYWORD or parameters[-2].name != "options":
        raise TypeError(f"{func.__qualname__} must end with options=None, **kwargs")
    hints = {f.name: f.type for f in dataclasses.fields(EnvOptions)}
    keyword = inspect.Parameter.KEYWORD_ONLY
    fields = [
        inspect.Parameter(name, keyword, default=getattr(EnvOptions, name), annotation=hints[name])
        for name in EnvOptions.keywords()
    ]
    clash = sorted({p.name for p in parameters} & set(EnvOptions.keywords()))
    if clash:
        raise TypeError(f"{func.__qualname__} must not name the options' fields {clash} itself")
    params = parameters[-1].replace(name="params")
    func.__signature__ = signature.replace(parameters=[*parameters[:-1], *fields, params])
    return func
