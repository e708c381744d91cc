r"""Euler-residual minimisation (Kahou, Fernández-Villaverde, Perla & Sood), for any economy with a residual.

The algorithm, top to bottom (``EulerSolver._train_step``, one minibatch; ``train`` is the Solver template):

1. Data. Simulate ``train_trajectories`` (and ``val_trajectories``) paths of ``horizon`` periods, ``horizon + 1``
   states each, from the initial state with the data policy: the exact LQ policy of the linear model
   (``data_policy="lq"``, published, also for ν ≠ 1) or the current network (``"current"``). The published
   investment runs start every path from ONE initial state X_0 = |N(0.9, 0.05²)| drawn once per run
   (``shared_initial_state``). Optionally re-simulate with the current policy every ``resimulate_every`` epochs
   (published for ν > 1: every 5–10 epochs; Krusell–Smith: every epoch, continuing the paths).
2. Loss on a minibatch S of ``batch_size`` states: the mean squared Euler residual

   .. math:: \mathcal L = \frac{1}{|S| N} \sum_{X \in S} \sum_i \varepsilon_i(X)^2,

   with ε from ``economy.euler_residual`` — investment: ε(X) = γu(X) − β E[p(X') + γ(1−δ)u(X')], E over the
   aggregate shock by 7-node Gauss–Hermite and ONE fixed standardised idiosyncratic draw ŵ (drawn once per run);
   Krusell–Smith: the Fischer–Burmeister residual of the household Euler inequality with the exact expectation.
   Gradients flow through u(X) and u(X').
3. Adam; the learning rate follows a schedule in epochs (published: StepLR ×0.8 every 50 epochs).
4. Validation MSE every ``val_every`` steps (0: at the end of each epoch); stop as soon as it falls below
   ``val_threshold`` (published: 1e-6), when it becomes NaN/inf, or after ``max_epochs`` epochs.

Root selection. In the linear model both roots of the Euler equation's quadratic — the stable
u = H0 + H1 mean(X), H1 ≈ −0.050, and the explosive H1 ≈ +0.220 — are exact zeros of the residual on any data, so
the loss alone cannot tell them apart; the published method relies on training to stay in the stable basin. With
the published networks (no hidden biases, so u is affine in mean(X) for φ identity) the output level moves first
through the weights, i.e. through the slope, and when the initial output bias is too low the slope crosses into
the explosive basin. With the published initialisation 20–40 % of the seeds fail the published success rule for
φ identity / ReLU (explosive root) and up to 80 % for φ moments (explosive root, or a policy that fits the
LQ-simulated data but drifts away along its own paths). ``init_level="data_policy"`` starts the network at the
data policy's mean action (a level, no slope information), which removed those failures in our runs
(``benchmarks/kahou_tables.py``; 10–20 seeds per setting).

Distributed (under torchrun, :mod:`agents.distributed`): the initial state and the idiosyncratic draw are the
run's (the same on every process); each process then simulates and shuffles its own paths from its own seed stream,
``batch_size`` is per process (global batch = world size × batch_size), the loss runs through DistributedDataParallel
(gradients averaged), and the validation MSE is the mean over the processes, so every process stops at the same step.

Anchoring (Krusell–Smith). Along the current policy's own paths the Euler residual also vanishes on an
over-saving, saddle-divergent branch — the analogue of the explosive root above: households that expect K to keep
rising (and R to keep falling) correctly save more, so every local Euler equation holds while the transversality
condition fails. Trained on continued paths alone, the policy reaches a residual of ~1e-6 near K ≈ k_ss and then
drifts onto that branch (aggregate capital 300, R < 1, wealth Gini 0.02, in our runs after 30–60 epochs); data in a
narrow band of K (×[0.8, 1.2] or ×[0.5, 2]) do not prevent it, because the branch fits them. ``anchor_band``
rescales each path's capital before it is continued so that the data span K ∈ [0.3, 3] k_ss, where the divergent
branch cannot hold (at K ≫ k_ss the returns it needs do not exist) and the stable one is the only fit: every seed we
ran then keeps an ergodic K of 38.8–39.7 (classical solution 39.1). ``anchor_fraction`` rescales only a share of
the paths, so that the rest approach the ergodic cross-section.

Spreading (Krusell–Smith). Continued paths hold few rich households, and a policy that lets the rich save too
little confirms itself: its own ergodic set has even fewer of them, and there its residual is small (wealth Gini
0.13 against the reference's 0.25). ``spread_copies`` adds copies of the training states whose wealth is dispersed
household by household (a mean-one log-normal factor, the cross-sectional mean and so the prices kept), so that the
residual is also minimised where the rich are. The copies are trained on, never continued: the simulated paths stay
the policy's own.

Shapes: a state set is a flat TensorDict, batch ``[S]``; residuals are (S, N).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from tensordict import TensorDict

from hetagents_env.economies.core import Economy, Policy

from .. import distributed, schedules
from ..config import Config, ConfigError, interval
from ..networks import DeepSetsConfig, make_actor
from ..residuals import batched_residual, residual_options
from .base import Solver, optimizer_step, spread_endogenous
from .registry import register_solver

__all__ = ["EulerConfig", "EulerSolver", "lq_data_policy"]


@dataclasses.dataclass(frozen=True)
class EulerConfig(Config):
    """Settings of the Euler-residual solver; defaults are the published investment-economy setup (φ(ReLU))."""

    seed: int = 0
    """seed of the initial state, the data, the idiosyncratic draw, the shuffling and the network's initialisation"""
    network: DeepSetsConfig = DeepSetsConfig()
    """the policy's architecture"""
    # -- data
    train_trajectories: int = dataclasses.field(default=16, metadata=interval(1))
    """simulated paths in the training set"""
    val_trajectories: int = dataclasses.field(default=8, metadata=interval(1))
    """simulated paths in the validation set"""
    horizon: int = dataclasses.field(default=63, metadata=interval(0))
    """periods per path (horizon + 1 states, the initial one included)"""
    burn_in: int = dataclasses.field(default=0, metadata=interval(0))
    """periods simulated and discarded before a path is recorded"""
    shared_initial_state: bool = True
    """draw ONE initial state per run and start every path from it (published) instead of one per path"""
    data_policy: Literal["lq", "current"] = "lq"
    """policy simulating the first data sets: the exact LQ policy of the linear model, or the current network"""
    init_level: Literal["network", "data_policy"] = "network"
    """initial output level: the network's own initialisation (published), or shift ρ's output bias so that the
    network's mean action on the training states equals the data policy's (a level only, no slope information)"""
    resimulate_every: int = dataclasses.field(default=0, metadata=interval(0))
    """re-simulate train/validation sets with the current policy every this many epochs (0: never)"""
    continue_paths: bool = False
    """re-simulated paths continue from where the previous ones ended (towards the ergodic set)"""
    anchor_band: tuple[float, float] | None = None
    """before every simulation, rescale each path's endogenous state (capital) so that its cross-sectional mean is
    the initial state's mean × a log-uniform draw from [lo, hi] (None: no rescaling). Keeps a wide band of
    aggregate capital in the data; see "Anchoring" in the module docstring (Krusell–Smith default: (0.3, 3.0))"""
    anchor_fraction: float = dataclasses.field(default=1.0, metadata=interval(0.0, 1.0))
    """share of the paths that are rescaled by ``anchor_band`` at each simulation (the rest continue as they are)"""
    spread_copies: int = dataclasses.field(default=0, metadata=interval(0))
    """after every simulation, add this many copies of the training states whose endogenous state (wealth) is
    dispersed by a mean-one log-normal factor per agent, the cross-sectional mean kept (see "Spreading"); they are
    trained on, never continued"""
    spread_sigma: float = dataclasses.field(default=1.0, metadata=interval(0.0))
    """log-sd of the spreading factor"""
    # -- residual
    quadrature_nodes: int = dataclasses.field(default=7, metadata=interval(1))
    """Gauss–Hermite nodes over the aggregate shock (investment economy)"""
    standardize_draw: bool = True
    """standardise the fixed idiosyncratic draw to mean 0, sd 1 (investment economy)"""
    # -- optimisation
    lr: float = dataclasses.field(default=1e-3, metadata=interval(0.0, open_lo=True))
    """Adam learning rate (published: 1e-3 φ(ReLU), 1e-4 φ(Moments), 7.5e-4 φ(Identity))"""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = dataclasses.field(default=16, metadata=interval(1))
    """states per minibatch"""
    max_epochs: int = dataclasses.field(default=100, metadata=interval(1))
    lr_schedule: Literal["step", "cosine", "constant"] = "step"
    """"step": lr · lr_decay^⌊epoch / lr_step_epochs⌋ (published); "cosine": from lr down to lr · lr_min_factor
    over max_epochs; "constant" """
    lr_step_epochs: int = dataclasses.field(default=50, metadata=interval(1))
    lr_decay: float = dataclasses.field(default=0.8, metadata=interval(0.0, 1.0, open_lo=True))
    lr_min_factor: float = dataclasses.field(default=0.0, metadata=interval(0.0, 1.0))
    warmup_steps: int = dataclasses.field(default=0, metadata=interval(0))
    """linear learning-rate warm-up over this many steps"""
    grad_clip: float | None = dataclasses.field(default=None, metadata=interval(0.0, open_lo=True))
    """clip the gradient norm (None: no clipping)"""
    val_threshold: float = dataclasses.field(default=1e-6, metadata=interval(0.0))
    """stop when the validation MSE falls below this (0: never stop early)"""
    val_every: int = dataclasses.field(default=0, metadata=interval(0))
    """steps between validations (0: once per epoch)"""

    def _validate(self) -> None:
        if self.anchor_band is not None:
            lo, hi = self.anchor_band
            if not (0.0 < lo <= hi and math.isfinite(hi)):
                raise ConfigError(f"EulerConfig.anchor_band must be (lo, hi) with 0 < lo <= hi < inf, got {self.anchor_band}")
        if self.lr_schedule == "cosine" and self.lr_min_factor >= 1.0:
            raise ConfigError("EulerConfig.lr_min_factor must be < 1 for the cosine schedule")


