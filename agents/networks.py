r"""Permutation-invariant (DeepSets) policies and values for economies of N agents.

For agent i of one economy with per-agent states :math:`s_1, \dots, s_N` and aggregate exogenous state Z,

.. math:: y_i = \mathrm{head}\Big( \rho\big( o_i,\; Z,\; \bar\phi \big) \Big), \qquad
          \bar\phi = \frac1N \sum_{j=1}^N \phi(s_j) \in \mathbb R^L,

where :math:`o_i` is agent i's own state (optional), Z the aggregate exogenous state (optional) and
:math:`\bar\phi` the population summary, computed ONCE per economy and broadcast to the N agents, so the cost of
all N outputs of all B economies is O(B·N) (never O(B·N²)). :math:`y` is permutation-equivariant in the agents
(permuting the agents permutes the outputs) and :math:`\bar\phi` permutation-invariant.

φ variants (``DeepSetsConfig.phi``):

* ``"identity"``: :math:`\phi(s) = s` (L = number of set features; the mean, e.g. K = mean k);
* ``"moments"``: :math:`\phi(s) = (s, s^2, \dots)` raw powers (``powers``, default 1..4; L = features × powers);
* ``"mlp"``: a multilayer perceptron with output dimension ``latent`` = L (DeepHAM's "generalized moments").

Heads: ``"linear"`` (unbounded: investment, values), ``"sigmoid"`` (a share in (0, 1): consumption share).

Which state entries feed which part is a :class:`Features` (defaults per economy in :func:`default_features`):
investment economy — φ over x, no own state (with constant returns the optimal investment depends on X only),
no aggregate; Krusell–Smith — φ over k, own (k, e), aggregate z.

Cost notes. Without own features ρ runs once per economy on (B, L) and the output is broadcast to (B, N). With own
features the first layer of ρ is split: :math:`W [o_i; Z; \bar\phi] = W_o o_i + (W_Z Z + W_\phi \bar\phi)`, the
bracket once per economy. For a φ-MLP on a scalar state whose hidden layers have no bias and a positively
homogeneous activation (ReLU, leaky ReLU) — the published φ(ReLU) — the hidden part g satisfies
:math:`g(x) = x^+ g(1) + x^- g(-1)` exactly, so :math:`\bar\phi = W_{out}[\overline{x^+} g(1) + \overline{x^-} g(-1)]
+ b_{out}`: the same function and gradients at O(B·N) + O(widths²) cost instead of O(B·N·widths²)
(``homogeneous_fast_path``, used only where it is exact).

Sharding the agents (economies too large for one device). ``DeepSets.shard_agents(group)``: each process of the
``torch.distributed`` group holds a disjoint slice of the N agents (states (B, N_r, ...)); the population mean
becomes a local sum and one differentiable all-reduce of it (plus one of the agent count), everything else is per
agent or per economy. Each process gets the outputs of its own agents, equal to the unsharded network's on the
full economy; the backward all-reduces the summary's gradient, so the sum over processes of per-shard losses has
the full loss's gradients (see :func:`agent_mean`).

Published settings (Kahou et al.; :func:`published_config`): ρ 4×128 ReLU, φ(ReLU) 2×128 with L = 4, no hidden
bias, output bias, ρ input = the L-dimensional summary only: 49,409 / 49,793 / 66,821 parameters for φ identity /
moments / ReLU.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal

import torch
from tensordict import TensorDict
from torch import nn

from hetagents_env.economies.core import Economy, Features

from .config import Config, ConfigError, interval

__all__ = [
    "CallablePolicy",
    "DeepSets",
    "DeepSetsConfig",
    "Features",
    "agent_mean",
    "count_parameters",
    "default_features",
    "make_actor",
    "make_critic",
    "mlp",
    "published_config",
    "stack_entries",
]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
}
#: activations with f(c·x) = c·f(x) for c ≥ 0 (enable the exact fast path of a bias-free φ-MLP)
POSITIVELY_HOMOGENEOUS = ("relu", "leaky_relu")


# ---------------------------------------------------------------------------------------------- configuration
@dataclasses.dataclass(frozen=True)
class DeepSetsConfig(Config):
    """Architecture of a DeepSets network; defaults are the published φ(ReLU) baseline (66,821 parameters)."""

    phi: Literal["identity", "moments", "mlp"] = "mlp"
    """the per-agent feature map φ"""
    powers: tuple[int, ...] = dataclasses.field(default=(1, 2, 3, 4), metadata=interval(1))
    """raw powers of φ = "moments" (L = set features × len(powers))"""
    latent: int = dataclasses.field(default=4, metadata=interval(1))
    """output dimension L of φ = "mlp" """
    phi_widths: tuple[int, ...] = dataclasses.field(default=(128, 128), metadata=interval(1))
    """hidden widths of φ = "mlp" """
    phi_activation: str | None = None
    """activation of φ = "mlp" (None: the same as ``activation``)"""
    rho_widths: tuple[int, ...] = dataclasses.field(default=(128, 128, 128, 128), metadata=interval(1))
    """hidden widths of ρ"""
    activation: str = "relu"
    """activation of the hidden layers (one of ACTIVATIONS)"""
    hidden_bias: bool = False
    """bias on hidden layers (published: no)"""
    output_bias: bool = True
    """bias on each output layer (φ's and ρ's; published: yes)"""
    head: Literal["linear", "sigmoid"] = "linear"
    """output transform: unbounded, or a share in (0, 1)"""
    bias_init: Literal["torch", "zeros"] = "torch"
    """initialisation of every bias: PyTorch's default (uniform ±1/√fan_in, published) or zeros"""
    output_bias_init: float | None = None
    """initial bias of ρ's output layer (pre-head), e.g. the logit of a sensible share; None: per ``bias_init``"""
    set_features: tuple[str, ...] | None = None
    """per-agent state keys summarised by φ (None: the economy's default)"""
    own_features: tuple[str, ...] | None = None
    """per-agent state keys given to ρ for each agent (None: the economy's default; () for none)"""
    aggregate_features: tuple[str, ...] | None = None
    """per-economy state keys given to ρ (None: the economy's default; () for none)"""
    scale: tuple[tuple[str, float], ...] | None = None
    """divide these state entries by these constants before use (None: the economy's default)"""
    shift: tuple[tuple[str, float], ...] | None = None
    """subtract these constants from these state entries before the scaling (None: the economy's default, none).
    Centring the investment economy's x at x0_mean makes the bias-free φ(Identity) network, whose output is then
    b + s·(X̄ − x0_mean), well conditioned: ~100 instead of ~700 steps (same parameter count)"""
    homogeneous_fast_path: bool = True
    """use the exact O(B·N) evaluation of a bias-free, positively homogeneous φ-MLP on a scalar state"""

    def _validate(self) -> None:
        for name in ("activation", "phi_activation"):
            value = getattr(self, name)
            if value is not None and value not in ACTIVATIONS:
                raise ConfigError(
                    f"DeepSetsConfig.{name} = {value!r} is not allowed: choose one of {', '.join(ACTIVATIONS)}"
                )
        if self.phi == "moments" and not self.powers:
            raise ConfigError("DeepSetsConfig.powers must not be empty for phi = 'moments'")
        if self.scale is not None:
            for key, value in self.scale:
                if not (value > 0 and math.isfinite(value)):
                    raise ConfigError(f"DeepSetsConfig.scale[{key!r}] = {value!r} must be positive and finite")
        if self.shift is not None:
            for key, value in self.shift:
                if not math.isfinite(value):
                    raise ConfigError(f"DeepSetsConfig.shift[{key!r}] = {value!r} must be finite")


