"""Run every benchmark as a subprocess, then refresh the README's results blocks.

    python benchmarks/run_all.py [--quick | --full] [--device cpu|cuda] [--only NAME ...] [--skip NAME ...]
                                 [--threads 1] [--out benchmarks/results] [--dry-run] [--no-readme]

Benchmarks, in order: env_throughput, facade_overhead, large_n, scaling, kahou_tables, ks_classical, aiyagari,
deepham_ks, deepham_profile, rl_baselines, time_to_accuracy, constrained_efficiency. ``--quick`` (the default)
passes ``--quick`` to each: small sizes and budgets, results written to ``NAME_quick.json/.md`` so the committed full
results are never overwritten; the whole suite takes about 15–20 minutes on a 2-core CPU. ``--full`` runs the
published sizes and rewrites ``NAME.json/.md``: several hours on a 2-core CPU (kahou_tables ≈ 30 min, scaling ≈ 20
min, aiyagari ≈ 15 min, deepham_ks ≈ 1 h with its 25-minute budgets, deepham_profile ≈ 20 min (two published-size
value fits), rl_baselines ≈ 40 min, time_to_accuracy ≈ 30 min with its 120 s budget per solver,
constrained_efficiency ≈ 1 h with its four DeepHAM runs, the rest minutes). ``--device cuda`` is passed to the
benchmarks that take a device (env_throughput, facade_overhead, large_n, scaling; their results get a ``_cuda``
suffix); the solver benchmarks run on the CPU. The GPU check ``device_check.py`` is not part of the suite: it is one
command of its own (see its docstring).

Each benchmark's output goes to ``--log-dir`` (default ``benchmarks/logs``, not committed). Afterwards
``update_readme.py`` refills the README blocks from ``benchmarks/results/NAME.md`` (only full results feed the
README). Prints a summary (benchmark, status, wall time, log) and exits 1 if any benchmark failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: name -> (extra arguments, takes --device)
BENCHMARKS: dict[str, tuple[list[str], bool]] = {
    "env_throughput": ([], True),
    "facade_overhead": ([], True),
    "large_n": ([], True),
    "scaling": ([], True),
    "kahou_tables": ([], False),
    "ks_classical": ([], False),
    "aiyagari": ([], False),
    "deepham_ks": ([], False),
    "deepham_profile": ([], False),
    "rl_baselines": ([], False),
    "time_to_accuracy": ([], False),
    "constrained_efficiency": ([], False),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="quick", action="store_true", default=True,
                      help="small sizes, NAME_quick results (default; ~10-15 min)")
    mode.add_argument("--full", dest="quick", action="store_false", help="published sizes, NAME results (hours)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        help=f"run only these ({', '.join(BENCHMARKS)})")
    parser.add_argument("--skip", nargs="+", metavar="NAME", default=[], help="do not run these")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every benchmark (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    parser.add_argument("--log-dir", type=Path, default=HERE / "logs")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per benchmark (default: none)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--no-readme", action="store_true", help="do not run update_readme.py afterwards")
    args = parser.parse_args(argv)
    for option in ("only", "skip"):
        unknown = [name for name in (getattr(args, option) or []) if name not in BENCHMARKS]
        if unknown:
            parser.error(f"--{option}: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    return args


def selected(args: argparse.Namespace) -> list[str]:
    """The benchmarks to run, in suite order."""
    names = args.only or list(BENCHMARKS)
    return [name for name in BENCHMARKS if name in names and name not in args.skip]


def command(name: str, args: argparse.Namespace) -> list[str]:
    """The subprocess command line of one benchmark."""
    extra, takes_device = BENCHMARKS[name]
    cmd = [sys.executable, str(HERE / f"{name}.py"), *extra, "--threads", str(args.threads)]
    if args.quick:
        cmd.append("--quick")
    if takes_device:
        cmd += ["--device", args.device]
    if args.out is not None:
        cmd += ["--out", str(args.out)]
    return cmd


def run(name: str, cmd: list[str], log: Path, timeout: float | None) -> dict:
    """Run one benchmark, output to ``log``; returns name, status ("ok", "failed (exit N)", "timeout"), seconds."""
    start = time.perf_counter()
    with log.open("w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        try:
            code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, timeout=timeout).returncode
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            status = f"timeout ({timeout:.0f} s)"
    return {"name": name, "status": status, "seconds": time.perf_counter() - start, "log": str(log)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = selected(args)
    if args.dry_run:
        for name in names:
            print(" ".join(command(name, args)))
        return 0
    args.log_dir.mkdir(parents=True, exist_ok=True)
    mode = "quick" if args.quick else "full"
    print(f"running {len(names)} benchmark(s) ({mode}, device {args.device}, {args.threads} thread(s)): "
          f"{', '.join(names)}", flush=True)
    results = []
    for name in names:
        log = args.log_dir / f"{name}{'_quick' if args.quick else ''}.log"
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        res = run(name, command(name, args), log, args.timeout)
        results.append(res)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {res['status']} in {res['seconds']:.0f} s (log {log})",
              flush=True)
        if res["status"] != "ok":
            print("  " + "\n  ".join(log.read_text().strip().splitlines()[-5:]), flush=True)
    if not args.no_readme:
        subprocess.run([sys.executable, str(HERE / "update_readme.py")], cwd=ROOT, check=False)
    width = max([len(r["name"]) for r in results] + [9])
    print(f"\n{'benchmark':{width}s}  {'status':18s}  {'seconds':>8s}")
    for r in results:
        print(f"{r['name']:{width}s}  {r['status']:18s}  {r['seconds']:8.0f}")
    failed = [r["name"] for r in results if r["status"] != "ok"]
    print(f"total {sum(r['seconds'] for r in results):.0f} s; "
          + (f"FAILED: {', '.join(failed)}" if failed else "all ok"), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
