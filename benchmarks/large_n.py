"""Large populations: both economies stepping with N = 10⁶ agents in one economy and B·N = 10⁷ agents in total.

    python benchmarks/large_n.py [--quick] [--device cpu|cuda] [--dtype float32|float64] [--threads 1]
                                 [--repeats 5] [--policy-chunk-agents 2097152] [--out benchmarks/results]

Cases (full): (B, N) = (1, 10⁶), (10, 10⁶) and (10⁴, 10³) for ``Investment-v0`` and ``KrusellSmith-v0``; with
``--quick`` (1, 10⁶) and (10³, 10³). Per case three modes, each in a FRESH subprocess so that peak memories do not mix:

* ``eager``: one step as before issue #9, ``transition_and_reward(state, action, sample_shocks(state, gen))``
  under ``torch.no_grad`` (fresh shock arrays, eager maths);
* ``fused``: :class:`hetagents_env.FusedStep` with ``compile=True`` (shocks drawn into a preallocated buffer,
  transition + reward fused by ``torch.compile``; what ``make(..., compile=True)`` runs); ``compile_s`` is the
  first call (compilation included);
* ``policy``: the published Kahou et al. DeepSets φ(ReLU) actor (``agents.networks.published_config("mlp")``;
  Krusell–Smith: sigmoid head, the economy's default features — own (k, e), aggregate z, φ over k) evaluated on
  the same state under ``torch.no_grad``. With own features ρ runs per agent (4 × 128 ReLU layers); to bound
  memory the B axis is split into chunks of at most ``--policy-chunk-agents`` agents (one economy per chunk when
  N exceeds it), a loop over chunks, not agents.

Reported per case: seconds per step (median over ``--repeats`` timed calls after one warm-up call; the state
advances every step), agent-steps/s = B·N / seconds, the peak resident set size of the subprocess
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, bytes; ``baseline_rss`` = the same right after importing torch and
the library, before any allocation) and on CUDA ``torch.cuda.max_memory_allocated``. Writes ``large_n.json`` and
``large_n.md`` (``large_n_quick.*`` with ``--quick``, ``large_n_cuda.*`` on a GPU). Works unchanged with
``--device cuda``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import hetagents_env  # noqa: E402
from agents.config import torch_dtype  # noqa: E402
from _common import (  # noqa: E402
    RESULTS, finish_machine, machine_info, result_stem, setup_torch, step_inputs, write_results,
)

ENV_IDS = ("Investment-v0", "KrusellSmith-v0")
SHAPES = [(1, 10**6), (10, 10**6), (10**4, 10**3)]
QUICK_SHAPES = [(1, 10**6), (10**3, 10**3)]
MODES = ("eager", "fused", "policy")
#: seconds of timed calls after which a case stops early (at least 2 calls are always timed)
MAX_TIMED_SECONDS = 60.0


def rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_policy(economy):
    """The published φ(ReLU) DeepSets actor for ``economy`` (sigmoid head for the Krusell–Smith share)."""
    from agents.networks import make_actor, published_config

    head = economy.action_head
    return make_actor(economy, published_config("mlp", head=head), seed=0)


def chunked(policy, state, n: int, chunk_agents: int) -> torch.Tensor:
    """``policy(state)`` (B economies of ``n`` agents) over chunks of economies of at most ``chunk_agents`` agents
    each (at least one economy per chunk)."""
    b = state.batch_size[0]
    per_chunk = max(1, chunk_agents // n)
    if per_chunk >= b:
        return policy(state)
    return torch.cat([policy(state[i : i + per_chunk]) for i in range(0, b, per_chunk)])


def measure_case(env_id: str, b: int, n: int, mode: str, device: str, dtype: str, repeats: int,
                 chunk_agents: int) -> dict:
    """Time ``mode`` on B economies of N agents in this process; see the module docstring for the fields."""
    baseline = rss_bytes()
    dev = torch.device(device)
    eco, gen, state, action = step_inputs(env_id, b, n, dev, torch_dtype(dtype))
    row = {"env": env_id, "B": b, "N": n, "agents": b * n, "mode": mode, "device": str(dev), "dtype": dtype}

    if mode == "eager":
        def call(s):
            return eco.transition_and_reward(s, action, eco.sample_shocks(s, gen))[0]
    elif mode == "fused":
        fused = hetagents_env.FusedStep(eco, b, compile=True)

        def call(s):
            return fused(s, action, gen)[0]
    elif mode == "policy":
        policy = build_policy(eco)
        row["params"] = sum(p.numel() for p in policy.parameters())
        row["policy_chunk_agents"] = chunk_agents
        row["policy_chunks"] = -(-b // max(1, chunk_agents // n))

        def call(s):
            chunked(policy, s, n, chunk_agents)
            return s  # the policy does not move the state
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")

    times: list[float] = []
    with torch.no_grad():
        _sync(dev)
        start = time.perf_counter()
        state = call(state)  # warm-up (and compilation for "fused")
        _sync(dev)
        row["first_call_s"] = time.perf_counter() - start
        if mode == "fused":
            row["compile_s"] = row["first_call_s"]
        for i in range(repeats):
            start = time.perf_counter()
            state = call(state)
            _sync(dev)
            times.append(time.perf_counter() - start)
            if i >= 1 and sum(times) > MAX_TIMED_SECONDS:
                break
        finite = all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())
    row.update(
        timed_calls=len(times), s_per_step=statistics.median(times), min_s=min(times),
        agent_steps_per_s=b * n / statistics.median(times), finite=finite,
        baseline_rss_bytes=baseline, peak_rss_bytes=rss_bytes(),
    )
    if dev.type == "cuda":
        row["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(dev)
    return row


def run_subprocess(env_id: str, b: int, n: int, mode: str, args) -> dict:
    """:func:`measure_case` in a fresh interpreter (its own peak RSS); a failure becomes a row with ``error``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", f"{env_id}:{b}:{n}:{mode}",
           "--device", args.device, "--dtype", args.dtype, "--threads", str(args.threads),
           "--repeats", str(args.repeats), "--policy-chunk-agents", str(args.policy_chunk_agents)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.case_timeout)
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"env": env_id, "B": b, "N": n, "agents": b * n, "mode": mode, "error": f"exit {proc.returncode}: "
                + " | ".join(tail), "subprocess_s": wall}
    row = json.loads(lines[-1])
    row["subprocess_s"] = wall
    return row


