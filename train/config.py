"""Experiment configs: one YAML file per experiment, validated before anything runs.

A config has five sections (see ``configs/*.yaml``)::

    env:     {id: Investment-v0, n_agents: 128, params: {nu: 1.0}}      # the economy
    solver:  {name: euler, lr: 1.0e-3, network: {phi: mlp}}           # the solver and its hyper-parameters
    eval:    {trajectories: 32, horizon: 63, seed: 2024}                # the judge's settings
    logger:  {mode: null, project: hetagents, every: 1}                 # Weights & Biases, metrics.jsonl, progress bar
    run:     {seed: 0, device: cpu, dtype: float32, threads: 1, output_dir: runs, steps: null, budget: null}

The same command under ``torchrun --nproc_per_node=K -m train CONFIG ...`` trains data-parallel on K processes
(see :mod:`agents.distributed`; ``run.dist_timeout`` bounds how long one waits for the others).

Validation, all before any economy is simulated or any network trained, once per run:

* ``env``, ``eval``, ``logger`` and ``run`` against OmegaConf structured configs (the dataclasses below): an unknown
  key or a value of the wrong type is an error naming the dotted key and the file; the sections are
  :class:`hetagents_env.validation.Validated` dataclasses, so their ranges (``interval`` metadata) and rules are
  checked by the same mechanism as the economies' parameters and the solvers' configs;
* ``env.params`` against the economy's own parameter dataclass (unknown name, out-of-range value), as the economy is
  built (once: :meth:`Experiment.economy` returns that instance);
* ``solver`` against the registered solver's :class:`agents.config.Config` subclass, on top of the solver's
  defaults for this economy: an unknown (nested) key or a bad value is an error naming ``solver.<dotted key>`` and
  the file; an unknown ``solver.name`` lists the registered solvers.

Every one of these errors carries the dotted key of the failing field (``FieldError.key``), which is mapped to the
file's key (``solver.<key>``, ``env.params.<key>``, ``run.<key>``) as it is.

``key=value`` overrides (dotted, YAML-typed values: ``solver.lr=1e-4 env.n_agents=512 run.steps=null``) are
applied on top of the file and validated the same way; their errors name the override.

>>> exp = load_experiment("configs/investment_linear_euler_relu.yaml", ["solver.lr=5e-4"])
>>> exp.solver_config.lr, exp.economy().n_agents
(0.0005, 128)
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hetagents_env.validation import FieldError, Validated, interval

__all__ = [
    "ConfigFileError",
    "EnvSection",
    "EvalSection",
    "Experiment",
    "ExperimentSchema",
    "LoggerSection",
    "RunSection",
    "dump_yaml",
    "load_experiment",
    "parse_overrides",
]


class ConfigFileError(ValueError):
    """A bad experiment config; ``str(err)`` is one line naming the file and the dotted key. ``rule_of``: for a
    broken cross-field rule, the dotted key of the object whose rule it is (an override of any of its keys may be
    the cause)."""

    def __init__(self, source: str, key: str | None, message: str, *, rule_of: str | None = None) -> None:
        self.source, self.key, self.message, self.rule_of = source, key, message, rule_of
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {message}")

    @classmethod
    def of(cls, source: str, prefix: str, err: FieldError) -> "ConfigFileError":
        """The error of a validated object at the dotted key ``prefix`` of the file (``err.key`` relative to it)."""
        rule_of = None if err.rule_of is None else _dotted(prefix, err.rule_of or None)
        return cls(source, _dotted(prefix, err.key), err.message, rule_of=rule_of)


# ---------------------------------------------------------------------------------------------- the schema
class WandbMode(enum.Enum):
    online = "online"
    offline = "offline"
    disabled = "disabled"


class DType(enum.Enum):
    float32 = "float32"
    float64 = "float64"


class InitialState(enum.Enum):
    judge = "judge"
    solver = "solver"


class _Section(Validated):
    """A section of the file: messages name a field by its name (the error names the section's dotted key)."""

    @classmethod
    def label(cls, name: str) -> str:
        return name


@dataclasses.dataclass
class EnvSection(_Section):
    """The economy: ``hetagents_env.make_economy(id, n_agents=..., **params)``."""

    id: str = MISSING
    n_agents: Optional[int] = dataclasses.field(default=None, metadata=interval(1))
    """agents per economy (None: the economy's published default)"""
    params: Dict[str, Any] = dataclasses.field(default_factory=dict)
    """the economy's parameters (validated by its Params dataclass), e.g. {nu: 1.5}"""


@dataclasses.dataclass
class EvalSection(_Section):
    """The judge (:func:`agents.evaluate.evaluate_solver`) after training."""

    enabled: bool = True
    trajectories: int = dataclasses.field(default=32, metadata=interval(1))
    """test paths"""
    horizon: int = dataclasses.field(default=63, metadata=interval(0))
    """periods per test path (horizon + 1 states)"""
    seed: int = 2024
    """seed of the judge's common random numbers (initial state, shocks, idiosyncratic draw)"""
    burn_in: int = dataclasses.field(default=0, metadata=interval(0))
    """periods simulated and dropped before the test paths (towards the ergodic set)"""
    nodes: int = dataclasses.field(default=7, metadata=interval(1))
    """Gauss–Hermite nodes of the investment economy's residual"""
    band: List[float] = dataclasses.field(default_factory=lambda: [2.5, 97.5])
    """percentile band of the Euler-residual figure: two percentiles 0 <= lo < hi <= 100"""
    initial_state: InitialState = InitialState.judge
    """judge: the judge's own draw (common to all solvers); solver: the run's own X_0 (published protocol)"""
    options: Dict[str, Any] = dataclasses.field(default_factory=dict)
    """further keyword arguments of agents.evaluate.evaluate (checked against its signature)"""

    def _validate(self) -> None:
        band = self.band
        if len(band) != 2 or not 0 <= band[0] < band[1] <= 100:
            raise self.error(f"band = {band!r} must be two percentiles 0 <= lo < hi <= 100", "band")


@dataclasses.dataclass
class LoggerSection(_Section):
    """Weights & Biases, metrics.jsonl and the progress bar."""

    mode: Optional[WandbMode] = None
    """online / offline / disabled; null: $WANDB_MODE, else online with a W&B account configured, else offline"""
    project: str = "hetagents"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: List[str] = dataclasses.field(default_factory=list)
    name: Optional[str] = None
    """W&B run name (null: the run directory's name)"""
    every: int = dataclasses.field(default=1, metadata=interval(1))
    """log every k-th of the solver's logging points (and always the last)"""
    progress: bool = True
    """tqdm progress bar on stderr"""
    figures: bool = True
    """write (and log) the figures"""


@dataclasses.dataclass
class RunSection(_Section):
    """Seeds, device, threads, where to write, when to checkpoint, how long to train."""

    seed: int = 0
    """global seed (torch, numpy, random); also the solver's ``seed`` unless the solver section sets one"""
    device: str = "cpu"
    """cpu, cuda, cuda:1, ... or auto (cuda when available)"""
    dtype: DType = DType.float32
    threads: int = dataclasses.field(default=1, metadata=interval(1))
    """torch intra-op threads (1 is fastest for small ops on busy machines)"""
    output_dir: str = "runs"
    name: Optional[str] = None
    """run directory name under output_dir (null: <config name>-<timestamp>)"""
    checkpoint_every: int = dataclasses.field(default=0, metadata=interval(0))
    """write a checkpoint at the first logging point at least this many steps after the previous one (0: only at
    the end)"""
    keep_checkpoints: int = dataclasses.field(default=2, metadata=interval(1))
    """periodic checkpoints kept (the newest ones)"""
    steps: Optional[int] = dataclasses.field(default=None, metadata=interval(0))
    """total training steps (null: the solver's own stopping rule)"""
    budget: Optional[float] = dataclasses.field(default=None, metadata=interval(0.0, open_lo=True))
    """total training wall time in seconds, > 0 (null: none)"""
    require_convergence: bool = True
    """a solver that reports ``converged = False`` at the end makes the run fail (exit code 4)"""
    dist_timeout: float = dataclasses.field(default=30.0, metadata=interval(0.0, open_lo=True))
    """torchrun (distributed) runs: minutes (> 0) a process waits for the others in a collective before it fails"""


@dataclasses.dataclass
class ExperimentSchema:
    description: str = ""
    env: EnvSection = dataclasses.field(default_factory=EnvSection)
    solver: Dict[str, Any] = dataclasses.field(default_factory=dict)
    eval: EvalSection = dataclasses.field(default_factory=EvalSection)
    logger: LoggerSection = dataclasses.field(default_factory=LoggerSection)
    run: RunSection = dataclasses.field(default_factory=RunSection)


#: the typed sections of a file (each validated as OmegaConf instantiates it)
_SECTIONS = ("env", "eval", "logger", "run")


# ---------------------------------------------------------------------------------------------- overrides
def parse_overrides(overrides: Sequence[str]) -> list[tuple[str, str, Any]]:
    """``["a.b=1e-4", ...]`` -> ``[(text, "a.b", 0.0001), ...]`` with YAML-typed values (OmegaConf's loader)."""
    parsed = []
    for text in overrides:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key or any(not part.isidentifier() for part in key.split(".")):
            raise ConfigFileError("command line", None, f"bad override {text!r}: expected dotted.key=value")
        try:
            parsed.append((text, key, OmegaConf.select(OmegaConf.from_dotlist([f"{key}={value}"]), key)))
        except OmegaConfBaseException as err:
            raise ConfigFileError("command line", key, f"bad override {text!r}: {_first_line(err)}") from None
    return parsed


# ---------------------------------------------------------------------------------------------- the experiment
@dataclasses.dataclass
class Experiment:
    """A validated experiment: typed sections, the solver's Config, and where it came from."""

    path: str
    """the YAML file (or "<dict>")"""
    overrides: tuple[str, ...]
    env: EnvSection
    eval: EvalSection
    logger: LoggerSection
    run: RunSection
    solver_name: str
    solver_config: Any
    """the solver's :class:`agents.config.Config` instance (defaults for this economy + the file's values)"""
    description: str = ""
    solver_section: dict = dataclasses.field(default_factory=dict)
    """the solver section as written (without ``name``)"""
    _built: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)
    """what :meth:`economy` and :meth:`parameters` built, with what they were built from"""

    @property
    def name(self) -> str:
        return Path(self.path).stem if self.path != "<dict>" else "experiment"

    @property
    def dtype(self) -> torch.dtype:
        from agents.config import torch_dtype

        return torch_dtype(self.run.dtype.value)

    @property
    def device(self) -> torch.device:
        return resolve_device(self.run.device)

    def economy(self, device: torch.device | str | None = None):
        """The economy of the config on ``device`` (None: the config's own; a distributed run passes each process's
        own GPU), built once per device and then shared: an economy is pure (stateless tensor functions; nothing in
        it changes after construction), so the validation, the solver and the judge of a run can use one instance.
        Building it validates ``env.params`` (errors: :class:`hetagents_env.validation.FieldError`, ``key`` the
        parameter). A changed ``env`` or ``run.dtype`` builds a new one."""
        import hetagents_env

        device = self.device if device is None else torch.device(device)
        spec = self._spec()
        built = self._built.get(str(device))
        if built is not None and built[0] == spec:
            return built[1]
        economy = hetagents_env.make_economy(
            self.env.id, n_agents=self.env.n_agents, device=device, dtype=self.dtype, **self.env.params,
        )
        self._built[str(device)] = (spec, economy)
        return economy

    def parameters(self):
        """The economy's validated parameters (its ``Params`` instance, every value filled in): those of an economy
        already built, else validated once and kept."""
        import hetagents_env

        spec = self._spec()
        for key, (built_from, built) in self._built.items():
            if built_from == spec:
                return built if key == "params" else built.params
        params = hetagents_env.economy_class(self.env.id).Params.from_kwargs(**self.env.params)
        self._built["params"] = (spec, params)
        return params

    def _spec(self) -> tuple:
        return (self.env.id, self.env.n_agents, copy.deepcopy(self.env.params), self.run.dtype)

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved config: every section with every value (the solver's defaults filled in)."""
        env = _plain(self.env)
        env["params"] = _plain(self.parameters().to_dict())
        solver = self.solver_config.to_dict() if self.solver_config is not None else dict(self.solver_section)
        sections = {
            "env": env, "solver": {"name": self.solver_name, **solver},
            "eval": _plain(self.eval), "logger": _plain(self.logger), "run": _plain(self.run),
        }
        return {"description": self.description, **sections}

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())

    def evaluate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`agents.evaluate.evaluate_solver` from the eval section."""
        e = self.eval
        return dict(
            initial_state=e.initial_state.value, trajectories=e.trajectories, horizon=e.horizon, seed=e.seed,
            burn_in=e.burn_in, nodes=e.nodes, band=tuple(e.band), **e.options,
        )


def load_experiment(
    source: str | os.PathLike | Mapping[str, Any], overrides: Sequence[str] = (), *, check_solver: bool = True
) -> Experiment:
    """Read, merge, resolve and validate a config; raises :class:`ConfigFileError` (one line, key and file).

    ``source`` is a YAML path or an already-parsed mapping. ``check_solver=False`` validates only the top-level
    sections and ``env`` (to list configs cheaply, or read one whose solver is not registered in this process).
    """
    name, raw = _read(source)
    schema = OmegaConf.structured(ExperimentSchema)
    try:
        cfg = OmegaConf.merge(schema, raw)
    except OmegaConfBaseException as err:
        raise ConfigFileError(name, _full_key(err), _first_line(err)) from None
    for text, key, value in parse_overrides(overrides):
        try:
            if key.startswith("solver.") or key == "solver":
                OmegaConf.update(cfg, key, value, merge=True, force_add=True)
            else:
                OmegaConf.update(cfg, key, value, merge=True)
        except OmegaConfBaseException as err:
            raise ConfigFileError(name, _full_key(err) or key, f"override {text!r}: {_first_line(err)}") from None
    try:
        data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True, enum_to_str=False)
    except OmegaConfBaseException as err:
        raise ConfigFileError(name, _full_key(err), _first_line(err)) from None
    try:
        sections = {section: _typed_section(name, cfg, section) for section in _SECTIONS}
        env, run = sections["env"], sections["run"]
        _check_env_id(name, env)
        _check_device(name, run.device)
        solver_section = dict(data.get("solver") or {})
        solver_name = solver_section.pop("name", None)
        exp = Experiment(
            path=name, overrides=tuple(overrides), env=env, eval=sections["eval"], logger=sections["logger"],
            run=run, solver_name=solver_name, solver_config=None, description=cfg.description,
            solver_section=solver_section,
        )
        economy = _check_params(name, exp, build=check_solver)
        _check_eval_options(name, exp.eval.options)
        if not isinstance(solver_name, str) or not solver_name:
            raise ConfigFileError(name, "solver.name", "missing: the solver's registry name (e.g. euler)")
        if check_solver:
            exp.solver_config = _check_solver(name, exp, solver_name, solver_section, economy)
    except ConfigFileError as err:
        origin = _override_of(err.key, overrides, err.rule_of)
        if origin is None:
            raise
        raise ConfigFileError(err.source, err.key, f"{err.message} (from override {origin!r})") from None
    return exp


def _override_of(key: str | None, overrides: Sequence[str], rule_of: str | None = None) -> str | None:
    """The last override that set ``key`` or one of its parents / children; for a broken cross-field rule
    (``rule_of``), else the last one that set a key of the object whose rule it is."""
    for where in (key, rule_of):
        if not where:
            continue
        for text in reversed(overrides):
            k = text.partition("=")[0].strip()
            if k == where or where.startswith(k + ".") or k.startswith(where + "."):
                return text
    return None


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ---------------------------------------------------------------------------------------------- checks
def _read(source) -> tuple[str, Any]:
    if isinstance(source, Mapping):
        return "<dict>", OmegaConf.create(copy.deepcopy(dict(source)))
    name = str(source)
    path = Path(source)
    if not path.is_file():
        raise ConfigFileError(name, None, "no such config file")
    try:
        raw = OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException) as err:
        raise ConfigFileError(name, None, f"invalid YAML: {_first_line(err)}") from None
    if not isinstance(raw, DictConfig):
        raise ConfigFileError(name, None, "the top level must be a mapping of sections "
                                          "(env, solver, eval, logger, run)")
    return name, raw


def _typed_section(name: str, cfg: DictConfig, section: str) -> Any:
    """The section's dataclass instance (validated as it is built: ranges and rules, keys named ``section.key``)."""
    try:
        return OmegaConf.to_object(cfg[section])
    except OmegaConfBaseException as err:
        raise ConfigFileError(name, _full_key(err) or section, _first_line(err)) from None
    except FieldError as err:
        raise ConfigFileError.of(name, section, err) from None


