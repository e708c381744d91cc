r"""DeepHAM (Han, Yang & E): policy optimisation on simulated paths + value regression, with generalized moments.

One household's (firm's) problem is solved by differentiating its discounted payoff along simulated paths of the
whole economy, while a value function learned by regression closes the truncated horizon. The algorithm, top to
bottom (:meth:`DeepHAMSolver._train_step` and its ``_begin``, in the Solver template ``train``):

0. **Networks.** Policy: a DeepSets actor (:mod:`agents.networks`)
   :math:`a_i = \rho(o_i, Z, \bar\phi)` with :math:`\bar\phi = \frac1N\sum_j \phi(k_j)` — the 1st moment
   (``summary="moment"``: φ = identity, :math:`\bar\phi = K`) or J generalized moments (``summary="gm"``: φ an
   MLP 1 → 12 → 12 (tanh) → J). Krusell–Smith: own state :math:`o_i = (k_i/k_{ss}, e_i)`, aggregate Z, a sigmoid
   head giving the consumption share (published: 2 × 24 tanh, 938 parameters with 1 GM). Investment economy: u(X),
   a linear head. Value: an ensemble of ``n_critics`` DeepSets critics, each with its own φ
   (:class:`agents.value.ValueEnsemble`, the members batched as one module of stacked weights: one batched matmul
   per layer; fitted by :mod:`agents.value`, which the judge shares).
1. **Ergodic set.** ``ergodic_economies`` economies are simulated under the current policy (``burn_in`` periods
   first); every refresh simulates ``ergodic_periods`` more periods and records every ``ergodic_skip``-th state;
   policy steps draw their start states from this set without replacement and the set is re-simulated (continuing
   the paths) when it is used up — the published "policy data set, re-sampled every epoch". Optionally
   (``start_spread`` = σ > 0, not published) each drawn start state's own endogenous state is spread by a mean-one
   log-normal factor, :math:`w_i \leftarrow \underline w + (w_i - \underline w)\,e^{\sigma\varepsilon_i - \sigma^2/2}`,
   so that the tails of the distribution are trained before the policy's own ergodic set reaches them; with
   ``start_spread_end`` σ moves linearly to that value over ``steps`` (:meth:`DeepHAMSolver.spread_at`).
2. **Value learning** every ``value_every`` policy steps (and before the first): simulate ``value.economies`` paths
   of ``value.periods`` periods under the current policy, targets the truncated discounted sums
   :math:`\hat V_i(s_{t_0}) = \sum_{\tau < H} \beta^\tau u_{i, t_0+\tau}` from start times
   :math:`t_0 = 0, \Delta, 2\Delta, \dots` (H = ``value.horizon``), and regress every critic on them (MSE, Adam,
   warm-started). Shapes: states (S,) economies × (N,) agents, targets (S, N). With ``value_spread`` (not
   published) the simulations start from states spread as the policy steps' are at that step (σ of item 1, times
   ``value_spread_scale``): the critics then also learn the values of the wealth tails the unrolls start from and
   end in, instead of extrapolating there.
3. **Policy step.** From B start states, unroll T periods through the economy's differentiable ``transition``:

   .. math:: J_i(\theta) = \sum_{t<T} \beta^t u(s_{i,t}, a_{i,t}) + \beta^T\, \bar V(s_{i,T}),
             \qquad \bar V = \tfrac1M \textstyle\sum_m V_m,

   and take an Adam step on :math:`-\mathrm{mean}\, J`:

   * ``mode="game"`` (competitive equilibrium by fictitious play): one random learner i per economy; the other
     agents' actions are computed under ``no_grad`` (their policy outputs are constants), the learner's with
     gradients; prices, aggregates and the moments the learner observes stay in the graph, so the learner's own
     1/N effect on them counts (the N-player game, as published). Only the learner's ρ runs with gradients.
   * ``price_taker=True`` (game mode): the learner takes aggregates as given: its own contribution to prices and
     to the moments is detached (the economy's ``price_taking_transition``). Values are unchanged, gradients flow only
     through the agent's own state and action — the competitive (mean-field) equilibrium, which is what the LQ
     solution of the investment economy is; the N-player game differs by O(1/N) (≈ 2 % in the investment policy at
     N = 128). With ``learners="all"`` every agent of every economy is a learner at once: since no agent's action
     moves anything but its own state, the sum of the N learners' gradients equals N draws of the one-learner
     gradient, for the price of one backward pass over all agents (N times more samples per step).
   * ``mode="planner"``: every agent's action with gradients, objective the mean over all agents (constrained
     efficiency: the planner internalises the pecuniary externalities and the other agents' responses; published:
     it accumulates more capital). With N = 1 the game with the own price effect kept is exactly the planner.

4. Validation every ``val_every`` steps on fixed start states and fixed shocks: mean over agents of J
   (``val_objective``) and of the utility part alone (``val_utility``).
5. **Reported policy.** The last iterate (published), or with ``policy_average`` = d > 0 (not published) a moving
   average of the iterates' parameters (``torch.optim.swa_utils.AveragedModel``): the n-th enters with weight
   max(1 − d, 1/n). The iterate alone is trained, simulates and is validated; the average is ``solver.policy``,
   what the judge scores: the step-to-step noise of the stochastic gradient averaged out.

Input normalisation (documented choice): **fixed economic scales**, never statistics of a first data set (the
published code freezes the statistics of a data set simulated with a constant consumption share of 0.4, whose
capital is ≈ 4 instead of ≈ 39). The Krusell–Smith networks see k / k_ss (deterministic steady state), e and
z ∈ {0, 1}, and the policy starts at the steady-state consumption share; the investment actor sees
(x − x0_mean) / 0.1 and outputs investment in units of δ · x0_mean (``input_offsets``, ``action_scale``), its
critics see x. The *value targets* are standardised with statistics recomputed on every refit's data set
(PopArt-style: when the statistics change, the critics' output layers are rescaled so that their predictions are
unchanged, then re-calibrated by a least-squares affine map onto the new targets), so an unrepresentative first
data set cannot freeze a bad scale and a warm-started refit never starts many standard deviations off.

Distributed (under torchrun, :mod:`agents.distributed`): each process simulates its own ergodic set, start states
and shocks (its own seed stream); ``batch_size`` is per process; the policy step runs through
DistributedDataParallel (gradients averaged); a value fit simulates ⌈economies / W⌉ economies per process and
regresses on all of them at once (data-parallel, gradients averaged; rank 0's critics broadcast after it); logged
metrics are means over the processes.

Speed notes: ``fast_tanh`` evaluates tanh as 2σ(2x) − 1 with a hand-written backward (2–4× faster than
``torch.tanh`` on CPU, same function); the no-grad forward of the peers reuses the learner's population summary;
the shocks of a whole unroll are drawn before it; nothing loops over agents, economies or critics in Python.
``compile=True`` runs ``compile_periods`` periods of the unroll at a time (:meth:`DeepHAMSolver._periods` over
:meth:`DeepHAMSolver._period`: actor, transition, utility) through ``torch.compile`` (fused kernels forward and
backward; the same numbers; the loop over the chunks stays in Python, so the graph's size does not grow with T): a step
is op-overhead bound on a CPU, ≈ 80,000 small ops at the published size, and a compiled call still costs ≈ 0.5 ms of
guards and autograd wrappers besides its kernels. ``compile_simulation=True`` compiles one period of the
no-gradient simulations (burn-in, refreshes of the start states, validation, the value fits' data; one compilation
per batch size) and ``value.compile=True`` the critics' regression step (:func:`~agents.value.regression_loss`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from tensordict import TensorDict
from torch import nn
from torch.optim.swa_utils import AveragedModel

from hetagents_env.economies.core import Economy

from .. import distributed, schedules
from ..config import Config, ConfigError, interval
from ..networks import ACTIVATION_FUNCTIONS, DeepSets, DeepSetsConfig, fast_tanh, make_actor, use_fast_tanh
from ..value import ValueConfig, ValueEnsemble, fit_ensemble, fit_value, make_value, value_dataset
from ..config import torch_dtype
from .base import Solver, optimizer_step, spread_endogenous
from .registry import register_solver


__all__ = [
    "DeepHAMConfig",
    "DeepHAMSolver",
    "ValueConfig",
    "ValueEnsemble",
    "fast_tanh",
    "fit_value",
    "value_dataset",
]


# ---------------------------------------------------------------------------------------------- DeepSets pieces
class ScaledPolicy(nn.Module):
    """``scale · net(state)``: a fixed scale of the actor's output (``DeepHAMConfig.action_scale``). (The fixed
    centring of its inputs, ``DeepHAMConfig.input_offsets``, is the actor's own ``DeepSetsConfig.shift``.)"""

    def __init__(self, net: DeepSets, scale: float) -> None:
        super().__init__()
        self.net, self.scale = net, float(scale)

    def forward(self, state: TensorDict) -> torch.Tensor:
        return self.net(state) * self.scale


