"""The ecosystem interfaces over one economy core: the stateful batched env (:mod:`.env`) and the Gymnasium,
PettingZoo and TorchRL facades, the Stable-Baselines3 adapter (:mod:`.sb3`), the pictures their ``render()`` draws
(:mod:`.render`), the copy rules (:mod:`._copies`) and the options every interface is built from (:mod:`.options`).
The facades are imported on first use (torchrl is slow to import; stable-baselines3 is optional)."""

from .env import EconomyEnv, FusedStep
from .options import EnvOptions

__all__ = ["EconomyEnv", "EnvOptions", "FusedStep"]
