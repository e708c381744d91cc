"""Resuming runs: damaged and foreign checkpoints, configs that changed, W&B runs that continue, parameters that only
fit float64, and every registered solver interrupted after its first checkpoint and resumed to the same result.

Everything runs in this process through ``train.__main__.main(argv)`` on tiny settings (N = 8, a few steps). An
interruption is a ``KeyboardInterrupt`` raised right after the first checkpoint is written, from inside the solver's
training loop: what Ctrl-C or SIGTERM (turned into ``KeyboardInterrupt`` by the command line) does to a run.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import time
from pathlib import Path

import pytest
import torch
import yaml

import agents
import hetagents_env
from test_cli import cli, error_line
from test_cli import write_config as cli_write_config
from test_every_solver import TINY as EVERY_SOLVER_TINY
from train.checkpoint import CheckpointDir, CheckpointError, atomic_save, load_checkpoint
from train.config import load_experiment

ROOT = Path(__file__).resolve().parents[1]

#: a tiny investment economy solved by the Euler solver: 2 steps per epoch, a checkpoint every 2 steps
TINY = {
    "env": {"id": "Investment-v0", "n_agents": 8},
    "solver": {"name": "euler", "network": {"phi": "mlp", "latent": 2, "phi_widths": [8], "rho_widths": [8]},
               "train_trajectories": 2, "val_trajectories": 1, "horizon": 7, "batch_size": 8, "max_epochs": 3},
    "eval": {"enabled": False},
    "logger": {"mode": "disabled", "progress": False, "figures": False},
    "run": {"steps": 6, "checkpoint_every": 2, "keep_checkpoints": 3, "require_convergence": False},
}


def write_config(tmp_path: Path, data: dict | None = None, name: str = "tiny.yaml") -> Path:
    """test_cli's writer, the output directory always under ``tmp_path`` (configs derived from shipped ones name
    ``runs/``)."""
    data = json.loads(json.dumps(TINY if data is None else data))
    data.setdefault("run", {})["output_dir"] = str(tmp_path / "runs")
    return cli_write_config(tmp_path, data, name)


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


@pytest.fixture
def interrupt_after_first_checkpoint(monkeypatch):
    """The next run stops (KeyboardInterrupt) right after it writes its first checkpoint, inside the training loop."""
    save = CheckpointDir.save
    calls = []

    def save_then_stop(self, step, payload):
        path = save(self, step, payload)
        calls.append(step)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(CheckpointDir, "save", save_then_stop)
    yield calls
    monkeypatch.undo()


def without_times(value):
    """``value`` without the entries that measure time (wall_time, cpu_time, seconds, ...): they differ between
    runs."""
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if not any(t in str(k) for t in ("time", "seconds"))}
    if isinstance(value, (list, tuple)):
        return [without_times(v) for v in value]
    return value


def assert_same(a, b, where: str = "", rtol: float = 0.0) -> None:
    """Exactly equal plain structures and tensors (``rtol`` > 0: numbers and tensors within that relative error)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (where, set(a) ^ set(b) if isinstance(b, dict) else b)
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}", rtol)
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]", rtol)
    elif isinstance(a, torch.Tensor):
        if rtol:
            torch.testing.assert_close(a, b, rtol=rtol, atol=rtol, equal_nan=True, msg=where)
        else:
            assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.nan_to_num(), b.nan_to_num()), where
    elif isinstance(a, float) and isinstance(b, float):
        assert a == b or math.isnan(a) and math.isnan(b) or rtol and math.isclose(a, b, rel_tol=rtol), (where, a, b)
    else:
        assert a == b, (where, a, b)


# ---------------------------------------------------------------------------------------------- 1. damaged files
@pytest.mark.parametrize("damage", ["random", "truncated", "empty", "zeros", "not_ours"])
def test_a_damaged_file_is_a_checkpoint_error_without_torchs_advice(tmp_path, damage):
    good = tmp_path / "good.pt"
    atomic_save({"format": 1, "step": 2, "solver": {}, "rng": {}}, good)
    blob = {"random": os.urandom(1024), "truncated": good.read_bytes()[:200], "empty": b"", "zeros": bytes(1024),
            "not_ours": None}[damage]
    bad = tmp_path / "step_00000004.pt"
    if blob is None:
        torch.save({"weights": torch.ones(2)}, bad)
    else:
        bad.write_bytes(blob)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bad)
    message = str(err.value)
    assert str(bad) in message and "not a valid checkpoint of this run" in message and "\n" not in message
    assert "weights" not in message.lower()
    assert err.value.__context__ is None or err.value.__suppress_context__  # torch's message is not chained either