def lq_data_policy(economy: Economy) -> Policy:
    """The economy's data policy (``economy.data_policy()``: for the investment economy u = H0 + H1 mean(X) with the
    exact coefficients of the LINEAR model, the published training data for every ν)."""
    policy = economy.data_policy()
    if policy is None:
        raise ConfigError(
            f"EulerConfig.data_policy = 'lq' needs an economy with a data policy (an exact or known policy); "
            f"{economy.env_id} has none: use data_policy = 'current'"
        )
    return policy


@register_solver("euler")
class EulerSolver(Solver):
    """Minimise the mean squared Euler residual over simulated states; see the module docstring.

    Attributes (besides the Solver interface): ``train_states`` / ``val_states`` (flat TensorDicts, batch [S]),
    ``residual_options`` (the keyword options passed to ``economy.euler_residual``), ``epoch``, ``step``,
    ``converged`` (validation MSE fell below the threshold), ``diverged`` (it became NaN/inf: training stops),
    ``scheduler`` (the learning rate at the next minibatch's position, :class:`agents.schedules.PositionLR`).
    """

    Config = EulerConfig
    config: EulerConfig
    supports_distributed = True
    progress_metrics = ("train_loss", "val_mse")

    @classmethod
    def default_config(cls, economy: Economy) -> EulerConfig:
        """An economy with a data policy (the investment economy): the published setup, data from that policy, with
        re-simulation every 5 epochs where the economy has no exact policy (ν ≠ 1). Any other economy (Krusell–Smith,
        Aiyagari): states simulated under the current policy, continued every epoch, and a small network starting at
        the economy's neutral action (see :func:`_own_data_defaults`)."""
        if economy.data_policy() is not None:
            return EulerConfig(resimulate_every=0 if economy.exact_policy() is not None else 5)
        return _own_data_defaults(economy)

    def __init__(self, economy: Economy, config: EulerConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(economy, config)
        self._start_clock()
        cfg = self.config
        self.rng = economy.generator(cfg.seed)
        self.policy = make_actor(economy, cfg.network, seed=cfg.seed)
        self.optimizer = torch.optim.Adam(
            self.policy.parameters(), lr=cfg.lr, betas=cfg.adam_betas, **_fast_adam(economy.device)
        )
        self.residual_options = residual_options(
            economy, generator=self.rng, nodes=cfg.quadrature_nodes, standardize=cfg.standardize_draw
        )
        self.initial_state = economy.initial_state(1, self.rng) if cfg.shared_initial_state else None
        # distributed runs: the draws above are run-wide; each process simulates and shuffles its own data
        distributed.reseed(self.rng, cfg.seed)
        self.epoch = 0
        self.step = 0
        self.converged = False
        self.diverged = False
        self.best_val_mse = math.inf
        self._ends: dict[str, TensorDict] = {}  # last states of the previous simulation (continue_paths)
        data_policy = lq_data_policy(economy) if cfg.data_policy == "lq" else self.policy
        self.train_states = self.simulate(data_policy, cfg.train_trajectories, "train")
        self.val_states = self.simulate(data_policy, cfg.val_trajectories, "val")
        if cfg.init_level == "data_policy":
            self._match_level(data_policy)
        self._n_train = self.train_states.batch_size[0]
        # the learning rate at the next minibatch's fractional epoch (and the step, for the warm-up)
        self.scheduler = schedules.PositionLR(
            self.optimizer, lambda: self._lr_factors(self.epoch + self._start / self._n_train)
        )
        self._stop_clock()

    # ------------------------------------------------------------------ data
    @torch.no_grad()
    def simulate(self, policy: Policy, trajectories: int, name: str = "train") -> TensorDict:
        """States of ``trajectories`` paths of ``horizon`` periods (after ``burn_in``), flat batch [S]."""
        cfg, eco = self.config, self.economy
        if cfg.continue_paths and name in self._ends:
            state = self._ends[name]
        elif self.initial_state is not None:
            state = self.initial_state.expand(trajectories).clone()
        else:
            state = eco.initial_state(trajectories, self.rng)
        if cfg.anchor_band is not None:
            state = self._anchor(state)
        if cfg.burn_in:
            state = eco.rollout(policy, state, cfg.burn_in, self.rng)[:, -1]
        paths = eco.rollout(policy, state, cfg.horizon, self.rng)  # batch [trajectories, horizon + 1]
        self._ends[name] = paths[:, -1].clone()
        states = paths.reshape(-1)
        if cfg.spread_copies and name == "train":
            states = torch.cat([states, *(self._spread(states) for _ in range(cfg.spread_copies))])
        return states

    def _spread(self, states: TensorDict) -> TensorDict:
        """A copy of ``states`` with the endogenous state spread around each economy's own mean (prices unchanged)."""
        return spread_endogenous(self.economy, states, self.config.spread_sigma, self.rng, keep_mean=True)

    def _anchor(self, state: TensorDict) -> TensorDict:
        """Rescale a share ``anchor_fraction`` of the paths' endogenous state to a mean drawn log-uniformly from
        ``anchor_band`` × the initial state's mean (the cross-sectional shape is kept)."""
        cfg, eco = self.config, self.economy
        key = eco.endogenous_key
        if self._anchor_level is None:
            self._anchor_level = float(eco.initial_state(1, eco.generator(cfg.seed))[key].mean())
        values = state[key]
        b = values.shape[0]
        lo, hi = math.log(cfg.anchor_band[0]), math.log(cfg.anchor_band[1])
        u = torch.rand(2, b, 1, generator=self.rng, device=eco.device, dtype=values.dtype)
        target = self._anchor_level * torch.exp(lo + (hi - lo) * u[0])
        scale = torch.where(u[1] < cfg.anchor_fraction, target / values.mean(-1, keepdim=True), 1.0)
        state = state.clone()
        state[key] = values * scale
        return state

    _anchor_level: float | None = None

    @torch.no_grad()
    def _match_level(self, reference: Policy) -> None:
        """Shift ρ's output bias so the mean (pre-head) output on the training states equals ``reference``'s."""
        net = self.policy
        bias = getattr(net, "rho", [None])[-1].bias if hasattr(net, "rho") else None
        if bias is None:
            raise ConfigError("EulerConfig.init_level = 'data_policy' needs a DeepSets policy with an output bias")
        target, current = reference(self.train_states).mean(), net(self.train_states).mean()
        if net.config.head == "sigmoid":
            target, current = torch.logit(target.clamp(1e-6, 1 - 1e-6)), torch.logit(current.clamp(1e-6, 1 - 1e-6))
        bias += target - current

    # ------------------------------------------------------------------ losses
    def residual(self, states: TensorDict) -> torch.Tensor:
        """Euler residuals of the current policy at ``states``, (S, N), differentiable."""
        return self.economy.euler_residual(self.policy, states, **self.residual_options)

    @torch.no_grad()
    def mse(self, states: TensorDict) -> float:
        """Mean squared Euler residual over a state set (chunked; no gradients)."""
        return float(batched_residual(self.economy, self.policy, states, self.residual_options).square().mean())

    def _lr_factors(self, epoch: float) -> tuple[float, float]:
        """The schedule's factor at a (fractional) epoch and the warm-up's at the current step."""
        cfg = self.config
        if cfg.lr_schedule == "step":
            factor = schedules.step_decay(epoch, every=cfg.lr_step_epochs, decay=cfg.lr_decay)
        elif cfg.lr_schedule == "cosine":
            factor = schedules.cosine(epoch / cfg.max_epochs, min_factor=cfg.lr_min_factor)
        else:
            factor = 1.0
        return factor, schedules.linear_warmup(self.step, steps=cfg.warmup_steps)

    def lr_at(self, epoch: float) -> float:
        """The learning rate at a (fractional) epoch and the current step (warm-up)."""
        return schedules.scaled(self.config.lr, self._lr_factors(epoch))

    # ------------------------------------------------------------------ training
    # ``train`` (the Solver template) runs until converged, diverged, ``max_epochs``, ``steps`` more steps or
    # ``budget`` more seconds; its final metrics add ``train_mse`` and ``val_mse`` on the full sets (computed after
    # the clock stops). Each call starts a fresh shuffled pass over the training states; a pass logs at its end.
    def _begin(self, steps: int | None, budget: float | None) -> int | None:
        self._loss = self._loss_function()
        self._shuffled = None  # a fresh pass
        if steps is not None:
            return steps
        per_epoch = math.ceil(self.train_states.batch_size[0] / self.config.batch_size)
        return 0 if self.converged else max(0, (self.config.max_epochs - self.epoch) * per_epoch)

    def _train_step(self) -> dict[str, Any] | None:
        cfg, eco = self.config, self.economy
        if self._shuffled is None:  # a new pass over the training states
            # --- 1. (re-)simulate the data with the current policy every `resimulate_every` epochs
            if cfg.resimulate_every and self.epoch > 0 and self.epoch % cfg.resimulate_every == 0 and self._fresh_epoch:
                self.train_states = self.simulate(self.policy, cfg.train_trajectories, "train")
                self.val_states = self.simulate(self.policy, cfg.val_trajectories, "val")
            self._fresh_epoch = False
            self._n_train = n_train = self.train_states.batch_size[0]
            self._shuffled = self.train_states[torch.randperm(n_train, generator=self.rng, device=eco.device)]
            self._start, self._epoch_loss, self._batches = 0, 0.0, 0
        n_train, start = self._n_train, self._start
        # --- 2. loss = mean squared Euler residual on a minibatch
        self.scheduler.step()  # the learning rate at epoch + start / n_train
        loss = self._loss(self._shuffled[start : start + cfg.batch_size])
        # --- 3. Adam step
        self.last_loss = optimizer_step(self.optimizer, loss, self.policy.parameters(), cfg.grad_clip)
        self.step += 1
        self._epoch_loss += self.last_loss
        self._batches += 1
        self._start = start + cfg.batch_size
        end_of_epoch = self._start >= n_train
        # --- 4. validation and early stopping
        if self.step % (cfg.val_every or math.ceil(n_train / cfg.batch_size)) == 0 or end_of_epoch:
            self.val_mse = distributed.all_reduce_mean(self.mse(self.val_states))  # the same on every rank
            self.best_val_mse = min(self.best_val_mse, self.val_mse)
            if self.val_mse < cfg.val_threshold:
                self.converged = True
            elif not math.isfinite(self.val_mse):
                self.diverged = True  # as the published early stopping's check_finite
        if end_of_epoch:
            self.epoch += 1
            self._fresh_epoch, self._shuffled = True, None
        return self._metrics() if end_of_epoch else None

    def _done(self) -> bool:
        return self.converged or self.diverged

    def _metrics(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "step": self.step, "lr": self.scheduler.get_last_lr()[0],
            "train_loss": distributed.all_reduce_mean(float(self._epoch_loss) / max(self._batches, 1)),
            "val_mse": self.val_mse, "best_val_mse": self.best_val_mse, "converged": self.converged,
            "diverged": self.diverged, "wall_time": self._elapsed(),
        }

    def _finish(self, final: dict[str, Any]) -> dict[str, Any]:
        final.update(train_mse=distributed.all_reduce_mean(self.mse(self.train_states)),
                     val_mse=distributed.all_reduce_mean(self.mse(self.val_states)))
        return final

    def _loss_function(self):
        """minibatch -> mean squared Euler residual (data-parallel under torchrun: the policy's calls on the states
        and their successors are one DDP forward)."""
        def loss(states: TensorDict) -> torch.Tensor:
            return self.residual(states).square().mean()

        return self._data_parallel(self.policy, loss)

    _fresh_epoch = True
    _shuffled: TensorDict | None = None  # the current pass's shuffled training states (None: start a new pass)
    _start = 0  # the next minibatch's offset in the pass
    val_mse = math.nan
    last_loss: torch.Tensor | None = None
    """the latest minibatch loss of this process (the global one is its mean over the processes)"""

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd.update(
            optimizer=self.optimizer.state_dict(), epoch=self.epoch, step=self.step, converged=self.converged,
            diverged=self.diverged,
            best_val_mse=self.best_val_mse, rng=self.rng.get_state(), train_states=self.train_states.to_dict(),
            val_states=self.val_states.to_dict(), residual_options=dict(self.residual_options),
            initial_state=None if self.initial_state is None else self.initial_state.to_dict(),
        )
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        # deep copy: Optimizer.load_state_dict keeps the given tensors, which would alias another solver's state
        self.optimizer.load_state_dict(copy.deepcopy(state_dict["optimizer"]))
        self.epoch, self.step = int(state_dict["epoch"]), int(state_dict["step"])
        self.converged = bool(state_dict["converged"])
        self.diverged = bool(state_dict.get("diverged", False))
        self.best_val_mse = float(state_dict["best_val_mse"])
        self.rng.set_state(state_dict["rng"])
        self.train_states = _flat_tensordict(state_dict["train_states"])
        self.val_states = _flat_tensordict(state_dict["val_states"])
        self.residual_options = dict(state_dict["residual_options"])
        init = state_dict.get("initial_state")
        self.initial_state = None if init is None else _flat_tensordict(init)
        self._fresh_epoch = True


def _fast_adam(device: torch.device) -> dict[str, bool]:
    """Adam's fused kernel (one op for all parameters) where this torch build has it, else the foreach one."""
    try:
        torch.optim.Adam([torch.zeros(1, device=device, requires_grad=True)], fused=True)
        return {"fused": True}
    except (RuntimeError, TypeError, ValueError):
        return {"foreach": True}


def _flat_tensordict(data: Mapping[str, torch.Tensor]) -> TensorDict:
    first = next(iter(data.values()))
    return TensorDict(dict(data), batch_size=first.shape[:1])


def _own_data_defaults(economy: Economy) -> EulerConfig:
    """Economies without a data policy (Krusell–Smith, Aiyagari): a small tanh network on the economy's features
    whose output starts at the neutral action (a sigmoid share head: bias logit(share)); 64 economies simulated
    under the current policy, continued every epoch, half of them re-centred to an aggregate capital log-uniform in
    [0.3, 3] × the initial one first (see "Anchoring"); 150 epochs, cosine learning rate 1e-3 → 2e-5."""
    neutral = float(economy.neutral_action())
    head = economy.action_head
    bias = math.log(neutral / (1.0 - neutral)) if head == "sigmoid" else neutral
    network = DeepSetsConfig(
        phi="identity", rho_widths=(64, 64), activation="tanh", hidden_bias=True, head=head, output_bias_init=bias,
    )
    return EulerConfig(
        network=network, train_trajectories=64, val_trajectories=16, horizon=16, burn_in=0,
        shared_initial_state=False, data_policy="current", resimulate_every=1, continue_paths=True,
        anchor_band=(0.3, 3.0), anchor_fraction=0.5,
        lr=1e-3, batch_size=64, max_epochs=150, lr_schedule="cosine", lr_min_factor=0.02, val_threshold=0.0,
    )
