"""The one validation mechanism (hetagents_env.validation): types, ranges and choices of every typed config, errors
that carry the failing dotted key through nested configs, and the experiment loader that maps that key to the file's
key directly and builds the economy once."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from typing import Literal

import pytest
import torch

import hetagents_env
from agents.config import Config, ConfigError, choices, interval
from hetagents_env.economies.core import Economy
from hetagents_env.economies.params import Params
from hetagents_env.validation import FieldError, UnknownKeyError, Validated, ValidationError
from test_cli import TINY
from train.config import ConfigFileError, EvalSection, RunSection, load_experiment


@dataclasses.dataclass(frozen=True)
class Inner(Config):
    lr: float = dataclasses.field(default=1e-3, metadata=interval(0.0, open_lo=True))
    widths: tuple[int, ...] = dataclasses.field(default=(8,), metadata=interval(1))
    act: str = dataclasses.field(default="relu", metadata=choices("relu", "tanh"))
    periods: int = 10
    horizon: int = 5

    def _validate(self) -> None:
        if self.horizon > self.periods:
            raise ConfigError(f"Inner.horizon = {self.horizon} must not exceed periods = {self.periods}")


@dataclasses.dataclass(frozen=True)
class Outer(Config):
    mode: Literal["a", "b"] = "a"
    inner: Inner = dataclasses.field(default_factory=Inner)
    maybe: Inner | None = None
    steps: int = 1

    def _validate(self) -> None:
        if self.mode == "b" and self.steps > 1:
            raise ConfigError("Outer: mode = 'b' needs steps = 1")


def error_of(build) -> FieldError:
    with pytest.raises(FieldError) as err:
        build()
    return err.value


# ---------------------------------------------------------------------------------------------- the mechanism
@pytest.mark.parametrize("mapping, key, words", [
    ({"inner": {"lr": 0.0}}, "inner.lr", "Inner.lr = 0.0 is out of range: allowed (0, inf)"),
    ({"inner": {"lr": "fast"}}, "inner.lr", "Inner.lr must be a real number"),
    ({"inner": {"widths": [8, 0]}}, "inner.widths", "Inner.widths = 0 is out of range"),
    ({"inner": {"widths": [8, "x"]}}, "inner.widths", "Inner.widths[1] must be an integer"),
    ({"inner": {"act": "swish"}}, "inner.act", "Inner.act = 'swish' is not allowed: choose one of 'relu', 'tanh'"),
    ({"inner": {"lrr": 1.0}}, "inner.lrr", "unknown key 'lrr' in Inner"),
    ({"inner": {"horizon": 20}}, "inner.horizon", "must not exceed periods"),  # a rule naming its field
    ({"maybe": {"lr": -1.0}}, "maybe.lr", "Inner.lr = -1.0"),
    ({"mode": "c"}, "mode", "choose one of 'a', 'b'"),
    ({"steps": 1.5}, "steps", "must be an integer"),
    ({"mode": "b", "steps": 2}, None, "needs steps = 1"),  # a cross-field rule of the top level
])
def test_the_error_carries_the_dotted_key_of_the_failing_field(mapping, key, words):
    err = error_of(lambda: Outer.build(mapping))
    assert isinstance(err, ConfigError) and isinstance(err, ValueError) and isinstance(err, TypeError)
    assert err.key == key and words in str(err) and str(err) == err.message


def test_a_rule_error_says_whose_rule_it_is():
    assert error_of(lambda: Outer.build({"inner": {"horizon": 20}})).rule_of == "inner"
    assert error_of(lambda: Outer.build({"mode": "b", "steps": 2})).rule_of == ""
    assert error_of(lambda: Outer.build({"inner": {"lr": 0.0}})).rule_of is None  # a check of one value


def test_values_are_normalised_and_instances_pass_through():
    outer = Outer.build({"inner": {"lr": 1, "widths": [4, 2]}, "steps": 3.0})
    assert outer.inner.lr == 1.0 and isinstance(outer.inner.lr, float) and outer.inner.widths == (4, 2)
    assert outer.steps == 3 and isinstance(outer.steps, int)
    assert Outer.build(outer) is outer
    assert outer.replace(inner={"act": "tanh"}).inner == dataclasses.replace(outer.inner, act="tanh")


def test_a_plain_value_error_of_a_rule_becomes_the_class_error_naming_its_field():
    @dataclasses.dataclass(frozen=True)
    class Ranged(Validated):
        lo: float = 0.0
        hi: float = 1.0

        def _validate(self) -> None:
            if self.hi <= self.lo:
                raise ValueError(f"Ranged.hi = {self.hi} must exceed lo = {self.lo}")

    err = error_of(lambda: Ranged(lo=2.0))
    assert type(err) is ValidationError and err.key == "hi" and err.rule_of == ""
    assert Ranged.field_named_by("Ranged.hi_x is wrong") is None  # a label is a whole field name


# ---------------------------------------------------------------------------------------------- the parameters
def test_parameters_use_the_same_mechanism_with_their_own_wording():
    err = error_of(lambda: hetagents_env.make_economy("Investment-v0", nu=0.5))
    assert isinstance(err, ValidationError) and err.key == "nu"
    assert str(err) == "parameter 'nu' = 0.5 is out of range: allowed [1, inf)"
    err = error_of(lambda: hetagents_env.make_economy("Investment-v0", nuu=1.0, abc=2.0))
    assert isinstance(err, UnknownKeyError) and isinstance(err, TypeError) and not isinstance(err, ValueError)
    assert err.key == "abc" and "unknown parameter(s) 'abc', 'nuu' for the investment economy" in str(err)
    err = error_of(lambda: hetagents_env.make_economy("KrusellSmith-v0", k_init=1e300, dtype=torch.float32))
    assert err.key == "k_init" and "does not fit torch.float32" in str(err)
    err = error_of(lambda: hetagents_env.make_economy("Aiyagari-v0", n_states=1))  # a rule of the Params class
    assert err.key == "n_states" and err.rule_of == ""
    assert hetagents_env.make_economy("Investment-v0", nu=2).params.nu == 2.0  # ints become floats


def test_the_parameters_accept_real_number_likes_as_before():
    import numpy as np

    p = hetagents_env.economy_class("Investment-v0").Params.from_kwargs(beta=np.float32(0.5), gamma=torch.tensor(3.0))
    assert (p.beta, p.gamma) == (0.5, 3.0) and isinstance(p.gamma, float)
    assert issubclass(Params, Validated) and not Params.strict_types


def test_the_economies_do_not_import_agents_or_train():
    code = ("import sys, hetagents_env, hetagents_env.validation; "
            "print([m for m in sys.modules if m.split('.')[0] in ('agents', 'train')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------------------------- the experiment file
def test_the_sections_declare_their_ranges_with_the_same_metadata():
    assert error_of(lambda: RunSection(threads=0)).key == "threads"
    assert error_of(lambda: RunSection(budget=0.0)).key == "budget"
    assert RunSection(budget=float("inf")).budget == float("inf")  # (0, inf] as before
    err = error_of(lambda: EvalSection(band=[50.0, 10.0]))
    assert err.key == "band" and "two percentiles" in str(err)


def config(**changes) -> dict:
    data = json.loads(json.dumps(TINY))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = data
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return data


@pytest.mark.parametrize("changes, key", [
    ({"solver__network__latent": 0}, "solver.network.latent"),
    ({"solver__network__phi_widths": [8, "x"]}, "solver.network.phi_widths"),
    ({"solver__lrr": 1.0}, "solver.lrr"),
    ({"env__params__nu": 0.5}, "env.params.nu"),
    ({"env__params__nuu": 1.5}, "env.params.nuu"),
    ({"env__n_agents": 0}, "env.n_agents"),
    ({"run__threads": 0}, "run.threads"),
    ({"run__steps": -1}, "run.steps"),
    ({"run__dist_timeout": 0.0}, "run.dist_timeout"),
    ({"eval__horizon": -1}, "eval.horizon"),
    ({"eval__band": [90.0, 10.0]}, "eval.band"),
    ({"logger__every": 0}, "logger.every"),
])
def test_the_loader_names_the_failing_dotted_key(changes, key):
    with pytest.raises(ConfigFileError) as err:
        load_experiment(config(**changes))
    assert err.value.key == key, str(err.value)
    assert str(err.value).startswith(f"<dict>: {key}: ")


def test_a_rule_broken_by_an_override_names_the_override():
    with pytest.raises(ConfigFileError) as err:
        load_experiment("configs/ks_euler.yaml", ["env.params.unemployment_bad=0.2"])
    assert err.value.key == "env.params.transition"  # the rule's own field; the override broke it
    assert "(from override 'env.params.unemployment_bad=0.2')" in str(err.value)
    with pytest.raises(ConfigFileError) as err:
        load_experiment(config(solver__lr=-1.0), ["solver.batch_size=8"])
    assert "from override" not in str(err.value)  # a bad value of the file is not blamed on another override


def test_the_economy_is_built_and_validated_once(monkeypatch):
    built = []
    init = Economy.__init__

    def counting(self, *args, **kwargs):
        built.append(type(self).__name__)
        init(self, *args, **kwargs)

    monkeypatch.setattr(Economy, "__init__", counting)
    exp = load_experiment(config())
    economy = exp.economy()
    assert economy is exp.economy() is exp.economy("cpu") is exp.economy(torch.device("cpu"))
    assert exp.parameters() is economy.params and exp.to_dict()["env"]["params"]["nu"] == 1.0
    assert built == ["InvestmentEconomy"]
    exp.env.params["nu"] = 1.5  # a changed config builds its own
    assert exp.economy() is not economy and exp.economy().params.nu == 1.5 and len(built) == 2


def test_without_the_solver_check_only_the_parameters_are_validated(monkeypatch):
    built = []
    monkeypatch.setattr(Economy, "__init__", lambda self, *a, **k: built.append(1))
    exp = load_experiment(config(), check_solver=False)
    assert exp.parameters().nu == 1.0 and not built
    with pytest.raises(ConfigFileError, match="env.params.nu"):
        load_experiment(config(env__params__nu=0.5), check_solver=False)
