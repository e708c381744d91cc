"""What bad input gets: unknown ids and keywords, out-of-range parameters, bad transition matrices, bad actions, bad
interface options.

The allowed ranges below are written from the specification (issue 2, REFERENCE.md), not read from the code.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from conftest import CUDA_AVAILABLE, ENV_IDS
from hetagents_env import EnvOptions, InvestmentEconomy, KrusellSmithEconomy, list_envs, make
from hetagents_env.economies.krusell_smith import DEFAULT_TRANSITION

INF = math.inf


class Range:
    """A real interval of the specification and its printed form."""

    def __init__(self, lo: float, hi: float, lo_closed: bool, hi_closed: bool) -> None:
        self.lo, self.hi, self.lo_closed, self.hi_closed = lo, hi, lo_closed, hi_closed

    def __str__(self) -> str:
        left = "[" if self.lo_closed and math.isfinite(self.lo) else "("
        right = "]" if self.hi_closed and math.isfinite(self.hi) else ")"
        return f"{left}{self.lo:g}, {self.hi:g}{right}"


OPEN_01 = Range(0, 1, False, False)
CLOSED_01 = Range(0, 1, True, True)
RATE = Range(0, 1, True, False)
POSITIVE = Range(0, INF, False, False)
NONNEGATIVE = Range(0, INF, True, False)
REAL = Range(-INF, INF, False, False)

RANGES = {
    "Investment-v0": {
        "alpha0": POSITIVE,
        "alpha1": NONNEGATIVE,
        "beta": OPEN_01,
        "gamma": POSITIVE,
        "delta": CLOSED_01,
        "sigma": NONNEGATIVE,
        "eta": NONNEGATIVE,
        "nu": Range(1, INF, True, False),
        "x0_mean": REAL,
        "x0_sd": NONNEGATIVE,
    },
    "KrusellSmith-v0": {
        "beta": OPEN_01,
        "alpha": OPEN_01,
        "delta": CLOSED_01,
        "z_bad": POSITIVE,
        "z_good": POSITIVE,
        "lbar": POSITIVE,
        "mu": NONNEGATIVE,
        "unemployment_bad": RATE,
        "unemployment_good": RATE,
        "c_min": POSITIVE,
        "k_init": POSITIVE,
    },
    "Aiyagari-v0": {
        "beta": OPEN_01,
        "gamma": POSITIVE,
        "alpha": OPEN_01,
        "delta": CLOSED_01,
        "rho": Range(-0.99, 0.99, True, True),
        "sigma": Range(0, 5, True, True),
        "tauchen_width": Range(0, 10, False, True),
        "tfp_shock": RATE,
        "z_persistence": CLOSED_01,
        "c_min": POSITIVE,
        "k_init": POSITIVE,  # above the borrowing limit (0 by default)
    },
}
PARAM_CASES = [(env_id, name) for env_id, names in RANGES.items() for name in names]


def consistent_transition(ur_bad: float, ur_good: float, stay_bad: float = 0.875, stay_good: float = 0.875):
    """A valid joint (Z, e) matrix for the given unemployment rates: e' independent of e given (Z, Z')."""
    pz = np.array([[stay_bad, 1 - stay_bad], [1 - stay_good, stay_good]])
    ur = (ur_bad, ur_good)
    P = np.zeros((4, 4))
    for z in range(2):
        for e in range(2):
            for z1 in range(2):
                P[2 * z + e, 2 * z1] = pz[z, z1] * ur[z1]
                P[2 * z + e, 2 * z1 + 1] = pz[z, z1] * (1 - ur[z1])
    return P.tolist()


def valid_companions(env_id: str, name: str, value: float) -> dict:
    """Other parameters that keep a value being tested from failing a cross-field check."""
    if env_id == "Aiyagari-v0":  # the steady state is tested on its own; k_init keeps the initial state finite
        return {} if name == "k_init" else {"k_init": 1.0}
    if env_id != "KrusellSmith-v0":
        return {}
    extra = {} if name == "k_init" else {"k_init": 1.0}  # the steady state is tested on its own below
    if name in ("unemployment_bad", "unemployment_good"):
        ur = {"unemployment_bad": 0.10, "unemployment_good": 0.04, name: value}
        extra["transition"] = consistent_transition(ur["unemployment_bad"], ur["unemployment_good"])
    return extra


def assert_names_value_and_range(message: str, name: str, value, allowed: Range) -> None:
    assert name in message, message
    assert repr(float(value)) in message, message
    assert str(allowed) in message, message


# ---------------------------------------------------------------------------------------------- ids and keywords
@pytest.mark.parametrize("bad_id", ["Foo-v0", "investment-v0", "hetagents/Nope-v1", "", "KrusellSmith-v1"])
def test_unknown_id_lists_the_known_ids(bad_id):
    with pytest.raises(ValueError) as err:
        make(bad_id)
    message = str(err.value)
    assert repr(bad_id) in message
    for env_id in list_envs():
        assert env_id in message


def test_non_string_id_is_rejected():
    with pytest.raises(ValueError, match="Investment-v0"):
        make(42)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("keyword", ["foo", "num_env", "Beta", "agents"])
def test_unknown_keyword_is_a_type_error_naming_it(env_id, keyword):
    with pytest.raises(TypeError, match=re.escape(repr(keyword))):
        make(env_id, **{keyword: 1})


@settings(max_examples=30)
@given(
    cls=st.sampled_from([InvestmentEconomy, KrusellSmithEconomy]),
    keyword=st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True),
)
def test_any_unknown_keyword_is_a_type_error_naming_it(cls, keyword):
    assume(keyword not in cls.Params.names() and keyword not in ("self", "n_agents", "device", "dtype"))
    with pytest.raises(TypeError) as err:
        cls(3, **{keyword: 0.5})
    assert repr(keyword) in str(err.value)
    for known in cls.Params.names():  # and lists the known ones
        assert known in str(err.value)


# ---------------------------------------------------------------------------------------------- parameter ranges
EXPLICIT_BAD = [
    ("Investment-v0", "beta", 0.0),
    ("Investment-v0", "beta", 1.0),
    ("Investment-v0", "beta", -0.5),
    ("Investment-v0", "beta", 1.5),
    ("Investment-v0", "gamma", 0.0),
    ("Investment-v0", "gamma", -90.0),
    ("Investment-v0", "sigma", -1e-9),
    ("Investment-v0", "eta", -0.001),
    ("Investment-v0", "delta", -0.01),
    ("Investment-v0", "delta", 1.01),
    ("Investment-v0", "nu", 0.999),
    ("Investment-v0", "nu", 0.0),
    ("Investment-v0", "alpha0", 0.0),
    ("Investment-v0", "alpha1", -1.0),
    ("Investment-v0", "x0_sd", -0.05),
    ("Investment-v0", "gamma", INF),
    ("Investment-v0", "x0_mean", INF),
    ("Investment-v0", "sigma", math.nan),
    ("KrusellSmith-v0", "beta", 1.0),
    ("KrusellSmith-v0", "alpha", 0.0),
    ("KrusellSmith-v0", "alpha", 1.0),
    ("KrusellSmith-v0", "delta", 2.0),
    ("KrusellSmith-v0", "z_bad", 0.0),
    ("KrusellSmith-v0", "z_good", -1.01),
    ("KrusellSmith-v0", "lbar", 0.0),
    ("KrusellSmith-v0", "mu", -0.15),
    ("KrusellSmith-v0", "unemployment_bad", 1.0),
    ("KrusellSmith-v0", "unemployment_good", -0.04),
    ("KrusellSmith-v0", "c_min", 0.0),
    ("KrusellSmith-v0", "k_init", 0.0),
    ("KrusellSmith-v0", "k_init", -37.99),
    ("KrusellSmith-v0", "k_init", INF),
]


@pytest.mark.parametrize("env_id, name, value", EXPLICIT_BAD)
def test_out_of_range_parameter_names_itself_its_value_and_the_range(env_id, name, value):
    with pytest.raises(ValueError) as err:
        make(env_id, **{name: value})
    assert_names_value_and_range(str(err.value), name, value, RANGES[env_id][name])


def just_outside(allowed: Range):
    """Values at most ~1e-6 (relative) outside the range, the boundary itself when it is excluded, ±inf, NaN."""
    options = [st.just(math.nan)]
    if math.isfinite(allowed.lo):
        width = 1e-6 * max(1.0, abs(allowed.lo))
        options.append(st.floats(allowed.lo - width, allowed.lo, exclude_max=allowed.lo_closed))
        options.append(st.just(allowed.lo if not allowed.lo_closed else math.nextafter(allowed.lo, -INF)))
    else:
        options.append(st.just(-INF))
    if math.isfinite(allowed.hi):
        width = 1e-6 * max(1.0, abs(allowed.hi))
        options.append(st.floats(allowed.hi, allowed.hi + width, exclude_min=allowed.hi_closed))
        options.append(st.just(allowed.hi if not allowed.hi_closed else math.nextafter(allowed.hi, INF)))
    else:
        options.append(st.just(INF))
    return st.one_of(options)


def just_inside(allowed: Range):
    """Values at most ~1e-6 (relative) inside either end, the boundary itself when it is included."""
    options = []
    if math.isfinite(allowed.lo):
        width = 1e-6 * max(1.0, abs(allowed.lo))
        options.append(st.floats(allowed.lo, allowed.lo + width, exclude_min=not allowed.lo_closed))
        options.append(st.just(allowed.lo if allowed.lo_closed else math.nextafter(allowed.lo, INF)))
    else:
        options.append(st.just(-1e30))  # an infinite end has no "just inside": a large value float32 can hold
    if math.isfinite(allowed.hi):
        width = 1e-6 * max(1.0, abs(allowed.hi))
        options.append(st.floats(allowed.hi - width, allowed.hi, exclude_max=not allowed.hi_closed))
        options.append(st.just(allowed.hi if allowed.hi_closed else math.nextafter(allowed.hi, -INF)))
    else:
        options.append(st.just(1e30))
    return st.one_of(options)


@pytest.mark.parametrize("env_id, name", PARAM_CASES)
@settings(max_examples=12)
@given(data=st.data())
def test_values_just_outside_the_range_are_rejected(env_id, name, data):
    allowed = RANGES[env_id][name]
    value = data.draw(just_outside(allowed), label=name)
    with pytest.raises(ValueError) as err:
        make(env_id, n_agents=2, **valid_companions(env_id, name, 0.1), **{name: value})
    assert_names_value_and_range(str(err.value), name, value, allowed)


@pytest.mark.parametrize("env_id, name", PARAM_CASES)
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # lbar ≈ 5e-324: the tax rate is inf
@settings(max_examples=12)
@given(data=st.data())
def test_values_just_inside_the_range_are_accepted(env_id, name, data):
    allowed = RANGES[env_id][name]
    value = data.draw(just_inside(allowed), label=name)
    env = make(env_id, n_agents=2, num_envs=2, seed=0, **valid_companions(env_id, name, value), **{name: value})
    assert getattr(env.economy.params, name) == value
    env.reset()


@pytest.mark.parametrize(
    "params",
    [
        {"alpha": math.nextafter(1.0, 0.0)},  # k_ss = huge^(−1/ε): overflows
        {"beta": 5e-324},  # 1/β = inf: k_ss = 0
        {"alpha": 1e-300, "beta": 1e-300},
    ],
)
def test_a_steady_state_that_does_not_exist_in_floating_point_asks_for_k_init(params):
    with pytest.raises(ValueError, match="k_init"):
        make("KrusellSmith-v0", **params)
    env = make("KrusellSmith-v0", n_agents=3, seed=0, k_init=5.0, **params)  # fine with an explicit k_init
    env.reset()
    assert (env.state["k"] == 5.0).all()


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("count", ["n_agents", "num_envs", "max_episode_steps"])
@settings(max_examples=10)
@given(bad=st.one_of(st.integers(-10**6, 0), st.sampled_from([2.5, "3", 1.0, True])), good=st.integers(1, 5))
def test_counts_must_be_positive_integers(env_id, count, bad, good):
    with pytest.raises(ValueError) as err:
        make(env_id, **{count: bad})
    message = str(err.value)
    assert count in message and ">= 1" in message and repr(bad) in message
    env = make(env_id, seed=0, **{count: good})
    env.reset()


def test_dtype_must_be_floating():
    for dtype in (torch.int64, torch.bool, "float32"):
        with pytest.raises(ValueError, match="dtype"):
            make("Investment-v0", dtype=dtype)


def test_bad_action_kind_is_rejected():
    with pytest.raises(ValueError) as err:
        make("KrusellSmith-v0", action="consumption")
    message = str(err.value)
    assert "'action'" in message and "'consumption'" in message
    assert "consumption_share" in message and "savings_share" in message


# ---------------------------------------------------------------------------------------------- transition matrix
def default_matrix() -> np.ndarray:
    return np.array(DEFAULT_TRANSITION, dtype=float)


def bad_matrices():
    not_stochastic = default_matrix()
    not_stochastic[1, 1] += 0.01
    negative = default_matrix()
    negative[0, 0], negative[0, 1] = -0.05, 0.35 + 0.525 + 0.05
    nan = default_matrix()
    nan[2, 3] = math.nan
    z_depends_on_e = default_matrix()
    z_depends_on_e[0] = [0.5, 0.4, 0.03125, 0.06875]  # P(Z_b | Z_b, u) = 0.9 ≠ 0.875
    inconsistent = default_matrix()
    inconsistent[0] = [0.6, 0.275, 0.03125, 0.09375]  # unemployed stay unemployed more often in bad times
    return [
        pytest.param(not_stochastic.tolist(), ("row sums", "1.01"), id="not-stochastic"),
        pytest.param(negative.tolist(), ("[0, 0]", "-0.05", "[0, 1]"), id="negative"),
        pytest.param(default_matrix()[:3].tolist(), ("4x4", "(3, 4)"), id="shape-3x4"),
        pytest.param(default_matrix().ravel().tolist(), ("4x4", "(16,)"), id="shape-flat"),
        pytest.param(np.eye(2).tolist(), ("4x4", "(2, 2)"), id="shape-2x2"),
        pytest.param(nan.tolist(), ("finite", "nan"), id="nan"),
        pytest.param("abc", ("4x4",), id="not-numbers"),
        pytest.param(z_depends_on_e.tolist(), ("P(Z'|Z)", "0.9"), id="z-depends-on-e"),
        pytest.param(inconsistent.tolist(), ("unemployment rates", "0.1", "0.04"), id="inconsistent-rates"),
    ]


@pytest.mark.parametrize("matrix, fragments", bad_matrices())
def test_bad_transition_matrix_is_rejected(matrix, fragments):
    with pytest.raises(ValueError) as err:
        make("KrusellSmith-v0", transition=matrix)
    message = str(err.value)
    assert "'transition'" in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_transition_matrix_inconsistent_with_changed_unemployment_rates():
    with pytest.raises(ValueError, match=r"'transition'.*unemployment rates.*0\.2"):
        make("KrusellSmith-v0", unemployment_bad=0.2)  # the default matrix implies 0.10


@settings(max_examples=25)
@given(
    ur_bad=st.floats(0.0, 0.5),
    ur_good=st.floats(0.0, 0.5),
    stay_bad=st.floats(0.0, 1.0),
    stay_good=st.floats(0.0, 1.0),
    noise=st.floats(-1e-7, 1e-7),
)
def test_consistent_transition_matrices_are_accepted(ur_bad, ur_good, stay_bad, stay_good, noise):
    matrix = np.array(consistent_transition(ur_bad, ur_good, stay_bad, stay_good))
    j = int(matrix[1].argmax())
    matrix[1, j] += noise  # rounding (of the largest entry of a row) in a published table is tolerated
    eco = KrusellSmithEconomy(3, unemployment_bad=ur_bad, unemployment_good=ur_good, transition=matrix.tolist())
    assert eco.prob_z[0, 0].item() == pytest.approx(stay_bad, abs=1e-6)
    # a row off by 1e-3 is not a rounding error
    matrix[2, 2] += 1e-3
    with pytest.raises(ValueError, match="'transition'"):
        KrusellSmithEconomy(3, unemployment_bad=ur_bad, unemployment_good=ur_good, transition=matrix.tolist())


# ---------------------------------------------------------------------------------------------- actions
def ready_env(env_id: str, b: int = 2, n: int = 3):
    env = make(env_id, num_envs=b, n_agents=n, seed=0)
    env.reset()
    return env


def assert_rejected_without_a_step(env, action, *fragments):
    state, steps = env.state.clone(), env.elapsed_steps.clone()
    with pytest.raises(ValueError) as err:
        env.step(action)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    # nothing happened
    assert env.elapsed_steps.equal(steps)
    assert all(env.state[k].equal(state[k]) for k in state.keys())
    return message


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("shape", [(2, 4), (2,), (3, 2), (2, 3, 1), (1, 3), (6,), ()])
def test_action_of_the_wrong_shape(env_id, shape):
    env = ready_env(env_id)
    assert_rejected_without_a_step(env, torch.zeros(shape), "(2, 3)", str(tuple(shape)))


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.int64, torch.bool])
def test_action_of_the_wrong_dtype(env_id, dtype):
    env = ready_env(env_id)
    assert_rejected_without_a_step(env, torch.zeros(2, 3, dtype=dtype), "torch.float32", str(dtype))


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.cuda
@pytest.mark.skipif(not CUDA_AVAILABLE, reason="CUDA is not available")
def test_action_on_the_wrong_device(env_id):
    env = ready_env(env_id)
    assert_rejected_without_a_step(env, torch.zeros(2, 3, device="cuda"), "cpu", "cuda")
    gpu = make(env_id, num_envs=2, n_agents=3, seed=0, device="cuda")
    gpu.reset()
    assert_rejected_without_a_step(gpu, torch.zeros(2, 3), "cuda", "cpu")


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize(
    "action", [[[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]], np.zeros((2, 3), dtype=np.float32), 0.5, None, "0.5"], ids=repr
)
def test_action_that_is_not_a_tensor(env_id, action):
    env = ready_env(env_id)
    assert_rejected_without_a_step(env, action, "torch.Tensor", type(action).__name__)


@pytest.mark.parametrize("env_id", ENV_IDS)
@settings(max_examples=20)
@given(
    bad=st.sampled_from([math.nan, INF, -INF]),
    where=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 2)), min_size=1, max_size=6, unique=True),
    values=st.lists(st.floats(0.0, 1.0, width=32), min_size=6, max_size=6),
)
def test_non_finite_actions_are_rejected_and_finite_ones_accepted(env_id, bad, where, values):
    env = ready_env(env_id)
    action = torch.tensor(values, dtype=torch.float32).reshape(2, 3)
    corrupted = action.clone()
    for i, j in where:
        corrupted[i, j] = bad
    message = assert_rejected_without_a_step(env, corrupted, "finite")
    assert f"got {len(where)}" in message  # how many entries are bad
    _, reward, *_ = env.step(action)  # the clean action goes through
    assert torch.isfinite(reward).all()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_before_reset_is_a_runtime_error(env_id):
    env = make(env_id, num_envs=2, n_agents=3, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(2, 3))
    # even a bad action: the missing reset is reported first
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(5))


def test_negligible_aggregate_transitions_are_not_checked_for_unemployment_consistency():
    """Found by hypothesis: with P(Z_b | Z_b) = 5e-324 the conditional employment odds underflow; such a transition
    cannot be checked against the unemployment rates and must not make a valid chain fail."""
    matrix = [[0.0, 5e-324, 0.0, 1.0], [0.0, 5e-324, 0.0, 1.0], [0.25, 0.75, 0.0, 0.0], [0.25, 0.75, 0.0, 0.0]]
    eco = KrusellSmithEconomy(3, unemployment_bad=0.25, unemployment_good=0.0, transition=matrix)
    assert float(eco.prob_z[0, 1]) == 1.0
    with pytest.raises(ValueError, match="inconsistent with the unemployment rates"):  # a real inconsistency still fails
        KrusellSmithEconomy(3, unemployment_bad=0.25, unemployment_good=0.1, transition=matrix)


# ---------------------------------------------------------------------------------------------- interface options
BAD_OPTIONS = [
    ("n_agents", 0, ">= 1"),
    ("n_agents", 2.5, ">= 1"),
    ("n_agents", True, ">= 1"),
    ("max_episode_steps", -3, ">= 1"),
    ("max_episode_steps", "10", ">= 1"),
    ("device", "gpu0", "device"),
    ("device", 3.5, "device"),
    ("dtype", torch.int64, "floating"),
    ("dtype", "float32", "floating"),
    ("seed", 1.5, "integer"),
    ("seed", "3", "integer"),
    ("seed", True, "integer"),
    ("check_actions", 1, "True or False"),
    ("check_actions", "yes", "True or False"),
    ("compile", None, "True or False"),
    ("action_bound", 0.0, "> 0"),
    ("action_bound", -1, "> 0"),
    ("action_bound", INF, "> 0"),
    ("action_bound", math.nan, "> 0"),
    ("action_bound", True, "> 0"),
    ("action_bound", "1", "> 0"),
    ("params", [("nu", 1.5)], "mapping"),
    ("params", {1: 2.0}, "names"),
]


@pytest.mark.parametrize("name, bad, fragment", BAD_OPTIONS, ids=lambda v: repr(v)[:20])
def test_bad_options_name_the_field_and_the_value_in_one_line(name, bad, fragment):
    with pytest.raises(ValueError) as err:
        EnvOptions(**{name: bad})
    message = str(err.value)
    assert "\n" not in message and name in message and fragment in message, message
    if name != "params":
        assert repr(bad) in message, message


@pytest.mark.parametrize("api", ["torch", "gymnasium", "pettingzoo", "torchrl"])
@pytest.mark.parametrize(
    "name, bad, fragment", [case for case in BAD_OPTIONS if case[0] != "params"][::2], ids=lambda v: repr(v)[:20]
)
def test_every_interface_rejects_bad_option_keywords_the_same_way(api, name, bad, fragment):
    if api == "torchrl" and name == "compile":
        pytest.skip("TorchRL's EnvBase takes the keyword compile= for itself (EnvOptions(compile=...) reaches the env)")
    with pytest.raises(ValueError) as by_keyword:
        make("KrusellSmith-v0", api=api, **{name: bad})
    with pytest.raises(ValueError) as direct:
        EnvOptions(**{name: bad})
    assert str(by_keyword.value) == str(direct.value)


def test_params_keyword_is_an_unknown_parameter_not_the_field():
    """The parameters are keywords of their own; a keyword ``params`` is an economy parameter like any other."""
    with pytest.raises(TypeError, match="'params'"):
        make("Investment-v0", params={"nu": 1.5})


@settings(max_examples=25)
@given(
    n_agents=st.one_of(st.integers(1, 10**6), st.integers(1, 1000).map(np.int64)),
    seed=st.one_of(st.integers(-(2**63), 2**64 - 1), st.integers(0, 1000).map(np.int32)),
    bound=st.floats(1e-30, 1e30),
)
def test_good_options_are_accepted_and_normalised(n_agents, seed, bound):
    options = EnvOptions(n_agents=n_agents, seed=seed, action_bound=bound, device="cpu", dtype=torch.float64)
    assert type(options.n_agents) is int and options.n_agents == n_agents
    assert type(options.seed) is int and options.seed == seed
    assert type(options.action_bound) is float and options.action_bound == bound
    assert options.device == torch.device("cpu")


def test_options_must_be_an_env_options():
    with pytest.raises(ValueError, match="EnvOptions"):
        make("Investment-v0", options={"n_agents": 3})
    with pytest.raises(ValueError, match="EnvOptions"):
        make("Investment-v0", api="gymnasium", options=EnvOptions.keywords())
    with pytest.raises(TypeError, match="foo"):
        EnvOptions(foo=1)


def test_the_torch_env_has_no_action_box():
    with pytest.raises(TypeError, match="action_bound"):
        make("Investment-v0", action_bound=0.5)
    with pytest.raises(TypeError, match="action_bound"):
        make("Investment-v0", options=EnvOptions(action_bound=0.5))


def test_an_economy_instance_fixes_what_the_options_would_set():
    from hetagents_env.interfaces.torchrl import EconomyTorchRLEnv

    economy = InvestmentEconomy(3)
    with pytest.raises(ValueError, match="Economy instance.*n_agents.*nu"):
        EconomyTorchRLEnv(economy, options=EnvOptions(n_agents=3, params={"nu": 1.5}))
    EconomyTorchRLEnv(economy, options=EnvOptions(seed=0, max_episode_steps=2)).reset()


def test_an_unknown_id_is_reported_before_bad_options():
    with pytest.raises(ValueError, match="Foo-v0"):
        make("Foo-v0", n_agents=0)
