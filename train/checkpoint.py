"""Checkpoints: atomic, ``weights_only``-loadable files of a solver, the RNG states and the step.

A checkpoint is a ``torch.save`` of plain containers and tensors only (so ``torch.load(path, weights_only=True)``
reads it, and loading never runs code from the file)::

    {"format": 1, "step": int, "solver": solver.state_dict(), "rng": rng_state(), "trainer": {...}}

Writes are atomic: the file is written to a temporary name in the same directory, flushed to disk, and moved into
place with ``os.replace``, so a process killed at any moment leaves either the previous checkpoint or the new one,
never a torn file. :class:`CheckpointDir` names them ``step_<step>.pt``, keeps the newest few, and finds the latest.

Reading: a file that ``torch.load(weights_only=True)`` cannot read (damaged, truncated, not ours) or that was written
for another run (``config``: the env/solver sections, seed and dtype it was written under) raises
:class:`CheckpointError`, a one-line reason of our own. torch's message is never passed on: it suggests re-loading
with ``weights_only=False``, which would run code from an untrusted file.
"""

from __future__ import annotations

import math
import os
import random
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CheckpointDir", "CheckpointError", "atomic_save", "check_run", "differing_keys", "load_checkpoint", "reason_of",
    "rng_state", "set_rng_state", "to_device",
]

FORMAT = 1
_NAME = re.compile(r"^step_(\d+)\.pt$")
#: what a checkpoint of a run holds besides the format (see the module docstring)
_PARTS = ("step", "solver", "rng")


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint: ``path`` and a one-line ``reason``."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path} is not a valid checkpoint of this run: {reason}")


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` atomically (temporary file + fsync + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover (directories cannot be opened on some platforms)
        pass
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (tensors and plain containers only), on the CPU;
    :class:`CheckpointError` if it cannot be read or is not a hetagents checkpoint."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # damage shows as UnpicklingError, RuntimeError (zip), EOFError, KeyError, ...
        raise CheckpointError(path, f"damaged or unreadable ({reason_of(err)})") from None
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise CheckpointError(path, f"not a hetagents checkpoint (format {FORMAT})")
    return dict(data)


def check_run(data: Mapping[str, Any], path: str | os.PathLike, config: Mapping[str, Any]) -> None:
    """:class:`CheckpointError` unless ``data`` is a complete checkpoint written under ``config`` (checkpoints that
    predate the stored config are checked for completeness only)."""
    missing = [part for part in _PARTS if part not in data]
    if missing:
        raise CheckpointError(path, f"incomplete (no {', '.join(missing)})")
    if not isinstance(data["step"], int) or not isinstance(data["solver"], Mapping):
        raise CheckpointError(path, "malformed (step or solver state of the wrong type)")
    saved = data.get("config")
    if saved is not None:
        keys = differing_keys(saved, config)
        if keys:
            raise CheckpointError(path, f"written for another config (differs in {', '.join(keys)})")


def differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted keys where two plain structures differ (ints and floats compare by value)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = list(a) + [k for k in b if k not in a]
        return [d for k in keys for d in differing_keys(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))]
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        same = float(a) == float(b) or math.isnan(a) and math.isnan(b)
        return [] if same else [prefix]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        same = len(a) == len(b) and not any(differing_keys(x, y) for x, y in zip(a, b))
        return [] if same else [prefix]
    return [] if a == b else [prefix]


def reason_of(err: Exception) -> str:
    """The exception's type and first sentence, unless that is torch's advice about ``weights_only`` (never shown)."""
    text = (str(err).strip().splitlines() or [""])[0].split(". ")[0]
    if not text or "weights" in text.lower() or len(text) > 160:
        return type(err).__name__
    return f"{type(err).__name__}: {text}"


# ---------------------------------------------------------------------------------------------- RNG states
def rng_state() -> dict[str, Any]:
    """The global RNG states (torch CPU and CUDA, numpy, random) as tensors and plain containers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state((np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _to_lists(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_lists(v) for v in value]
    return value


def to_device(value: Any, device: torch.device) -> Any:
    """Move the tensors of a (nested) state dict to ``device``, except RNG states (uint8 byte tensors), which
    ``torch.Generator.set_state`` wants on the CPU."""
    if isinstance(value, torch.Tensor):
        return value if value.dtype == torch.uint8 else value.to(device)
    if isinstance(value, OrderedDict):  # kept with its _metadata (TensorDict.state_dict stores batch sizes there)
        out = OrderedDict((k, to_device(v, device)) for k, v in value.items())
        if hasattr(value, "_metadata"):
            out._metadata = value._metadata
        return out
    if isinstance(value, Mapping):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, list):
        return [to_device(v, device) for v in value]
    if isinstance(value, tuple):
        return tuple(to_device(v, device) for v in value)
    return value


# ---------------------------------------------------------------------------------------------- a directory
class CheckpointDir:
    """``<run>/checkpoints/step_<step>.pt``: save (keeping the newest ``keep``), list, latest."""

    def __init__(self, path: str | os.PathLike, keep: int = 2) -> None:
        self.path = Path(path)
        self.keep = max(1, int(keep))

    def files(self) -> list[tuple[int, Path]]:
        """(step, path) of every checkpoint, oldest first."""
        if not self.path.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.path.iterdir() if (m := _NAME.match(p.name))]
        return sorted(found)

    def latest(self) -> Path | None:
        files = self.files()
        return files[-1][1] if files else None

    def set_aside(self, path: Path) -> Path:
        """Rename an unusable checkpoint to ``<name>.unusable`` (kept for inspection, no longer listed or pruned as
        a checkpoint)."""
        target = path.with_name(path.name + ".unusable")
        os.replace(path, target)
        return target

    def save(self, step: int, payload: Mapping[str, Any]) -> Path:
        path = atomic_save({"format": FORMAT, "step": int(step), **payload}, self.path / f"step_{int(step):08d}.pt")
        for _, old in self.files()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path