def test_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, capsys):
    path = write_config(tmp_path)
    code, _, err = cli([path, "run.name=full"], capsys)
    assert code == 0, err
    full = tmp_path / "runs" / "full"
    final = summary(full)["final_metrics"]
    ckpts = CheckpointDir(full / "checkpoints")
    assert [s for s, _ in ckpts.files()] == [2, 4, 6]
    latest = ckpts.latest()
    latest.write_bytes(os.urandom(1024))  # the newest checkpoint overwritten by 1 kB of random bytes

    code, out, err = cli(["--resume", full], capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(latest) in warnings[0] and "not a valid checkpoint of this run" in warnings[0]
    assert "step_00000006.pt.unusable" in warnings[0]
    assert "from step_00000004.pt (step 4)" in out
    assert "weights_only" not in out + err and "weights only" not in (out + err).lower()
    assert (full / "checkpoints" / "step_00000006.pt.unusable").is_file()
    assert [s for s, _ in ckpts.files()] == [2, 4, 6]  # step 6 written again by the resumed run
    resumed = summary(full)
    assert resumed["resumed_from"].endswith("step_00000004.pt") and len(resumed["skipped_checkpoints"]) == 1
    assert_same(without_times(resumed["final_metrics"]), without_times(final))

    # every checkpoint damaged: a one-line error (exit 2) naming each file tried; nothing is changed
    for _, file in ckpts.files():
        file.write_bytes(file.read_bytes()[:100])
    before = sorted(p.name for p in (full / "checkpoints").iterdir())
    code, out, err = cli(["--resume", full], capsys)
    assert code == 2
    line = error_line(err)
    assert "no intact checkpoint" in line
    for name in ("step_00000002.pt", "step_00000004.pt", "step_00000006.pt"):
        assert name in line
    assert "weights" not in line.lower()
    assert sorted(p.name for p in (full / "checkpoints").iterdir()) == before


def test_a_checkpoint_of_another_config_is_skipped_naming_the_differing_keys(tmp_path, capsys):
    path = write_config(tmp_path)
    assert cli([path, "run.name=run"], capsys)[0] == 0
    run = tmp_path / "runs" / "run"
    data = load_checkpoint(CheckpointDir(run / "checkpoints").latest())
    data["config"]["solver"]["lr"] = 0.5
    data["config"]["env"]["n_agents"] = 16
    atomic_save(data, run / "checkpoints" / "step_00000008.pt")  # e.g. copied over from another run
    code, out, err = cli(["--resume", run], capsys)
    assert code == 0, err
    warning = next(line for line in err.splitlines() if line.startswith("warning:"))
    assert "step_00000008.pt" in warning and "another config" in warning
    assert "solver.lr" in warning and "env.n_agents" in warning
    assert "from step_00000006.pt (step 6)" in out


def _changed_solver_key(config: Path, section: dict) -> str:
    """An override of one numeric solver setting that still validates (what a user might change)."""
    for key, value in section.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or key == "seed":
            continue
        override = f"solver.{key}={value + 1 if isinstance(value, int) else value * 0.5!r}"
        try:
            load_experiment(config, [override])
        except ValueError:
            continue
        return override
    pytest.fail(f"no numeric solver setting of {config} to change")


@pytest.mark.parametrize("solver_name", agents.list_solvers())
def test_every_solver_refuses_to_resume_with_another_config(solver_name, tmp_path, capsys):
    config = tiny_config(solver_name, tmp_path)
    exp = load_experiment(config)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(exp.to_yaml())  # a run directory as the first session leaves it
    solver_override = _changed_solver_key(config, exp.to_dict()["solver"])
    n_agents = exp.env.n_agents + 2
    code, _, err = cli(["--resume", run, solver_override, f"env.n_agents={n_agents}"], capsys)
    assert code == 2
    line = error_line(err)
    assert solver_override.split("=")[0] in line and "env.n_agents" in line and "differ" in line
    assert not (run / "checkpoints").exists() and not (run / "summary.json").exists()


# ---------------------------------------------------------------------------------------------- 2. W&B
def wandb_records(path: Path):
    """The records of a W&B transaction log (``run-<id>.wandb``: a 7-byte header, then 32 KiB blocks of records
    with a 7-byte header each: crc32, length, type 1 full / 2 first / 3 middle / 4 last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, part = path.read_bytes(), 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # the block's trailer is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        if kind == 0:
            break
        part += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(part)
            part = b""
            yield record


def wandb_steps_and_run(path: Path) -> tuple[list[int], object]:
    """The steps of the training records and the run record of a transaction log, once complete (W&B's service may
    still be writing it when ``finish()`` returns)."""
    deadline = time.monotonic() + 20
    while not any(r.WhichOneof("record_type") == "exit" for r in wandb_records(path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    steps, run = [], None
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
        elif kind == "history":
            items = {item.key or "/".join(item.nested_key): item.value_json for item in record.history.item}
            if "train_loss" in items:
                steps.append(int(items["_step"]))
    return steps, run


def test_a_resumed_wandb_run_continues_the_same_run(tmp_path, capsys, monkeypatch, interrupt_after_first_checkpoint):
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    data = json.loads(json.dumps(TINY))
    data["logger"]["mode"] = None  # from $WANDB_MODE
    path = write_config(tmp_path, data)
    code, _, err = cli([path, "run.name=wb"], capsys)
    assert code == 130, err
    run = tmp_path / "runs" / "wb"
    run_id = (run / "wandb_run_id").read_text().strip()
    interrupt_after_first_checkpoint.append("done")  # no more interruptions
    code, out, err = cli(["--resume", run], capsys)
    assert code == 0, err

    # W&B (0.31) writes one directory per session; both are the one run, the second resuming it
    dirs = sorted(glob.glob(str(run / "wandb" / "offline-run-*")))
    # (a session started within the same second as the previous one gets W&B's "-1" suffix)
    assert len(dirs) == 2 and all(re.search(rf"-{run_id}(-\d+)?$", d) for d in dirs)
    assert (run / "wandb_run_id").read_text().strip() == run_id
    assert summary(run)["wandb_offline_dirs"] == dirs
    assert f"wandb sync {' '.join(dirs)}" in out  # the upload command names every session, oldest first
    first, first_run = wandb_steps_and_run(Path(dirs[0]) / f"run-{run_id}.wandb")
    second, second_run = wandb_steps_and_run(Path(dirs[1]) / f"run-{run_id}.wandb")
    assert first_run.run_id == second_run.run_id == run_id and second_run.resume
    # the step axis continues from the checkpoint (step 2): the first session logged step 2, the second 4 and 6
    assert first == [2] and second == [4, 6]


# ---------------------------------------------------------------------------------------------- 3. float32
@pytest.mark.parametrize("env_id, name", [("KrusellSmith-v0", "k_init"), ("Aiyagari-v0", "k_init"),
                                          ("Investment-v0", "x0_mean")])
def test_parameters_that_only_fit_float64_are_refused_for_float32(env_id, name):
    hetagents_env.make_economy(env_id, n_agents=4, dtype=torch.float64, **{name: 1e300})  # fine in float64
    for build in (lambda: hetagents_env.make_economy(env_id, n_agents=4, dtype=torch.float32, **{name: 1e300}),
                  lambda: hetagents_env.make(env_id, n_agents=4, dtype=torch.float32, **{name: 1e300}),
                  lambda: hetagents_env.make_economy(env_id, n_agents=4, dtype=torch.float64,
                                                     **{name: 1e300}).with_dtype(torch.float32)):
        with pytest.raises(ValueError) as err:
            build()
        message = str(err.value)
        assert f"'{name}'" in message and "1e+300" in message and "torch.float32" in message


@pytest.mark.parametrize("validate", [False, True])
def test_the_command_line_refuses_a_float32_run_with_k_init_1e300(tmp_path, capsys, validate):
    config = ROOT / "configs" / "ks_euler.yaml"
    argv = [config, "run.dtype=float32", "env.params.k_init=1e300", "env.n_agents=8", f"run.output_dir={tmp_path}"]
    code, out, err = cli(argv + (["--validate"] if validate else []), capsys)
    assert code == 2
    line = error_line(err)
    assert "'k_init'" in line and "1e+300" in line and "float32" in line
    assert not list(tmp_path.iterdir())  # refused before a run directory was made


# ---------------------------------------------------------------------------------------------- 4. every solver
#: per solver, on top of test_every_solver's tiny settings: logging (and so checkpoints) every step or epoch. A solver
#: missing from both runs its first shipped config with N = 8 and 6 steps (settings it lacks are dropped).
RESUME = {
    "euler": dict(train_trajectories=2, val_trajectories=1, horizon=7, batch_size=8, max_epochs=3),
    "deepham": dict(val_every=1, value_every=2),
    "td0": dict(horizon=4, log_every=1),
    "ppo": dict(horizon=4, log_every=1),
    "ddpg": dict(horizon=4, log_every=1),
    "td3": dict(horizon=4, log_every=1),
    "sac": dict(num_envs=4, horizon=4, warmup=4, buffer_size=64, batch_size=8, log_every=1),
    "ks_classical": dict(k_points=12, periods=40, burn_in=10, policy_tol=1e-3),
    "aiyagari_stationary": dict(asset_points=40, histogram_points=80, r_tol=1e-6, egm_tol=1e-8),
}
#: run.steps and run.checkpoint_every per solver (default 6 and 2; a one-step solve has one step)
STEPS = {"ks_classical": (3, 1), "aiyagari_stationary": (1, 1)}
#: solvers that cannot be resumed bit for bit, with the relative tolerance of the comparison and why
TOLERANCE: dict[str, tuple[float, str]] = {}  # none today: every registered solver resumes bit for bit on CPU


def filled_replay(solver_state: dict) -> dict:
    """The solver state with its replay storage (if any) cut to the filled rows: the rest is uninitialised memory."""
    replay = solver_state.get("replay")
    if not replay or not replay["_storage"]["initialized"]:
        return solver_state
    rows = replay["_storage"]["_len"]
    storage = {k: v[:rows] for k, v in replay["_storage"]["_storage"].items()}
    return {**solver_state, "replay": {**replay, "_storage": {**replay["_storage"], "_storage": storage}}}


def tiny_config(solver_name: str, tmp_path: Path) -> Path:
    """The first shipped config of ``solver_name`` with tiny settings (N = 8, no judge, no W&B)."""
    shipped = next((p for p in sorted(ROOT.glob("configs/*.yaml"))
                    if (yaml.safe_load(p.read_text()).get("solver") or {}).get("name") == solver_name), None)
    if shipped is None:
        pytest.fail(f"no config in configs/ uses solver {solver_name!r}: ship one (the resume tests derive theirs)")
    data = yaml.safe_load(shipped.read_text())
    fields = agents.solvers.SOLVERS[solver_name].Config.__dataclass_fields__
    tiny = {**EVERY_SOLVER_TINY.get(solver_name, {}), **RESUME.get(solver_name, {})}
    if "log_every" in fields:
        tiny.setdefault("log_every", 1)
    data["solver"].update({k: v for k, v in tiny.items() if k in fields})
    steps, every = STEPS.get(solver_name, (6, 2))
    data["env"]["n_agents"] = 8
    data["eval"] = {"enabled": False}
    data["logger"] = {"mode": "disabled", "progress": False, "figures": False}
    data["run"].update(steps=steps, checkpoint_every=every, budget=None, device="cpu", require_convergence=False,
                       output_dir=str(tmp_path / "runs"), keep_checkpoints=2)
    path = tmp_path / f"{solver_name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("solver_name", agents.list_solvers())
def test_every_solver_is_interruptible_and_resumes_to_the_same_result(solver_name, tmp_path, capsys,
                                                                       interrupt_after_first_checkpoint):
    config = tiny_config(solver_name, tmp_path)
    steps, every = STEPS.get(solver_name, (6, 2))
    code, _, err = cli([config, "run.name=cut"], capsys)  # interrupted right after its first checkpoint
    assert code == 130, err
    cut = tmp_path / "runs" / "cut"
    assert summary(cut)["status"] == "interrupted"
    assert [s for s, _ in CheckpointDir(cut / "checkpoints").files()] == [every]
    interrupt_after_first_checkpoint.append("done")  # no more interruptions
    code, out, err = cli([config, "run.name=full"], capsys)
    assert code == 0, err
    code, out, err = cli(["--resume", cut], capsys)
    assert code == 0, err
    assert f"(step {every})" in out

    full = tmp_path / "runs" / "full"
    rtol = TOLERANCE.get(solver_name, (0.0, ""))[0]
    assert summary(cut)["step"] == summary(full)["step"] == steps
    assert_same(without_times(summary(cut)["final_metrics"]), without_times(summary(full)["final_metrics"]),
                "final_metrics", rtol)
    records = [[json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (cut, full)]
    assert_same(without_times(records[0]), without_times(records[1]), "metrics.jsonl", rtol)
    # the whole final state: parameters, optimiser moments, RNG states, replay buffers, data
    states = [load_checkpoint(CheckpointDir(run / "checkpoints").latest()) for run in (cut, full)]
    assert_same(*(without_times(filled_replay(state["solver"])) for state in states), "solver", rtol)
    assert_same(states[0]["rng"], states[1]["rng"], "rng", rtol)