def published_config(phi: Literal["identity", "moments", "mlp", "relu"] = "mlp", **changes) -> DeepSetsConfig:
    """The Kahou et al. architecture: ρ 4×128 ReLU; φ identity, moments (x, x², x³, x⁴) or ReLU 2×128 with L = 4;
    no hidden bias, output bias on; ρ sees the summary only."""
    phi = "mlp" if phi == "relu" else phi
    return DeepSetsConfig(phi=phi).replace(**changes)


def default_features(economy: Economy) -> Features:
    """The economy's own description of its network inputs (``economy.features()``): which per-agent entries φ
    summarises, the own and aggregate entries ρ sees, and their scaling."""
    return economy.features()


def stack_entries(features: Features, state: TensorDict, keys: tuple[str, ...], dtype: torch.dtype) -> torch.Tensor:
    """State entries ``keys`` (each (B, N) or (B,)) as ``dtype``, each (value − shift) / scale per ``features``,
    stacked on a last dim: (B, N, len(keys)) or (B, len(keys))."""
    shift, scale = dict(features.shift), dict(features.scale)
    cols = []
    for key in keys:
        value = state[key]
        value = value.to(dtype) if value.dtype != dtype else value
        if key in shift:
            value = value - shift[key]
        cols.append(value / scale[key] if key in scale else value)
    return cols[0].unsqueeze(-1) if len(cols) == 1 else torch.stack(cols, dim=-1)