def gib(value: float | None) -> str:
    return "–" if value is None else f"{value / 2**30:.2f}"


def to_markdown(result: dict) -> str:
    """The README table (the machine line is added by ``_common.write_results``)."""
    cuda = any("cuda_peak_bytes" in r for r in result["rows"])
    lines = [
        f"Large populations ({result['dtype']}, device {result['device']}): one step = shocks + transition + reward "
        "of B economies of N agents; *eager* = fresh shock arrays and eager maths (before), *fused* = "
        "`FusedStep(compile=True)` (after), *policy* = the published φ(ReLU) DeepSets actor on the same state "
        "(`torch.no_grad`). Median of the timed calls; peak RSS = `ru_maxrss` of a fresh subprocess per row "
        f"(≈ {gib(result.get('baseline_rss_bytes'))} GiB of it is the interpreter, torch and the library)"
        + ("; GPU peak = `torch.cuda.max_memory_allocated`." if cuda else "."),
        "",
        "| economy | B | N | B·N | mode | ms / step | M agent-steps/s | peak RSS (GiB) |" + (" GPU peak (GiB) |" if cuda else ""),
        "|---|---:|---:|---:|---|---:|---:|---:|" + ("---:|" if cuda else ""),
    ]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['env']} | {r['B']:,} | {r['N']:,} | {r['agents']:,} | {r['mode']} | failed: "
                         f"{r['error'][:80]} | – | – |" + (" – |" if cuda else ""))
            continue
        mode = r["mode"] + (f" ({r['policy_chunks']} chunks)" if r.get("policy_chunks", 1) > 1 else "")
        lines.append(
            f"| {r['env']} | {r['B']:,} | {r['N']:,} | {r['agents']:,} | {mode} | {1e3 * r['s_per_step']:,.1f} | "
            f"{r['agent_steps_per_s'] / 1e6:,.1f} | {gib(r['peak_rss_bytes'])} |"
            + (f" {gib(r.get('cuda_peak_bytes'))} |" if cuda else "")
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="(1, 1e6) and (1e3, 1e3) only, 3 repeats")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per case (default 5; quick 3)")
    parser.add_argument("--policy-chunk-agents", type=int, default=2**21,
                        help="largest number of agents the policy sees in one call (memory bound)")
    parser.add_argument("--envs", nargs="+", choices=ENV_IDS, default=list(ENV_IDS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--case-timeout", type=float, default=900.0, help="seconds per subprocess")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # ENV:B:N:MODE, run by the parent
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.repeats < 1 or args.policy_chunk_agents < 1:
        parser.error("--repeats and --policy-chunk-agents must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = setup_torch(args.threads, args.device)
    if args.case:  # child: one case, one JSON line on stdout
        env_id, b, n, mode = args.case.split(":")
        row = measure_case(env_id, int(b), int(n), mode, str(device), args.dtype, args.repeats,
                           args.policy_chunk_agents)
        print(json.dumps(row), flush=True)
        return row
    machine = machine_info(device)
    print(f"torch {torch.__version__}, device {device}, torch.get_num_threads() = {torch.get_num_threads()}",
          flush=True)
    rows = []
    for economy_id in args.envs:
        for b, n in QUICK_SHAPES if args.quick else SHAPES:
            for mode in args.modes:
                row = run_subprocess(economy_id, b, n, mode, args)
                rows.append(row)
                if "error" in row:
                    print(f"{economy_id:16s} B={b:6d} N={n:8d} {mode:7s} FAILED {row['error']}", flush=True)
                else:
                    print(f"{economy_id:16s} B={b:6d} N={n:8d} {mode:7s} {1e3 * row['s_per_step']:10.1f} ms/step "
                          f"{row['agent_steps_per_s'] / 1e6:8.1f} M agent-steps/s  peak RSS "
                          f"{gib(row['peak_rss_bytes'])} GiB", flush=True)
    baselines = [r["baseline_rss_bytes"] for r in rows if "baseline_rss_bytes" in r]
    result = {"benchmark": "large_n", "date": machine["date"][:10], "quick": args.quick, "device": str(device),
              "dtype": args.dtype, "repeats": args.repeats, "policy_chunk_agents": args.policy_chunk_agents,
              "baseline_rss_bytes": statistics.median(baselines) if baselines else None,
              "machine": finish_machine(machine), "rows": rows}
    paths = write_results(args.out, result_stem("large_n", args.quick, device), result, to_markdown(result))
    print(paths[1].read_text())
    print("wrote", *paths)
    if any("error" in r for r in rows):
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
