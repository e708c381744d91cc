"""The stationary Aiyagari equilibrium against Aiyagari (1994) Table II and the DHKR market column.

    python benchmarks/aiyagari.py [--quick] [--width 3.5] [--no-sweep] [--out benchmarks/results]

* Table II, all 24 cells (β 0.96, α 0.36, δ 0.08, a̲ 0, 7-state Tauchen discretisation of the log AR(1) with
  unconditional sd σ): published r and saving rate, ours, the difference, seconds (wall and CPU) per cell, and r with
  the asset and histogram grids doubled (grid convergence).
* The discretisation: every cell also with Tauchen widths 2, 2.5, 3, 3.25, 3.5, 4 and Rouwenhorst (``--no-sweep``
  skips it), summarised by the mean/max |ours − published|; the ρ = 0, σ = 0.2 cells also with a 25-state
  discretisation (the i.i.d. lognormal itself) to tell the published values' error from the 7-state chain's.
* DHKR (γ 2, ε ∈ {1, 5.29, 46.55}, DeepHAM's matrix): β calibrated so that mean assets are 30.635; wealth and
  consumption Gini against the published 0.864 / 0.615; the same with doubled grids.

Productivity levels are exp(y) (not normalised: with a̲ = 0 the problem is homogeneous in (a, w), so r does not
depend on the normalisation). One thread: the numerics are numpy/scipy (SuperLU is single-threaded; BLAS threads
are pinned to 1 before numpy loads). Writes ``aiyagari.json`` and ``aiyagari.md``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import RESULTS, finish_machine, machine_info, result_stem, setup_torch, write_results  # noqa: E402
from agents.solvers.aiyagari_equilibrium import GridSpec, calibrate_beta, solve_equilibrium  # noqa: E402
from agents.solvers.aiyagari_stationary import model_of  # noqa: E402
from hetagents_env import make_economy  # noqa: E402

RHOS = (0.0, 0.3, 0.6, 0.9)
COLUMNS = ((0.2, 1.0), (0.2, 3.0), (0.2, 5.0), (0.4, 1.0), (0.4, 3.0), (0.4, 5.0))
#: Aiyagari (1994) Table II: r (%) / saving rate (%) by ρ (rows) and (σ, μ) (columns)
PUBLISHED = {
    0.0: ((4.1666, 23.67), (4.1456, 23.71), (4.0858, 23.83), (4.0649, 23.87), (3.7816, 24.44), (3.4177, 25.22)),
    0.3: ((4.1365, 23.73), (4.0432, 23.91), (3.9054, 24.19), (3.9554, 24.09), (3.4188, 25.22), (2.8032, 26.66)),
    0.6: ((4.0912, 23.82), (3.8767, 24.25), (3.5857, 24.86), (3.7567, 24.50), (2.7835, 26.71), (1.8070, 29.37)),
    0.9: ((3.9305, 24.14), (3.2903, 25.51), (2.5260, 27.36), (3.3054, 25.47), (1.2894, 31.00), (-0.3456, 37.63)),
}
SWEEP = (("tauchen", 2.0), ("tauchen", 2.5), ("tauchen", 3.0), ("tauchen", 3.25), ("tauchen", 3.5),
         ("tauchen", 4.0), ("rouwenhorst", None))
DHKR = {"gamma": 2.0, "alpha": 0.36, "delta": 0.08, "borrowing_limit": 0.0, "productivity": (1.0, 5.29, 46.55),
        "transition": ((0.992, 0.008, 0.0), (0.009, 0.980, 0.011), (0.0, 0.083, 0.917)),
        "target_assets": 30.635, "wealth_gini": 0.864, "consumption_gini": 0.615}
SPEC = GridSpec()
DOUBLED = dataclasses.replace(SPEC, asset_points=2 * SPEC.asset_points, histogram_points=2 * SPEC.histogram_points)


def model(rho: float, sigma: float, mu: float, kind: str = "tauchen", width: float | None = 3.5, n: int = 7):
    """The stationary model of the registered economy ``Aiyagari-v0`` at one Table II cell (the path a user takes:
    ``make_economy`` -> the ``aiyagari_stationary`` solver's model)."""
    economy = make_economy("Aiyagari-v0", calibration="aiyagari1994", rho=rho, sigma=sigma, gamma=mu,
                           discretization=kind, tauchen_width=width or 3.5, n_states=n, dtype=torch.float64)
    return model_of(economy)


def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def table_ii(width: float, cells, doubled: bool) -> list[dict]:
    rows = []
    for rho, j in cells:
        sigma, mu = COLUMNS[j]
        pub_r, pub_s = PUBLISHED[rho][j]
        eq, wall, cpu = timed(solve_equilibrium, model(rho, sigma, mu, "tauchen", width), SPEC)
        row = {"rho": rho, "sigma": sigma, "mu": mu, "published_r_pct": pub_r, "published_s_pct": pub_s,
               "r_pct": 100 * eq.r, "diff_pp": 100 * eq.r - pub_r, "s_pct": 100 * eq.saving_rate,
               "seconds": wall, "cpu_seconds": cpu, "evaluations": eq.evaluations, "top_mass": eq.top_mass,
               "grid_max": eq.grid_max, "notes": eq.notes,
               "target_pp": 0.05 if (rho <= 0.6 and sigma == 0.2) else 0.3}
        row["within_target"] = abs(row["diff_pp"]) <= row["target_pp"]
        if doubled:
            fine, fwall, _ = timed(solve_equilibrium, eq.model, DOUBLED)
            row.update(r_doubled_pct=100 * fine.r, doubling_change_pp=100 * (fine.r - eq.r), seconds_doubled=fwall)
        print(f"rho {rho} sigma {sigma} mu {mu:g}: r {row['r_pct']:.4f} (published {pub_r:.4f}, "
              f"{row['diff_pp']:+.4f}) s {row['s_pct']:.2f}  {wall:.2f} s"
              + (f"  doubled {row['r_doubled_pct']:.4f}" if doubled else ""), flush=True)
        rows.append(row)
    return rows


def sweep(cells) -> list[dict]:
    out = []
    for kind, width in SWEEP:
        diffs = {}
        for rho, j in cells:
            sigma, mu = COLUMNS[j]
            eq = solve_equilibrium(model(rho, sigma, mu, kind, width), SPEC)
            diffs[f"{rho}/{sigma}/{mu:g}"] = 100 * eq.r - PUBLISHED[rho][j][0]
        d = np.array(list(diffs.values()))
        tight = [v for (rho, j), v in zip(cells, d) if rho <= 0.6 and COLUMNS[j][0] == 0.2]
        label = "Rouwenhorst" if kind == "rouwenhorst" else f"Tauchen m = {width:g}"
        out.append({"discretisation": label, "diff_pp": diffs, "mean_abs_pp": float(np.abs(d).mean()),
                    "max_abs_pp": float(np.abs(d).max()), "tight_cells_within_0.05": int(np.sum(np.abs(tight) <= 0.05)),
                    "tight_cells": len(tight), "cells_within_0.3": int(np.sum(np.abs(d) <= 0.3)), "cells": len(d)})
        print(f"{label}: mean |diff| {out[-1]['mean_abs_pp']:.4f}, max {out[-1]['max_abs_pp']:.4f}", flush=True)
    return out


def iid_check() -> list[dict]:
    """ρ = 0, σ = 0.2: the i.i.d. lognormal itself (25 states) against the 7-state chain and the published r."""
    rows = []
    spec = dataclasses.replace(SPEC, histogram_points=600)
    for j in (0, 1, 2):
        sigma, mu = COLUMNS[j]
        row = {"mu": mu, "published_r_pct": PUBLISHED[0.0][j][0]}
        for label, kind, width in (("tauchen25_m4", "tauchen", 4.0), ("rouwenhorst25", "rouwenhorst", None)):
            row[f"{label}_r_pct"] = 100 * solve_equilibrium(model(0.0, sigma, mu, kind, width, n=25), spec).r
        print(f"iid check mu {mu:g}: {row}", flush=True)
        rows.append(row)
    return rows


def dhkr() -> dict:
    m = dataclasses.replace(model_of(make_economy("Aiyagari-v0", calibration="dhkr2012", dtype=torch.float64)),
                            beta=0.95)  # the starting point of the calibration
    out = {}
    for label, spec in (("default", SPEC), ("doubled", DOUBLED)):
        eq, wall, cpu = timed(calibrate_beta, DHKR["target_assets"], m, spec)
        s = eq.statistics()
        out[label] = {"beta": eq.model.beta, **{k: v for k, v in s.items() if k not in ("beta", "beta_calibration")},
                      "seconds": wall, "cpu_seconds": cpu}
        print(f"DHKR {label}: beta {eq.model.beta:.6f} K {s['K']:.4f} r {s['r_pct']:.4f} wealth Gini "
              f"{s['wealth_gini']:.4f} consumption Gini {s['consumption_gini']:.4f}  {wall:.2f} s", flush=True)
    return out


def _column(key: str) -> int:
    _, sigma, mu = (float(x) for x in key.split("/"))
    return COLUMNS.index((sigma, mu))


def _iid_note(result: dict) -> str:
    """Why the ρ = 0, σ 0.2 cells that miss their target miss (from the sweep and the 25-state check)."""
    misses = [r for r in result["table_ii"] if not r["within_target"] and r["rho"] == 0.0 and r["sigma"] == 0.2]
    if not misses:
        return "Every ρ = 0, σ 0.2 cell is within its target."
    keys = [f"0.0/0.2/{r['mu']:g}" for r in misses]
    rescued = [f"{s['discretisation']} at μ {key.split('/')[-1]} ({s['diff_pp'][key]:+.4f})"
               for s in result.get("sweep", []) for key in keys if abs(s["diff_pp"].get(key, 1.0)) <= 0.05]
    iid = {r["mu"]: r for r in result["iid_check"]}
    gaps = [iid[r["mu"]]["published_r_pct"] - iid[r["mu"]]["tauchen25_m4_r_pct"] for r in misses if r["mu"] in iid]
    ours = [abs(r["r_pct"] - iid[r["mu"]]["tauchen25_m4_r_pct"]) for r in misses if r["mu"] in iid]
    mus = ", ".join(f"{r['mu']:g}" for r in misses)
    return (f"The ✗ cells (ρ 0, σ 0.2, μ {mus}) miss with the discretisations "
            f"tried{' except ' + '; '.join(rescued) if rescued else ''}: the i.i.d. process itself, solved with 25 "
            f"states, lies {min(gaps):.3f}–{max(gaps):.3f} pp below the published r too, and ours is within "
            f"{max(ours):.3f} of it. The published r at μ 1 ({PUBLISHED[0.0][0][0]}) is the complete-markets 4.1667, "
            "i.e. no precautionary saving at all: the published ρ = 0, σ 0.2 values lie above the model's own "
            "solution, whatever the discretisation.")


def to_markdown(result: dict) -> str:
    w = result["width"]
    lines = [
        f"Aiyagari (1994) Table II: r (%) and saving rate s (%) of the stationary equilibrium; ours with a 7-state "
        f"Tauchen discretisation of width m = {w:g} unconditional sds, EGM on {SPEC.asset_points} asset points, "
        f"Young's lottery on {SPEC.histogram_points}, brentq in r. Target |diff| ≤ 0.05 (ρ ≤ 0.6, σ 0.2) / ≤ 0.3 "
        "(all). *Doubled*: r with both grids doubled; Δ = its change (pp). Seconds: wall (CPU) per cell, one thread.",
        "",
        "| ρ | σ | μ | published r | ours r | diff | target | published s | ours s | doubled r | Δ (pp) | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["table_ii"]:
        mark = "" if r["within_target"] else " ✗"
        doubled = (f"{r['r_doubled_pct']:.4f} | {r['doubling_change_pp']:+.5f}" if "r_doubled_pct" in r else "– | –")
        lines.append(
            f"| {r['rho']:g} | {r['sigma']:g} | {r['mu']:g} | {r['published_r_pct']:.4f} | {r['r_pct']:.4f} | "
            f"{r['diff_pp']:+.4f}{mark} | {r['target_pp']:g} | {r['published_s_pct']:.2f} | {r['s_pct']:.2f} | "
            f"{doubled} | {r['seconds']:.2f} ({r['cpu_seconds']:.2f}) |")
    rows = result["table_ii"]
    slowest = max(r["seconds"] for r in rows)
    lines += ["", f"Max |diff| {max(abs(r['diff_pp']) for r in rows):.4f} pp; cells within target "
              f"{sum(r['within_target'] for r in rows)}/{len(rows)}; slowest cell {slowest:.2f} s"
              + (f"; max |Δ| under grid doubling {max(abs(r['doubling_change_pp']) for r in rows):.5f} pp"
                 if "doubling_change_pp" in rows[0] else "") + "."]
    if result.get("sweep"):
        lines += ["", "Discretisations tried (all cells, same grids): |ours − published| in pp. The main table uses "
                  "the one closest to the published values overall (Tauchen m = 3.5: it matches the ρ 0.9, σ 0.2 "
                  "column to 0.003 pp); Rouwenhorst's 7-state chain has thinner tails than Tauchen's and gives "
                  "too little precautionary saving at high ρ.", "",
                  "| discretisation | mean | max | ρ ≤ 0.6, σ 0.2 within 0.05 | all within 0.3 |",
                  "|---|---:|---:|---:|---:|"]
        for s in result["sweep"]:
            lines.append(f"| {s['discretisation']} | {s['mean_abs_pp']:.4f} | {s['max_abs_pp']:.4f} | "
                         f"{s['tight_cells_within_0.05']}/{s['tight_cells']} | {s['cells_within_0.3']}/{s['cells']} |")
        m3 = next((s for s in result["sweep"] if s["discretisation"] == "Tauchen m = 3"), None)
        if m3 is not None:
            check = [(key, PUBLISHED[float(key.split("/")[0])][_column(key)][0] + m3["diff_pp"][key])
                     for key in ("0.6/0.2/3", "0.9/0.2/5", "0.9/0.4/5") if key in m3["diff_pp"]]
            lines += ["", "Check against REFERENCE.md (Tauchen m = 3, converged grids: 3.876, 2.67, −0.09 at ρ/σ/μ "
                      "= 0.6/0.2/3, 0.9/0.2/5, 0.9/0.4/5): ours " + ", ".join(f"{v:.4f}" for _, v in check) + "."]
    if result.get("iid_check"):
        lines += ["", "ρ = 0, σ 0.2 (i.i.d. lognormal): 25-state discretisations of the process itself against the "
                  "published r (%).", "", "| μ | published | Tauchen 25, m = 4 | Rouwenhorst 25 | ours (7 states) |",
                  "|---:|---:|---:|---:|---:|"]
        ours = {r["mu"]: r["r_pct"] for r in result["table_ii"] if r["rho"] == 0.0 and r["sigma"] == 0.2}
        for r in result["iid_check"]:
            lines.append(f"| {r['mu']:g} | {r['published_r_pct']:.4f} | {r['tauchen25_m4_r_pct']:.4f} | "
                         f"{r['rouwenhorst25_r_pct']:.4f} | {ours.get(r['mu'], float('nan')):.4f} |")
        lines += ["", _iid_note(result)]
    d = result.get("dhkr")
    if d:
        lines += ["", "DHKR market economy without aggregate shock (β calibrated to mean assets 30.635):", "",
                  "| | β | mean assets | r (%) | K/Y | wealth Gini | consumption Gini | top 1% / 10% wealth "
                  "| seconds |",
                  "|---|---:|---:|---:|---:|---:|---:|---|---:|",
                  f"| published (DeepHAM / DHKR) | – | 30.635 | – | ≈ 3 | {DHKR['wealth_gini']:.3f} | "
                  f"{DHKR['consumption_gini']:.3f} | – | – |"]
        for label in ("default", "doubled"):
            s = d[label]
            lines.append(f"| ours ({label} grids) | {s['beta']:.5f} | {s['K']:.3f} | {s['r_pct']:.4f} | "
                         f"{s['K_over_Y']:.3f} | {s['wealth_gini']:.4f} | {s['consumption_gini']:.4f} | "
                         f"{s['top_1pct_wealth_share']:.3f} / {s['top_10pct_wealth_share']:.3f} | {s['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the σ 0.2 column at μ 3 only, no sweep, no doubling")
    parser.add_argument("--width", type=float, default=3.5, help="Tauchen width m of the main table (default 3.5)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the discretisation sweep and the i.i.d. check")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    setup_torch(args.threads, "cpu")
    machine = machine_info("cpu")
    print(f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}", flush=True)
    cells = [(rho, 1) for rho in RHOS] if args.quick else [(rho, j) for rho in RHOS for j in range(len(COLUMNS))]
    result = {"benchmark": "aiyagari", "date": machine["date"][:10], "quick": args.quick, "width": args.width,
              "discretisation": f"Tauchen (1986), 7 states, width m = {args.width:g} unconditional sds, levels exp(y)",
              "grid_spec": dataclasses.asdict(SPEC), "doubled_spec": dataclasses.asdict(DOUBLED),
              "table_ii": table_ii(args.width, cells, doubled=not args.quick)}
    if not (args.quick or args.no_sweep):
        result["sweep"] = sweep(cells)
        result["iid_check"] = iid_check()
    result["dhkr"] = dhkr()
    result["machine"] = finish_machine(machine)
    paths = write_results(args.out, result_stem("aiyagari", args.quick), result, to_markdown(result))
    print(paths[1].read_text())
    return result


if __name__ == "__main__":
    main()
