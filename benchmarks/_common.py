"""What every benchmark shares: the machine description, result-file names and writing the JSON / markdown pair.

* :func:`machine_info` — the machine a result was measured on: architecture, CPU model, CPU count, torch threads
  (``torch.get_num_threads()`` at the time of the call), torch and Python versions, date, load average and, on
  CUDA, the GPU's name. Call it after ``torch.set_num_threads``; :func:`finish_machine` adds the load average at
  the end of the run.
* :func:`machine_line` — one markdown line stating machine, thread count, torch version and date; it is the first
  line of every ``benchmarks/results/*.md`` (:func:`write_results` puts it there).
* :func:`result_stem` — ``NAME``, ``NAME_quick`` (``--quick`` runs never overwrite the committed full results) and
  ``_cuda`` for GPU runs.
* :func:`write_results` — ``NAME.json`` (indented, UTF-8, strict JSON: NaN as null) and ``NAME.md`` (machine line +
  the table) in ``out``.

Importable as ``from _common import ...`` from a benchmark run as a script (``benchmarks/`` is then on
``sys.path``) and as ``from benchmarks._common import ...`` from the repository root.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
from pathlib import Path
from typing import Any

import torch

#: where the committed results live
RESULTS = Path(__file__).resolve().parent / "results"


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (NaN where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return [math.nan] * 3


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info(device: str | torch.device = "cpu") -> dict[str, Any]:
    """Description of this machine and process, JSON-serialisable (see the module docstring)."""
    device = torch.device(device)
    info = {
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": str(device),
        "load_average_before": load_average(),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def finish_machine(machine: dict[str, Any]) -> dict[str, Any]:
    """Add the load average at the end of the run (in place); returns ``machine``."""
    machine["load_average_after"] = load_average()
    return machine


def machine_line(machine: dict[str, Any] | None, date: str | None = None) -> str:
    """One markdown line: machine, CPU/GPU, thread count, torch version, date, load average (missing keys: "?").

    Tolerates the older result files' machine dicts (``cpus``, ``processor``, ``load_start`` / ``load_end``)."""
    m = dict(machine or {})
    parts = [m.get("machine"), m.get("cpu") or m.get("processor") or "CPU model not recorded"]
    if m.get("device_name"):
        parts.append(f"GPU {m['device_name']}")
    if m.get("cpus"):
        parts.append(f"{m['cpus']} CPUs")
    when = str(m.get("date") or date or "date not recorded")[:10]
    before = m.get("load_average_before", m.get("load_start"))
    after = m.get("load_average_after", m.get("load_end"))
    load = ""
    if before and before[0] is not None:  # None: not measured (NaN, written to JSON as null)
        load = f", load average {before[0]:.1f}" + (f" → {after[0]:.1f}" if after and after[0] is not None else "")
    return (
        f"*Machine: {', '.join(str(x) for x in parts if x)}; {m.get('threads', '?')} torch thread(s); "
        f"torch {m.get('torch', 'version not recorded')}; {when}{load}.*"
    )


def result_stem(name: str, quick: bool = False, device: str | torch.device = "cpu", tag: str = "") -> str:
    """``NAME[_quick][_cuda][tag]``: the file stem of a result (quick runs and GPU runs get their own files)."""
    kind = torch.device(device).type
    return f"{name}{'_quick' if quick else ''}{'' if kind == 'cpu' else f'_{kind}'}{tag}"