def resolve_features(economy: Economy, config: DeepSetsConfig) -> Features:
    """``default_features(economy)`` overridden by the config's non-None feature fields."""
    base = default_features(economy)
    return Features(
        set=base.set if config.set_features is None else config.set_features,
        own=base.own if config.own_features is None else config.own_features,
        aggregate=base.aggregate if config.aggregate_features is None else config.aggregate_features,
        scale=base.scale if config.scale is None else config.scale,
        shift=base.shift if config.shift is None else config.shift,
    )


# ---------------------------------------------------------------------------------------------- building blocks
def agent_mean(x: torch.Tensor, dim: int, *, keepdim: bool = False, sharded: bool = False, group=None) -> torch.Tensor:
    """``x.mean(dim)`` over the agents; ``sharded=True``: the agents along ``dim`` are this process's shard of the
    economy and the mean is over ALL the shards of the ``torch.distributed`` process ``group`` (None: the default
    group): a local sum, one differentiable all-reduce of it and one all-reduce of the agent count."""
    if not sharded:
        return x.mean(dim, keepdim=keepdim)
    import torch.distributed as dist
    import torch.distributed._functional_collectives as funcol  # differentiable: the backward all-reduces

    group = dist.group.WORLD if group is None else group
    count = torch.tensor(float(x.shape[dim]), dtype=torch.float64,
                         device=x.device if dist.get_backend(group) == "nccl" else "cpu")
    dist.all_reduce(count, group=group)
    return funcol.all_reduce(x.sum(dim, keepdim=keepdim), "sum", group) / count.item()


