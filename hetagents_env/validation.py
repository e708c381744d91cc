"""Validated dataclasses: the one field-validation mechanism of every typed configuration.

The economies' parameters (:class:`hetagents_env.economies.params.Params`), the solvers' and networks'
configurations (``agents.config.Config``) and the sections of an experiment file (``train.config``) are dataclasses
deriving from :class:`Validated`. Constructing one checks every field, then the class's cross-field rules:

* the field's type annotation (``int``, ``float``, ``bool``, ``str``, ``Literal[...]``, ``tuple[X, ...]``,
  ``list[X]``, ``dict[str, X]``, enums, ``X | None``, ``Any`` and nested :class:`Validated` classes, which accept
  mappings); values are normalised (lists -> tuples for tuple fields, ints -> floats for float fields);
* an allowed range declared in the field's metadata, ``field(default=..., metadata=interval(lo, hi))``, checked for
  a number and for every number of a tuple or list;
* allowed values declared the same way, ``metadata=choices("a", "b")``;
* :meth:`Validated._validate`, the class's own cross-field rules.

Every failure is a :class:`FieldError` whose ``key`` is the dotted key of the failing field, relative to the object
being built: ``"lr"``, and ``"value.lr"`` once it has left the field ``value`` of an enclosing object (each level
prefixes its field name as the error propagates). ``key`` is ``None`` for a rule about several fields of the top
level. ``str(err)`` is the message alone (which names the field too). An unknown key of a mapping is an
:class:`UnknownKeyError` (a ``TypeError``) naming it and the known ones; a bad value a :class:`ValidationError`
(a ``ValueError``); a class may raise its own subclasses of them (``error``, ``unknown_error``).

A class chooses how its messages name a field (:meth:`Validated.label`) and whether its annotations are enforced
(:attr:`Validated.strict_types`; the economies' parameters check only their ranged fields, as real numbers, and
leave the others to their own rules). A cross-field rule attributes its error to one field by raising it with
``key=...`` or by starting its message with the field's label (the convention of every generated message); a plain
``ValueError`` of a rule becomes the class's error.

>>> import dataclasses
>>> @dataclasses.dataclass(frozen=True)
... class Step(Validated):
...     size: float = dataclasses.field(default=0.1, metadata=interval(0.0, open_lo=True))
>>> Step(size=2).size
2.0
>>> try:
...     Step(size=0)
... except ValidationError as err:
...     print(err.key, "|", err)
size | Step.size = 0.0 is out of range: allowed (0, inf)
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal, TypeVar, Union

import torch

__all__ = [
    "FieldError",
    "Interval",
    "UnknownKeyError",
    "Validated",
    "ValidationError",
    "check_count",
    "check_fits",
    "check_in",
    "choices",
    "interval",
    "validate",
]

V = TypeVar("V", bound="Validated")


# ---------------------------------------------------------------------------------------------- errors
class FieldError(Exception):
    """Base of the validation errors: ``key`` is the dotted key of the failing field (``None``: not one field),
    ``message`` (= ``str(err)``) the text. ``rule_of``: for the error of a cross-field rule (``_validate``), the
    dotted key of the object whose rule failed (``""``: the object being built), whose other fields may be the
    cause; ``None`` for a check of one field's own value."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.rule_of: str | None = None

    def within(self, name: str) -> "FieldError":
        """``self``, its key prefixed by ``name`` (the field of the enclosing object it leaves)."""
        self.key = name if self.key is None else f"{name}.{self.key}"
        if self.rule_of is not None:
            self.rule_of = f"{name}.{self.rule_of}" if self.rule_of else name
        return self


class ValidationError(FieldError, ValueError):
    """A bad value: wrong type, out of range, not one of the choices, or a broken cross-field rule."""


class UnknownKeyError(FieldError, TypeError):
    """A key that the class does not have (``key``: the first unknown one)."""


