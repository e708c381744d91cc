"""Checked policy calls for the judge: a bad output is reported with what and where, never averaged into a number.

:class:`CheckedPolicy` wraps any policy ``state -> action``. Every output must be

* a tensor of shape ``(B, N)`` for a state of ``B`` economies of ``N`` agents ("shape"),
* finite ("nan" / "inf"),
* within the economy's action bounds ``[action_low, action_high]`` up to ``tolerance`` · max(1, |bound|)
  ("below_bounds" / "above_bounds"),

else :class:`InvalidPolicyOutput` is raised naming the kind, the judge's stage, the first offending economy index
and agent, the period (when the caller tells it, through :attr:`CheckedPolicy.period`), the value and how many
entries are bad. The economy index is the position in the batch of that call (for an Euler residual's successor
states: the successor batch, successor-major).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict

from hetagents_env.economies.core import Economy, Policy

__all__ = ["CheckedPolicy", "InvalidPolicyOutput", "check_output"]


class InvalidPolicyOutput(ValueError):
    """A policy returned a wrong shape, a non-finite value or a value outside the action bounds.

    Attributes: ``kind`` ("shape", "type", "nan", "inf", "below_bounds", "above_bounds"), ``stage`` (the judge's
    step), ``economy``, ``agent``, ``period`` (None where not applicable / not known), ``value``, ``count``.
    """

    def __init__(self, message: str, *, kind: str, stage: str, economy: int | None = None, agent: int | None = None,
                 period: int | None = None, value: float | None = None, count: int = 1) -> None:
        super().__init__(message)
        self.kind, self.stage, self.economy, self.agent = kind, stage, economy, agent
        self.period, self.value, self.count = period, value, count

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "stage": self.stage, "economy": self.economy, "agent": self.agent,
                "period": self.period, "value": self.value, "count": self.count, "message": str(self)}


def check_output(action: Any, state: TensorDict, economy: Economy, *, stage: str = "", period: int | None = None,
                 tolerance: float = 1e-6) -> None:
    """Raise :class:`InvalidPolicyOutput` unless ``action`` is a finite ``(B, N)`` tensor within the bounds."""
    where = f" during {stage}" if stage else ""
    when = f", period {period}" if period is not None else ""
    b, n = state.batch_size[0], economy.n_agents
    if not isinstance(action, torch.Tensor):
        raise InvalidPolicyOutput(f"policy returned {type(action).__name__}, not a tensor of shape ({b}, {n}){where}"
                                  f"{when}", kind="type", stage=stage, period=period)
    if tuple(action.shape) != (b, n):
        raise InvalidPolicyOutput(
            f"policy returned shape {tuple(action.shape)}, expected ({b}, {n}) (economies, agents){where}{when}",
            kind="shape", stage=stage, period=period)
    low, high = economy.action_low, economy.action_high
    a = action.detach()
    nan = torch.isnan(a)
    inf = torch.isinf(a)
    below = a < low - tolerance * max(1.0, abs(low)) if low > -float("inf") else torch.zeros_like(nan)
    above = a > high + tolerance * max(1.0, abs(high)) if high < float("inf") else torch.zeros_like(nan)
    for kind, mask, what in (("nan", nan, "NaN"), ("inf", inf, "an infinite value"),
                             ("below_bounds", below, f"a value below the action bound {low:g}"),
                             ("above_bounds", above, f"a value above the action bound {high:g}")):
        count = int(mask.sum())
        if count:
            e, i = (int(v) for v in mask.nonzero()[0])
            value = float(a[e, i])
            raise InvalidPolicyOutput(
                f"policy returned {what} ({value!r}) at economy {e}, agent {i}{when}{where} ({count} of {a.numel()} "
                f"entries)", kind=kind, stage=stage, economy=e, agent=i, period=period, value=value, count=count)


class CheckedPolicy:
    """``policy`` with every output checked by :func:`check_output`; set :attr:`stage` and :attr:`period` to say
    where in the judge a call happens."""

    def __init__(self, policy: Policy, economy: Economy, *, stage: str = "", tolerance: float = 1e-6) -> None:
        self.policy, self.economy, self.tolerance = policy, economy, tolerance
        self.stage: str = stage
        self.period: int | None = None
        self.calls = 0  # calls since the last :meth:`at` (named in messages when the period is not known)

    def __call__(self, state: TensorDict) -> torch.Tensor:
        action = self.policy(state)
        self.calls += 1
        stage = self.stage if self.period is not None or not self.stage else f"{self.stage} (call {self.calls})"
        check_output(action, state, self.economy, stage=stage, period=self.period, tolerance=self.tolerance)
        return action

    def at(self, stage: str, period: int | None = None) -> "CheckedPolicy":
        """Set the stage and period of the next calls; returns self."""
        if stage != self.stage:
            self.calls = 0
        self.stage, self.period = stage, period
        return self
