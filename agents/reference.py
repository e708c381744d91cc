r"""Reference solutions for the judge: computed once per (economy, parameters, N), cached on disk.

:func:`reference_for` returns an economy's :class:`Reference`:

* the economy's exact policy (``economy.exact_policy()``, e.g. the LQ solution of the linear investment economy)
  with its exact value (``exact_value()``): nothing to solve, nothing cached;
* else the registered solver ``economy.reference_solver`` (Krusell–Smith: ``ks_classical``; stationary Aiyagari:
  ``aiyagari_stationary``), built with ``Solver.reference_config(economy)`` (or an explicit ``config``) on the
  economy in float64 and trained to convergence, then cached (:mod:`agents.reference_cache`): the solution (the
  solver's ``state_dict``) under a key of (version, economy, parameters, N, solver, config), and the samples below
  under the same key plus the protocol;
* None when the economy has no reference.

Besides the policy (and the value, if the solver has one) a Reference carries what every judge call needs and
must be the same for every solver, all computed once with seeds derived from the cache key:

* ``ergodic``: a pool of economy-states from the reference's ergodic set: ``pool_economies`` economies of the
  economy's N agents start from ``initial_state`` and follow the reference policy for ``pool_burn_in`` periods
  (default 4 × ``economy.mixing_periods``; 4 × 200 when the economy states none: from its initial state the
  Krusell–Smith cross-section is still moving after its 1,000 mixing periods — pooled wealth Gini under the
  continuum reference, N = 50: 0.232 at period 1,000, 0.248 at 2,000, 0.2505 at 3,000 and 4,000), then
  ``pool_snapshots`` cross-sections ``pool_spacing`` periods apart. ``convergence`` (in the metadata) records the
  pooled mean and Gini of w at the end of each mixing block of the burn-in.
* ``test_states``: ``test_states`` economy-states drawn from the pool (the common test states of the Euler errors);
* ``stationary``: the reference's own stationary sample under the judge's protocol (from ``stationary_start``,
  shocks from the key's seed), and ``stationary_noise``: the same with other shocks (the simulation-noise level of
  the Wasserstein distance);
* ``welfare_start`` and ``welfare_horizon``: the welfare simulation's start states and its truncation T
  (:func:`agents.reference_metrics.lifetime_values`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from tensordict import TensorDict

import hetagents_env
from hetagents_env.economies.core import Economy, Policy

from . import reference_cache as cache
from .reference_metrics import gini, simulate_stationary, welfare_horizon
from .solvers.registry import SOLVERS, make_solver

__all__ = ["DEFAULT_MIXING_PERIODS", "Reference", "ReferenceProtocol", "ReferenceUnavailable", "reference_for"]

#: mixing periods assumed for an economy that states none (``economy.mixing_periods is None``)
DEFAULT_MIXING_PERIODS = 200


class ReferenceUnavailable(RuntimeError):
    """The economy names a reference that cannot be had now (solver not registered; not cached and not solved)."""


@dataclasses.dataclass(frozen=True)
class ReferenceProtocol:
    """Sizes of the reference's samples and of the judge's reference-based measurements (None: from the economy).

    ``mixing`` below is ``economy.mixing_periods`` or :data:`DEFAULT_MIXING_PERIODS`."""

    pool_economies: int | None = None
    """economies of the ergodic pool; None: max(4, min(64, ⌈6400 / N⌉))"""
    pool_burn_in: int | None = None
    """periods from ``initial_state`` before the pool is recorded; None: 4 × mixing"""
    pool_snapshots: int = 8
    pool_spacing: int | None = None
    """periods between the pool's snapshots; None: max(1, mixing // 20)"""
    test_states: int | None = None
    """common test states (economy-states of N agents each); None: max(4, min(64, ⌈3200 / N⌉))"""
    stationary_economies: int | None = None
    """economies of a policy's stationary simulation; None: max(2, min(32, ⌈1600 / N⌉))"""
    stationary_burn_in: int | None = None
    """periods dropped before a policy's stationary sample; None: mixing"""
    stationary_periods: int | None = None
    """periods recorded; None: max(50, mixing // 2)"""
    stationary_thin: int | None = None
    """every thin-th recorded period enters the pooled wealth sample; None: max(1, mixing // 100)"""
    welfare_economies: int | None = None
    """economies of the welfare simulation (one deviating agent each); None: max(8, min(64, ⌈32000 / N⌉))"""
    welfare_tail: float = 1e-4
    """truncation of lifetime payoffs: the horizon T is the smallest with β^T ≤ welfare_tail"""
    constraint_tol: float = 1e-3
    """an agent is at its borrowing limit when w' − w_min ≤ constraint_tol × mean(w − w_min) of the pool"""

    def __post_init__(self) -> None:
        for name in ("pool_economies", "pool_snapshots", "pool_spacing", "test_states", "stationary_economies",
                     "stationary_periods", "stationary_thin", "welfare_economies", "pool_burn_in", "stationary_burn_in"):
            value, least = getattr(self, name), 0 if name.endswith("burn_in") else 1
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise ValueError(f"ReferenceProtocol.{name} must be an integer >= {least} (or None), got {value!r}")
        if not 0.0 < self.welfare_tail < 1.0:
            raise ValueError(f"ReferenceProtocol.welfare_tail must be in (0, 1), got {self.welfare_tail!r}")
        if not self.constraint_tol >= 0.0:
            raise ValueError(f"ReferenceProtocol.constraint_tol must be >= 0, got {self.constraint_tol!r}")

    def resolve(self, economy: Economy) -> "ReferenceProtocol":
        """Every None replaced by its value for ``economy``."""
        mix = economy.mixing_periods or DEFAULT_MIXING_PERIODS
        n = economy.n_agents
        fill = {
            "pool_economies": max(4, min(64, math.ceil(6400 / n))),
            "test_states": max(4, min(64, math.ceil(3200 / n))),
            "stationary_economies": max(2, min(32, math.ceil(1600 / n))),
            "welfare_economies": max(8, min(64, math.ceil(32000 / n))),
            "pool_burn_in": 4 * mix,
            "pool_spacing": max(1, mix // 20),
            "stationary_burn_in": mix,
            "stationary_periods": max(50, mix // 2),
            "stationary_thin": max(1, mix // 100),
        }
        return dataclasses.replace(self, **{k: v for k, v in fill.items() if getattr(self, k) is None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Reference:
    """An economy's reference solution and the samples the judge draws from it (see the module docstring).

    ``policy`` and ``value`` take float64 states of :attr:`economy` (the judged economy in float64)."""

    economy: Economy
    source: str
    """"exact" (the economy's exact policy) or the reference solver's name"""
    policy: Policy
    value: Callable[[TensorDict], torch.Tensor] | None
    protocol: ReferenceProtocol
    key: str
    seed: int
    ergodic: TensorDict
    test_states: TensorDict
    stationary_start: TensorDict
    stationary: dict[str, Any]
    stationary_noise: dict[str, Any]
    welfare_start: TensorDict
    welfare_horizon: int
    wealth_scale: float
    """mean of w − w_min over the pool (w_min the lower bound of w; 0 when unbounded): the scale of τ"""
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    """solve time, convergence and final metrics of the solver, the pool's convergence record, the cache path,
    and ``cached`` (True: loaded from disk)"""

    @property
    def exact(self) -> Policy | None:
        """The exact policy (for the relative policy error), if this reference is one."""
        return self.policy if self.source == "exact" else None


# ---------------------------------------------------------------------------------------------- construction
def reference_for(
    economy: Economy,
    *,
    cache_dir: str | os.PathLike | None = None,
    config: Any = None,
    solve: bool = True,
    protocol: ReferenceProtocol | None = None,
    log: Callable[[str], Any] | None = None,
) -> Reference | None:
    """The reference of ``economy`` (see the module docstring); None if it has none.

    ``config``: the reference solver's config (mapping or Config; default ``reference_config(economy)``).
    ``solve=False``: raise :class:`ReferenceUnavailable` instead of solving when the cache has no valid solution.
    ``log``: called with one line when the reference is solved or its samples drawn (not on a cache hit).
    Raises :class:`ReferenceUnavailable` if the economy names a reference solver that is not registered.

    Two cache entries: the solution (key: version, env_id, params, N, solver, config) and the samples (the same
    and the protocol), so that another protocol draws new samples from the cached solution without solving."""
    eco = economy.with_dtype(torch.float64)
    proto = (protocol or ReferenceProtocol()).resolve(eco)
    exact = eco.exact_policy()
    inputs: dict[str, Any] = {
        "version": hetagents_env.__version__, "env_id": eco.env_id, "params": eco.params.to_dict(),
        "n_agents": eco.n_agents,
    }
    if exact is not None:
        inputs.update(solver="exact", config=None, protocol=proto.to_dict())
        key = cache.key_of(inputs)
        value = eco.exact_value()
        payload = _samples(eco, exact, value, proto, key)
        return _build(eco, "exact", exact, value, proto, key, payload, {"cached": False})
    name = eco.reference_solver
    if name is None:
        return None
    cls = SOLVERS.get(name)
    if cls is None:
        raise ReferenceUnavailable(f"{eco.env_id} names the reference solver {name!r}, which is not registered "
                                   f"(registered: {', '.join(sorted(SOLVERS))})")
    cfg = cls.Config.build(config, base=cls.reference_config(eco))
    inputs.update(solver=name, config=cfg.to_dict())
    directory = cache.default_cache_dir(cache_dir)
    what = f"the {eco.env_id} reference ({name}, N = {eco.n_agents})"
    # the solution
    sol_key = cache.key_of(inputs)
    sol_path = cache.cache_path(directory, eco.env_id, eco.n_agents, sol_key, "solution")
    solution = cache.load_entry(sol_path, sol_key, inputs)
    cached = solution is not None
    if solution is None:
        if not solve:
            raise ReferenceUnavailable(
                f"{what} is not cached at {sol_path}: solve it once with reference=True (agents.evaluate) or "
                "eval.options.reference=true (command line)")
        if log is not None:
            log(f"solving {what} once; it is cached at {sol_path}")
        solution = _solve(cls, eco, cfg)
        _save(sol_path, sol_key, inputs, solution)
    solver = make_solver(name, eco, solution["solver_config"])
    solver.load_state_dict(solution["solver_state"])
    # its samples under this protocol
    inputs = {**inputs, "protocol": proto.to_dict()}
    key = cache.key_of(inputs)
    path = cache.cache_path(directory, eco.env_id, eco.n_agents, key, "samples")
    payload = cache.load_entry(path, key, inputs)
    samples_cached = payload is not None
    if payload is None:
        if log is not None and cached:
            log(f"drawing the ergodic samples of {what} (once; cached at {path})")
        payload = _samples(eco, solver.policy, solver.value, proto, key)
        _save(path, key, inputs, payload)
    meta = {"cached": cached, "samples_cached": samples_cached, "path": str(sol_path), "samples_path": str(path),
            **solution["solve"]}
    return _build(eco, name, solver.policy, solver.value, proto, key, payload, meta)


def _save(path, key: str, inputs: dict[str, Any], payload: dict[str, Any]) -> None:
    """Cache an entry; an unwritable cache is a warning (the reference is used all the same)."""
    try:
        cache.save_entry(path, key, inputs, payload)
    except OSError as err:
        warnings.warn(f"could not write the reference cache entry {path} ({err}): it will be recomputed next time",
                      RuntimeWarning, stacklevel=3)


def _seed(key: str) -> int:
    return int(key[:12], 16)


def _solve(cls, eco: Economy, cfg) -> dict[str, Any]:
    start = time.perf_counter()
    solver = make_solver(cls.name, eco, cfg)
    metrics = solver.train()
    converged = getattr(solver, "converged", (metrics or {}).get("converged"))
    solve = {"solver": cls.name, "solve_time": time.perf_counter() - start,
             "converged": None if converged is None else bool(converged),
             "metrics": {k: v for k, v in cache.plain(metrics or {}).items() if isinstance(v, (int, float, bool, str))}}
    if converged is False:
        warnings.warn(f"the {eco.env_id} reference solver {cls.name} did not converge: the reference is used "
                      "anyway (its metadata says converged = False)", RuntimeWarning, stacklevel=3)
    return {"solver_state": solver.state_dict(), "solver_config": solver.config.to_dict(), "solve": solve}


@torch.no_grad()
def _samples(eco: Economy, policy: Policy, value, proto: ReferenceProtocol, key: str) -> dict[str, Any]:
    """The pool, the selections, the reference's stationary samples and the welfare baseline (a payload)."""
    seed = _seed(key)
    gen = eco.generator(seed + 1)
    w_key = eco.endogenous_key
    mix = eco.mixing_periods or DEFAULT_MIXING_PERIODS
    state = eco.initial_state(int(proto.pool_economies), gen)
    convergence = []
    for t in range(int(proto.pool_burn_in)):
        state = eco.transition(state, policy(state), eco.sample_shocks(state, gen))
        if (t + 1) % mix == 0:
            w = state[w_key].double().cpu().numpy()
            convergence.append({"period": t + 1, "mean": float(w.mean()), "gini": gini(w)})
    snaps = []
    for s in range(proto.pool_snapshots):
        if s:
            for _ in range(int(proto.pool_spacing)):
                state = eco.transition(state, policy(state), eco.sample_shocks(state, gen))
        snaps.append(state.clone())
    pool = torch.cat(snaps)
    size = pool.batch_size[0]

    def pick(count: int, offset: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed + offset)
        return torch.randperm(size, generator=g)[: min(count, size)]

    test_index, stat_index, welfare_index = pick(proto.test_states, 2), pick(proto.stationary_economies, 6), \
        pick(proto.welfare_economies, 7)
    stat_start = pool[stat_index]
    kw = dict(burn_in=int(proto.stationary_burn_in), periods=int(proto.stationary_periods),
              thin=int(proto.stationary_thin))
    stationary = simulate_stationary(policy, eco, stat_start, seed=seed + 3, **kw)
    noise = simulate_stationary(policy, eco, stat_start, seed=seed + 4, **kw)
    horizon = welfare_horizon(eco.discount, proto.welfare_tail)
    low = eco.feature_bounds(w_key)[0]
    w = pool[w_key].double()
    scale = float((w - low).mean()) if math.isfinite(low) else float(w.abs().mean())
    return {
        "pool": dict(pool.items()), "convergence": convergence, "test_index": test_index,
        "stationary_index": stat_index, "welfare_index": welfare_index, "welfare_horizon": horizon,
        "wealth_scale": scale,
        "stationary": {k: v.cpu() for k, v in stationary.items() if k != "states" and v is not None},
        "stationary_noise": {k: v.cpu() for k, v in noise.items() if k != "states" and v is not None},
    }


def _build(eco: Economy, source: str, policy: Policy, value, proto: ReferenceProtocol, key: str,
           payload: Mapping[str, Any], meta: dict[str, Any]) -> Reference:
    pool_dict = payload["pool"]
    size = next(iter(pool_dict.values())).shape[0]
    pool = TensorDict({k: v.to(eco.device) for k, v in pool_dict.items()}, batch_size=[size], device=eco.device)
    meta = {**meta, "convergence": list(payload["convergence"])}
    return Reference(
        economy=eco, source=source, policy=policy, value=value, protocol=proto, key=key, seed=_seed(key),
        ergodic=pool, test_states=pool[payload["test_index"]], stationary_start=pool[payload["stationary_index"]],
        stationary=dict(payload["stationary"]), stationary_noise=dict(payload["stationary_noise"]),
        welfare_start=pool[payload["welfare_index"]],
        welfare_horizon=int(payload["welfare_horizon"]), wealth_scale=float(payload["wealth_scale"]), metadata=meta,
    )
