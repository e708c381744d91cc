"""The classical Krusell–Smith algorithm (Maliar, Maliar & Valli 2010) against its published numbers.

    python benchmarks/ks_classical.py [--quick] [--threads 1] [--long-fit 10000] [--out benchmarks/results] [--name STEM]

Four solutions: MMV's stochastic panel (N = 10,000 households, 1,100 periods), the non-stochastic (histogram,
continuum) variant with the same 1,100 periods and with the ALM fitted on 10,100 periods (the length of Den Haan's
test), and the DeepHAM economy (N = 50 households); the full run adds the long-fit case with finer grids (k, K,
histogram) and with a 50,000-period fit, to tell grid error from the log-linear law's own. For each: ALM coefficients and R², iterations and wall time, the
Den Haan statistic (Den Haan's continuum test on 10 fresh 10,000-period paths, with MMV's published ALM scored on the
same paths, and along the solver's own simulation), Euler-equation errors on a simulated path (unit-free, |1 − c/c_EE|, unconstrained households; c_EE
with the realised K' = mean k'), the ergodic mean K, and the published values beside them.
Writes ``ks_classical.json`` and ``ks_classical.md``. Default 1 torch thread (see the README on MKL threads).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hetagents_env  # noqa: E402
from _common import RESULTS, finish_machine, machine_info, result_stem, setup_torch, write_results  # noqa: E402
from agents.aggregate_law import den_haan  # noqa: E402
from agents.solvers.krusell_smith import PUBLISHED_ALM, ClassicalKSSolver  # noqa: E402

PUBLISHED = {
    "N=10000": {"alm": PUBLISHED_ALM.tolist(), "r2": [0.9999, 0.9999], "den_haan_mean_pct": 0.050,
                "den_haan_max_pct": 0.156, "euler_mean_pct": 0.0065, "euler_max_pct": 0.157, "mean_K": 39.357,
                "seconds": 1200.0},
    "N=50": {"r2": [0.989, 0.996], "mean_K": 39.5},
}


def euler_errors(solver: ClassicalKSSolver, periods: int = 400, every: int = 20, seed: int = 7) -> dict:
    """Unit-free Euler errors 100·|1 − c/c_EE| along a simulated path (constrained households: only c > c_EE)."""
    eco, policy = solver.grid_economy, solver.policy
    gen = eco.generator(seed)
    state = eco.initial_state(1, gen)
    if solver.config.simulation == "panel" and solver.panel_k is not None:
        state["k"] = solver.panel_k[:1].clone()
    elif solver.panel_k is not None:  # households drawn from the ergodic histogram: (e, k) ~ mass
        mass = solver.panel_k
        draws = torch.multinomial(mass.reshape(-1), eco.n_agents, replacement=True, generator=gen)
        grid = torch.linspace(0.0, solver.config.histogram_k_max, mass.shape[1], dtype=torch.float64)
        state["k"] = grid[draws % mass.shape[1]][None]
        state["e"] = (draws // mass.shape[1]).to(torch.float64)[None]
    samples = []
    with torch.no_grad():
        for t in range(periods):
            if t % every == 0:
                samples.append(state)
            state = eco.transition(state, policy(state), eco.sample_shocks(state, gen))
        states = torch.cat(samples)
        gap = eco.euler_residual(policy, states, form="relative")  # 1 − c/c_EE
        cash = eco.cash_on_hand(states)
        saved = cash - eco.consumption(cash, policy(states))
        constrained = saved <= 2 * eco.params.c_min
        error = torch.where(constrained, (-gap).clamp_min(0.0), gap.abs()) * 100.0
    return {"euler_mean_pct": float(error.mean()), "euler_max_pct": float(error.max()),
            "euler_mean_log10": float(torch.log10(error.mean() / 100)), "euler_max_log10": float(torch.log10(error.max() / 100)),
            "constrained_share": float(constrained.double().mean())}


def continuum_den_haan(solver: ClassicalKSSolver, periods: int, burn_in: int = 100, paths: int = 10) -> dict:
    """Den Haan's test on a continuum: the policy simulated non-stochastically (histogram) along ``paths`` fresh
    aggregate shock paths, ``burn_in`` periods dropped (the initial cross-section must match the shock history),
    then the ALM iterated on its own from K at the end of the burn-in. Mean and max over ``periods`` per path;
    the published (MMV, stochastic-simulation) ALM is scored on the same paths."""
    initial = solver.panel_k if solver.config.simulation == "histogram" else None
    if initial is None:  # an ergodic histogram for this policy first
        _, _, initial = solver.simulate_histogram(periods=1100, seed=1)
    stats = []
    for seed in range(10_000, 10_000 + paths):
        K, z, _ = solver.simulate_histogram(periods=periods + burn_in, seed=seed, initial=initial)
        K, z = K[0, burn_in:], z[0, burn_in:]
        stats.append({**den_haan(K, z, solver.alm), "mean_K": float(K.mean()), "seed": seed,
                      "published_alm": den_haan(K, z, PUBLISHED_ALM)})
    maxima = [d["max_pct"] for d in stats]
    return {"paths": stats, "mean_pct": float(np.mean([d["mean_pct"] for d in stats])),
            "max_pct_median": float(np.median(maxima)), "max_pct_best": float(np.min(maxima)),
            "max_pct_worst": float(np.max(maxima)),
            "published_alm_mean_pct": float(np.mean([d["published_alm"]["mean_pct"] for d in stats])),
            "published_alm_max_pct_median": float(np.median([d["published_alm"]["max_pct"] for d in stats])),
            "mean_K": float(np.mean([d["mean_K"] for d in stats]))}


def run_case(name: str, n_agents: int, config: dict, test_periods: int) -> dict:
    economy = hetagents_env.make_economy("KrusellSmith-v0", n_agents=n_agents, dtype=torch.float64)
    solver = ClassicalKSSolver(economy, config)
    start = time.perf_counter()
    metrics = solver.train()
    seconds = time.perf_counter() - start
    K, z = solver.panel
    row = {
        "case": name, "N": n_agents, "simulation": solver.config.simulation, "config": solver.config.to_dict(),
        "seconds": seconds, "iterations": metrics["iteration"], "converged": metrics["converged"],
        "alm": solver.alm.tolist(), "r2": solver.r2.tolist(),
        "alm_max_abs_diff_published": float(np.abs(solver.alm - PUBLISHED_ALM).max()),
        "den_haan_in_sample": den_haan(K[0, solver.config.burn_in :], z[0, solver.config.burn_in :], solver.alm),
        "den_haan_continuum": continuum_den_haan(solver, test_periods), "test_periods": test_periods,
        "mean_K_training": float(K[:, solver.config.burn_in :].mean()),
        **euler_errors(solver),
    }
    print(json.dumps({k: v for k, v in row.items() if k != "config"}, indent=1), flush=True)
    return row


def to_markdown(result: dict) -> str:
    m = result["machine"]
    first = result["rows"][0]
    paths = len(first["den_haan_continuum"]["paths"])
    lines = [
        f"Classical Krusell–Smith (MMV 2010) — {m['threads']} torch thread(s), torch {m['torch']}, {result['date']}. "
        "Den Haan = mean / max % error of the ALM iterated on its own. *Own path*: along the solver's own "
        f"simulation (its fit sample after the burn-in). *Fresh paths*: Den Haan's test, the policy simulated on a "
        f"histogram along {paths} fresh {first['test_periods']:,}-period paths after a 100-period burn-in: mean "
        "error / median of the per-path maxima (best–worst); *published ALM* = MMV's coefficients scored on the same "
        "fresh paths (median max). Euler errors: unit-free |1 − c/c_EE| on a simulated 10,000-household panel. "
        "Mean K: fresh paths.",
        "",
        "| case | simulation | fit periods | time (s) | ALM bad (a, b) | ALM good (a, b) | R² bad / good | "
        "Den Haan own path | Den Haan fresh paths | published ALM, fresh | Euler mean / max % | mean K |",
        "|---|---|---:|---:|---|---|---|---|---|---:|---|---:|",
    ]
    for r in result["rows"]:
        (ab, bb), (ag, bg) = r["alm"]
        dh, dhc = r["den_haan_in_sample"], r["den_haan_continuum"]
        fit = r["config"]["periods"] - r["config"]["burn_in"]
        lines.append(
            f"| {r['case']} | {r['simulation']} | {fit:,} | {r['seconds']:.0f} | {ab:.6f}, {bb:.6f} | "
            f"{ag:.6f}, {bg:.6f} | {r['r2'][0]:.6f} / {r['r2'][1]:.6f} | {dh['mean_pct']:.3f} / {dh['max_pct']:.3f} | "
            f"{dhc['mean_pct']:.3f} / {dhc['max_pct_median']:.3f} ({dhc['max_pct_best']:.2f}–{dhc['max_pct_worst']:.2f}) | "
            f"{dhc['published_alm_max_pct_median']:.3f} | {r['euler_mean_pct']:.4f} / {r['euler_max_pct']:.3f} | "
            f"{dhc['mean_K']:.3f} |"
        )
    pub = PUBLISHED["N=10000"]
    (pab, pbb), (pag, pbg) = pub["alm"]
    lines.append(
        f"| MMV 2010 (published), N = 10,000 | panel | 1,000 | ~{pub['seconds']:.0f} (MATLAB) | {pab:.6f}, {pbb:.6f} | "
        f"{pag:.6f}, {pbg:.6f} | > 0.9999 | – | {pub['den_haan_mean_pct']:.3f} / {pub['den_haan_max_pct']:.3f} "
        f"(one path) | – | {pub['euler_mean_pct']:.4f} / {pub['euler_max_pct']:.3f} | {pub['mean_K']:.3f} |"
    )
    lines.append("| published, N = 50 | panel | – | – | – | – | ≈ 0.989 / 0.996 | – | – | – | – | ≈ 39.5 |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="coarser grid, shorter panel and test path")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--long-fit", type=int, default=None,
                        help="periods of the long-fit continuum case (default: the test paths' length)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default=None, help="output file stem (default ks_classical[_quick])")
    args = parser.parse_args(argv)
    setup_torch(args.threads, "cpu")
    machine = machine_info("cpu")
    print(f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}")
    quick = {"k_points": 50, "policy_tol": 1e-6, "alm_tol": 1e-6} if args.quick else {}
    test_periods = 2000 if args.quick else 10_000
    n_large = 2000 if args.quick else 10_000
    continuum = {**quick, "simulation": "histogram"}
    rows = [
        run_case(f"N = {n_large:,}", n_large, quick, test_periods),
        run_case("continuum (histogram)", n_large, continuum, test_periods),
        # the ALM fitted on a path as long as Den Haan's test (cheap on the histogram: ≈ 60 µs a period)
        run_case("continuum, long fit", n_large, {**continuum, "periods": (args.long_fit or test_periods) + 100},
                 test_periods),
        run_case("N = 50 (DeepHAM economy)", 50, quick, test_periods),
    ]
    if not args.quick:  # is the fresh-path maximum the grids', or the log-linear law's? (the long-fit case varied)
        long_fit = {**continuum, "periods": (args.long_fit or test_periods) + 100}
        rows += [
            run_case("long fit, 200 k-points", n_large, {**long_fit, "k_points": 200}, test_periods),
            run_case("long fit, 8 K-points", n_large, {**long_fit, "K_points": 8}, test_periods),
            run_case("long fit, 4,000-point histogram", n_large, {**long_fit, "histogram_points": 4000}, test_periods),
            run_case("continuum, 50,000-period fit", n_large, {**continuum, "periods": 50_100}, test_periods),
        ]
    result = {"benchmark": "ks_classical", "date": machine["date"][:10], "quick": args.quick,
              "machine": finish_machine(machine), "published": PUBLISHED, "rows": rows}
    paths = write_results(args.out, args.name or result_stem("ks_classical", args.quick), result, to_markdown(result))
    print(paths[1].read_text())
    return result


if __name__ == "__main__":
    main()