class _AgentMean(nn.Module):
    """Base of the φ modules: their mean over agents, sharded across processes after ``DeepSets.shard_agents``."""

    sharded = False
    group = None

    def agent_mean(self, x: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
        return agent_mean(x, dim, keepdim=keepdim, sharded=self.sharded, group=self.group)


def mlp(
    in_dim: int,
    widths: Sequence[int],
    out_dim: int,
    *,
    activation: str = "relu",
    hidden_bias: bool = True,
    output_bias: bool = True,
) -> nn.Sequential:
    """Linear → act → … → Linear: ``len(widths)`` hidden layers, PyTorch default initialisation."""
    layers: list[nn.Module] = []
    d = in_dim
    for width in widths:
        layers += [nn.Linear(d, width, bias=hidden_bias), ACTIVATIONS[activation]()]
        d = width
    layers.append(nn.Linear(d, out_dim, bias=output_bias))
    return nn.Sequential(*layers)


class IdentityPhi(_AgentMean):
    """φ(s) = s: the summary is the mean of the set features, (B, N, F) -> (B, F)."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.out_dim = in_dim

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.agent_mean(s, -2)


class MomentsPhi(_AgentMean):
    """φ(s) = (s^p for p in powers): mean raw moments, (B, N, F) -> (B, F·len(powers)) ordered power-major."""

    def __init__(self, in_dim: int, powers: Sequence[int]) -> None:
        super().__init__()
        self.powers = tuple(int(p) for p in powers)
        self.out_dim = in_dim * len(self.powers)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.agent_mean(s if p == 1 else s.pow(p), -2) for p in self.powers], dim=-1)


class MLPPhi(_AgentMean):
    """φ = an MLP F -> widths -> L, averaged over agents: (B, N, F) -> (B, L).

    When F = 1, the hidden layers have no bias and the activation is positively homogeneous, the mean is
    evaluated exactly as ``out(mean(x⁺)·g(1) + mean(x⁻)·g(−1))`` with g the hidden layers (see the module doc).
    """

    def __init__(
        self, in_dim: int, widths: Sequence[int], latent: int, *, activation: str, hidden_bias: bool,
        output_bias: bool, fast_path: bool = True,
    ) -> None:
        super().__init__()
        self.net = mlp(in_dim, widths, latent, activation=activation, hidden_bias=hidden_bias,
                       output_bias=output_bias)
        self.out_dim = latent
        self.homogeneous = bool(
            fast_path and in_dim == 1 and not hidden_bias and activation in POSITIVELY_HOMOGENEOUS
        )

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        if not self.homogeneous:
            return self.agent_mean(self.net(s), -2)
        hidden, out = self.net[:-1], self.net[-1]
        x = s[..., 0]  # (B, N)
        pos = self.agent_mean(x.clamp_min(0.0), -1, keepdim=True)  # (B, 1)
        neg = self.agent_mean((-x).clamp_min(0.0), -1, keepdim=True)
        g = hidden(torch.tensor([[1.0], [-1.0]], dtype=s.dtype, device=s.device))  # (2, H): g(1), g(−1)
        return out(pos * g[0] + neg * g[1])


# ---------------------------------------------------------------------------------------------- the network
class DeepSets(nn.Module):
    """Maps an economy state TensorDict to one output per agent, ``(B, N)``; see the module docstring.

    Args:
        features: which state entries feed φ, ρ (own) and ρ (aggregate).
        config: the architecture.
    """

    def __init__(self, features: Features, config: DeepSetsConfig | None = None) -> None:
        super().__init__()
        config = DeepSetsConfig.build(config)
        self.features, self.config = features, config
        n_set, n_own, n_agg = len(features.set), len(features.own), len(features.aggregate)
        if config.phi == "identity":
            self.phi: nn.Module = IdentityPhi(n_set)
        elif config.phi == "moments":
            self.phi = MomentsPhi(n_set, config.powers)
        else:
            self.phi = MLPPhi(
                n_set, config.phi_widths, config.latent, activation=config.phi_activation or config.activation,
                hidden_bias=config.hidden_bias, output_bias=config.output_bias,
                fast_path=config.homogeneous_fast_path,
            )
        self.summary_dim = self.phi.out_dim
        self.rho = mlp(
            n_own + n_agg + self.summary_dim, config.rho_widths, 1, activation=config.activation,
            hidden_bias=config.hidden_bias, output_bias=config.output_bias,
        )
        if config.bias_init == "zeros":
            with torch.no_grad():
                for module in self.modules():
                    if isinstance(module, nn.Linear) and module.bias is not None:
                        module.bias.zero_()
        if config.output_bias_init is not None:
            if self.rho[-1].bias is None:
                raise ConfigError("DeepSetsConfig.output_bias_init needs output_bias = true")
            with torch.no_grad():
                self.rho[-1].bias.fill_(config.output_bias_init)
        self.n_own = n_own

    # -------------------------------------------------------------- inputs
    def _stack(self, state: TensorDict, keys: tuple[str, ...]) -> torch.Tensor:
        return stack_entries(self.features, state, keys, self.rho[0].weight.dtype)

    # -------------------------------------------------------------- forward
    def summary(self, state: TensorDict) -> torch.Tensor:
        r"""The population summary :math:`\bar\phi = \frac1N\sum_j \phi(s_j)`, shape (B, L)."""
        return self.phi(self._stack(state, self.features.set))

    def forward(self, state: TensorDict) -> torch.Tensor:
        """Outputs of all agents, shape (B, N): ρ on each agent's own features, the aggregates and the summary."""
        return self.forward_with_summary(state, self.summary(state))

    def _head(self, y: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(y) if self.config.head == "sigmoid" else y

    def shard_agents(self, group=None, sharded: bool = True) -> "DeepSets":
        """Compute the population summary across the processes of the ``torch.distributed`` ``group`` (None: the
        default group), each holding a disjoint slice of every economy's agents (``sharded=False`` undoes it).
        States then have shape (B, N_r, ...) on process r and outputs (B, N_r); see the module docstring."""
        self.phi.sharded, self.phi.group = bool(sharded), group
        return self

    # -------------------------------------------------------------- public pieces (critics, the Bellman judge)
    @property
    def output_layer(self) -> nn.Linear:
        """ρ's last linear layer (its bias sets the initial output level)."""
        return self.rho[-1]

    def set_output_dim(self, out_dim: int, *, seed: int | None = None, bias: Sequence[float] | None = None) -> None:
        """Replace ρ's last layer by a fresh one with ``out_dim`` outputs (PyTorch default initialisation, seeded by
        ``seed`` without touching the global RNG; ``bias``: its initial bias). With ``out_dim`` > 1 every agent gets
        a vector: :meth:`forward` returns (B, N, out_dim) (needs own features) and the head is applied elementwise.
        """
        last = self.rho[-1]
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            layer = nn.Linear(last.in_features, out_dim, bias=last.bias is not None)
        layer = layer.to(device=last.weight.device, dtype=last.weight.dtype)
        if bias is not None:
            with torch.no_grad():
                layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))
        self.rho[-1] = layer

    def agent_features(self, state: TensorDict) -> torch.Tensor:
        r"""The per-agent :math:`\phi(s_j)`, (B, N, L): the population summary is their mean over the agents."""
        s = self._stack(state, self.features.set)
        if isinstance(self.phi, MomentsPhi):
            return torch.cat([s.pow(p) for p in self.phi.powers], dim=-1)
        if isinstance(self.phi, MLPPhi):
            return self.phi.net(s)
        return s

    def forward_with_summary(self, state: TensorDict, summary: torch.Tensor) -> torch.Tensor:
        r"""The outputs (B, N) [or (B, N, out_dim)] with the population summary :math:`\bar\phi` given (B, L)
        instead of computed from ``state``: ρ applied to the agents' own features, the aggregates and ``summary``."""
        n = state[self.features.set[0]].shape[-1]
        return self.rows(self.own_inputs(state), self.context(state, summary), n)

    def context(self, state: TensorDict, summary: torch.Tensor) -> torch.Tensor:
        r"""ρ's per-economy input :math:`[Z; \bar\phi]`, (B, A + L), for the summary ``summary`` (B, L)."""
        context = summary.to(self.rho[0].weight.dtype)
        if self.features.aggregate:
            context = torch.cat([self._stack(state, self.features.aggregate), context], dim=-1)
        return context

    def own_inputs(self, state: TensorDict) -> torch.Tensor | None:
        """The agents' own inputs to ρ, (B, N, F_own), or None for a network without own features."""
        return self._stack(state, self.features.own) if self.features.own else None

    def rows(self, own: torch.Tensor | None, context: torch.Tensor, n: int) -> torch.Tensor:
        """ρ's outputs for the agents whose own inputs are ``own`` (B, R, F_own) given ``context`` (B, C): (B, R)
        [or (B, R, out_dim)]; without own features ρ runs once per economy, broadcast to ``n`` agents."""
        if own is None:
            return self._head(self.rho(context)).unsqueeze(1).expand(-1, n, -1).squeeze(-1)
        first = self.rho[0]
        # W [o_i; Z; φ̄] + b = W_o o_i + (W_ctx [Z; φ̄] + b), the bracket once per economy
        h = own @ first.weight[:, : self.n_own].T + nn.functional.linear(
            context, first.weight[:, self.n_own :], first.bias
        ).unsqueeze(-2)
        return self._head(self.rho[1:](h)).squeeze(-1)


