"""The economy registry: ``@register_economy`` on an :class:`~hetagents_env.economies.core.Economy` subclass makes
its ``env_id`` known to :func:`make_economy`, ``hetagents_env.make`` and (through :data:`on_register`) Gymnasium.

Imports nothing but the Economy base, so an economy module can import it and the interfaces can import it without
an import circle.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from .core import Economy

#: ``env_id -> Economy class``; filled by :func:`register_economy`
ECONOMIES: dict[str, type[Economy]] = {}
#: accepted in front of every id (the Gymnasium namespace)
NAMESPACE = "hetagents/"
#: callbacks ``f(env_id)`` run for every economy registered from now on (the Gymnasium facade's registration)
on_register: list[Callable[[str], None]] = []

E = TypeVar("E", bound=type[Economy])


def register_economy(cls: E) -> E:
    """Class decorator: register ``cls`` under ``cls.env_id``.

    Raises ``TypeError`` if ``cls`` is not an Economy subclass with a string ``env_id`` and ``ValueError`` if another
    class already holds the id (re-registering the same class, e.g. on a module reload, is allowed)."""
    if not (isinstance(cls, type) and issubclass(cls, Economy)):
        raise TypeError(f"register_economy expects an Economy subclass, got {cls!r}")
    env_id = getattr(cls, "env_id", None)
    if not isinstance(env_id, str) or not env_id or env_id.startswith(NAMESPACE):
        raise TypeError(f"{cls.__name__}.env_id must be a non-empty id like 'MyEconomy-v0', got {env_id!r}")
    known = ECONOMIES.get(env_id)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"environment id {env_id!r} is already registered by {known.__module__}.{known.__qualname__}")
    ECONOMIES[env_id] = cls
    for callback in on_register:
        callback(env_id)
    return cls


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