# ---------------------------------------------------------------------------------------------- the solver
@dataclasses.dataclass(frozen=True)
class DeepHAMConfig(Config):
    """Settings of DeepHAM; defaults are the published Krusell–Smith run (N = 50, 1st moment)."""

    seed: int = 0
    mode: Literal["game", "planner"] = "game"
    """"game": competitive equilibrium by fictitious play; "planner": all agents optimised together"""
    price_taker: bool = False
    """game mode: the learner takes prices/aggregates as given (detaches its own 1/N effect; competitive equilibrium)"""
    learners: Literal["one", "all"] = "one"
    """game mode: one random learner per economy (published), or every agent at once (needs price_taker)"""
    dtype: Literal["economy", "float32", "float64"] = "economy"
    """float precision of the networks and simulations ("economy": the economy's dtype; published: float64)"""
    fast_tanh: bool = True
    """evaluate tanh as 2σ(2x) − 1 (same function, faster on CPU)"""
    compile: bool = False
    """``torch.compile`` the policy unroll, ``compile_periods`` periods per call (actor + transition, forward and
    backward): the same numbers; ≈ 2–2.3× faster policy steps on one CPU thread (one period per call) after a
    one-off compilation of ≈ 20–40 s. Compiled code is cached per process and guarded on the shapes, dtype and torch
    thread count: each new solver or thread count compiles again, and past torch's ``recompile_limit`` (8) the unroll
    silently runs eager"""
    compile_periods: int = dataclasses.field(default=1, metadata=interval(1))
    """with ``compile``: periods of the unroll per compiled call (the last call takes the remainder of T); fewer
    calls pay less of the per-call overhead of compiled code (guards, autograd wrappers) at the price of a longer
    compilation: on the fast Krusell–Smith config, one CPU thread, 4 periods made a policy step 1.34× faster than 1
    (compilation +5–10 s); 8 or 16 a little more, but they compile for 1.5–3 minutes (README, "Time to accuracy")"""
    compile_simulation: bool = False
    """``torch.compile`` one period of the no-gradient simulations (actor + transition + utility): the ergodic
    burn-in and refreshes, the validation and the value fits' data sets. The same function (not the same bits as
    eager: rounding), compiled once per batch size (``ergodic_economies``, ``val_economies``, the value fits'
    economies per process): on the fast Krusell–Smith config, one CPU thread, a period of 192 economies ran 4.0×
    faster and of 64 2.4×, after ≈ 10 s and ≈ 4 s of compilation"""
    # -- networks
    summary: Literal["moment", "gm"] = "moment"
    """distribution summary: the 1st moment (K) or J generalized moments (φ = MLP)"""
    moments: int = dataclasses.field(default=1, metadata=interval(1))
    """J: number of generalized moments (summary = "gm")"""
    gm_widths: tuple[int, ...] = dataclasses.field(default=(12, 12), metadata=interval(1))
    """hidden widths of the generalized-moment network φ (tanh)"""
    policy_widths: tuple[int, ...] = dataclasses.field(default=(24, 24), metadata=interval(1))
    activation: str = "tanh"
    policy_network: DeepSetsConfig | None = None
    """full override of the actor's architecture (None: built from the fields above)"""
    input_offsets: tuple[tuple[str, float], ...] | None = None
    """subtract these constants from state entries before the actor sees them (then the network's fixed scales
    divide): the actor's ``DeepSetsConfig.shift`` (not with a ``policy_network`` that has its own shift); None: the
    economy's ``centred_features()`` — investment: x − x0_mean (and x / 0.1), Krusell–Smith: none (k / k_ss)"""
    action_scale: float | None = dataclasses.field(default=None, metadata=interval(0.0, open_lo=True))
    """the actor's output is multiplied by this constant; None: the economy's ``action_scale`` for an unbounded
    action (investment: max(δ, 0.01) · max(|x0_mean|, 0.1), replacement investment, so the network's output is
    O(1)), 1 for a share (sigmoid head: Krusell–Smith, Aiyagari)"""
    value: ValueConfig = ValueConfig()
    # -- policy optimisation
    steps: int = dataclasses.field(default=10_000, metadata=interval(0))
    """policy steps of a full run"""
    batch_size: int = dataclasses.field(default=384, metadata=interval(1))
    """economies per policy step"""
    horizon: int = dataclasses.field(default=149, metadata=interval(1))
    """T: Σ_{t<T} β^t u_t + β^T V(s_T) (published: 150 unrolled states, T = 149)"""
    lr: float = dataclasses.field(default=4e-4, metadata=interval(0.0, open_lo=True))
    lr_end: float | None = dataclasses.field(default=None, metadata=interval(0.0, open_lo=True))
    """learning rate at the last step (exponential decay; None: constant)"""
    adam_betas: tuple[float, float] = (0.99, 0.99)
    grad_clip: float | None = dataclasses.field(default=None, metadata=interval(0.0, open_lo=True))
    policy_average: float = dataclasses.field(default=0.0, metadata=interval(0.0, 1.0, open_hi=True))
    """d: report a moving average of the actor's parameters over the policy steps as the solver's ``policy`` (what
    the judge scores and checkpoints hold as ``policy``); the iterates are trained, simulate the ergodic set and the
    value data and are validated as before. The n-th step's iterate enters with weight max(1 − d, 1/n): the plain
    average of the first 1/(1 − d) steps, then an exponential moving average (window ≈ 1/(1 − d) steps). 0: the
    last iterate (published)"""
    # -- start states
    start_states: Literal["ergodic", "initial", "paths"] = "ergodic"
    """where unrolls start: the current policy's ergodic set (published), fresh draws of the initial state, or
    states along fresh paths from the initial state (t = 0, skip, 2·skip, … < ergodic_periods: the transition too)"""
    burn_in: int = dataclasses.field(default=2000, metadata=interval(0))
    """periods simulated from the initial state before the first ergodic set is recorded"""
    ergodic_economies: int = dataclasses.field(default=384, metadata=interval(1))
    ergodic_periods: int = dataclasses.field(default=250, metadata=interval(1))
    """periods simulated per refresh of the ergodic set"""
    ergodic_skip: int = dataclasses.field(default=4, metadata=interval(1))
    """record every this many periods of a refresh"""
    start_spread: float = dataclasses.field(default=0.0, metadata=interval(0.0))
    """σ of a mean-one log-normal factor drawn for every agent's own endogenous state (its distance to the state's
    lower bound) in the policy steps' start states: coverage of the state space beyond the current policy's own
    ergodic set, which under-samples the tails while the wealth distribution is still forming (0: the start states as
    drawn, published); :func:`agents.solvers.base.spread_endogenous`, as the Euler solver's ``spread_sigma``"""
    start_spread_end: float | None = dataclasses.field(default=None, metadata=interval(0.0))
    """σ of the spread at the last of ``steps`` (linear from ``start_spread``; None: constant), for the policy steps'
    start states and, with ``value_spread``, the value fits': coverage early, the policy's own ergodic set at the end"""
    value_spread: bool = False
    """spread the value fit's start states as the policy steps' are at that step (:meth:`DeepHAMSolver.spread_at`):
    the critics learn the values of the states the unrolls start from and end in, instead of extrapolating beyond the
    policy's own ergodic set (measured on the fast Krusell–Smith configs: it moved the wealth Gini of the trained
    policy, too low at 0.18 on two seeds of three, to the reference's 0.25, and brought the generalized moment's
    stationary K within 1.3 % on two; README, "Time to accuracy"); needs a spread (start_spread or start_spread_end)"""
    value_spread_scale: float = dataclasses.field(default=1.0, metadata=interval(0.0, open_lo=True))
    """with ``value_spread``: the value fits' σ is this multiple of the policy steps' σ at that step (1: the same
    spread; below 1 the critics' data stay closer to the policy's own ergodic set; measured on the fast 1st-moment
    config, four seeds: 0.5 lowered the ten-minute wealth Gini by 0.07–0.08, README "Time to accuracy")"""
    # -- value refits and validation
    value_every: int = dataclasses.field(default=2000, metadata=interval(1))
    """refit the value every this many policy steps (and before the first)"""
    val_every: int = dataclasses.field(default=500, metadata=interval(1))
    val_economies: int = dataclasses.field(default=384, metadata=interval(1))

    def _validate(self) -> None:
        if self.mode == "planner":
            bad = [f"{key} = {value!r}" for key, value, default in
                   (("price_taker", self.price_taker, False), ("learners", self.learners, "one")) if value != default]
            if bad:
                raise ConfigError(
                    f"DeepHAMConfig: mode = 'planner' conflicts with {' and '.join(bad)}: price_taker and learners "
                    "apply to mode = 'game' only (the planner differentiates every household's action and internalises "
                    "the price effects); drop them or use mode = 'game'")
        if self.learners == "all" and not self.price_taker:
            raise ConfigError(
                "DeepHAMConfig.learners = 'all' needs price_taker = true: without it each learner's own effect on "
                "prices would move the other learners' payoffs (a mix of game and planner)"
            )
        if self.activation not in ACTIVATION_FUNCTIONS:
            raise ConfigError(
                f"DeepHAMConfig.activation = {self.activation!r}: choose one of {', '.join(ACTIVATION_FUNCTIONS)}"
            )
        if self.value_spread and self.start_spread == 0 and not self.start_spread_end:
            raise ConfigError("DeepHAMConfig.value_spread = true needs start_spread > 0 or start_spread_end > 0 "
                              "(the spread it applies)")
        if self.value_spread_scale != 1.0 and not self.value_spread:
            raise ConfigError(f"DeepHAMConfig.value_spread_scale = {self.value_spread_scale} has no effect without "
                              "value_spread = true (it scales the value fits' spread)")
        if self.compile_periods != 1 and not self.compile:
            raise ConfigError(f"DeepHAMConfig.compile_periods = {self.compile_periods} has no effect without "
                              "compile = true (it sets the periods per compiled call)")
        if self.ergodic_skip > self.ergodic_periods:
            raise ConfigError(
                f"DeepHAMConfig.ergodic_skip = {self.ergodic_skip} must not exceed "
                f"ergodic_periods = {self.ergodic_periods}"
            )
        if self.input_offsets is not None and self.policy_network is not None and self.policy_network.shift is not None:
            raise ConfigError("DeepHAMConfig: set input_offsets or policy_network.shift, not both")


