"""Typed, validated configuration dataclasses for networks and solvers.

Every configurable object (a network, a solver) declares its settings as a frozen dataclass deriving from
:class:`Config`. Building one from a mapping (a YAML file, ``key=value`` overrides) checks everything at once:

* an unknown key raises :class:`ConfigError` naming it (with its dotted path) and listing the known keys;
* every value is checked against the field's type annotation (``int``, ``float``, ``bool``, ``str``,
  ``Literal[...]``, ``tuple[int, ...]``, ``X | None`` and nested :class:`Config` classes, which accept mappings);
* numeric fields may carry an allowed range: ``field(default=..., metadata=interval(lo, hi))`` (the same helper as
  the economies' parameters); a value out of range raises :class:`ConfigError` naming the field and the range.

>>> from agents.networks import DeepSetsConfig
>>> DeepSetsConfig.from_dict({"phi": "moments", "powers": [1, 2]}).powers
(1, 2)
>>> DeepSetsConfig.from_dict({"phi_width": 3})
Traceback (most recent call last):
...
agents.config.ConfigError: unknown key 'phi_width' in DeepSetsConfig; known keys: ...
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

from hetagents_env.economies.params import Interval, interval

__all__ = ["Config", "ConfigError", "interval"]

C = TypeVar("C", bound="Config")


class ConfigError(ValueError, TypeError):
    """A bad configuration: unknown key, wrong type or out-of-range value (both a ``ValueError`` and a
    ``TypeError``, so either ``except`` clause catches it)."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class of the configuration dataclasses: validates (and normalises) every field on construction."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _check(f"{type(self).__name__}.{f.name}", getattr(self, f.name), hints[f.name])
            allowed = f.metadata.get("interval")
            if allowed is not None and value is not None:
                for v in value if isinstance(value, tuple) else (value,):
                    _check_range(f"{type(self).__name__}.{f.name}", v, allowed)
            object.__setattr__(self, f.name, value)
        self._validate()

    def _validate(self) -> None:
        """Cross-field checks of subclasses (raise :class:`ConfigError`)."""

    # ------------------------------------------------------------------ construction
    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls: type[C], mapping: Mapping[str, Any] | None = None, *, base: C | None = None) -> C:
        """Build from a (nested) mapping; keys absent from it keep ``base``'s values (default: the class defaults)."""
        return cls.build(mapping, base=base)

    @classmethod
    def build(cls: type[C], config: "C | Mapping[str, Any] | None" = None, *, base: C | None = None) -> C:
        """``config`` as an instance of ``cls``: an instance passes through; a mapping overrides ``base``."""
        if isinstance(config, cls):
            return config
        if config is None:
            return base if base is not None else cls()
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            raise ConfigError(f"expected a {cls.__name__} or a mapping, got a {type(config).__name__}")
        if not isinstance(config, Mapping):
            raise ConfigError(f"expected a {cls.__name__} or a mapping of its keys, got {type(config).__name__}")
        known = cls.keys()
        unknown = [k for k in config if k not in known]
        if unknown:
            raise ConfigError(
                f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in {cls.__name__}; "
                f"known keys: {', '.join(known)}"
            )
        base = base if base is not None else cls()
        hints = typing.get_type_hints(cls)
        values = {}
        for key, value in config.items():
            nested = _config_class(hints[key])
            if nested is not None and isinstance(value, Mapping):
                current = getattr(base, key)
                value = nested.build(value, base=current if isinstance(current, nested) else None)
            values[key] = value
        return dataclasses.replace(base, **values)

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied (validated; nested configs accept mappings)."""
        return type(self).build(changes, base=self)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), ready for YAML/JSON and W&B."""
        return _plain(self)


# ---------------------------------------------------------------------------------------------- validation
def _config_class(annotation) -> type[Config] | None:
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, Config):
            return arg
    return None


def _check(name: str, value: Any, annotation) -> Any:
    """``value`` checked against ``annotation`` (and normalised: lists -> tuples, ints -> floats)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(name, value, arg)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{name}: {value!r} matches none of {annotation}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name} = {value!r} is not allowed: choose one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a sequence, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{name} must have {len(args)} entries, got {len(value)}")
        return tuple(_check(f"{name}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a real number, got {value!r}")
        value = float(value)
        if math.isnan(value):
            raise ConfigError(f"{name} must not be NaN")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    if isinstance(annotation, type) and issubclass(annotation, Config):
        if isinstance(value, Mapping):
            return annotation.build(value)
        if not isinstance(value, annotation):
            raise ConfigError(f"{name} must be a {annotation.__name__} or a mapping, got {type(value).__name__}")
        return value
    raise ConfigError(f"{name}: unsupported annotation {annotation!r}")  # pragma: no cover (programming error)


def _check_range(name: str, value: Any, allowed: Interval) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value not in allowed:
        raise ConfigError(f"{name} = {value!r} is out of range: allowed {allowed}")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value
