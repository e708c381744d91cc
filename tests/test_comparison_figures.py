"""The solver comparison's figures, samples and W&B table (``benchmarks/solver_comparison.py``).

* :func:`agents.reference_judge.comparison_samples` gives two different policies the same common test states and
  the same shocks (identical aggregate-state paths from the same start), and its stationary sample is the one the
  judge scores (its Gini and Wasserstein distance are the judge's numbers);
* the three figures are written (and skipped cleanly where an economy has no aggregate state or an exact
  reference);
* the benchmark end to end on a tiny investment economy (exact reference, nothing to solve): table, figures linked
  from the markdown, and an offline W&B run holding the table.

A stand-in reference (a constant consumption share, a tiny protocol) keeps the Krusell–Smith cases to a second.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import agents
import hetagents_env
from agents.reference import ReferenceProtocol, reference_for
from agents.reference_judge import COMMON_SHOCKS_SEED_OFFSET, comparison_samples, score_against_reference
from agents.reference_metrics import gini, wasserstein
from agents.solvers import SOLVERS, Solver, register_solver
from train import plots

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import solver_comparison  # noqa: E402

SMALL = ReferenceProtocol(pool_economies=4, pool_burn_in=20, pool_snapshots=2, pool_spacing=2, test_states=4,
                          stationary_economies=2, stationary_burn_in=5, stationary_periods=10, welfare_economies=2,
                          welfare_tail=0.5)


class _ConstantShareReference(Solver):
    """A stand-in reference solver: the economy's neutral consumption share, nothing to solve."""

    def __init__(self, economy, config=None):
        super().__init__(economy, config)
        self.policy = agents.networks.CallablePolicy(economy.neutral_policy())

    def train(self, steps=None, *, budget=None, callback=None, progress=None):
        return {"converged": True}


@pytest.fixture(scope="module")
def ks_reference(tmp_path_factory):
    name = "test_figures_constant_share_reference"
    register_solver(name)(_ConstantShareReference)
    economy = hetagents_env.make_economy("KrusellSmith-v0", n_agents=4, dtype=torch.float64)
    economy.reference_solver = name  # this instance only (float64: with_dtype returns it)
    try:
        yield economy, reference_for(economy, cache_dir=tmp_path_factory.mktemp("refs"), protocol=SMALL)
    finally:
        SOLVERS.pop(name, None)


def _saver(factor):
    """A policy that consumes ``factor`` × the neutral share (another solver)."""
    return lambda economy: (lambda state: (economy.neutral_policy()(state) * factor).clamp(0.0, 1.0))


def test_two_solvers_get_the_same_test_states_and_the_same_shocks(ks_reference):
    economy, ref = ks_reference
    a = comparison_samples(_saver(0.8)(economy), economy, ref, seed=2024, periods=40, economies=2)
    b = comparison_samples(_saver(1.2)(economy), economy, ref, seed=2024, periods=40, economies=2)
    assert a.test_states_digest == b.test_states_digest
    assert a.errors_test.shape == b.errors_test.shape == (SMALL.test_states, 4)
    np.testing.assert_array_equal(a.errors_test_reference, b.errors_test_reference)
    # the same start and draws: the same exogenous aggregate state, the same reference path, different K paths
    assert a.aggregate_state_key == "z" and a.aggregate_state.shape == (2, 41)
    np.testing.assert_array_equal(a.aggregate_state, b.aggregate_state)
    assert len(np.unique(a.aggregate_state)) == 2  # both aggregate states occur: the comparison means something
    np.testing.assert_array_equal(a.K_paths_reference, b.K_paths_reference)
    np.testing.assert_array_equal(a.K_paths[:, 0], b.K_paths[:, 0])  # the same start
    assert not np.allclose(a.K_paths[:, -1], b.K_paths[:, -1])
    assert a.K_paths[:, -1].mean() > b.K_paths[:, -1].mean()  # consuming less saves more
    assert a.shocks_seed == b.shocks_seed == 2024 + COMMON_SHOCKS_SEED_OFFSET
    other = comparison_samples(_saver(0.8)(economy), economy, ref, seed=7, periods=40, economies=2)
    assert not np.array_equal(other.aggregate_state, a.aggregate_state) or not np.array_equal(
        other.K_paths, a.K_paths)  # another eval seed: other shocks
    again = comparison_samples(_saver(0.8)(economy), economy, ref, seed=2024, periods=40, economies=2)
    np.testing.assert_array_equal(again.K_paths, a.K_paths)  # reproducible


def test_the_samples_are_the_ones_the_judge_scores(ks_reference):
    economy, ref = ks_reference
    policy = _saver(0.9)(economy)
    scored = score_against_reference(policy, economy, ref, welfare=False)
    s = comparison_samples(policy, economy, ref, seed=2024, periods=5)
    assert gini(s.wealth) == scored["stationary"]["policy"]["wealth_gini"]
    assert gini(s.wealth_reference) == scored["stationary"]["reference"]["wealth_gini"]
    assert wasserstein(s.wealth, s.wealth_reference) == scored["stationary"]["wasserstein"]
    assert float(s.errors_test.mean()) == pytest.approx(scored["errors_test"]["mean"], rel=1e-12)
    assert s.test_states_digest == scored["test_states_digest"]
    # the reference on its own shocks: its K path is the policy's when the policy is the reference
    own = comparison_samples(ref.policy, economy, ref, seed=2024, periods=5)
    np.testing.assert_array_equal(own.K_paths, own.K_paths_reference)
    summary = json.loads(json.dumps(s.summary()))  # small and JSON-ready
    assert len(summary["wealth_quantiles"]) == 21 and summary["error_kind"] == "relative_euler"


