r"""Value functions of any policy by regression: the DeepHAM critic ensemble and its fitting.

:class:`ValueEnsemble` holds M DeepSets critics (each its own φ) as one module of stacked weights;
:func:`value_dataset` simulates a policy and builds truncated discounted sums of rewards as targets;
:func:`fit_ensemble` regresses the ensemble on them (optionally compiled, and data-parallel over the processes of a
distributed run); :func:`fit_value` does both for any policy. DeepHAM refits its
critics with them every ``value_every`` steps; the judge's Bellman error and the evaluation use :func:`fit_value` for
solvers without a value function of their own — which is why this module lives outside ``agents.solvers``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from tensordict import TensorDict
from torch import nn

from hetagents_env.economies.core import Economy, Policy

from . import distributed
from .config import Config, ConfigError, interval
from .networks import ACTIVATION_FUNCTIONS, Features, default_features, stack_entries

__all__ = ["ValueConfig", "ValueEnsemble", "critic_features", "fit_ensemble", "fit_value", "make_value",
           "regression_loss", "value_dataset"]


# ---------------------------------------------------------------------------------------------- value ensemble
class ValueEnsemble(nn.Module):
    r"""M DeepSets critics, each with its own φ, as ONE module of stacked weights.

    Member m: :math:`V_m(s)_i = \mu + \sigma\, \rho_m(o_i, Z, \bar\phi_m)`, :math:`\bar\phi_m = \frac1N\sum_j
    \phi_m(k_j)`; the ensemble value is the mean over members. ``(μ, σ)`` standardise the regression targets (see
    :meth:`set_target_stats`). Every layer is one batched matmul over the M members (weights (M, in, out)).
    ``log_own``: ``(key, lower bound)`` pairs of own features that also enter o_i as log(x − x̲ + LOG_FLOOR), x and
    its lower bound x̲ in the inputs' (shifted, scaled) units — a concave basis for a value that is steep near a
    borrowing limit (``ValueConfig.log_wealth``).

    Shapes: ``members(state)`` (M, B, N); ``forward(state)`` (B, N). For the Bellman judge the summary is exposed:
    ``features(state)`` (B, N, M·L) per-agent φ outputs whose mean over agents is the summary, and
    ``head(state, summary)`` (B, N) the value given an explicit summary (B, M·L).
    """

    def __init__(
        self,
        features: Features,
        *,
        members: int = 3,
        phi: Literal["identity", "mlp"] = "identity",
        latent: int = 1,
        phi_widths: tuple[int, ...] = (12, 12),
        rho_widths: tuple[int, ...] = (24, 24),
        activation: str = "tanh",
        generator: torch.Generator | None = None,
        log_own: tuple[tuple[str, float], ...] = (),
    ) -> None:
        super().__init__()
        if activation not in ACTIVATION_FUNCTIONS:
            raise ConfigError(f"activation {activation!r} is not allowed: choose one of {', '.join(ACTIVATION_FUNCTIONS)}")
        self.inputs, self.n_members, self.phi_kind, self.activation = features, members, phi, activation
        self.act = ACTIVATION_FUNCTIONS[activation]
        n_set, n_own, n_agg = len(features.set), len(features.own), len(features.aggregate)
        if not features.own:
            raise ConfigError("a critic needs own features (a value depends on what the agent owns)")
        self.latent = n_set if phi == "identity" else latent
        unknown = [key for key, _ in log_own if key not in features.own]
        if unknown:
            raise ConfigError(f"log inputs {unknown} are not own features of the critic ({', '.join(features.own)})")
        bad = [key for key, low in log_own if not math.isfinite(low)]
        if bad:
            raise ConfigError(f"log inputs {bad} have no finite lower bound to measure the log from "
                              "(ValueConfig.log_wealth needs an endogenous state with a borrowing limit)")
        self.log_cols = [features.own.index(key) for key, _ in log_own]  # own inputs that also enter as a log
        shift, scale = dict(features.shift), dict(features.scale)
        lows = [(low - shift.get(key, 0.0)) / scale.get(key, 1.0) for key, low in log_own]  # in the inputs' units
        self.register_buffer("log_low", torch.tensor(lows, dtype=torch.float32), persistent=False)
        n_own += len(self.log_cols)
        self.n_own, self.n_agg = n_own, n_agg

        def layer(fan_in: int, fan_out: int) -> tuple[nn.Parameter, nn.Parameter]:
            bound = 1.0 / math.sqrt(fan_in)  # PyTorch's nn.Linear default, independently per member
            w = (torch.rand(members, fan_in, fan_out, generator=generator, dtype=torch.float64) * 2 - 1) * bound
            b = (torch.rand(members, 1, fan_out, generator=generator, dtype=torch.float64) * 2 - 1) * bound
            return nn.Parameter(w.float()), nn.Parameter(b.float())

        self.phi_w, self.phi_b = nn.ParameterList(), nn.ParameterList()
        if phi == "mlp":
            dims = (n_set, *phi_widths, latent)
            for a, b in zip(dims[:-1], dims[1:]):
                w, bias = layer(a, b)
                self.phi_w.append(w)
                self.phi_b.append(bias)
        elif phi != "identity":
            raise ConfigError(f"critic phi must be 'identity' or 'mlp', got {phi!r}")
        self.rho_w, self.rho_b = nn.ParameterList(), nn.ParameterList()
        dims = (n_own + n_agg + self.latent, *rho_widths, 1)
        for a, b in zip(dims[:-1], dims[1:]):
            w, bias = layer(a, b)
            self.rho_w.append(w)
            self.rho_b.append(bias)
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @property
    def dtype(self) -> torch.dtype:
        return self.rho_w[0].dtype

    # -------------------------------------------------------------- per-agent features and the summary
    def _members_phi(self, s: torch.Tensor) -> torch.Tensor:
        """φ_m of per-agent set inputs s (B, N, F) -> (M, B, N, L)."""
        if self.phi_kind == "identity":
            return s.unsqueeze(0).expand(self.n_members, *s.shape)
        b, n, f = s.shape
        h = s.reshape(1, b * n, f).expand(self.n_members, b * n, f)
        last = len(self.phi_w) - 1
        for i, (w, bias) in enumerate(zip(self.phi_w, self.phi_b)):
            h = torch.baddbmm(bias, h, w)
            if i < last:
                h = self.act(h)
        return h.reshape(self.n_members, b, n, -1)

    def features_of(self, state: TensorDict) -> torch.Tensor:
        """φ_m at every agent, (M, B, N, L)."""
        return self._members_phi(stack_entries(self.inputs, state, self.inputs.set, self.dtype))

    def summaries(self, state: TensorDict) -> torch.Tensor:
        """The members' population summaries, (M, B, L)."""
        if self.phi_kind == "identity":
            s = stack_entries(self.inputs, state, self.inputs.set, self.dtype).mean(-2)
            return s.unsqueeze(0).expand(self.n_members, *s.shape)
        return self.features_of(state).mean(-2)

    # -------------------------------------------------------------- ρ
    def normalized(
        self, state: TensorDict, summaries: torch.Tensor, index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Standardised member outputs y_m, (M, B, R): R = N, or the agents ``index`` (B, R)."""
        own = self.own_inputs(state)
        if index is not None:
            own = own.gather(1, index.unsqueeze(-1).expand(-1, -1, own.shape[-1]))
        b, r, _ = own.shape
        context = summaries
        if self.n_agg:
            agg = stack_entries(self.inputs, state, self.inputs.aggregate, self.dtype)  # (B, A)
            context = torch.cat([agg.unsqueeze(0).expand(self.n_members, *agg.shape), summaries], dim=-1)
        w0, b0 = self.rho_w[0], self.rho_b[0]
        h_own = torch.matmul(own.reshape(1, b * r, -1), w0[:, : self.n_own])  # (M, B·R, H)
        h_ctx = torch.baddbmm(b0, context, w0[:, self.n_own :])  # (M, B, H)
        h = (h_own.reshape(self.n_members, b, r, -1) + h_ctx.unsqueeze(2)).reshape(self.n_members, b * r, -1)
        h = self.act(h)
        last = len(self.rho_w) - 1
        for i in range(1, last + 1):
            h = torch.baddbmm(self.rho_b[i], h, self.rho_w[i])
            if i < last:
                h = self.act(h)
        return h.reshape(self.n_members, b, r)

    def own_inputs(self, state: TensorDict) -> torch.Tensor:
        """Every agent's own inputs o_i, (B, N, F_own): the scaled own features, then the log inputs (``log_own``)."""
        own = stack_entries(self.inputs, state, self.inputs.own, self.dtype)
        if self.log_cols:  # a concave basis for V's curvature near the lower bound (a borrowing limit)
            above = (own[..., self.log_cols] - self.log_low.to(own.dtype)).clamp_min(0.0)
            own = torch.cat([own, torch.log(above + LOG_FLOOR)], dim=-1)
        return own

    def members(self, state: TensorDict, index: torch.Tensor | None = None, *, summary_state=None) -> torch.Tensor:
        """Each member's value V_m, (M, B, R)."""
        y = self.normalized(state, self.summaries(state if summary_state is None else summary_state), index)
        return self.target_mean + self.target_std * y

    def forward(
        self, state: TensorDict, index: torch.Tensor | None = None, *, summary_state: TensorDict | None = None
    ) -> torch.Tensor:
        """The ensemble value (mean over members), (B, N) or (B, R) for the agents ``index`` (B, R); the summary is
        computed from ``summary_state`` if given (e.g. a detached copy: price-taking)."""
        y = self.normalized(state, self.summaries(state if summary_state is None else summary_state), index)
        return self.target_mean + self.target_std * y.mean(0)

    # -------------------------------------------------------------- the Bellman judge's interface
    def features(self, state: TensorDict) -> torch.Tensor:
        """(B, N, M·L): per-agent φ outputs of all members, whose mean over agents is the summary."""
        f = self.features_of(state)  # (M, B, N, L)
        return f.permute(1, 2, 0, 3).reshape(f.shape[1], f.shape[2], -1)

    def head(self, state: TensorDict, summary: torch.Tensor) -> torch.Tensor:
        """The ensemble value given an explicit summary (B, M·L) (the mean of :meth:`features`), (B, N)."""
        s = summary.reshape(summary.shape[0], self.n_members, -1).transpose(0, 1)
        return self.target_mean + self.target_std * self.normalized(state, s).mean(0)

    # -------------------------------------------------------------- target statistics (PopArt-style)
    @torch.no_grad()
    def calibrate(self, states: TensorDict, y: torch.Tensor, chunk: int = 4096,
                  mean: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        """Warm start of a refit: per member, the least-squares affine map a·y_m + b of its standardised outputs
        onto the standardised targets ``y`` (S, N) is folded into its output layer (W ← aW, b ← ab + b), so a
        refit never starts from predictions that are many standard deviations off (the policy may have moved
        the targets far since the last fit). ``mean``: applied to every local mean (data-parallel fits: the mean
        over the processes, whose data sets are of equal size)."""
        if not bool(self.fitted):
            return
        mean = mean or _identity
        pred = torch.cat(
            [self.normalized(states[i : i + chunk], self.summaries(states[i : i + chunk]))
             for i in range(0, y.shape[0], chunk)],
            dim=1,
        ).reshape(self.n_members, -1)  # (M, S·N)
        target = y.reshape(1, -1).to(pred.dtype)
        pm, tm = mean(pred.mean(1, keepdim=True)), mean(target.mean(1, keepdim=True))
        var = mean((pred - pm).square().mean(1, keepdim=True))
        cov = mean(((pred - pm) * (target - tm)).mean(1, keepdim=True))
        a = torch.where(var > 1e-12, cov / var.clamp_min(1e-12), 0.0)
        b = tm - a * pm
        self.rho_w[-1].mul_(a.view(-1, 1, 1))
        self.rho_b[-1].mul_(a.view(-1, 1, 1)).add_(b.view(-1, 1, 1))

    @torch.no_grad()
    def set_target_stats(self, mean: float, std: float) -> None:
        """Change (μ, σ). Once fitted, the output layers are rescaled so that every prediction is unchanged
        (σ y + μ = σ' y' + μ'  ⇔  W' = W σ/σ', b' = (σ b + μ − μ')/σ'); before the first fit the output bias is
        zeroed instead, so that an untrained ensemble starts at the targets' mean."""
        old_mean, old_std = float(self.target_mean), float(self.target_std)
        std = max(float(std), 1e-8)
        if bool(self.fitted):
            self.rho_w[-1].mul_(old_std / std)
            self.rho_b[-1].mul_(old_std).add_(old_mean - mean).div_(std)
        else:
            self.rho_b[-1].zero_()
        self.fitted.fill_(True)
        self.target_mean.fill_(mean)
        self.target_std.fill_(std)


LOG_FLOOR = 0.05
"""log inputs: log(x − x̲ + LOG_FLOOR) of a scaled feature x above its lower bound x̲: finite at the bound"""


# ---------------------------------------------------------------------------------------------- value learning
@dataclasses.dataclass(frozen=True)
class ValueConfig(Config):
    """Value learning by regression on truncated discounted payoff sums (defaults: the published setup)."""

    members: int = dataclasses.field(default=3, metadata=interval(1))
    """critics in the ensemble, each with its own φ"""
    widths: tuple[int, ...] = dataclasses.field(default=(24, 24), metadata=interval(1))
    """hidden widths of each critic's ρ"""
    activation: str = "tanh"
    log_wealth: bool = False
    """also feed each critic log(w − w̲ + LOG_FLOOR) of the household's (scaled) endogenous state w (wealth, capital)
    and its lower bound w̲ (the economy's ``feature_bounds``: the borrowing limit): a concave basis for the value's
    curvature near that limit (False: w alone, published; needs a finite lower bound)"""
    economies: int = dataclasses.field(default=384, metadata=interval(1))
    """economies simulated for one data set (a distributed DeepHAM run: in all, ⌈economies / W⌉ per process)"""
    periods: int = dataclasses.field(default=2000, metadata=interval(1))
    """periods simulated per data set"""
    horizon: int = dataclasses.field(default=800, metadata=interval(1))
    """H: targets are Σ_{τ<H} β^τ u_{t0+τ}"""
    start_every: int = dataclasses.field(default=100, metadata=interval(1))
    """start times t0 = 0, start_every, ... while t0 + horizon ≤ periods"""
    epochs: int = dataclasses.field(default=200, metadata=interval(0))
    batch_size: int = dataclasses.field(default=128, metadata=interval(1))
    """economy states per minibatch (each with its N agents; a data-parallel fit: in all, ⌈batch_size / W⌉ per
    process)"""
    lr: float = dataclasses.field(default=1e-4, metadata=interval(0.0, open_lo=True))
    adam_betas: tuple[float, float] = (0.9, 0.999)
    max_steps: int | None = dataclasses.field(default=None, metadata=interval(1))
    """cap on the regression steps of one fit (None: epochs × data / batch)"""
    compile: bool = False
    """``torch.compile`` the regression's minibatch loss (forward and backward: fused kernels; the same function).
    Compiles at the first step of the first fit, and again for a batch of another size (a last partial batch)."""

    def _validate(self) -> None:
        if self.horizon > self.periods:
            raise ConfigError(f"ValueConfig.horizon = {self.horizon} must not exceed periods = {self.periods}")
        if self.activation not in ACTIVATION_FUNCTIONS:
            raise ConfigError(f"ValueConfig.activation = {self.activation!r}: choose one of {', '.join(ACTIVATION_FUNCTIONS)}")


def critic_features(economy: Economy) -> Features:
    """The critics' inputs: the economy's default features, with the set features as own state when it has none
    (a value depends on what the agent owns even when its optimal action does not)."""
    base = default_features(economy)
    return base if base.own else dataclasses.replace(base, own=base.set)


@torch.no_grad()
def value_dataset(
    economy: Economy,
    policy: Policy,
    start: TensorDict,
    config: ValueConfig,
    generator: torch.Generator | None = None,
    period: Callable[[TensorDict, TensorDict], tuple[TensorDict, torch.Tensor]] | None = None,
) -> tuple[TensorDict, torch.Tensor]:
    r"""Simulate ``config.periods`` periods under ``policy`` from ``start`` (batch [E]) and return the states at
    the start times t0 = 0, Δ, … (t0 + H ≤ periods) as a flat TensorDict [S = E · starts] and their targets
    :math:`\sum_{\tau<H} \beta^\tau u_{i,t_0+\tau}`, (S, N). The sums are accumulated on the fly
    (memory O(starts·E·N)). ``period``: one period under ``policy``, (state, shocks) -> (next state, utility)
    (e.g. compiled); when given, it replaces ``economy.transition_and_reward(state, policy(state), shocks)`` and
    ``policy`` itself is not called."""
    beta = economy.discount
    starts = list(range(0, config.periods - config.horizon + 1, config.start_every))
    t0 = torch.tensor(starts, dtype=economy.dtype, device=economy.device)
    sums: torch.Tensor | None = None  # (starts, E, N)
    recorded: list[TensorDict] = []
    state = start
    for t in range(config.periods):
        if t in starts:
            recorded.append(state)
        if period is None:
            action = policy(state)
            state, reward = economy.transition_and_reward(state, action, economy.sample_shocks(state, generator))
        else:
            state, reward = period(state, economy.sample_shocks(state, generator))
        age = t - t0  # (starts,)
        weight = torch.where((age >= 0) & (age < config.horizon), beta ** age.clamp_min(0), torch.zeros_like(age))
        if sums is None:
            sums = torch.zeros(len(starts), *reward.shape, dtype=reward.dtype, device=reward.device)
        sums += weight[:, None, None] * reward.unsqueeze(0)
    states = torch.stack(recorded, dim=0).reshape(-1)  # [starts · E]
    return states, sums.reshape(-1, sums.shape[-1])


def regression_loss(value: ValueEnsemble, states: TensorDict, y: torch.Tensor) -> torch.Tensor:
    """The regression's minibatch loss: the members' mean squared errors on the standardised targets ``y`` (b, N)
    at ``states`` [b], summed over the members (each member's gradient is that of its own MSE)."""
    pred = value.normalized(states, value.summaries(states))  # (M, b, N)
    return (pred - y.unsqueeze(0)).square().mean() * value.n_members


def fit_ensemble(
    value: ValueEnsemble,
    states: TensorDict,
    targets: torch.Tensor,
    config: ValueConfig,
    generator: torch.Generator | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    out_of_time: Callable[[], bool] | None = None,
    *,
    data_parallel: bool = False,
) -> dict[str, float]:
    """Regress every member on ``targets`` (S, N) at ``states`` [S] (MSE on standardised targets, Adam).

    The target statistics are reset first (outputs preserved, :meth:`ValueEnsemble.set_target_stats`).
    ``out_of_time`` (checked after every epoch): stop early once it is true (a training budget ran out).
    ``config.compile``: the minibatch loss (:func:`regression_loss`) forward and backward through ``torch.compile``.
    ``data_parallel`` (in a distributed run; ignored without one): ONE fit over the processes, each holding an
    equal-sized part of the data set (its own simulations): the target statistics, the calibration and the
    reported metrics are over the union; every step each process takes ⌈batch_size / W⌉ of its own states and the
    gradients are averaged over the W processes (as DistributedDataParallel does), so the processes take the same
    steps; the epochs end together and rank 0's ``out_of_time`` decides for all (pass it on every process or on
    none). Every process must call it (collectives); unequal sizes or steps raise ValueError on all of them.
    Returns the final training MSE (in target units²) and the R² of the ensemble."""
    parallel = data_parallel and distributed.is_distributed()
    mean = distributed.all_reduce_mean if parallel else _identity  # of a local mean: the mean over all the data
    world = distributed.world_size() if parallel else 1
    s = states.batch_size[0]
    batch = math.ceil(config.batch_size / world)
    per_epoch = max(1, math.ceil(s / batch))
    total = config.epochs * per_epoch
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    if parallel:  # every process must take the same steps and collectives, or they would wait for each other
        plan = torch.tensor([s, total, out_of_time is not None], dtype=torch.float64)
        if distributed.any_flag(bool((mean(plan) != plan).any())):
            raise ValueError("a data-parallel value fit needs the same data-set size, steps and out_of_time (given "
                             "or not) on every process")
        # the union's mean and (unbiased) standard deviation
        n, centre = world * targets.numel(), float(mean(targets.mean()))
        std = (float(mean((targets - centre).square().mean())) * n / max(n - 1, 1)) ** 0.5
    else:
        centre, std = float(targets.mean()), float(targets.std())
    value.set_target_stats(centre, std)
    y = (targets.to(value.dtype) - value.target_mean) / value.target_std
    value.calibrate(states, y, mean=mean)
    optimizer = optimizer or torch.optim.Adam(value.parameters(), lr=config.lr, betas=config.adam_betas)
    loss_fn = _compiled_regression_loss() if config.compile else regression_loss
    value.requires_grad_(True)
    step = 0
    while step < total:
        order = torch.randperm(s, generator=generator, device=targets.device)
        for i in range(0, s, batch):
            idx = order[i : i + batch]
            loss = loss_fn(value, states[idx], y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if parallel:
                distributed.all_reduce_gradients(value.parameters())
            optimizer.step()
            step += 1
            if step >= total:
                break
        if out_of_time is not None and step < total:
            stop = out_of_time()
            if (distributed.broadcast_flag(stop) if parallel else stop):
                break
    value.requires_grad_(False)
    with torch.no_grad():
        pred = torch.cat([value(states[i : i + 4096]) for i in range(0, s, 4096)])
        t = targets.to(pred.dtype)
        mse = float(mean((pred - t).square().mean()))
        var = std**2 if parallel else float(targets.var())
    return {"value_mse": mse, "value_r2": 1.0 - mse / var if var > 0 else float("nan"), "value_steps": step}


def _identity(x):
    return x


@functools.cache
def _compiled_regression_loss():
    """:func:`regression_loss` through ``torch.compile`` (made once per process; compiled at its first call and
    again for a new batch size, dtype or ensemble shape — past torch's ``recompile_limit`` (8) per process it runs
    eager)."""
    return torch.compile(regression_loss, dynamic=False)


def make_value(economy: Economy, config: ValueConfig, *, summary: str = "moment", moments: int = 1,
               gm_widths: tuple[int, ...] = (12, 12), seed: int = 0) -> ValueEnsemble:
    gen = torch.Generator().manual_seed(seed)
    key = economy.endogenous_key
    net = ValueEnsemble(
        critic_features(economy), members=config.members, phi="identity" if summary == "moment" else "mlp",
        latent=moments, phi_widths=gm_widths, rho_widths=config.widths, activation=config.activation, generator=gen,
        log_own=((key, economy.feature_bounds(key)[0]),) if config.log_wealth else (),
    )
    return net.to(device=economy.device, dtype=economy.dtype).requires_grad_(False)


def fit_value(
    economy: Economy,
    policy: Policy,
    config: ValueConfig | Mapping[str, Any] | None = None,
    *,
    start: TensorDict | None = None,
    burn_in: int = 1000,
    summary: Literal["moment", "gm"] = "moment",
    moments: int = 1,
    seed: int = 0,
) -> tuple[ValueEnsemble, dict[str, float]]:
    """A value function for any policy, by the DeepHAM regression: simulate ``burn_in`` periods from ``start``
    (default: the economy's initial state, ``config.economies`` economies), then fit a fresh :class:`ValueEnsemble`
    on truncated discounted sums. Used by the Bellman judge for solvers without a value function."""
    config = ValueConfig.build(config)
    gen = economy.generator(seed)
    if start is None:
        start = economy.initial_state(config.economies, gen)
    with torch.no_grad():
        state = start
        for _ in range(burn_in):
            state = economy.transition(state, policy(state), economy.sample_shocks(state, gen))
    value = make_value(economy, config, summary=summary, moments=moments, seed=seed)
    states, targets = value_dataset(economy, policy, state, config, gen)
    metrics = fit_ensemble(value, states, targets, config, gen)
    return value, metrics
