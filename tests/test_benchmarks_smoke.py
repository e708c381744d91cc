"""Smoke tests of the large-N path and the benchmark runner (seconds, no benchmark is run):

* one step with N = 10⁶ agents of each economy (eager and :class:`hetagents_env.FusedStep`): shapes, finiteness;
* the ``torch.compile``-d fused step agrees with the eager step on small shapes (same generator state -> the same
  draws; discrete states equal exactly, real ones to float32 rounding: inductor may reorder the mean's sum);
* ``benchmarks/run_all.py``'s argument parsing and ``--only`` / ``--skip`` selection (``--dry-run``);
* ``benchmarks/device_check.py`` end to end on the CPU with small sizes (``torch.compile`` replaced by the identity:
  the check's own code runs, not inductor), and its one-line error + exit 2 for a CUDA device on a machine without;
* ``benchmarks/time_to_accuracy.py``: the config selection, the accuracy bars, a budget below the first checkpoint
  ("not reached", no number) and a few-second run on the investment economy (exact reference: nothing to solve);
* ``benchmarks/deepham_profile.py --quick`` end to end on one DeepHAM config (tiny sizes, one timed step per setting).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import hetagents_env
from conftest import ENV_IDS, assert_finite

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import deepham_profile  # noqa: E402
import device_check  # noqa: E402
import run_all  # noqa: E402
import time_to_accuracy  # noqa: E402


def _action(eco, state):
    if eco.env_id == "Investment-v0":
        return eco.lq_policy(state).contiguous()
    return torch.full((state.batch_size[0], eco.n_agents), 0.3, dtype=eco.dtype)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_one_step_with_a_million_agents(env_id):
    n = 10**6
    eco = hetagents_env.make_economy(env_id, n_agents=n)
    state = eco.initial_state(1, eco.generator(0))
    with torch.no_grad():
        action = _action(eco, state)
        next_state, reward = eco.step(state, action, eco.generator(1))
        fused_state, fused_reward = hetagents_env.FusedStep(eco, 1)(state, action, eco.generator(1))
    assert reward.shape == (1, n)
    assert torch.equal(fused_reward, reward)
    for key in state.keys():
        assert next_state[key].shape == state[key].shape
        assert torch.equal(fused_state[key], next_state[key])
        if next_state[key].is_floating_point():
            assert_finite(next_state[key], key)
    assert_finite(reward, "reward")


def _compile_works() -> bool:
    try:
        torch.compile(lambda t: t * 2.0 + 1.0)(torch.ones(3))
        return True
    except Exception:  # no C compiler, unsupported platform
        return False


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_compiled_step_agrees_with_eager(env_id):
    if not _compile_works():
        pytest.skip("torch.compile does not work on this platform")
    eco = hetagents_env.make_economy(env_id, n_agents=33)
    state_ref = state = eco.initial_state(6, eco.generator(0))
    compiled = hetagents_env.FusedStep(eco, 6, compile=True)
    gen_ref, gen = eco.generator(2), eco.generator(2)
    # one compile worker: on a small shared machine the worker pool's start-up costs more than it saves
    with torch.no_grad(), torch._inductor.config.patch(compile_threads=1):
        for _ in range(2):
            action = _action(eco, state_ref)
            state_ref, reward_ref = eco.step(state_ref, action, gen_ref)
            state, reward = compiled(state, action, gen)
            torch.testing.assert_close(reward, reward_ref, rtol=1e-5, atol=1e-6)
            for key in state_ref.keys():
                if state_ref[key].is_floating_point() and key not in ("e",):
                    torch.testing.assert_close(state[key], state_ref[key], rtol=1e-5, atol=1e-6)
                else:  # employment, aggregate state: exactly the same draws and thresholds
                    assert torch.equal(state[key], state_ref[key]), key
            state = state_ref  # keep the two paths on the same state


def test_run_all_selection_and_commands():
    args = run_all.parse_args(["--only", "scaling", "large_n", "--device", "cuda"])
    assert args.quick and run_all.selected(args) == ["large_n", "scaling"]  # suite order
    cmd = run_all.command("large_n", args)
    assert cmd[1].endswith("large_n.py") and "--quick" in cmd and cmd[cmd.index("--device") + 1] == "cuda"
    assert "--device" not in run_all.command("kahou_tables", args)  # CPU-only benchmarks get no device
    full = run_all.parse_args(["--full", "--skip", "deepham_ks", "rl_baselines"])
    assert not full.quick and "--quick" not in run_all.command("env_throughput", full)
    assert run_all.selected(full) == [n for n in run_all.BENCHMARKS if n not in ("deepham_ks", "rl_baselines")]
    assert set(run_all.BENCHMARKS) == {"env_throughput", "facade_overhead", "large_n", "scaling", "kahou_tables",
                                       "ks_classical", "aiyagari", "deepham_ks", "deepham_profile", "rl_baselines",
                                       "time_to_accuracy", "constrained_efficiency"}
    for name in run_all.BENCHMARKS:
        assert (BENCHMARKS / f"{name}.py").exists()


@pytest.mark.parametrize("argv", [["--only", "nope"], ["--skip", "env_throughput", "typo"], ["--threads", "0"],
                                  ["--quick", "--full"]])
def test_run_all_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        run_all.parse_args(argv)
    assert exc.value.code == 2


def test_run_all_dry_run_prints_the_selected_commands(capsys):
    assert run_all.main(["--dry-run", "--only", "ks_classical"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "ks_classical.py" in out[0] and "--quick" in out[0]


# ---------------------------------------------------------------------------------------------- device_check
def _identity_compile(fn=None, **kwargs):
    return fn if fn is not None else (lambda f: f)


def test_device_check_runs_end_to_end_on_the_cpu(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch, "compile", _identity_compile)  # the check's code paths, without inductor's minutes
    threads = torch.get_num_threads()
    try:
        code = device_check.main(["--device", "cpu", "--total", "35", "--threads", "1", "--min-time", "0.05",
                                  "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    result = json.loads((tmp_path / "device_check_quick.json").read_text())
    assert result["small"] and result["device"] == "cpu" and set(result["parts"]) == set(device_check.PARTS)
    assert result["elapsed_s"] <= 35 + device_check.GRACE_S
    for name, part in result["parts"].items():
        assert part["status"] in ("done", "stopped"), (name, part)
        ok = [r for r in part["rows"] if r.get("status") == "ok"]
        assert ok or part["status"] == "stopped", (name, part)
    env = result["parts"]["env"]["rows"]
    assert {r["env"] for r in env} == set(device_check.ENV_IDS)
    for r in env:
        if r["status"] == "ok":
            assert r["agent_steps_per_s"] > 0 and r["mode"] in ("eager", "compiled")
    assert set(result["targets"]) == {"ks_env_rate", "kahou_relu_time", "deepham_time_to_bar"}
    deepham = {r["preset"] for r in result["parts"]["deepham"]["rows"]}
    assert deepham <= {"published", "fast compiled"} and "published" in deepham  # small: the first and the compiled
    out = capsys.readouterr().out
    assert "| part | what | result | note |" in out and (tmp_path / "device_check_quick.md").exists()


def test_device_check_compiled_column_and_out_of_memory_stop(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "compile", _identity_compile)
    calls = {"n": 0}
    import _common

    original = _common.step_inputs

    def fake_step_inputs(env_id, b, n, device, **kwargs):  # the second size "runs out of memory"
        calls["n"] += 1
        if b * n > 16 * 64:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(env_id, b, n, device, **kwargs)

    monkeypatch.setattr(_common, "step_inputs", fake_step_inputs)
    assert device_check.main(["--device", "cpu", "--parts", "env", "--total", "60", "--min-time", "0.02",
                              "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "device_check_quick.json").read_text())["parts"]["env"]["rows"]
    for env_id in device_check.ENV_IDS:
        mine = [r for r in rows if r["env"] == env_id]
        eager = [r for r in mine if r["mode"] == "eager"]
        compiled = [r for r in mine if r["mode"] == "compiled"]
        assert [r["status"] for r in eager] == ["ok", "out of memory"]  # the eager sizes stop growing there
        assert any(r["status"] == "ok" and r["agents"] == 16 * 64 for r in compiled)
        assert all(r["status"] != "ok" for r in compiled if r["agents"] > 16 * 64)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("device", ["cuda", "nonsense"])
def test_device_check_without_the_device_is_one_line_and_exit_2(device, capsys):
    assert device_check.main(["--device", device]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("device_check: error:")


def test_device_check_order_and_shapes():
    shapes = device_check.env_shapes(1e8, small=False)
    assert [b * n for b, n in shapes] == [10**5, 10**6, 10**7, 10**8] and all(n == 1000 for _, n in shapes)
    assert [b * n for b, n in device_check.compiled_order(shapes)] == [10**7, 10**8, 10**6, 10**5]
    assert device_check.is_oom(torch.OutOfMemoryError("x")) and device_check.is_oom(RuntimeError("CUDA out of memory"))
    assert not device_check.is_oom(ValueError("out of memory"))


# ---------------------------------------------------------------------------------------------- time_to_accuracy
def test_time_to_accuracy_selects_the_shipped_configs():
    runs, skipped = time_to_accuracy.select_configs("investment")
    names = {Path(r["config"]).name for r in runs}
    assert {"investment_linear_euler_identity.yaml", "investment_linear_euler_relu.yaml"} <= names
    assert all("nonlinear" not in n and "td0" not in n for n in names)  # ν = 1.5; policy evaluation
    reasons = {Path(s["config"]).name: s["reason"] for s in skipped if s.get("config")}
    assert "nu" in reasons["investment_nonlinear_euler_relu.yaml"]
    assert "policy evaluation" in reasons["investment_td0.yaml"]
    ks_runs, ks_skipped = time_to_accuracy.select_configs("ks")
    ks = {Path(r["config"]).name: r for r in ks_runs}
    assert "ks_deepham_1fm.yaml" in ks and "ks_euler.yaml" in ks
    assert ks["ks_classical_continuum.yaml"]["overrides"] == ["env.n_agents=50"]  # N only sizes the judge's panel
    assert any(s.get("config", "").endswith("ks_classical.yaml") and "N = 10,000" in s["reason"] for s in ks_skipped)


def test_time_to_accuracy_bars():
    ref = {"source": "ks_classical", "euler_test_mean": 1e-3, "K_mean": 40.0, "wealth_gini": 0.25}
    bar = time_to_accuracy.bar_of(ref)
    good = {"K_mean": 40.3, "K_reference": 40.0, "wealth_gini": 0.26, "wealth_gini_reference": 0.25,
            "euler_test_mean": 1.9e-3}
    assert time_to_accuracy.check_bar(good, bar)["met"]
    for key, value in (("K_mean", 40.5), ("wealth_gini", 0.28), ("euler_test_mean", 2.1e-3)):
        verdict = time_to_accuracy.check_bar({**good, key: value}, bar)
        assert not verdict["met"]
    inv = time_to_accuracy.bar_of({"source": "exact"})  # an exact reference: the policy-error bar
    assert time_to_accuracy.check_bar({"euler_test_mean": 9e-4}, inv)["met"]
    assert not time_to_accuracy.check_bar({"euler_test_mean": 1.1e-3}, inv)["met"]
    assert not time_to_accuracy.check_bar({"error": "InvalidPolicyOutput: nan"}, inv)["met"]
    assert time_to_accuracy.plan_checkpoints([15, 30, 60], 45) == [15, 30, 45]
    assert time_to_accuracy.plan_checkpoints([15, 30], 10) == []


def test_time_to_accuracy_set_overrides_every_config_and_names_the_row(tmp_path):
    fast = [BENCHMARKS.parent / "configs" / "ks_deepham_1fm_fast.yaml"]
    (run,), _ = time_to_accuracy.select_configs("ks", fast, extra=["solver.horizon=75", "run.seed=1"])
    assert run["overrides"] == ["solver.horizon=75", "run.seed=1"]
    assert time_to_accuracy.row_label(run) == "`ks_deepham_1fm_fast.yaml` `solver.horizon=75` `run.seed=1`"
    for argv in (["--set", "solver.horizon=75", "run.seed=1"], ["--set", "solver.horizon=75", "--set", "run.seed=1"]):
        assert time_to_accuracy.parse_args(argv).set == ["solver.horizon=75", "run.seed=1"]  # repeated: all kept
    runs, (skip,) = time_to_accuracy.select_configs("ks", fast, extra=["solver.horizn=75"])
    assert runs == [] and "horizn" in skip["reason"]  # a bad override: the row says why, nothing runs
    # merged runs of one config with other overrides stay two rows
    row = {"config": "configs/investment_ppo.yaml", "solver": "ppo", "overrides": []}
    files = []
    for i, overrides in enumerate(([], ["run.seed=1"])):
        result = {"budget_s": 1.0, "machine": {}, "economies": {"investment": {"rows": [{**row, "overrides": overrides}],
                                                                              "skipped": []}}}
        files.append(tmp_path / f"r{i}.json")
        files[-1].write_text(json.dumps(result))
    merged = time_to_accuracy.merge_results(files)
    assert [r["overrides"] for r in merged["economies"]["investment"]["rows"]] == [[], ["run.seed=1"]]


def test_time_to_accuracy_budget_below_the_first_checkpoint_is_not_reached(tmp_path):
    result = time_to_accuracy.main(["--economies", "investment", "--configs", "configs/investment_ppo.yaml",
                                    "--budget", "1", "--no-plot", "--out", str(tmp_path)])
    (row,) = result["economies"]["investment"]["rows"]
    assert row["points"] == [] and row["time_to_bar_s"] is None and row["final"] is None
    assert row["not_reached"].startswith("not reached") and "first checkpoint" in row["not_reached"]
    table = (tmp_path / "time_to_accuracy.md").read_text()
    assert "| ppo | `investment_ppo.yaml` | not reached" in table


def test_time_to_accuracy_scores_the_checkpoints(tmp_path):
    result = time_to_accuracy.main(["--economies", "investment", "--configs",
                                    "configs/investment_linear_euler_identity.yaml", "--budget", "3",
                                    "--checkpoints", "0.3", "1", "--no-welfare", "--out", str(tmp_path)])
    (row,) = result["economies"]["investment"]["rows"]
    assert row["points"], row
    for p in row["points"]:
        assert p["judge_s"] > 0 and p["euler_test_kind"] == "relative_policy_error" and "met" in p["bar"]
        assert p["checkpoint"] is None or p["time"] >= p["checkpoint"]
    met = [p for p in row["points"] if p["bar"]["met"]]
    assert row["time_to_bar_s"] == (met[0]["time"] if met else None)
    saved = json.loads((tmp_path / "time_to_accuracy.json").read_text())
    assert saved["economies"]["investment"]["bar"]["policy_error_max"] == 1e-3
    assert (tmp_path / "time_to_accuracy_investment.png").stat().st_size > 0
    assert time_to_accuracy.render(tmp_path / "time_to_accuracy.json", plots=False)
    merged = time_to_accuracy.main(["--merge", str(tmp_path / "time_to_accuracy.json"),
                                    str(tmp_path / "time_to_accuracy.json"), "--name", "merged", "--no-plot",
                                    "--out", str(tmp_path)])
    assert len(merged["economies"]["investment"]["rows"]) == 1 and (tmp_path / "merged.md").exists()


def test_saved_runs_table_shows_the_euler_split_where_the_judge_gives_one():
    """The saved-runs table: the Euler error with its aggregate / individual parts (Krusell–Smith), the plain error
    where the judge has no split (an exact reference: the policy error)."""
    bar = time_to_accuracy.bar_of({"source": "ks_classical", "euler_test_mean": 1e-3, "K_mean": 40.0,
                                   "wealth_gini": 0.25})
    point = {"checkpoint": "step_00000100.pt", "step": 100, "time": 90.0, "K_mean": 40.1, "K_reference": 40.0,
             "wealth_gini": 0.26, "wealth_gini_reference": 0.25, "euler_test_mean": 1.5e-3,
             "euler_test_aggregate": 1.1e-3, "euler_test_individual": 6e-4, "bar": {"met": True}}
    section = {"label": "KS", "bar": bar, "runs": [{"run": "runs/a", "points": [point]}],
               "reference": {"euler_test_aggregate": 9e-4, "euler_test_individual": 4e-5}}
    table = time_to_accuracy.saved_runs_markdown(section)
    assert "| 1.50e-03 (1.10e-03 / 6.00e-04) | met |" in table and "own: 9.00e-04 / 4.00e-05." in table
    plain = {k: v for k, v in point.items() if k not in ("euler_test_aggregate", "euler_test_individual")}
    table = time_to_accuracy.saved_runs_markdown({**section, "reference": {},
                                                  "runs": [{"run": "a", "points": [plain]}]})
    assert "| 1.50e-03 | met |" in table and "own:" not in table and "individual part" not in table


def test_scored_runs_merge_side_by_side_with_labels_and_a_summary_that_says_whether_the_bar_holds(tmp_path):
    bar = time_to_accuracy.bar_of({"source": "ks_classical", "euler_test_mean": 1e-3, "K_mean": 40.0,
                                   "wealth_gini": 0.25})

    def point(step, met):
        return {"checkpoint": f"step_{step:08d}.pt", "step": step, "time": 60.0 * step / 100, "K_mean": 40.1,
                "wealth_gini": 0.26, "euler_test_mean": 1.5e-3, "bar": {"met": met}}

    files = []
    for i, mets in enumerate(([False, True, False, True], [False, False])):
        section = {"label": "KS", "bar": bar, "reference": {"key": "ref"},
                   "runs": [{"run": f"runs/r{i}", "points": [point(100 * (j + 1), m) for j, m in enumerate(mets)]}]}
        files.append(tmp_path / f"s{i}.json")
        files[-1].write_text(json.dumps({"machine": {"date": "2026-11-30"}, "saved_runs": {"ks": section}}))
    merged = time_to_accuracy.main(["--merge", *map(str, files), "--labels", "seed 0", "seed 1", "--name", "both",
                                    "--out", str(tmp_path)])
    assert [r["label"] for r in merged["saved_runs"]["ks"]["runs"]] == ["seed 0", "seed 1"]
    table = (tmp_path / "both.md").read_text()
    assert "Merged from `s0.json`" in table
    assert "| seed 0 | step 200, 2.0 min | 2 of 3 | 400, 4.0 min |" in table  # met at 200 and 400, not at 300
    assert "| seed 1 | not reached | – | 200, 2.0 min |" in table
    assert "| seed 1 | `step_00000100.pt` |" in table  # the checkpoints' rows name the run by its label
    assert time_to_accuracy.render(tmp_path / "both.json", tmp_path / "again")
    assert (tmp_path / "again" / "both.md").read_text() == table
    with pytest.raises(SystemExit, match="one per run"):
        time_to_accuracy.main(["--merge", *map(str, files), "--labels", "only one", "--out", str(tmp_path)])
    other = json.loads(files[1].read_text())
    other["saved_runs"]["ks"]["reference"]["key"] = "another"
    files[1].write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="another reference"):
        time_to_accuracy.merge_results(files)
    trained = tmp_path / "trained.json"
    trained.write_text(json.dumps({"budget_s": 1.0, "machine": {}, "economies": {}}))
    with pytest.raises(SystemExit, match="cannot be merged"):
        time_to_accuracy.merge_results([files[0], trained])
    with pytest.raises(SystemExit, match="use it with --score-runs or --merge"):
        time_to_accuracy.main(["--labels", "x", "--list"])


def test_time_to_accuracy_scores_the_checkpoints_of_a_cli_run(tmp_path):
    from train.__main__ import main as train_main

    config = str(BENCHMARKS.parent / "configs" / "investment_linear_euler_identity.yaml")
    assert train_main([config, "run.steps=4", "run.checkpoint_every=2", "run.keep_checkpoints=3", "run.budget=null",
                       "run.require_convergence=false",
                       f"run.output_dir={tmp_path / 'runs'}", "eval.trajectories=2", "eval.horizon=3",
                       "logger.mode=disabled"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    result = time_to_accuracy.main(["--economies", "investment", "--score-runs", str(run_dir), "--no-welfare",
                                    "--name", "scored", "--out", str(tmp_path)])
    (run,) = result["saved_runs"]["investment"]["runs"]
    assert run["points"] and run["points"][-1]["step"] == 4  # every kept checkpoint, the last one included
    for p in run["points"]:
        assert p["time"] > 0 and p["euler_test_kind"] == "relative_policy_error" and "met" in p["bar"]
    table = (tmp_path / "scored.md").read_text()
    assert "| run | checkpoint | step |" in table
    (tmp_path / "scored.md").unlink()
    assert time_to_accuracy.render(tmp_path / "scored.json") and (tmp_path / "scored.md").read_text() == table
    with pytest.raises(SystemExit, match="not a run directory"):
        time_to_accuracy.main(["--economies", "investment", "--score-runs", str(tmp_path), "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="exactly one"):
        time_to_accuracy.main(["--score-runs", str(run_dir), "--out", str(tmp_path)])


def test_device_wheels_requirements_never_include_torch():
    import device_wheels

    Requirement, _ = device_wheels._packaging()
    check = device_wheels.requirements()
    assert {Requirement(line).name for line in check} == set(device_wheels.CHECK_NEEDS)
    everything = device_wheels.requirements(all_runtime=True)
    assert set(check) <= set(everything) and "torch" not in {Requirement(line).name for line in everything}
    assert "torchrl" in {Requirement(line).name for line in everything}
    assert device_wheels.EXCLUDE.match("nvidia-cublas-cu12") and device_wheels.EXCLUDE.match("triton")
    assert not device_wheels.EXCLUDE.match("torchrl")
    markers = device_wheels.closure_markers("3.12")
    assert Requirement('orjson; python_version < "3.13"').marker.evaluate(markers)
    assert not Requirement('colorama; platform_system == "Windows"').marker.evaluate(markers)


# ---------------------------------------------------------------------------------------------- deepham_profile
def test_deepham_profile_quick_runs_end_to_end(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        result = deepham_profile.main(["--quick", "--configs", "configs/ks_deepham_1fm.yaml", "--steps", "1",
                                       "--warmup", "0", "--step-threads", "1", "2", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    saved = json.loads((tmp_path / "deepham_profile_quick.json").read_text())
    assert saved["quick"] and saved["machine"]["load_average_after"] and len(saved["configs"]) == 1
    (c,) = result["configs"]
    assert c["setup"]["construct_s"] > 0 and c["setup"]["first_value_fit_s"] > 0
    assert c["setup"]["value_fit_metrics"]["value_fits"] == 1
    grid = deepham_profile.QUICK_GRID
    assert len(c["grid"]) == 2 * len(grid["dtype"]) * len(grid["batch_size"]) * len(grid["horizon"])
    (published,) = [r for r in c["grid"] if r["published"]]
    assert (published["dtype"], published["batch_size"], published["horizon"], published["threads"]) == \
        ("float64", 8, 10, 1) and published["speedup_vs_published"] == 1.0
    assert {r["torch_threads"] for r in c["grid"]} == {1, 2}
    for r in c["grid"]:
        assert r["median_s"] > 0 and set(r["phases_median_s"]) == {"draw", "forward", "adam", "backward"}
    assert set(c["profiles"]) == {"float64", "float32"}
    for prof in c["profiles"].values():
        assert 0 < len(prof["top"]) <= deepham_profile.TOP_OPS and prof["aten_calls_per_step"] > 0
        pct = [t["self_cpu_pct"] for t in prof["top"]]
        assert pct == sorted(pct, reverse=True) and sum(pct) <= 100.0 + 1e-6
    assert c["projection"]["value_fits"] >= 1 and c["projection"]["total_s"] > 0
    table = (tmp_path / "deepham_profile_quick.md").read_text()
    assert table.startswith("*Machine:") and "| op | self CPU % |" in table and "What dominates" in table
    assert "| op | self CPU % |" in capsys.readouterr().out


def test_deepham_profile_compile_periods_lever(tmp_path, monkeypatch):
    """``--grid compile=false,true compile_periods=1,3``: periods per call only with compile (no row pairs 3 periods
    with an eager step), a column and a lever line saying so (torch.compile replaced by the identity: the paths only)."""
    monkeypatch.setattr(torch, "compile", _identity_compile)
    threads = torch.get_num_threads()
    try:
        result = deepham_profile.main(["--quick", "--configs", "configs/ks_deepham_1fm.yaml", "--steps", "1",
                                       "--warmup", "0", "--step-threads", "1", "--grid", "dtype=float64",
                                       "batch_size=8", "horizon=10", "compile=false,true", "compile_periods=1,3",
                                       "--tag", "_periods", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    rows = result["configs"][0]["grid"]
    assert sorted((r["compile"], r["compile_periods"]) for r in rows) == [(False, 1), (True, 1), (True, 3)]
    table = (tmp_path / "deepham_profile_quick_periods.md").read_text()
    assert "| yes, 3 periods per call |" in table and "3 periods per compiled call" in table


@pytest.mark.parametrize("item", ["speed=1,2", "compile=yes", "batch_size=8,x", "horizon", "compile_periods=1,x"])
def test_deepham_profile_refuses_a_bad_lever(item, capsys):
    with pytest.raises(SystemExit) as err:
        deepham_profile.main(["--quick", "--grid", item])
    assert err.value.code == 2 and "--grid" in capsys.readouterr().err