def test_the_three_figures_are_written(ks_reference, tmp_path):
    economy, ref = ks_reference
    samples = {f"share × {f}": comparison_samples(_saver(f)(economy), economy, ref, seed=2024, periods=30)
               for f in (0.8, 1.2)}
    first = next(iter(samples.values()))
    figures = [
        plots.stationary_distribution_figure({k: s.wealth for k, s in samples.items()}, first.wealth_reference,
                                             tmp_path / "wealth.png", key="k"),
        plots.euler_error_distribution_figure({k: s.errors_test for k, s in samples.items()}, tmp_path / "euler.png",
                                              reference=first.errors_test_reference),
        plots.common_shock_paths_figure({k: s.K_paths for k, s in samples.items()}, tmp_path / "paths.png",
                                        reference=first.K_paths_reference, aggregate_state=first.aggregate_state),
    ]
    for path in figures:
        assert path is not None and path.is_file() and path.stat().st_size > 5000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_without_an_aggregate_state_and_with_an_exact_reference(tmp_path):
    economy = hetagents_env.make_economy("Investment-v0", n_agents=4, dtype=torch.float64)
    ref = reference_for(economy, protocol=SMALL)  # the exact LQ policy: nothing solved, nothing cached
    off = comparison_samples(lambda s: economy.lq_policy(s) * 1.05, economy, ref, seed=1, periods=10)
    assert off.aggregate_state is None and off.error_kind == "relative_policy_error"
    assert not np.any(off.errors_test_reference)  # the exact reference has no error
    paths = solver_comparison.draw_figures({"lq × 1.05": off}, tmp_path, "inv")
    assert set(paths) == {"wealth", "euler_errors", "k_paths"} and all(p.stat().st_size > 0 for p in paths.values())
    exact = comparison_samples(economy.lq_policy, economy, ref, seed=1, periods=10)
    assert plots.euler_error_distribution_figure({"lq": exact.errors_test}, tmp_path / "none.png",
                                                 reference=exact.errors_test_reference) is None  # nothing to draw


def test_wandb_mode_defaults():
    assert solver_comparison.wandb_mode(None, quick=True) == "disabled"
    assert solver_comparison.wandb_mode(None, quick=False) == "offline"
    assert solver_comparison.wandb_mode("online", quick=True) == "online"


def test_the_benchmark_writes_table_figures_and_an_offline_wandb_table(tmp_path, monkeypatch):
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    out, wandb_dir = tmp_path / "results", tmp_path / "logs"
    configs = [str(ROOT / "configs" / name) for name in ("investment_linear_euler_identity.yaml",
                                                          "investment_td0.yaml")]
    result = solver_comparison.main([
        *configs, "--name", "figs", "--out", str(out), "--budget", "5", "--set", "env.n_agents=8",
        "--set", "run.steps=2", "--set", "eval.trajectories=2", "--set", "eval.horizon=3", "--set",
        "run.device=cpu", "--wandb", "offline", "--wandb-dir", str(wandb_dir),
    ])
    reference, *rows = result["rows"]
    # the reference scored by the same judge comes first: exact here, so no error and no welfare loss
    assert reference["is_reference"] and reference["label"] == "reference (exact)"
    assert reference["euler_test_mean"] == 0.0 and abs(reference["welfare_pct"]) < 1e-6
    assert [r["label"] for r in rows] == ["euler", "td0"]
    assert rows[0]["figure_data"]["test_states_digest"] == rows[1]["figure_data"]["test_states_digest"]
    assert result["shocks_seed"] == 2024 + COMMON_SHOCKS_SEED_OFFSET
    md = (out / "figs.md").read_text()
    for name in ("wealth", "euler_errors", "k_paths"):
        png = out / f"figs_{name}.png"
        assert png.is_file() and png.stat().st_size > 5000
        assert f"]({result['figures'][name]})" in md and result["figures"][name].endswith(f"figs_{name}.png")
    saved = json.loads((out / "figs.json").read_text())
    assert saved["rows"][1]["figure_data"]["K_path_periods"] > 0
    assert (out / "figs.json").stat().st_size < 50_000  # summaries, not the raw samples
    runs = glob.glob(str(wandb_dir / "figs" / "wandb" / "offline-run-*"))
    assert len(runs) == 1
    tables = glob.glob(os.path.join(runs[0], "files", "media", "table", "**", "*.table.json"), recursive=True)
    assert len(tables) == 1
    table = json.loads(Path(tables[0]).read_text())
    assert table["columns"][0] == "solver" and [r[0] for r in table["data"]] == ["reference (exact)", "euler", "td0"]
    images = glob.glob(os.path.join(runs[0], "files", "media", "images", "**", "*.png"), recursive=True)
    assert len(images) == 3
