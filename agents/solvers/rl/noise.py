r"""Exploration noise of the RL solvers, zero-sum over the agents of each economy by default: the Gaussian actions
of PPO (:class:`AgentNormal`), the tanh-squashed ones of SAC (:class:`AgentTanhNormal`) and the additive noise of
the deterministic actors (:class:`CenteredGaussianNoise`).

Price taking, zero-sum ("centered") exploration noise (``exploration="centered"``, default): each agent is a price
taker, so its learning signal may come through its own action only (the other half: critics that see the agent's
own action only, :mod:`.networks`). The noise added to the N actions of an economy is drawn i.i.d. and then has its
mean over the agents subtracted. The economy's aggregate (mean investment, hence mean capital, hence the price) then
does not depend on the exploration noise at all, so the data never contain the 1/N effect of an agent's own
deviation on the price. With independent noise (``exploration="independent"``) each agent's deviation moves the
price by 1/N of its size and the learners converge to the Nash equilibrium of the N-player game, not the competitive
one: for the investment economy at N = 128 that lowers investment by ≈ 1.3–1.9 % (the equilibrium with
α1 → α1 (1 + 1/N)) — the whole of a 2 % error budget. Zero-sum noise is exact for the investment economy (actions
enter the aggregate with equal weights) and approximate for Krusell–Smith (the share multiplies heterogeneous cash
on hand).
"""

from __future__ import annotations

import math

import torch
from tensordict.nn import TensorDictModuleBase
from torch import distributions as D
from torch import nn

__all__ = ["AgentNormal", "AgentTanhNormal", "CenteredGaussianNoise"]


def _agent_noise(shape, *, dtype, device, centered: bool, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise of ``shape`` (..., N, 1); ``centered``: minus its mean over the agents (dim −2)."""
    eps = torch.randn(shape, dtype=dtype, device=device, generator=generator)
    if centered and shape[-2] > 1:
        eps = eps - eps.mean(-2, keepdim=True)
    return eps


class AgentNormal(D.Independent):
    """Per-agent Gaussian actions for PPO: ``Independent(Normal(loc, scale), 1)`` on ``(..., N, 1)``.

    ``centered=True``: samples use zero-sum noise over the agents of each economy (dim −2), so exploration never
    moves the economy's aggregate (price taking; module docstring). ``log_prob`` is the per-agent Gaussian one (the
    marginal of a centered draw has variance (1 − 1/N)·scale², a factor absorbed by the learning rate)."""

    arg_constraints: dict = {}

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, centered: bool = True,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(D.Normal(loc, scale, validate_args=False), 1, validate_args=False)
        self.centered, self.generator = centered, generator

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        loc, scale = self.base_dist.loc, self.base_dist.scale
        shape = torch.Size(sample_shape) + loc.shape
        eps = _agent_noise(shape, dtype=loc.dtype, device=loc.device, centered=self.centered, generator=self.generator)
        return loc + scale * eps

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.base_dist.loc


class AgentTanhNormal(D.Distribution):
    r"""Per-agent bounded actions for SAC: :math:`a_i = m + h \tanh(z_i)`, :math:`z_i = \mathrm{loc}_i +
    \mathrm{scale}_i\, \varepsilon_i`, on ``(..., N, 1)`` with bounds ``low`` < ``high`` (m, h: their midpoint and
    half-width).

    ``centered=True``: the ε of one economy are zero-sum over its agents (dim −2), as :class:`AgentNormal`'s; the
    aggregate is then exactly the policy's when the scale is common to the agents and the tanh is linear over the
    noise's range (the investment economy: ``scale`` depends on the aggregate only, and |a| ≈ 0.03 inside [−1, 1]),
    approximately otherwise. ``log_prob`` is the per-agent one in action units, from the pre-image z:
    :math:`\log N(z; \mathrm{loc}, \mathrm{scale}) - \log h - \log(1 - \tanh^2 z)` with
    :math:`\log(1 - \tanh^2 z) = 2(\log 2 - z - \mathrm{softplus}(-2z))` (finite even where tanh saturates);
    ``rsample_and_log_prob`` scores the very pre-image it drew (torchrl's losses call it)."""

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, low: float = -1.0, high: float = 1.0,
                 centered: bool = True, generator: torch.Generator | None = None) -> None:
        if not high > low:
            raise ValueError(f"AgentTanhNormal needs low < high, got ({low}, {high})")
        self.loc, self.scale = loc, scale
        self.low, self.high = float(low), float(high)
        self.mid, self.half = 0.5 * (self.low + self.high), 0.5 * (self.high - self.low)
        self.centered, self.generator = centered, generator
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    @property
    def support(self):
        return D.constraints.interval(self.low, self.high)

    def _squash(self, z: torch.Tensor) -> torch.Tensor:
        return self.mid + self.half * torch.tanh(z)

    def _log_prob_pre_image(self, z: torch.Tensor) -> torch.Tensor:
        log_normal = D.Normal(self.loc, self.scale, validate_args=False).log_prob(z)
        log_det = math.log(self.half) + 2.0 * (math.log(2.0) - z - nn.functional.softplus(-2.0 * z))
        return (log_normal - log_det).sum(-1)

    def _pre_image(self, sample_shape) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.loc.shape
        eps = _agent_noise(shape, dtype=self.loc.dtype, device=self.loc.device, centered=self.centered,
                           generator=self.generator)
        return self.loc + self.scale * eps

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self._squash(self._pre_image(sample_shape))

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def rsample_and_log_prob(self, sample_shape=torch.Size()) -> tuple[torch.Tensor, torch.Tensor]:
        z = self._pre_image(sample_shape)
        return self._squash(z), self._log_prob_pre_image(z)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        tiny = torch.finfo(value.dtype).eps
        y = ((value - self.mid) / self.half).clamp(-1.0 + tiny, 1.0 - tiny)
        return self._log_prob_pre_image(torch.atanh(y))

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self._squash(self.loc)


class CenteredGaussianNoise(TensorDictModuleBase):
    """Exploration for the deterministic actor: adds ``sd · noise`` to ``("agents", "action")`` (..., N, 1), the
    noise zero-sum over the agents when ``centered`` (price taking). ``sd`` is an attribute the solver anneals."""

    def __init__(self, sd: float, *, centered: bool = True, generator: torch.Generator | None = None,
                 key=("agents", "action")) -> None:
        super().__init__()
        self.in_keys, self.out_keys = [key], [key]
        self.sd, self.centered, self.generator, self.key = float(sd), centered, generator, key

    def forward(self, tensordict):
        a = tensordict.get(self.key)
        eps = _agent_noise(a.shape, dtype=a.dtype, device=a.device, centered=self.centered, generator=self.generator)
        tensordict.set(self.key, a + self.sd * eps)
        return tensordict

