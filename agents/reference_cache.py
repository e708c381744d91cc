"""The on-disk cache of reference solutions: one file per key, checked on every load, written atomically.

* Directory: ``cache_dir`` if given, else ``$HETAGENTS_CACHE``, else ``~/.cache/hetagents/references``.
* Key: sha256 of the canonical JSON of the key's inputs — the package version (``hetagents_env.__version__``), the
  economy id, its parameters, N, the reference solver's name and its config (the solution), and also the judge's
  reference protocol (the samples drawn from it). File name: ``<env_id>-N<N>-<kind>-<key[:16]>.pt``, kind
  ``solution`` or ``samples``.
* Entry: ``{"format", "key", "inputs", "digest", "payload"}``; ``digest`` is a sha256 over the payload (tensors'
  dtype, shape and bytes; everything else as canonical JSON), so an edited or damaged payload is detected.
* Load (``torch.load(weights_only=True)``): the stored key, inputs and digest must match what the caller
  expects; a missing file is a miss, anything else that does not match — other parameters or N, another version,
  an unreadable or corrupted file — is a miss with a one-line warning (the caller recomputes and overwrites).
* Save: to a temporary file in the same directory, then ``os.replace`` (readers never see half a file).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["FORMAT", "cache_path", "default_cache_dir", "digest", "key_of", "load_entry", "plain", "save_entry"]

FORMAT = 1


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$HETAGENTS_CACHE``, else ``~/.cache/hetagents/references``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("HETAGENTS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hetagents" / "references"


def plain(value: Any) -> Any:
    """``value`` with numpy scalars/arrays and tuples turned into Python numbers, tensors and lists (JSON- and
    ``weights_only``-loadable); tensors are kept (moved to CPU)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _canonical(value: Any) -> str:
    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"), default=repr)


def key_of(inputs: dict[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of ``inputs`` (no tensors in there)."""
    return hashlib.sha256(_canonical(inputs).encode()).hexdigest()


def cache_path(directory: Path, env_id: str, n_agents: int, key: str, kind: str = "solution") -> Path:
    """``<directory>/<env_id>-N<N>-<kind>-<key[:16]>.pt``."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in env_id)
    return directory / f"{safe}-N{n_agents}-{kind}-{key[:16]}.pt"


def digest(value: Any, h=None) -> str:
    """sha256 over a nested payload: tensors by dtype, shape and bytes; the rest as canonical JSON."""
    h = h or hashlib.sha256()
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value):
            h.update(json.dumps(str(k)).encode())
            digest(value[k], h)
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for v in value:
            digest(v, h)
        h.update(b"]")
    else:
        h.update(_canonical(value).encode())
    return h.hexdigest()


def load_entry(path: Path, key: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The payload stored at ``path`` if it is a valid entry for ``key`` / ``inputs``, else None (warned, except
    for a missing file)."""
    if not path.exists():
        return None
    try:
        entry = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - any unreadable file is a miss
        # the error's type only: torch's message advises loading without weights_only, which would run the file's code
        _warn(path, f"unreadable ({type(err).__name__})")
        return None
    if not isinstance(entry, dict) or entry.get("format") != FORMAT or "payload" not in entry:
        _warn(path, "not a reference cache entry of this format")
        return None
    if entry.get("key") != key or _canonical(entry.get("inputs")) != _canonical(inputs):
        stored = entry.get("inputs") if isinstance(entry.get("inputs"), dict) else {}
        diff = sorted(k for k in set(stored) | set(inputs) if _canonical(stored.get(k)) != _canonical(inputs.get(k)))
        _warn(path, f"stored for other inputs (differs in: {', '.join(diff) or 'key'})")
        return None
    if entry.get("digest") != digest(entry["payload"]):
        _warn(path, "corrupted (its content does not match its digest)")
        return None
    return entry["payload"]


def save_entry(path: Path, key: str, inputs: dict[str, Any], payload: dict[str, Any]) -> None:
    """Write the entry atomically (a temporary file in the same directory, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = plain(payload)
    entry = {"format": FORMAT, "key": key, "inputs": plain(inputs), "digest": digest(payload), "payload": payload}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(entry, f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _warn(path: Path, why: str) -> None:
    warnings.warn(f"reference cache entry {path} is {why}: recomputing it", RuntimeWarning, stacklevel=3)