def _check_env_id(name: str, env: EnvSection) -> None:
    import hetagents_env

    try:
        hetagents_env.economy_class(env.id)
    except ValueError as err:
        raise ConfigFileError(name, "env.id", str(err)) from None


def _check_params(name: str, exp: Experiment, *, build: bool):
    """Validate ``env.params`` once: by building the economy (``build``; returned, and kept by ``exp``), else by
    validating the parameters alone (None returned)."""
    try:
        if not build:
            exp.parameters()
            return None
        return exp.economy()
    except FieldError as err:  # a parameter (its key), or a count of the env section (n_agents)
        if err.key is not None and err.key.split(".")[0] in EnvSection.__dataclass_fields__:
            raise ConfigFileError.of(name, "env", err) from None
        raise ConfigFileError.of(name, "env.params", err) from None
    except (TypeError, ValueError) as err:  # a preset of the parameters, or the economy's own construction
        import hetagents_env

        key = hetagents_env.economy_class(exp.env.id).Params.field_named_by(str(err))
        where = f"env.params.{key}" if key else "env" if build else "env.params"
        raise ConfigFileError(name, where, str(err)) from None


def _check_eval_options(name: str, options: Mapping[str, Any]) -> None:
    from agents.evaluate import evaluate

    known = set(inspect.signature(evaluate).parameters) - {"policy", "economy"}
    reserved = {f.name for f in dataclasses.fields(EvalSection)} | {"wall_time", "n_params", "solver",
                                                                    "train_metrics", "config"}
    for key in options:
        if key not in known or key in reserved:
            allowed = ", ".join(sorted(known - reserved)) or "none"
            raise ConfigFileError(name, f"eval.options.{key}", f"not an extra option of the judge (allowed: {allowed})")


