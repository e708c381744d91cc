"""Typed, validated configuration dataclasses for networks and solvers.

Every configurable object (a network, a solver) declares its settings as a frozen dataclass deriving from
:class:`Config`, a :class:`hetagents_env.validation.Validated` dataclass (the one validation mechanism of the project,
shared with the economies' parameters and the experiment files' sections). Building one from a mapping (a YAML
file, ``key=value`` overrides) checks everything at once:

* an unknown key raises :class:`ConfigError` naming it (with its dotted path) and listing the known keys;
* every value is checked against the field's type annotation (``int``, ``float``, ``bool``, ``str``,
  ``Literal[...]``, ``tuple[int, ...]``, ``X | None`` and nested :class:`Config` classes, which accept mappings);
* numeric fields may carry an allowed range: ``field(default=..., metadata=interval(lo, hi))`` (the same helper as
  the economies' parameters); a value out of range raises :class:`ConfigError` naming the field and the range;
  ``metadata=choices(...)`` declares the allowed values of a field the same way.

A :class:`ConfigError` carries the dotted key of the failing field in ``err.key`` (``"network.latent"``: nested
configs prefix their field name as the error leaves them; ``None``: a cross-field rule of the top level). A rule of
``_validate`` names its field by raising ``ConfigError(message, key="name")`` or by starting its message with
``ClassName.name``.

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
from collections.abc import Mapping
from typing import Any, TypeVar

import torch

from hetagents_env.validation import UnknownKeyError, Validated, ValidationError, choices, interval

__all__ = ["Config", "ConfigError", "choices", "interval", "torch_dtype"]

C = TypeVar("C", bound="Config")


class ConfigError(ValidationError, UnknownKeyError):
    """A bad configuration: unknown key, wrong type or out-of-range value (both a ``ValueError`` and a
    ``TypeError``, so either ``except`` clause catches it). ``key``: the dotted key of the failing field, or
    ``None``."""


@dataclasses.dataclass(frozen=True)
class Config(Validated):
    """Base class of the configuration dataclasses: validates (and normalises) every field on construction."""

    error = ConfigError
    unknown_error = ConfigError

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls: type[C], mapping: Mapping[str, Any] | None = None, *, base: C | None = None) -> C:
        """Build from a (nested) mapping; keys absent from it keep ``base``'s values (default: the class defaults)."""
        return cls.build(mapping, base=base)

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied (validated; nested configs accept mappings)."""
        return type(self).build(changes, base=self)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), ready for YAML/JSON and W&B."""
        return _plain(self)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def torch_dtype(name: str) -> torch.dtype:
    """``"float32"`` / ``"float64"`` -> the torch dtype (a config's ``dtype`` field)."""
    try:
        return {"float32": torch.float32, "float64": torch.float64}[name]
    except KeyError:
        raise ConfigError(f"dtype must be 'float32' or 'float64', got {name!r}") from None
