"""Smoke tests of the large-N path and the benchmark runner (seconds, no benchmark is run):

* one step with N = 10⁶ agents of each economy (eager and :class:`hetagents_env.FusedStep`): shapes, finiteness;
* the ``torch.compile``-d fused step agrees with the eager step on small shapes (same generator state -> the same
  draws; discrete states equal exactly, real ones to float32 rounding: inductor may reorder the mean's sum);
* ``benchmarks/run_all.py``'s argument parsing and ``--only`` / ``--skip`` selection (``--dry-run``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import hetagents_env
from conftest import ENV_IDS, assert_finite

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import run_all  # noqa: E402


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
                                       "ks_classical", "aiyagari", "deepham_ks", "rl_baselines"}
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