def _check_device(name: str, device: str) -> torch.device:
    try:
        dev = resolve_device(device)
    except RuntimeError as err:
        raise ConfigFileError(name, "run.device", f"{device!r}: {err}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigFileError(name, "run.device", f"{device!r}: CUDA is not available on this machine")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigFileError(name, "run.device", f"{device!r}: use cpu, cuda, cuda:<index> or auto")
    return dev


def _check_solver(name: str, exp: Experiment, solver_name: str, section: dict[str, Any], economy) -> Any:
    from agents.config import ConfigError
    from agents.solvers import SOLVERS, list_solvers

    cls = SOLVERS.get(solver_name)
    if cls is None:
        known = ", ".join(list_solvers())
        raise ConfigFileError(name, "solver.name", f"unknown solver {solver_name!r}; known: {known}")
    section = dict(section)
    if "seed" in cls.Config.keys() and "seed" not in section:
        section["seed"] = exp.run.seed
    try:
        base = cls.default_config(economy)
    except ConfigError as err:
        raise ConfigFileError(name, "solver", str(err)) from None
    try:
        return cls.Config.build(section, base=base)
    except ConfigError as err:
        raise ConfigFileError.of(name, "solver", err) from None


# ---------------------------------------------------------------------------------------------- helpers
def _dotted(prefix: str, key: str | None) -> str:
    return prefix if key is None else f"{prefix}.{key}"


def _full_key(err: Exception) -> str | None:
    key = getattr(err, "full_key", None)
    return str(key) if key else None


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Dumper(yaml.SafeDumper):
    """Block mappings; lists of scalars on one line."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(v, (list, dict)) for v in data) or all(
        isinstance(v, list) and all(not isinstance(x, (list, dict)) for x in v) for v in data
    )
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow and all(
        not isinstance(v, list) for v in data))


_Dumper.add_representer(list, _represent_list)


def dump_yaml(data: Mapping[str, Any]) -> str:
    """Block-style YAML that reads back to the same values (tuples as lists, order kept)."""
    return yaml.dump(_plain(data), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