def write_results(out: Path | str, stem: str, result: dict[str, Any], markdown: str | None = None) -> list[Path]:
    """Write ``out/stem.json`` and, if given, ``out/stem.md`` = :func:`machine_line` + a blank line + ``markdown``.

    ``result["machine"]`` (and ``result["date"]``) describe the run. The JSON is strict (:mod:`agents.jsonable`:
    NaN / inf as null; objects JSON does not know as their ``str``). Returns the written paths."""
    from agents.jsonable import dumps

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json"]
    paths[0].write_text(dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    if markdown is not None:
        paths.append(out / f"{stem}.md")
        paths[1].write_text(with_machine_line(result, markdown), encoding="utf-8")
    return paths


def with_machine_line(result: dict[str, Any], markdown: str) -> str:
    """``markdown`` with the run's :func:`machine_line` as its first line."""
    return machine_line(result.get("machine"), result.get("date")) + "\n\n" + markdown.rstrip() + "\n"


def setup_torch(threads: int, device: str) -> torch.device:
    """Set the torch thread count (≥ 1) and check the device; returns it. Raises ``SystemExit`` with a clear
    message for a CUDA device on a machine without one."""
    if threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise SystemExit(f"--device {device!r} is not a torch device: {err}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: CUDA is not available on this machine")
    return dev


def step_inputs(env_id: str, b: int, n: int, device, dtype: torch.dtype | None = None, ks_share: float = 0.3):
    """``(economy, generator, state, action)`` for timing a step of B = ``b`` economies of N = ``n`` agents: the
    initial state drawn from seed 0, the economy's exact action where it has one (investment: LQ), else a constant
    share ``ks_share`` (share actions: Krusell–Smith, Aiyagari) or the neutral action."""
    import hetagents_env

    eco = hetagents_env.make_economy(env_id, n_agents=n, device=device, dtype=dtype)
    gen = eco.generator(0)
    state = eco.initial_state(b, gen)
    exact = eco.exact_policy()
    if exact is not None:
        action = exact(state).contiguous()
    else:
        level = ks_share if eco.action_head == "sigmoid" else eco.neutral_action()
        action = torch.full((b, n), level, device=eco.device, dtype=eco.dtype)
    return eco, gen, state, action


# ---------------------------------------------------------------------------------------------- W&B
#: where the benchmarks' W&B runs are written (git-ignored)
WANDB_DIR = Path(__file__).resolve().parent / "logs"


def add_wandb_arguments(parser) -> None:
    """``--wandb online|offline|disabled`` and ``--wandb-dir`` (see :func:`wandb_mode`)."""
    parser.add_argument("--wandb", choices=["online", "offline", "disabled"], default=None,
                        help="W&B mode of the result's run (default: disabled with --quick, else offline; no account "
                             "needed, upload later with wandb sync)")
    parser.add_argument("--wandb-dir", type=Path, default=WANDB_DIR, help="where the W&B run is written")


def wandb_mode(asked: str | None, *, quick: bool) -> str:
    """The W&B mode: what ``--wandb`` asks, else ``disabled`` for a quick run and ``offline`` otherwise."""
    return asked or ("disabled" if quick else "offline")


def log_result_run(*, mode: str, directory: Path, name: str, job_type: str, config: dict[str, Any],
                   table: tuple[list[str], list[list[Any]]], figures: dict[str, Path], tags: list[str] = ()) -> str | None:
    """A benchmark's table (``wandb.Table``) and figures in one W&B run; returns the upload hint of an offline run."""
    from train.logger import WandbRun

    run = WandbRun(mode, directory=directory, config=config, project="hetagents", job_type=job_type, name=name,
                   tags=sorted(tags))
    columns, rows = table
    run.table(f"{job_type}/table", columns, rows)
    run.images({f"{job_type}/{key}": path for key, path in figures.items()})
    return run.finish()


# ---------------------------------------------------------------------------------------------- the accuracy bar
# The judge issue's bar, shared by the solver comparison and the time-to-accuracy benchmark. Economies with a
# stationary distribution (Krusell–Smith, Aiyagari):
KS_K_TOLERANCE = 0.01  # |K / K_ref − 1|
KS_GINI_TOLERANCE = 0.02  # |Gini − Gini_ref|
KS_EULER_FACTOR = 2.0  # mean unit-free Euler error on the common test states ≤ this × the reference's own
WELFARE_LOSS_PCT = 0.05  # consumption-equivalent welfare loss against the reference, % of consumption
# an exact reference (the investment economy at ν = 1):
INVESTMENT_POLICY_ERROR = 1e-3  # mean |u − u_LQ| / |u_LQ| on the common test states

