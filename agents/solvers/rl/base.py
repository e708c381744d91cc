"""What every RL solver shares: its settings (:class:`RLConfig`) and base class (:class:`RLSolverBase`: scaling,
generators, the run-length bookkeeping, the learning-rate schedule, the hooks of the training template
(:meth:`Solver.train <agents.solvers.base.Solver.train>`) and the checkpoint, with the collector's and replay
buffer's state where a solver has them), and the optimizer helper :func:`adam` (the optimizer step is
:func:`agents.solvers.base.optimizer_step`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from tensordict import TensorDict

from hetagents_env.economies.core import Economy

from ... import schedules
from ...config import Config, ConfigError, interval, torch_dtype
from ...networks import DeepSetsConfig
from ..base import Solver
from .scaling import default_scaling

__all__ = ["RLConfig", "RLSolverBase", "adam"]


@dataclasses.dataclass(frozen=True)
class RLConfig(Config):
    """Settings shared by the RL solvers (each solver adds its own)."""

    seed: int = 0
    """seed of the networks, the environment, the exploration noise and the minibatches"""
    dtype: Literal["float32", "float64"] = "float32"
    """dtype of the networks (the economy's dtype must match: pass an economy built with it)"""
    num_envs: int = dataclasses.field(default=32, metadata=interval(1))
    """economies B simulated side by side (each with N agents)"""
    horizon: int = dataclasses.field(default=64, metadata=interval(1))
    """episode length: economies are reset to the initial distribution after this many periods (the judge's
    paths are 64 states long); the value is bootstrapped at the cut (a truncation, not a terminal state)"""
    actor: DeepSetsConfig | None = None
    """the actor's architecture (None: the economy's default, see ``default_scaling``)"""
    critic: DeepSetsConfig | None = None
    """the critic's architecture (None: the economy's default)"""
    exploration: Literal["centered", "independent"] = "centered"
    """exploration noise: zero-sum over each economy's agents (price taking) or i.i.d. (N-player Nash)"""
    exploration_sd: float | None = dataclasses.field(default=None, metadata=interval(0.0))
    """sd of the exploration noise in action units (None: the economy's default)"""
    reward_scale: float | None = dataclasses.field(default=None, metadata=interval(0.0, open_lo=True))
    """rewards are multiplied by this before learning (None: 1 − β)"""
    lr_actor: float = dataclasses.field(default=3e-4, metadata=interval(0.0, open_lo=True))
    lr_critic: float = dataclasses.field(default=1e-3, metadata=interval(0.0, open_lo=True))
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    """"cosine": from lr down to lr · lr_min_factor over the run (the run's length = ``steps``, ``budget`` or
    ``total_agent_steps``, whichever is given — the largest fraction done counts)"""
    lr_min_factor: float = dataclasses.field(default=0.05, metadata=interval(0.0, 1.0))
    grad_clip: float | None = dataclasses.field(default=1.0, metadata=interval(0.0, open_lo=True))
    total_agent_steps: int = dataclasses.field(default=0, metadata=interval(0))
    """stop after this many environment agent-steps (economies × agents × periods; 0: no limit)"""
    log_every: int = dataclasses.field(default=10, metadata=interval(1))
    """log metrics every this many steps"""


class RLSolverBase(Solver):
    """Plumbing shared by the RL solvers: scaling, generators, the run-length bookkeeping, the learning-rate
    schedule and the hooks of the training template (:meth:`Solver.train <agents.solvers.base.Solver.train>`).

    A subclass implements

    * ``_setup()`` — builds its networks, optimizers and data sources (called once, at the end of the constructor);
    * ``_step() -> dict`` — one unit of ``steps`` (e.g. a collect + update iteration); it advances
      ``agent_steps`` and returns the step's metrics (floats, checked for divergence at each logging point);
    * ``_optimizers() -> [(optimizer, base lr), ...]`` — the optimizers the learning-rate schedule drives, each
      built with its base learning rate (one :class:`~agents.schedules.PositionLR` per optimizer sets
      ``base lr · factor`` before every step).

    ``train`` (the template) runs ``steps`` more steps and/or ``budget`` more seconds, or until
    ``total_agent_steps`` (neither given and no agent-step limit: ``default_steps``); metrics are logged every
    ``log_every`` steps and at the call's last step, and a non-finite metric stops the run (``diverged``). The
    learning-rate schedule spans one ``train`` call (:meth:`fraction_done`); a run resumed from a checkpoint whose
    ``train`` call asks for exactly what remained of the checkpointed call continues that call's schedule."""

    config: RLConfig
    default_steps: int = 100
    deterministic_actor: bool = False

    def __init__(self, economy: Economy, config: RLConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(economy, config)
        cfg = self.config
        if torch_dtype(cfg.dtype) != economy.dtype:
            raise ConfigError(
                f"{type(cfg).__name__}.dtype = {cfg.dtype!r} but the economy is {economy.dtype}: build the economy "
                "with the same dtype"
            )
        self._start_clock()
        self.scaling = default_scaling(economy)
        self.actor_config = cfg.actor if cfg.actor is not None else self.scaling.actor
        self.critic_config = cfg.critic if cfg.critic is not None else self.scaling.critic
        self.exploration_sd = cfg.exploration_sd if cfg.exploration_sd is not None else (
            self.scaling.exploration_sd_deterministic if self.deterministic_actor else self.scaling.exploration_sd
        )
        self.reward_scale = cfg.reward_scale if cfg.reward_scale is not None else 1.0 - economy.discount
        self.gamma = economy.discount
        self.rng = economy.generator(cfg.seed)  # exploration noise, minibatches
        self.step = 0
        self.agent_steps = 0
        self._plan: tuple[int | None, float | None] = (None, None)
        self._run_start = (0, 0.0, 0)
        self._diverged = False
        self._last: tuple[float, dict[str, Any]] = (1.0, {})  # (learning-rate factor, metrics) of the latest step
        self._setup()
        self._lr_factor = 1.0
        for opt, base in self._optimizers():
            lrs = [group["lr"] for group in opt.param_groups]
            if any(lr != base for lr in lrs):
                raise ValueError(f"{type(self).__name__}._optimizers(): an optimizer built with learning rates {lrs} "
                                 f"is paired with the base learning rate {base}")
        self.schedulers = [schedules.PositionLR(opt, lambda: self._lr_factor) for opt, _ in self._optimizers()]
        self._stop_clock()

    @classmethod
    def default_config(cls, economy: Economy) -> RLConfig:
        """Episodes as long as the economy's ``mixing_periods`` where it states one (Krusell–Smith: 1,000 periods:
        households' wealth needs hundreds of periods to spread from the common initial k toward the ergodic
        distribution); otherwise the config's defaults."""
        if economy.mixing_periods is not None:
            return cls.Config(horizon=int(economy.mixing_periods))
        return cls.Config()

    # ------------------------------------------------------------------ subclass hooks
    def _setup(self) -> None:  # pragma: no cover - abstract
        """Build the networks, optimizers and data sources (the constructor's last act)."""
        raise NotImplementedError

    def _step(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """One step (one unit of ``steps``): advance ``agent_steps``; returns the step's metrics."""
        raise NotImplementedError

    def _optimizers(self) -> list[tuple[torch.optim.Optimizer, float]]:
        """(optimizer, base learning rate) pairs the schedule drives (each optimizer built with that learning
        rate)."""
        return []

    # ------------------------------------------------------------------ schedule
    def fraction_done(self) -> float:
        """Fraction of the current run done: the largest of steps, seconds and agent-steps fractions (0 when the
        run has no announced length)."""
        steps, budget = self._plan
        step0, time0, agent0 = self._run_start
        fractions = [0.0]
        if steps:
            fractions.append((self.step - step0) / steps)
        if budget:
            fractions.append((self._elapsed() - time0) / budget)
        if self.config.total_agent_steps:
            fractions.append(self.agent_steps / self.config.total_agent_steps)
        return min(max(fractions), 1.0)

    def _apply_lr(self) -> float:
        """Set every optimizer's learning rate to the one of the step about to be taken (base · the schedule's factor
        at :meth:`fraction_done`); returns the factor."""
        cfg = self.config
        self._lr_factor = 1.0 if cfg.lr_schedule == "constant" else schedules.cosine(
            self.fraction_done(), min_factor=cfg.lr_min_factor)
        for scheduler in self.schedulers:
            scheduler.step()
        return self._lr_factor

    # ------------------------------------------------------------------ the hooks of train (agents.solvers.base)
    def _begin(self, steps: int | None, budget: float | None) -> int | None:
        """The call's plan (a new run, or the checkpointed one continued: :meth:`_continued_plan`); no step when
        ``total_agent_steps`` is already reached."""
        cfg = self.config
        if steps is None and budget is None and not cfg.total_agent_steps:
            steps = self.default_steps
        self._plan, self._run_start = self._continued_plan(steps, budget)
        self._diverged = False
        if cfg.total_agent_steps and self.agent_steps >= cfg.total_agent_steps:
            return 0
        return steps

    def _train_step(self) -> dict[str, Any] | None:
        self._last = (self._apply_lr(), self._step())
        self.step += 1
        return self._metrics() if self.step % self.config.log_every == 0 else None

    def _metrics(self) -> dict[str, Any]:
        """The latest step's metrics; ``diverged`` (and the run stops) when one of them is not finite."""
        lr_factor, out = self._last
        metrics = {"step": self.step, "agent_steps": self.agent_steps, "lr_factor": lr_factor, **out,
                   "wall_time": self._elapsed()}
        if not all(math.isfinite(v) for v in out.values() if isinstance(v, float)):
            metrics["diverged"] = self._diverged = True
        return metrics

    def _done(self) -> bool:
        cfg = self.config
        return self._diverged or bool(cfg.total_agent_steps and self.agent_steps >= cfg.total_agent_steps)

    def _finish(self, final: dict[str, Any]) -> dict[str, Any]:
        """The latest metrics with the current counters first."""
        return {"step": self.step, "agent_steps": self.agent_steps,
                **{k: v for k, v in final.items() if k not in ("step", "agent_steps")}}

    def _continued_plan(self, steps: int | None, budget: float | None):
        """(plan, start) of a ``train`` call: the checkpointed run's when the call asks for exactly what remained of
        it (a resumed run: the learning-rate schedule goes on where it stopped), else a new run starting now."""
        saved, self._saved_plan = self._saved_plan, None
        if saved is not None:
            (old_steps, old_budget), start = saved
            remaining = None if old_steps is None else old_steps - (self.step - start[0])
            if steps == remaining and (budget is None) == (old_budget is None):
                return (old_steps, old_budget), start
        return (steps, budget), (self.step, self._elapsed(), self.agent_steps)

    _saved_plan = None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        (steps, budget), (step0, time0, agent0) = self._plan, self._run_start
        plan = {"steps": steps, "budget": budget, "start_step": step0, "start_time": time0, "start_agent_steps": agent0}
        return {**super().state_dict(), "plan": plan, **self._rollout_state()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        plan = state_dict.get("plan")
        self._saved_plan = None if plan is None else (
            (plan["steps"], plan["budget"]), (plan["start_step"], plan["start_time"], plan["start_agent_steps"]))
        self._load_rollout_state(state_dict)

    def _rollout_state(self) -> dict[str, Any]:
        """Where the collector's economies are (states, episode clocks, shock stream, the collector's next input) and
        the replay buffer, for solvers that have them: without them a resumed run restarts its episodes and forgets
        its replay. (torchrl's own ``Collector.state_dict`` leaves the next input out.)"""
        out: dict[str, Any] = {}
        collector = getattr(self, "collector", None)
        if collector is not None:
            core = self.env.core
            out["rollout"] = {"state": core.state.clone().to_dict(), "elapsed_steps": core.elapsed_steps.clone(),
                              "rng": core.rng.get_state(), "carrier": collector._carrier.clone().to_dict(),
                              "frames": collector._frames, "iter": collector._iter}
            if collector.track_traj_ids:
                out["rollout"]["traj_pool"] = collector._traj_pool.state_dict()
        buffer = getattr(self, "buffer", None)
        if buffer is not None:
            out["replay"] = buffer.state_dict()
        return out

    def _load_rollout_state(self, state_dict: Mapping[str, Any]) -> None:
        rollout, replay = state_dict.get("rollout"), state_dict.get("replay")
        if rollout is not None and getattr(self, "collector", None) is not None:
            core, collector = self.env.core, self.collector
            _set_leaves(core.state, rollout["state"])
            core.elapsed_steps.copy_(rollout["elapsed_steps"])
            core.rng.set_state(rollout["rng"])
            _set_leaves(collector._carrier, rollout["carrier"])
            collector._frames, collector._iter = int(rollout["frames"]), int(rollout["iter"])
            if "traj_pool" in rollout and collector.track_traj_ids:
                collector._traj_pool.load_state_dict(rollout["traj_pool"])
        if replay is not None and getattr(self, "buffer", None) is not None:
            self.buffer.load_state_dict(replay)

    # ------------------------------------------------------------------ helpers
    def _lq_rel_error(self, states: TensorDict) -> float | None:
        """Mean |u − u*| / |u*| of the current policy at ``states`` against the economy's exact policy u* (the LQ
        policy of the linear investment economy), else None."""
        exact = self.economy.exact_policy()
        if exact is None:
            return None
        with torch.no_grad():
            u, ref = self.policy(states), exact(states)
            return float(((u - ref).abs() / ref.abs()).mean())


def _set_leaves(td: TensorDict, values: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> None:
    """Set every leaf of the nested mapping ``values`` into ``td`` (its sub-tensordicts keep their batch sizes)."""
    for key, value in values.items():
        if isinstance(value, Mapping):
            _set_leaves(td, value, (*prefix, key))
        else:
            td.set((*prefix, key), value)


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam (foreach kernels) over the trainable tensors of ``params``."""
    return torch.optim.Adam([p for p in params if p.requires_grad], lr=lr, foreach=True)
