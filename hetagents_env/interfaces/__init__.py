"""The ecosystem interfaces over one economy core: the stateful batched env (:mod:`.env`) and the Gymnasium,
PettingZoo and TorchRL facades. The facades are imported on first use (torchrl is slow to import)."""

from .env import EconomyEnv, FusedStep

__all__ = ["EconomyEnv", "FusedStep"]