@register_solver("deepham")
class DeepHAMSolver(Solver):
    """DeepHAM; see the module docstring. Attributes besides the Solver interface: ``step``, ``value_fits``,
    ``pool`` (the ergodic economies' current state), ``starts`` (the recorded start states, flat [S]),
    ``scheduler`` (the learning rate of policy step ``step``, :class:`agents.schedules.PositionLR`), ``iterate`` (the
    trained policy: it simulates, fits the value and is validated) and ``average`` (with ``policy_average``, the
    ``AveragedModel`` whose module is the reported ``policy``; else None and ``policy is iterate``)."""

    Config = DeepHAMConfig
    config: DeepHAMConfig
    supports_distributed = True
    progress_metrics = ("train_objective", "val_objective")

    @classmethod
    def default_config(cls, economy: Economy) -> DeepHAMConfig:
        """Economies with a long memory (a stated ``mixing_periods``: Krusell–Smith, Aiyagari): the published run.
        Short-memory economies (the investment economy): price-taking fictitious play with every agent a learner
        (the competitive equilibrium = the LQ solution), unrolls of 100 periods from fresh initial states
        (X_0 ≈ 0.9, the Kahou protocol), Adam without momentum (the fictitious-play field rotates: momentum makes it
        zig-zag) and a decaying learning rate. At the baseline (δ = 0.05, N = 16) the policy is within 1.2–2.5 % of
        LQ after these 300 steps and 0.6–1.5 % with ``steps=600`` (seeds 0–2); with faster depreciation (δ = 0.2)
        within ≈ 1.5 % after 50–100 steps of 40 periods."""
        if economy.mixing_periods is None and economy.provides("price_taking_transition"):
            return DeepHAMConfig(
                price_taker=True, learners="all", start_states="initial", burn_in=0, horizon=100, batch_size=4,
                lr=1e-2, lr_end=1e-4, adam_betas=(0.0, 0.999), steps=300, value_every=100, val_every=50,
                val_economies=8, ergodic_economies=16, ergodic_periods=64, ergodic_skip=4,
                value=ValueConfig(economies=16, periods=200, horizon=150, start_every=10, epochs=30, lr=1e-3),
            )
        return DeepHAMConfig()

    def __init__(self, economy: Economy, config: DeepHAMConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(economy, config)
        self._start_clock()
        cfg = self.config
        if cfg.dtype != "economy":
            economy = economy.with_dtype(torch_dtype(cfg.dtype))
        self.sim = economy  # the economy the solver simulates (the user's, or a copy in the requested dtype)
        if cfg.price_taker and not economy.provides("price_taking_transition"):
            raise ConfigError(f"price_taker = true needs an economy with a price-taking transition; "
                              f"{economy.env_id} has none")
        self.rng = economy.generator(cfg.seed)
        distributed.reseed(self.rng, cfg.seed)  # distributed runs: each process simulates its own economies
        self.beta = economy.discount
        self.actor = make_actor(economy, self._actor_config(economy), seed=cfg.seed)
        if cfg.fast_tanh:
            use_fast_tanh(self.actor)
        scale = cfg.action_scale
        if scale is None:  # an unbounded action in the economy's own unit; a share as it is
            scale = float(economy.action_scale) if economy.action_head == "linear" else 1.0
        self.action_scale = float(scale)
        # the iterate: trained, and what simulates the ergodic set and the value data
        self.iterate = ScaledPolicy(self.actor, scale) if scale != 1.0 else self.actor
        self.average = None  # config.policy_average: the reported policy, a moving average of the iterates
        if cfg.policy_average > 0:
            self.average = AveragedModel(self.actor, multi_avg_fn=_warm_ema(cfg.policy_average))
        self.policy = self.iterate if self.average is None else (
            ScaledPolicy(self.average.module, scale) if scale != 1.0 else self.average.module)
        self.value = make_value(economy, cfg.value, summary=cfg.summary, moments=cfg.moments,
                                gm_widths=cfg.gm_widths, seed=cfg.seed + 1)
        self.optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr, betas=cfg.adam_betas)
        self.value_optimizer = torch.optim.Adam(self.value.parameters(), lr=cfg.value.lr, betas=cfg.value.adam_betas)
        self.step = 0
        self.scheduler = schedules.PositionLR(self.optimizer, lambda: self._lr_factor(self.step))  # lr of step `step`
        self.value_fits = 0
        self.value_metrics: dict[str, float] = {}
        self.discount = self.beta ** torch.arange(cfg.horizon + 1, dtype=economy.dtype, device=economy.device)
        if cfg.compile_simulation:
            self._compiled_simulation = torch.compile(self._simulation_period, dynamic=False)
        # start states: the ergodic set of the initial policy (or fresh initial states), and a validation set
        with torch.no_grad():
            self.pool = economy.initial_state(cfg.ergodic_economies, self.rng)
            if cfg.start_states == "ergodic" and cfg.burn_in:
                self.pool = self._simulate(self.pool, cfg.burn_in)
        self.starts = self._record_starts()
        self._order = torch.randperm(self.starts.batch_size[0], generator=self.rng, device=economy.device)
        self._cursor = 0
        self.val_states = self._draw_starts(cfg.val_economies, fresh=True)
        self.val_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.rng, device=economy.device))
        self._stop_clock()

    # ------------------------------------------------------------------ construction helpers
    def _actor_config(self, economy: Economy) -> DeepSetsConfig:
        cfg = self.config
        centred = economy.centred_features()  # inputs O(1) around the initial state
        offsets = cfg.input_offsets
        if offsets is None:
            offsets = centred.shift
        shift = tuple((key, float(value)) for key, value in offsets) or None
        if cfg.policy_network is not None:  # the offsets centre its inputs, unless it has its own shift
            net = cfg.policy_network
            return net if net.shift is not None or shift is None else net.replace(shift=shift)
        phi = "identity" if cfg.summary == "moment" else "mlp"
        head, bias = economy.action_head, None
        if head == "sigmoid":  # start at the neutral share (Krusell–Smith: k' = k at k = k_ss)
            share = economy.neutral_action()
            bias = math.log(share / (1.0 - share))
        scale = (centred.scale or None) if cfg.input_offsets is None else None
        return DeepSetsConfig(
            phi=phi, latent=cfg.moments, phi_widths=cfg.gm_widths, phi_activation="tanh", rho_widths=cfg.policy_widths,
            activation=cfg.activation, hidden_bias=True, output_bias=True, head=head, output_bias_init=bias,
            homogeneous_fast_path=False, scale=scale, shift=shift,
        )

    @torch.no_grad()
    def _simulate(self, state: TensorDict, periods: int, record_every: int = 0) -> TensorDict | tuple:
        """Simulate ``periods`` periods under the current policy (no gradients); with ``record_every`` also return
        the states recorded every that many periods, stacked [records · E]."""
        eco, recorded, compiled = self.sim, [], self._compiled_simulation
        for t in range(periods):
            if compiled is None:
                state = eco.transition(state, self.iterate(state), eco.sample_shocks(state, self.rng))
            else:  # (the utility it also returns costs little in the fused kernels)
                state = compiled(state, eco.sample_shocks(state, self.rng))[0]
            if record_every and (t + 1) % record_every == 0:
                recorded.append(state)
        if record_every:
            return state, (torch.stack(recorded, 0).reshape(-1) if recorded else state[:0])
        return state

    def _simulation_period(self, state: TensorDict, shocks: TensorDict) -> tuple[TensorDict, torch.Tensor]:
        """One period under the iterate (call it under ``torch.no_grad``): (next state, utility (B, N));
        ``compile_simulation`` compiles it."""
        return self.sim.transition_and_reward(state, self.iterate(state), shocks)

    def _record_starts(self) -> TensorDict:
        """Refresh the start-state set: continue the ergodic paths (or draw fresh initial states)."""
        cfg = self.config
        if cfg.start_states == "initial":
            return self.sim.initial_state(cfg.ergodic_economies, self.rng)
        if cfg.start_states == "paths":
            first = self.sim.initial_state(cfg.ergodic_economies, self.rng)
            _, later = self._simulate(first, cfg.ergodic_periods - 1, cfg.ergodic_skip)
            return torch.cat([first, later]) if later.batch_size[0] else first
        self.pool, starts = self._simulate(self.pool, cfg.ergodic_periods, cfg.ergodic_skip)
        return starts

    def _draw_starts(self, batch: int, fresh: bool = False, sigma: float | None = None) -> TensorDict:
        """``batch`` start states drawn without replacement from the start-state set, refreshed when used up (``fresh``:
        for validation and the value data, from the initial state where unrolls start there), then spread by σ =
        ``sigma`` (default: the policy steps' σ at this step, :meth:`spread_at`; 0 for fresh draws)."""
        if sigma is None:
            sigma = 0.0 if fresh else self.spread_at(self.step)
        if fresh and self.config.start_states in ("initial", "paths"):
            starts = self.sim.initial_state(batch, self.rng)
        else:
            starts = self._take_starts(batch)
        if sigma == 0:
            return starts.clone()
        return spread_endogenous(self.sim, starts, sigma, self.rng, keep_mean=False)

    def _take_starts(self, batch: int) -> TensorDict:
        """The next ``batch`` states of the recorded start-state set (without replacement; re-recorded when used up)."""
        size = self.starts.batch_size[0]
        if self._cursor + batch > size:
            self.starts = self._record_starts()
            size = self.starts.batch_size[0]
            self._order = torch.randperm(size, generator=self.rng, device=self.sim.device)
            self._cursor = 0
        if batch > size:
            idx = torch.randint(0, size, (batch,), generator=self.rng, device=self.sim.device)
        else:
            idx = self._order[self._cursor : self._cursor + batch]
            self._cursor += batch
        return self.starts[idx]

    def spread_at(self, step: int) -> float:
        """σ of the start-state spread at policy step ``step`` (linear from start_spread to start_spread_end)."""
        cfg = self.config
        if cfg.start_spread_end is None or cfg.steps <= 1:
            return cfg.start_spread
        return cfg.start_spread + (cfg.start_spread_end - cfg.start_spread) * min(step / (cfg.steps - 1), 1.0)

    def value_spread_at(self, step: int) -> float:
        """σ of the value fits' start-state spread at policy step ``step`` (0 without ``value_spread``)."""
        cfg = self.config
        return cfg.value_spread_scale * self.spread_at(step) if cfg.value_spread else 0.0

    # ------------------------------------------------------------------ value learning
    def fit_value(self) -> dict[str, float]:
        """Step 2: simulate the current policy from the ergodic set and regress the critics on the truncated sums.

        Distributed runs (W processes): each process simulates ⌈economies / W⌉ economies of its own, and the
        regression is one data-parallel fit over all of them (:func:`~agents.value.fit_ensemble`); rank 0's critics
        are then broadcast, so every process holds the same bits whatever the order of the reductions."""
        cfg, world = self.config.value, distributed.world_size()
        if world > 1:
            cfg = dataclasses.replace(cfg, economies=math.ceil(cfg.economies / world))
        start = self._draw_starts(cfg.economies, fresh=True, sigma=self.value_spread_at(self.step))
        states, targets = value_dataset(self.sim, self._no_grad_policy, start, cfg, self.rng,
                                        period=self._compiled_simulation)
        metrics = fit_ensemble(self.value, states, targets, cfg, self.rng, self.value_optimizer,
                               out_of_time=self._out_of_time, data_parallel=True)
        distributed.broadcast_module_state(self.value)
        self.value_fits += 1
        self.value_metrics = {**metrics, "value_fits": self.value_fits, "value_samples": int(targets.numel()) * world}
        return self.value_metrics

    @torch.no_grad()
    def _no_grad_policy(self, state: TensorDict) -> torch.Tensor:
        return self.iterate(state)

    # ------------------------------------------------------------------ the objective
    def objective(self, start: TensorDict, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Step 3: the mean over learners of :math:`J_i = \sum_{t<T}\beta^t u_{i,t} + \beta^T \bar V(s_{i,T})`
        along an unroll from ``start`` [B] (differentiable w.r.t. the policy's parameters; see the module doc)."""
        cfg, eco = self.config, self.sim
        gen = self.rng if generator is None else generator
        b, n = start.batch_size[0], eco.n_agents
        shocks = [eco.sample_shocks(start, gen) for _ in range(cfg.horizon)]
        one = cfg.mode == "game" and cfg.learners == "one"
        idx = torch.randint(0, n, (b, 1), generator=gen, device=eco.device) if one else None
        periods = self._periods if self._compiled_period is None else self._compiled_period
        state, total, k = start, 0.0, cfg.compile_periods
        for t in range(0, cfg.horizon, k):
            state, utility = periods(state, shocks[t : t + k], idx, self.discount[t : t + k])
            total = total + utility
        frozen = state.detach() if cfg.price_taker else None
        terminal = self.value(state, idx, summary_state=frozen)
        return (total + self.discount[cfg.horizon] * terminal).mean()

    def _periods(self, state: TensorDict, shocks: list[TensorDict], idx: torch.Tensor | None,
                 discount: torch.Tensor) -> tuple[TensorDict, torch.Tensor]:
        """``len(shocks)`` periods of the unroll: the state after them and Σ_j discount[j] · utility_j."""
        total = 0.0
        for j, shock in enumerate(shocks):
            state, utility = self._period(state, shock, idx)
            total = total + discount[j] * utility
        return state, total

    def _period(self, state: TensorDict, shocks: TensorDict, idx: torch.Tensor | None) -> tuple[TensorDict, torch.Tensor]:
        """One period of the unroll: the actions (the learners' with gradients, see the module docstring), the
        next state and the learners' utility — (B, 1) for one learner per economy at ``idx`` (B, 1), else (B, N)."""
        cfg, eco, net, n = self.config, self.sim, self.actor, self.sim.n_agents
        frozen = state.detach() if cfg.price_taker else None
        # (B, C): aggregates and moments (+ φ's parameters)
        context = net.context(state, net.summary(state if frozen is None else frozen))
        own = net.own_inputs(state)  # (B, N, F) or None
        if idx is not None:
            with torch.no_grad():  # the peers: constants (fictitious play)
                peers = net.rows(None if own is None else own.detach(), context.detach(), n)
            mine = net.rows(None if own is None else _take(own, idx), context, 1)  # (B, 1)
            action = peers.scatter(1, idx, mine)
        else:
            action = net.rows(own, context, n)
        if self.action_scale != 1.0:
            action = action * self.action_scale
        step = eco.price_taking_transition if cfg.price_taker else eco.transition_and_reward
        state, reward = step(state, action, shocks)
        return state, (reward if idx is None else reward.gather(1, idx))

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Step 4: mean over all agents of J and of its utility part, on fixed start states and shocks."""
        cfg, eco = self.config, self.sim
        gen = eco.generator(self.val_seed)
        state, total = self.val_states, 0.0
        period = self._simulation_period if self._compiled_simulation is None else self._compiled_simulation
        for t in range(cfg.horizon):
            state, reward = period(state, eco.sample_shocks(state, gen))
            total = total + self.discount[t] * reward
        terminal = self.value(state)
        agg = eco.aggregates(state)
        first = next(iter(agg))
        return {
            "val_utility": float(total.mean()),
            "val_objective": float((total + self.discount[cfg.horizon] * terminal).mean()),
            f"val_{first}_end": float(agg[first].mean()),
        }

    def lr_at(self, step: int) -> float:
        """The learning rate of policy step ``step`` (geometric from lr to lr_end over ``config.steps``)."""
        return schedules.scaled(self.config.lr, self._lr_factor(step))

    def _lr_factor(self, step: int) -> float:
        cfg = self.config
        if cfg.lr_end is None or cfg.steps <= 1:
            return 1.0
        return schedules.geometric(step / (cfg.steps - 1), ratio=cfg.lr_end / cfg.lr)

    # ------------------------------------------------------------------ training
    # ``train`` (the Solver template): policy steps, with value refits every ``value_every``, until ``config.steps``
    # in all, ``steps`` more or ``budget`` more seconds; logs every ``val_every`` steps and at the call's last step.
    def _begin(self, steps: int | None, budget: float | None) -> int | None:
        self._prepare_steps()
        self._objective = float("nan")
        if self.value_fits == 0:  # --- 2. the first value fit (a budget cuts it short too)
            self.fit_value()
        return max(0, self.config.steps - self.step) if steps is None else steps

    def _train_step(self) -> dict[str, Any] | None:
        cfg = self.config
        # --- 2. value refit every `value_every` steps
        if self.step > 0 and self.step % cfg.value_every == 0 and self._last_fit_step != self.step:
            self._last_fit_step = self.step
            self.fit_value()
        # --- 3. one Adam step on −mean J along simulated paths
        self.scheduler.step()  # the learning rate of this step
        loss = self._loss(self._draw_starts(cfg.batch_size))
        self._objective = -float(optimizer_step(self.optimizer, loss, self.actor.parameters(), cfg.grad_clip))
        self.step += 1
        if self.average is not None:
            self.average.update_parameters(self.actor)
        # --- 4. validation
        return self._metrics() if self.step % cfg.val_every == 0 else None

    def _end(self, done: int) -> None:
        if done == 0:  # nothing trained: the metrics now (not logged)
            self.metrics = self._metrics()

    _last_fit_step = -1
    _compiled_period = None  # config.compile: torch.compile(self._periods), made by _prepare_steps
    _compiled_simulation = None  # config.compile_simulation: torch.compile(self._simulation_period)

    def _prepare_steps(self) -> None:
        """What a policy step needs: the loss and, with ``config.compile``, the compiled period (compiled at its first
        call, on the clock)."""
        self._loss = self._loss_function()
        if self.config.compile and self._compiled_period is None:
            self._compiled_period = torch.compile(self._periods, dynamic=False)

    def _loss_function(self):
        """start states -> −mean J (data-parallel under torchrun: the whole unroll is one DDP forward of the actor)."""
        def loss(start: TensorDict) -> torch.Tensor:
            return -self.objective(start)

        return self._data_parallel(self.actor, loss)

    def _metrics(self) -> dict[str, Any]:
        agg = self.sim.aggregates(self.starts)
        first = next(iter(agg))
        # distributed runs: the mean over the processes (the objective of the global batch, validation on the
        # union of the processes' validation economies)
        local = distributed.all_reduce_mean_dict(
            {"train_objective": self._objective, **self.validate(), f"ergodic_{first}": float(agg[first].mean())}
        )
        return {"step": self.step, "lr": self.lr_at(self.step), **local, **self.value_metrics,
                "wall_time": self._elapsed()}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd.update(
            optimizer=self.optimizer.state_dict(), value_optimizer=self.value_optimizer.state_dict(), step=self.step,
            value_fits=self.value_fits, value_metrics=dict(self.value_metrics), rng=self.rng.get_state(),
            pool=self.pool.to_dict(), starts=self.starts.to_dict(), cursor=self._cursor, order=self._order,
            val_states=self.val_states.to_dict(), val_seed=self.val_seed,
        )
        if self.average is not None:  # `policy` is the average; the iterate and the average's count beside it
            sd.update(actor=self.actor.state_dict(), average=self.average.state_dict())
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        policy = state_dict["policy"]
        if self.iterate is self.actor and any(key.startswith("net.") for key in policy):
            # written by a version that wrapped every input-centred actor (keys "net.…"); the centring is now the
            # actor's own, and only an output scale ≠ 1 wraps it
            state_dict = {**state_dict, "policy": {key.removeprefix("net."): v for key, v in policy.items()}}
        if (self.average is None) != ("average" not in state_dict):
            raise ValueError("checkpoint and config disagree on policy_average (a moving-average policy is saved "
                             "with one and only loads into one)")
        super().load_state_dict(state_dict)
        if self.average is not None:
            self.actor.load_state_dict(state_dict["actor"])
            self.average.load_state_dict(state_dict["average"])
        self.optimizer.load_state_dict(state_dict["optimizer"])
        self.value_optimizer.load_state_dict(state_dict["value_optimizer"])
        self.step, self.value_fits = int(state_dict["step"]), int(state_dict["value_fits"])
        self.value_metrics = dict(state_dict.get("value_metrics", {}))
        self.rng.set_state(state_dict["rng"])
        self.pool, self.starts = _td(state_dict["pool"]), _td(state_dict["starts"])
        self.val_states, self.val_seed = _td(state_dict["val_states"]), int(state_dict["val_seed"])
        self._cursor, self._order = int(state_dict["cursor"]), state_dict["order"]


def _warm_ema(decay: float):
    """``AveragedModel``'s update: the n-th model enters with weight max(1 − decay, 1/n) — the plain running mean
    until n = 1/(1 − decay), then the exponential moving average (no bias towards the first iterate)."""
    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor | int) -> None:
        weight = max(1.0 - decay, 1.0 / (int(n_averaged) + 1))
        torch._foreach_lerp_(averaged, current, weight)

    return update


def _take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` (B, R) of x (B, N, F) -> (B, R, F)."""
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _td(data: Mapping[str, torch.Tensor]) -> TensorDict:
    first = next(iter(data.values()))
    return TensorDict(dict(data), batch_size=first.shape[:1])