class CallablePolicy(nn.Module):
    """Any callable ``state -> (B, N)`` (e.g. ``economy.lq_policy``) as a parameter-free ``nn.Module``."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, state: TensorDict) -> torch.Tensor:
        return self.fn(state)


# ---------------------------------------------------------------------------------------------- factories
def make_actor(
    economy: Economy, config: DeepSetsConfig | dict | None = None, *, seed: int | None = None
) -> DeepSets:
    """A DeepSets policy for ``economy`` (state -> action (B, N)) on its device and dtype.

    ``seed`` fixes the initialisation without touching torch's global RNG. For bounded actions (a share in
    [0, 1]) use ``head="sigmoid"``.
    """
    config = DeepSetsConfig.build(config)
    return _build(economy, config, seed)


def make_critic(
    economy: Economy, config: DeepSetsConfig | dict | None = None, *, seed: int | None = None
) -> DeepSets:
    """A DeepSets value network V_i(state), shape (B, N): a linear head, and each agent's own state as input
    (a value depends on what the agent owns even when its optimal action does not)."""
    config = DeepSetsConfig.build(config).replace(head="linear")
    if config.own_features is None and not default_features(economy).own:
        config = config.replace(own_features=default_features(economy).set)
    return _build(economy, config, seed)


def _build(economy: Economy, config: DeepSetsConfig, seed: int | None) -> DeepSets:
    features = resolve_features(economy, config)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        net = DeepSets(features, config)
    return net.to(device=economy.device, dtype=economy.dtype)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# ---------------------------------------------------------------------------------------------- functional activations
# The stacked-weight networks (the value ensemble, DeepHAM's actor) apply activations as functions; tanh goes
# through the sigmoid kernel (``fast_tanh``), several times faster on CPU with the same values.
class _FastTanh(torch.autograd.Function):
    """tanh(x) = 2σ(2x) − 1; backward (1 − y²) from the saved output."""

    @staticmethod
    def forward(ctx, x):
        y = torch.sigmoid(2.0 * x).mul_(2.0).sub_(1.0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1.0 - y * y)


def fast_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh through the sigmoid kernel (several times faster than ``torch.tanh`` on CPU; same values to rounding)."""
    return _FastTanh.apply(x)


class FastTanh(nn.Module):
    """``nn.Tanh`` computed by :func:`fast_tanh`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_tanh(x)


def use_fast_tanh(module: nn.Module) -> nn.Module:
    """Replace every ``nn.Tanh`` inside ``module`` by :class:`FastTanh` (in place; the function is unchanged)."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Tanh):
            setattr(module, name, FastTanh())
        else:
            use_fast_tanh(child)
    return module


ACTIVATION_FUNCTIONS = {
    "tanh": fast_tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "softplus": nn.functional.softplus,
    "elu": nn.functional.elu,
    "silu": nn.functional.silu,
    "gelu": nn.functional.gelu,
    "leaky_relu": nn.functional.leaky_relu,
}
