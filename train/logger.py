"""Where a run's numbers go: ``metrics.jsonl`` in the run directory and Weights & Biases.

W&B mode (``logger.mode`` in the config): ``online`` / ``offline`` / ``disabled``; ``null`` means ``$WANDB_MODE`` if
set, else ``online`` when a W&B account is configured (``WANDB_API_KEY`` or a ``wandb login`` entry in ~/.netrc) and
``offline`` otherwise. ``online`` without an account falls back to ``offline``. An offline run is written under
``<run dir>/wandb/offline-run-*`` and uploaded later with ``wandb sync <that dir>``.

Resumed runs (``run_id`` given) continue the same W&B run: the same id with ``resume="allow"``, and the solver's step
as W&B's step, so the step axis goes on from the checkpoint. Online, that is one run on the server; W&B drops the
records a resumed run logs at steps it already holds (the replayed steps between the checkpoint and the interruption,
which a deterministic run logs again with the same values). Offline, W&B (0.31) writes one directory per session,
``offline-run-<start time>-<id>``, all with the same id, the later ones marked as resuming; ``wandb sync`` given
them all uploads them in start-time order as that one run, and :meth:`WandbRun.finish`'s hint names them all.

Secrets: the W&B config is the experiment's resolved YAML config (no environment variables), and the run is started
with W&B's metadata, git, code, requirements and system-statistics collection off, so neither the API key nor any
environment variable is written into the run directory. W&B is imported only when a run is not disabled.
"""

from __future__ import annotations

import json
import netrc
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["MetricsFile", "WandbRun", "account_configured", "resolve_mode"]

MODES = ("online", "offline", "disabled")


