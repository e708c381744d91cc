"""The one JSON convention of the project: strict JSON, non-finite numbers as ``null``.

Every JSON file written here (the judge's ``judge.json``, a run's ``summary.json`` and ``metrics.jsonl``, the
benchmarks' result files) goes through :func:`json_value`: NaN and ±inf become ``None`` (``null``, which every JSON
reader accepts; Python's own ``NaN`` / ``Infinity`` tokens are not JSON), mappings become dicts with string keys,
tuples lists, tensors and numpy arrays / scalars Python numbers or lists, paths strings. :func:`dumps` is
``json.dumps`` of that with ``allow_nan=False``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["dumps", "json_value"]


def json_value(value: Any) -> Any:
    """``value`` made strict-JSON-ready (see the module docstring); anything else is returned as it is."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        return json_value(value.tolist())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps(json_value(value), allow_nan=False, **kwargs)``."""
    return json.dumps(json_value(value), allow_nan=False, **kwargs)