# ---------------------------------------------------------------------------------------------- field metadata
@dataclasses.dataclass(frozen=True)
class Interval:
    """A real interval; ``lo``/``hi`` may be infinite, each end open or closed."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_closed: bool = True
    hi_closed: bool = True

    def __contains__(self, value: float) -> bool:
        above = value >= self.lo if self.lo_closed else value > self.lo
        below = value <= self.hi if self.hi_closed else value < self.hi
        return above and below

    def __str__(self) -> str:
        left = "[" if self.lo_closed and math.isfinite(self.lo) else "("
        right = "]" if self.hi_closed and math.isfinite(self.hi) else ")"
        return f"{left}{self.lo:g}, {self.hi:g}{right}"


def interval(lo: float = -math.inf, hi: float = math.inf, *, open_lo: bool = False, open_hi: bool = False) -> dict:
    """Field metadata declaring the allowed range of a number (or of every number of a tuple or list)."""
    return {"interval": Interval(lo, hi, not open_lo, not open_hi)}


def choices(*allowed: Any) -> dict:
    """Field metadata declaring the allowed values of a field (or of every entry of a tuple or list)."""
    if not allowed:
        raise ValueError("choices() needs at least one allowed value")
    return {"choices": tuple(allowed)}


# ---------------------------------------------------------------------------------------------- single values
def check_in(name: str, value: Any, allowed: Interval, *, label: str | None = None,
             error: type[ValidationError] = ValidationError) -> float:
    """``value`` as a finite float in ``allowed``, or ``error`` (key ``name``) naming the field, the value and the
    range. Anything with ``__float__`` but a bool counts as a number; an infinite end of a range is open, as printed.
    ``label``: how the message names the field (default ``parameter 'name'``)."""
    try:
        return _real_in(f"parameter {name!r}" if label is None else label, value, allowed, error)
    except FieldError as err:
        raise err.within(name)


def _real_in(label: str, value: Any, allowed: Interval, error: type[ValidationError]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise error(f"{label} must be a real number in {allowed}, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value not in allowed:
        raise error(f"{label} = {value!r} is out of range: allowed {allowed}")
    return value


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """An integer count >= ``minimum`` (numbers of agents, economies, steps), or :class:`ValidationError`."""
    if isinstance(value, bool) or not isinstance(value, int) and not (hasattr(value, "__index__")):
        raise ValidationError(f"{name} must be an integer >= {minimum}, got {value!r}", name)
    value = int(value)
    if value < minimum:
        raise ValidationError(f"{name} = {value} is out of range: allowed integers >= {minimum}", name)
    return value


def check_fits(name: str, value: float, dtype: torch.dtype, *, key: str | None = None) -> float:
    """``value`` rounded to ``dtype``, or :class:`ValidationError` (key ``key``, default ``name``) naming ``name``,
    the value and the dtype when it overflows there (a finite float64 beyond the dtype's largest finite number).
    Values that round towards 0 or onto an end of their range are kept: the economies compute with the Python floats
    and accept them."""
    rounded = torch.tensor(float(value), dtype=torch.float64).to(dtype).item()
    if math.isfinite(value) and not math.isfinite(rounded):
        raise ValidationError(
            f"parameter {name!r} = {value!r} does not fit {dtype}: it overflows to {rounded} (largest finite "
            f"magnitude {torch.finfo(dtype).max:.4g}); use float64 or a smaller value", name if key is None else key)
    return rounded


# ---------------------------------------------------------------------------------------------- the base class
class Validated:
    """Base of the validated dataclasses (derive a dataclass from it; frozen or not).

    Construction runs :func:`validate`: every field, then :meth:`_validate`. Class settings:

    * ``error`` / ``unknown_error``: the exceptions raised (subclasses of :class:`ValidationError` /
      :class:`UnknownKeyError`);
    * ``strict_types``: check every field against its annotation (``False``: only fields with an ``interval``,
      as finite real numbers coerced to float, and fields with ``choices``);
    * :meth:`label`: how messages name a field; :meth:`unknown_message`: the text of an unknown-key error.
    """

    error: ClassVar[type[ValidationError]] = ValidationError
    unknown_error: ClassVar[type[UnknownKeyError]] = UnknownKeyError
    strict_types: ClassVar[bool] = True

    def __post_init__(self) -> None:
        validate(self)

    def _validate(self) -> None:
        """Cross-field rules of subclasses (raise ``self.error``; see the module docstring for ``key``)."""

    @classmethod
    def label(cls, name: str) -> str:
        """How a message names the field ``name``."""
        return f"{cls.__name__}.{name}"

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def unknown_message(cls, unknown: list[str], known: list[str]) -> str:
        return (f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in {cls.__name__}; "
                f"known keys: {', '.join(known)}")

    @classmethod
    def check_keys(cls, keys: Iterable[Any]) -> None:
        """:class:`UnknownKeyError` (``cls.unknown_error``, key: the first unknown one) unless every key is a
        field."""
        known = cls.keys()
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise cls.unknown_error(cls.unknown_message(unknown, known), str(unknown[0]))

    @classmethod
    def build(cls: type[V], config: "V | Mapping[str, Any] | None" = None, *, base: V | None = None) -> V:
        """``config`` as an instance of ``cls``: an instance passes through (already valid); a mapping overrides
        ``base`` (default: the class defaults), nested mappings override ``base``'s nested instances."""
        if isinstance(config, cls):
            return config
        if config is None:
            return base if base is not None else cls()
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            raise cls.error(f"expected a {cls.__name__} or a mapping, got a {type(config).__name__}")
        if not isinstance(config, Mapping):
            raise cls.error(f"expected a {cls.__name__} or a mapping of its keys, got {type(config).__name__}")
        cls.check_keys(config)
        base = base if base is not None else cls()
        hints = _hints(cls)
        values = {}
        for key, value in config.items():
            nested = _validated_class(hints[key])
            if nested is not None and isinstance(value, Mapping):
                current = getattr(base, key)
                try:
                    value = nested.build(value, base=current if isinstance(current, nested) else None)
                except FieldError as err:
                    raise err.within(key)
            values[key] = value
        return dataclasses.replace(base, **values)

    @classmethod
    def field_named_by(cls, message: str) -> str | None:
        """The field whose label starts ``message`` (how a cross-field rule names the field it is about)."""
        for name in sorted(cls.keys(), key=len, reverse=True):
            label = cls.label(name)
            if label and message.startswith(label):
                rest = message[len(label):]
                if not rest or not (rest[0].isalnum() or rest[0] == "_"):
                    return name
        return None


def validate(obj: Validated) -> None:
    """Check (and normalise, in place) every field of ``obj``, then run its ``_validate``; raise ``obj.error`` /
    :class:`FieldError` with the failing field's key."""
    cls = type(obj)
    hints = _hints(cls) if cls.strict_types else None
    for f in dataclasses.fields(obj):
        try:
            value = _check_field(cls, f, getattr(obj, f.name), hints[f.name] if hints is not None else None)
        except FieldError as err:
            raise err.within(f.name)
        object.__setattr__(obj, f.name, value)  # frozen dataclasses too: the normalised value
    try:
        obj._validate()
    except FieldError as err:
        if err.key is None:
            err.key = cls.field_named_by(err.message)
        if err.rule_of is None:
            err.rule_of = ""
        raise
    except ValueError as err:
        rule = cls.error(str(err), cls.field_named_by(str(err)))
        rule.rule_of = ""
        raise rule from err


# ---------------------------------------------------------------------------------------------- one field
def _check_field(cls: type[Validated], f: dataclasses.Field, value: Any, annotation) -> Any:
    label = cls.label(f.name)
    allowed = f.metadata.get("interval")
    if annotation is not None:
        value = _check(label, value, annotation, cls.error)
        if allowed is not None and value is not None:
            for v in _entries(value):
                if isinstance(v, (int, float)) and not isinstance(v, bool) and v not in allowed:
                    raise cls.error(f"{label} = {v!r} is out of range: allowed {allowed}")
    elif allowed is not None:
        value = _real_in(label, value, allowed, cls.error)
    options = f.metadata.get("choices")
    if options is not None and value is not None:
        for v in _entries(value):
            if v not in options:
                raise cls.error(f"{label} = {v!r} is not allowed: choose one of {', '.join(map(repr, options))}")
    return value


def _entries(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _check(name: str, value: Any, annotation, error: type[ValidationError]) -> Any:
    """``value`` checked against ``annotation`` (and normalised: lists -> tuples for tuples, ints -> floats)."""
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
                return _check(name, value, arg, error)
            except FieldError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise error(f"{name}: {value!r} matches none of {annotation}")
    if origin is Literal:
        if value not in args:
            raise error(f"{name} = {value!r} is not allowed: choose one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise error(f"{name} must be a sequence, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(f"{name}[{i}]", v, args[0], error) for i, v in enumerate(value))
        if len(args) != len(value):
            raise error(f"{name} must have {len(args)} entries, got {len(value)}")
        return tuple(_check(f"{name}[{i}]", v, a, error) for i, (v, a) in enumerate(zip(value, args)))
    if origin is list:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise error(f"{name} must be a list, got {value!r}")
        entry = args[0] if args else Any
        return [_check(f"{name}[{i}]", v, entry, error) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise error(f"{name} must be a mapping, got {value!r}")
        key_type, entry = args if args else (Any, Any)
        return {_check(name, k, key_type, error): _check(f"{name}[{k!r}]", v, entry, error) for k, v in value.items()}
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise error(f"{name} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise error(f"{name} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error(f"{name} must be a real number, got {value!r}")
        value = float(value)
        if math.isnan(value):
            raise error(f"{name} must not be NaN")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise error(f"{name} must be a string, got {value!r}")
        return value
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        if isinstance(value, annotation):
            return value
        for member in annotation:
            if value == member.value or value == member.name:
                return member
        raise error(f"{name} = {value!r} is not allowed: choose one of "
                    f"{', '.join(repr(m.value) for m in annotation)}")
    if isinstance(annotation, type) and issubclass(annotation, Validated):
        if isinstance(value, Mapping):
            return annotation.build(value)
        if not isinstance(value, annotation):
            raise error(f"{name} must be a {annotation.__name__} or a mapping, got {type(value).__name__}")
        return value
    raise error(f"{name}: unsupported annotation {annotation!r}")  # pragma: no cover (programming error)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _validated_class(annotation) -> type[Validated] | None:
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, Validated):
            return arg
    return None