def account_configured() -> bool:
    """True when a W&B API key is available (environment or ~/.netrc). Never reads the key into a log."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_mode(configured: str | None) -> tuple[str, str | None]:
    """(mode, note): the W&B mode to use and, when it differs from what was asked, why."""
    asked = configured or os.environ.get("WANDB_MODE") or None
    if asked is not None:
        asked = {"dryrun": "offline", "run": "online"}.get(asked, asked)
        if asked not in MODES:
            raise ValueError(f"W&B mode must be one of {', '.join(MODES)}, got {asked!r} (WANDB_MODE?)")
    if asked in ("offline", "disabled"):
        return asked, None
    if account_configured():
        return "online", None
    if asked == "online":
        return "offline", "no W&B account configured (run `wandb login` or set WANDB_API_KEY): logging offline"
    return "offline", None


def jsonable(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers, strings, bools and None of ``metrics``, strict JSON (:func:`agents.jsonable.json_value`: non-finite
    floats as None, one-element tensors as numbers); the other entries are dropped."""
    from agents.jsonable import json_value  # deferred: importing agents loads the economies

    out = {}
    for key, value in metrics.items():
        if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
            value = value.item()
        value = json_value(value)
        if isinstance(value, (bool, int, float, str)) or value is None:
            out[str(key)] = value
    return out


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Numeric entries of ``metrics`` for charts (bools as 0/1)."""
    out = {}
    for key, value in metrics.items():
        if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
            value = value.item()
        if isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, (int, float)):
            out[key] = float(value)
    return out


class MetricsFile:
    """``metrics.jsonl``: one JSON object per logging point, ``{"step": ..., **metrics}``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def append(self, step: int, metrics: Mapping[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": int(step), **jsonable(metrics)}, allow_nan=False) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def truncate_after(self, step: int) -> None:
        """Drop the records after ``step`` (a resumed run replays them)."""
        records = [r for r in self.read() if r.get("step", 0) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, self.path)


class WandbRun:
    """A thin wrapper over one ``wandb`` run (a no-op when disabled); W&B is imported lazily."""

    def __init__(
        self,
        mode: str | None,
        *,
        directory: str | os.PathLike,
        config: Mapping[str, Any],
        project: str = "hetagents",
        entity: str | None = None,
        group: str | None = None,
        tags: Sequence[str] = (),
        name: str | None = None,
        job_type: str = "train",
        run_id: str | None = None,
        notes: str | None = None,
    ) -> None:
        self.mode, self.note = resolve_mode(mode)
        self.run = None
        self.directory = Path(directory)
        if self.note:
            print(f"W&B: {self.note}", file=sys.stderr)
        if self.mode == "disabled":
            return
        # our package is called `agents`, which W&B mistakes for an LLM SDK and advertises Weave for
        os.environ.setdefault("WANDB_DISABLE_WEAVE", "true")
        import wandb

        self.wandb = wandb
        settings = wandb.Settings(
            x_disable_meta=True, x_disable_stats=True, x_disable_machine_info=True, disable_git=True,
            disable_code=True, save_code=False, x_save_requirements=False, console="off", silent=True,
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        kwargs = dict(
            project=project, entity=entity, group=group, tags=list(tags) or None, name=name, job_type=job_type,
            dir=str(self.directory), config=dict(config), settings=settings, notes=notes, id=run_id,
            resume="allow" if run_id else None, reinit="create_new",
        )
        try:
            self.run = wandb.init(mode=self.mode, **kwargs)
        except Exception as err:  # an unreachable server must not cost the run: log offline instead
            if self.mode != "online":
                raise
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            print(f"W&B: online start failed ({reason}); logging offline", file=sys.stderr)
            self.mode = "offline"
            self.run = wandb.init(mode="offline", **kwargs)

    @property
    def enabled(self) -> bool:
        return self.run is not None

    @property
    def id(self) -> str | None:
        return None if self.run is None else self.run.id

    @property
    def run_dir(self) -> Path | None:
        """The W&B run's own directory (``.../wandb/offline-run-*``)."""
        return None if self.run is None else Path(self.run.dir).parent

    def session_dirs(self, run_id: str | None = None) -> list[Path]:
        """Every directory W&B wrote for the run ``run_id`` (default: this one) under ``<directory>/wandb``, one per
        session of a resumed run, oldest first (their names start with the start time)."""
        run_id = run_id or self.id
        if not run_id:
            return []
        # W&B appends "-1", "-2", ... when two sessions start within the same second
        name = re.compile(rf"^(offline-)?run-\d{{8}}_\d{{6}}-{re.escape(run_id)}(-\d+)?$")
        found = (p for p in (self.directory / "wandb").glob(f"*run-*-{run_id}*") if name.match(p.name))
        return sorted((p for p in found if p.is_dir() and not p.is_symlink()), key=lambda p: p.name.split("run-", 1)[1])

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(dict(metrics), step=step)

    def log_scalars(self, metrics: Mapping[str, Any], step: int) -> None:
        self.log(scalars(metrics), step)

    def table(self, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self.run is not None:
            self.run.log({key: self.wandb.Table(columns=list(columns), data=[list(r) for r in rows])})

    def images(self, paths: Mapping[str, str | os.PathLike]) -> None:
        if self.run is not None and paths:
            self.run.log({f"figures/{k}": self.wandb.Image(str(p)) for k, p in paths.items()})

    def summary(self, values: Mapping[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(dict(values))

    def finish(self, exit_code: int = 0) -> str | None:
        """Close the run; returns a hint on how to upload an offline run (None otherwise), which names every
        session's directory of a resumed run (``offline_dirs``)."""
        if self.run is None:
            return None
        run_id = self.id
        self.run.finish(exit_code=exit_code)
        self.run = None
        if self.mode != "offline":
            return None
        self.offline_dirs = [p for p in self.session_dirs(run_id) if p.name.startswith("offline-run-")]
        dirs = " ".join(str(p) for p in self.offline_dirs)
        if len(self.offline_dirs) > 1:
            return (f"W&B offline run {run_id}, {len(self.offline_dirs)} sessions: {dirs}  (upload them as one run "
                    f"with: wandb sync {dirs})")
        return f"W&B offline run: {dirs}  (upload it with: wandb sync {dirs})"

    offline_dirs: list[Path] = []
    """after :meth:`finish` of an offline run: its directories, one per session, oldest first"""
