"""The reference-based judge: a policy scored against the economy's reference solution.

* the reference scored against itself: welfare loss 0, Wasserstein distance 0 (common random numbers), small
  Euler errors;
* a perturbed reference (consumption share × (1 ± ε)) loses the second-order amount the calculation below predicts;
* a constant consumption share ranks below the reference on every reference-based metric (the Bellman error ranks
  it above the published DeepHAM, see agents/bellman.py);
* the common test states are the same for two solvers and two runs;
* the disk cache: hit, and recomputed (with a warning) on a mismatched, corrupted or tampered entry;
* bad policy outputs are reported with what and where, never averaged.

Welfare of a perturbed optimum. Consuming c = (1 + ε) c*(x) instead of the optimal c*(x) changes lifetime utility
only at second order (envelope theorem: the first-order terms cancel). In the permanent-income case (log utility,
β(1 + r) = 1, c* = r/(1+r) · total wealth W) the deviator's wealth follows W_t = (1 − εr)^t W_0, so
V_ε − V* = [log(1 + ε)(1 + r)/r + log(1 − εr)(1 + r)/r²] and the consumption equivalent is
λ = 1 − exp((1 − β)(V_ε − V*)) = (1 + r) ε²/2 + O(ε³) ≈ ε²/2. On the Krusell–Smith economy (accurate continuum
reference, N = 50, 1,024 households) we measured λ = 0.0182 % ± 0.0020 (ε = 0.02), 0.0200 % ± 0.0018 (ε = −0.02),
0.0046 % ± 0.0010 (ε = 0.01) against ε²/2 = 0.0200 % and 0.0050 %. The quick reference of these tests (and the
N = 20 economy, whose K it forecasts less well) is not exactly optimal, which adds a first-order term g·ε; the mean
of λ(+ε) and λ(−ε) cancels it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path

import pytest
import torch

import agents
import hetagents_env
from agents.evaluate import EvaluationResult, evaluate
from agents.policy_check import CheckedPolicy, InvalidPolicyOutput
from agents.reference import ReferenceProtocol, ReferenceUnavailable, reference_for
from agents.reference_cache import default_cache_dir
from agents.reference_judge import score_against_reference
from agents.reference_metrics import simulate_stationary
from agents.solvers import SOLVERS, Solver, register_solver

#: a quick continuum (histogram) solve of the classical algorithm (MMV's k grid, a short, coarse histogram): ≈ 15 s.
#: Its first-order term g·ε at ε = 0.02 is ≈ −0.005 % on N = 20 (λ(+ε) 0.014 %, λ(−ε) 0.024 %); with 40 k points
#: it is ≈ −0.008 %, too large to see the second-order loss in λ(+ε) alone.
QUICK = {"simulation": "histogram", "k_points": 100, "periods": 600, "burn_in": 100, "policy_tol": 1e-7,
         "alm_tol": 1e-6, "histogram_points": 1000, "histogram_k_max": 400.0}
#: smaller samples than the judge's defaults
PROTOCOL = ReferenceProtocol(pool_economies=32, pool_burn_in=2000, stationary_periods=300, welfare_economies=256)
N = 20


def ks(n: int = N, dtype=torch.float64, **params):
    return hetagents_env.make_economy("KrusellSmith-v0", n_agents=n, dtype=dtype, **params)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("references")


@pytest.fixture(scope="module")
def ref(cache):
    torch.set_num_threads(1)
    return reference_for(ks(), cache_dir=cache, config=QUICK, protocol=PROTOCOL)


@pytest.fixture(scope="module")
def self_score(ref):
    return score_against_reference(ref.policy, ref.economy, ref)


def scaled(ref, factor):
    return lambda state: (ref.policy(state) * factor).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------------------------- the metrics
def test_the_reference_against_itself_scores_zero(ref, self_score):
    out = self_score
    assert out["welfare"]["mean_pct"] == 0.0 and out["welfare"]["kind"] == "consumption_equivalent"
    stat = out["stationary"]
    assert stat["wasserstein"] == 0.0  # same policy, same start, same shocks
    assert 0.0 < stat["wasserstein_noise"] < 0.05 * stat["reference"]["K_mean"]  # other shocks: the noise level
    assert stat["policy"] == stat["reference"]
    assert stat["burn_in"] == ref.economy.mixing_periods == 1000
    assert 0.15 < stat["reference"]["wealth_gini"] < 0.35 and 38.0 < stat["reference"]["K_mean"] < 41.0
    # the quick reference satisfies its Euler equation to ~1e-3 (0.1 %) on its ergodic set
    assert out["errors_test"]["kind"] == "relative_euler" and out["errors_test"]["mean"] < 3e-3
    assert out["errors_own"]["mean"] < 3e-3 and out["errors_test"]["count"] == ref.protocol.test_states * N == 64 * N


def test_the_euler_error_splits_into_an_aggregate_and_an_individual_part(ref, self_score):
    """``aggregate_mean`` (the part of the error every household of a state shares) and ``individual_mean`` (the
    rest): the reference errs in its approximate aggregate law, alike for every household; a consumption share 5 %
    higher for everyone adds to the aggregate part, one ±5 % for the poorer / richer half of each state to the
    individual part alone; the mean error is never above their sum."""
    def part(policy):
        return score_against_reference(policy, ref.economy, ref, stationary=False, welfare=False)["errors_test"]

    def split(state):
        sign = torch.where(state["k"] < state["k"].median(-1, keepdim=True).values, 1.0, -1.0)
        return (ref.policy(state) * (1 + 0.05 * sign)).clamp(0.0, 1.0)

    own, level, spread = self_score["errors_test"], part(scaled(ref, 1.05)), part(split)
    assert own["aggregate_mean"] > 5 * own["individual_mean"]
    assert level["aggregate_mean"] > 3 * level["individual_mean"] and level["aggregate_mean"] > 1.5 * own["mean"]
    assert spread["individual_mean"] > 10 * own["individual_mean"]  # (the share moves the Euler gap much less than
    assert spread["aggregate_mean"] < 1.2 * own["aggregate_mean"]   # 5 %: tomorrow's consumption moves with it)
    for errors in (own, level, spread):
        assert errors["mean"] <= errors["aggregate_mean"] + errors["individual_mean"] + 1e-15


def test_a_perturbed_reference_loses_the_second_order_amount(ref):
    eps = 0.02
    losses = [score_against_reference(scaled(ref, 1 + e), ref.economy, ref, stationary=False)["welfare"]
              for e in (eps, -eps)]
    for w in losses:
        assert w["mean_pct"] > 2 * w["se_pct"] > 0  # positive, both ways
    mean = 0.5 * (losses[0]["mean_pct"] + losses[1]["mean_pct"])  # the first-order term cancels
    se = 0.5 * math.hypot(losses[0]["se_pct"], losses[1]["se_pct"])
    predicted = 100 * eps**2 / 2
    assert abs(mean - predicted) < 0.3 * predicted + 3 * se, (mean, se, predicted)


def test_a_constant_share_ranks_below_the_reference_on_every_reference_metric(ref, self_score):
    good = self_score
    const = score_against_reference(ref.economy.neutral_policy(), ref.economy, ref)
    for where in ("errors_test", "errors_own"):
        for stat in ("mean", "p99", "max"):
            assert const[where][stat] > 3 * good[where][stat], (where, stat)
    assert const["stationary"]["wasserstein"] > 5 * const["stationary"]["wasserstein_noise"]
    ours, target = const["stationary"]["policy"], const["stationary"]["reference"]
    assert ours["wealth_gini"] < 0.5 * target["wealth_gini"]  # the degenerate distribution of a constant share
    w = const["welfare"]
    assert w["mean_pct"] > 0.1 and w["mean_pct"] > 5 * w["se_pct"]


def test_common_test_states_are_the_same_for_two_solvers_and_two_runs(ref, cache):
    again = reference_for(ks(), cache_dir=cache, config=QUICK, protocol=PROTOCOL)  # a second run: from the cache
    assert again.metadata["cached"] and again.key == ref.key
    assert all(torch.equal(again.test_states[k], ref.test_states[k]) for k in ref.test_states.keys())
    kw = dict(trajectories=2, horizon=3, den_haan=False, welfare=False)
    a = evaluate(ref.policy, ks(), reference=again, **kw)
    b = evaluate(ks().neutral_policy(), ks(), reference=ref, **kw)
    assert a.reference["test_states_digest"] == b.reference["test_states_digest"]
    assert a.reference["status"] == b.reference["status"] == "scored" and "welfare" not in a.reference
    assert b.reference_metric("errors_test.mean") > 3 * a.reference_metric("errors_test.mean")


def test_the_judge_scores_a_float32_policy_against_the_float64_reference(ref):
    eco32 = ks(dtype=torch.float32)
    out = score_against_reference(lambda s: ref.policy(s).float(), eco32, ref, welfare=False)
    assert out["errors_test"]["mean"] < 3e-3 and out["stationary"]["wasserstein"] < out["stationary"][
        "wasserstein_noise"]


# ---------------------------------------------------------------------------------------------- the judge's switch
def test_auto_skips_an_uncached_reference_and_says_why(tmp_path):
    result = evaluate(ks().neutral_policy(), ks(), reference="auto", reference_cache=tmp_path, trajectories=2,
                      horizon=3, den_haan=False)
    assert result.reference["status"] == "skipped" and "not cached" in result.reference["reason"]
    assert evaluate(ks().neutral_policy(), ks(), reference=False, trajectories=2, horizon=3,
                    den_haan=False).reference is None


def test_a_reference_for_another_economy_is_refused(ref):
    with pytest.raises(ValueError, match="N = 20"):
        evaluate(ks(10).neutral_policy(), ks(10), reference=ref, trajectories=2, horizon=3, den_haan=False)


def test_the_exact_lq_reference_of_the_investment_economy():
    economy = hetagents_env.make_economy("Investment-v0", n_agents=16, dtype=torch.float64)
    exact = evaluate(economy.lq_policy, economy, trajectories=2, horizon=3)  # auto: exact, nothing solved
    r = exact.reference
    assert r["status"] == "scored" and r["source"] == "exact" and r["cached"] is False
    assert r["errors_test"]["kind"] == "relative_policy_error" and r["errors_test"]["max"] < 1e-12
    assert r["welfare"]["kind"] == "relative_value_loss" and r["welfare"]["mean_pct"] == 0.0
    assert r["stationary"]["wasserstein"] == 0.0 and r["stationary"]["policy"]["consumption_gini"] is None
    assert EvaluationResult.from_json(exact.to_json()).reference == json.loads(exact.to_json())["reference"]
    h0, h1 = economy.lq_coefficients()
    off = evaluate(lambda s: economy.lq_policy(s) + 0.1 * h0, economy, trajectories=2, horizon=3).reference
    u_star = h0 + h1 * h0 / (economy.params.delta - h1)  # the LQ investment at the ergodic mean of X
    assert off["errors_test"]["mean"] == pytest.approx(0.1 * h0 / u_star, rel=0.1)
    assert off["welfare"]["mean_pct"] > 0 and off["stationary"]["wasserstein"] > off["stationary"]["wasserstein_noise"]


def test_an_economy_without_a_reference_is_skipped_with_the_reason():
    economy = hetagents_env.make_economy("Investment-v0", n_agents=8, nu=1.5)
    result = evaluate(economy.data_policy(), economy, trajectories=2, horizon=3)
    assert result.reference["status"] == "skipped" and "no reference" in result.reference["reason"]


def test_default_reference_config_is_the_default_config():
    economy = ks()
    for cls in SOLVERS.values():
        if cls.supports(economy) and cls.reference_config.__func__ is Solver.reference_config.__func__:
            assert cls.reference_config(economy) == cls.default_config(economy)


# ---------------------------------------------------------------------------------------------- the cache
class _ConstantShare(Solver):
    """A stand-in reference solver (a constant share) that counts its solves."""

    solves = 0

    def __init__(self, economy, config=None):
        super().__init__(economy, config)
        self.policy = agents.networks.CallablePolicy(economy.neutral_policy())

    def train(self, steps=None, *, budget=None, callback=None, progress=None):
        type(self).solves += 1
        return {"converged": True}


@pytest.fixture
def fake(monkeypatch):
    name = "test_constant_share_reference"
    register_solver(name)(_ConstantShare)
    _ConstantShare.solves = 0
    small = ReferenceProtocol(pool_economies=4, pool_burn_in=20, pool_snapshots=2, pool_spacing=2, test_states=4,
                              stationary_economies=2, stationary_burn_in=5, stationary_periods=10, welfare_economies=2,
                              welfare_tail=0.5)

    def make(n=4, **params):
        economy = ks(n, **params)
        economy.reference_solver = name  # this instance only (the economy is float64: with_dtype returns it)
        return economy

    yield make, small
    SOLVERS.pop(name, None)


def test_a_cached_reference_is_not_solved_again(fake, tmp_path):
    make, small = fake
    first = reference_for(make(), cache_dir=tmp_path, protocol=small)
    second = reference_for(make(), cache_dir=tmp_path, protocol=small)
    assert _ConstantShare.solves == 1 and not first.metadata["cached"] and second.metadata["cached"]
    assert second.metadata["samples_cached"] and len(list(tmp_path.glob("*.pt"))) == 2  # solution and samples
    fresh = reference_for(make(), cache_dir=tmp_path / "elsewhere", protocol=small)  # solved and drawn again
    assert fresh.key == first.key and not fresh.metadata["cached"]
    assert all(torch.equal(fresh.test_states[k], first.test_states[k]) for k in first.test_states.keys())
    reference_for(make(5), cache_dir=tmp_path, protocol=small)  # another N: another key
    reference_for(make(beta=0.98), cache_dir=tmp_path, protocol=small)  # other parameters: another key
    assert _ConstantShare.solves == 4 and len(list(tmp_path.glob("*.pt"))) == 6
    with pytest.raises(ReferenceUnavailable, match="not cached"):
        reference_for(make(6), cache_dir=tmp_path, protocol=small, solve=False)


@pytest.mark.parametrize("field, value", [("test_states", 0), ("pool_burn_in", -1), ("welfare_tail", 1.0),
                                          ("stationary_thin", 2.5)])
def test_a_bad_protocol_is_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ReferenceProtocol(**{field: value})


def test_the_cache_directory_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HETAGENTS_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("HETAGENTS_CACHE")
    assert default_cache_dir().parts[-3:] == (".cache", "hetagents", "references")


def test_another_protocol_draws_new_samples_from_the_cached_solution(fake, tmp_path):
    make, small = fake
    first = reference_for(make(), cache_dir=tmp_path, protocol=small)
    other = reference_for(make(), cache_dir=tmp_path, protocol=dataclasses.replace(small, test_states=3))
    assert _ConstantShare.solves == 1 and other.metadata["cached"] and not other.metadata["samples_cached"]
    assert other.key != first.key and other.test_states.batch_size[0] == 3


@pytest.mark.parametrize("kind", ["solution", "samples"])
@pytest.mark.parametrize("damage", ["other_inputs", "truncated", "garbage", "tampered_payload"])
def test_a_mismatched_or_corrupted_entry_is_recomputed_with_a_warning(fake, tmp_path, kind, damage):
    make, small = fake
    good = reference_for(make(), cache_dir=tmp_path, protocol=small)
    where = "path" if kind == "solution" else "samples_path"
    path = Path(good.metadata[where])
    if damage == "other_inputs":  # the entry of another N copied over this key's file
        other = reference_for(make(5), cache_dir=tmp_path, protocol=small)
        path.write_bytes(Path(other.metadata[where]).read_bytes())
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"not a torch file")
    else:  # a stored value edited, the entry's digest left as it was
        entry = torch.load(path, weights_only=True)
        if kind == "solution":
            entry["payload"]["solve"]["solve_time"] += 1.0
        else:
            entry["payload"]["pool"]["k"][0, 0] += 1.0
        torch.save(entry, path)
    solves = _ConstantShare.solves
    with pytest.warns(RuntimeWarning, match="recomputing"):
        again = reference_for(make(), cache_dir=tmp_path, protocol=small)
    if kind == "solution":
        assert _ConstantShare.solves == solves + 1 and not again.metadata["cached"]
    else:
        assert _ConstantShare.solves == solves and again.metadata["cached"] and not again.metadata["samples_cached"]
    assert torch.equal(again.test_states["k"], good.test_states["k"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # overwritten: the next load is a clean hit
        hit = reference_for(make(), cache_dir=tmp_path, protocol=small).metadata
        assert hit["cached"] and hit["samples_cached"]


def test_a_reference_solver_that_is_not_registered_is_reported(tmp_path):
    economy = ks(4)
    economy.reference_solver = "no_such_solver"
    result = evaluate(economy.neutral_policy(), economy, reference=True, reference_cache=tmp_path, trajectories=2,
                      horizon=3, den_haan=False)
    assert result.reference["status"] == "skipped" and "not registered" in result.reference["reason"]


# ---------------------------------------------------------------------------------------------- bad policy outputs
def _nan_at(economy_index, agent):
    def policy(state):
        share = torch.full_like(state["k"], 0.1)
        if state.batch_size[0] > economy_index:
            share[economy_index, agent] = float("nan")
        return share

    return policy


def test_nan_is_reported_with_economy_and_agent_not_averaged(fake, tmp_path):
    make, small = fake
    economy = make()
    reference = reference_for(economy, cache_dir=tmp_path, protocol=small)
    with pytest.raises(InvalidPolicyOutput, match="NaN") as info:
        evaluate(_nan_at(1, 3), economy, reference=reference, trajectories=2, horizon=3, den_haan=False)
    err = info.value
    assert (err.kind, err.economy, err.agent) == ("nan", 1, 3) and "economy 1, agent 3" in str(err)
    assert "common test states" in err.stage


def test_the_period_of_a_bad_output_is_reported():
    economy = ks(4)
    calls = {"n": 0}

    def policy(state):
        calls["n"] += 1
        share = torch.full_like(state["k"], 0.1)
        if calls["n"] == 8:  # the 8th call: period 7
            share[0, 2] = float("inf")
        return share

    checked = CheckedPolicy(policy, economy)
    with pytest.raises(InvalidPolicyOutput) as info:
        simulate_stationary(checked, economy, economy.initial_state(2, economy.generator(0)), burn_in=5, periods=5,
                            thin=1, seed=0, checked=checked)
    err = info.value
    assert (err.kind, err.economy, err.agent, err.period) == ("inf", 0, 2, 7) and "period 7" in str(err)
    assert err.stage == "stationary simulation"


@pytest.mark.parametrize("bad, kind", [
    (lambda s: torch.full((s.batch_size[0], 5), 0.1, dtype=torch.float64), "shape"),
    (lambda s: torch.full_like(s["k"], 1.5), "above_bounds"),
    (lambda s: torch.full_like(s["k"], -0.2), "below_bounds"),
    (lambda s: [0.1], "type"),
])
def test_wrong_shape_type_or_bounds_are_reported(bad, kind):
    economy = ks(4)
    with pytest.raises(InvalidPolicyOutput) as info:
        evaluate(bad, economy, reference=False, trajectories=2, horizon=3, den_haan=False)
    assert info.value.kind == kind and "test paths" in info.value.stage
    if kind.endswith("bounds"):
        assert info.value.period == 0 and "economy 0, agent 0" in str(info.value)

