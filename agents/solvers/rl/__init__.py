r"""Reinforcement-learning baselines built on TorchRL, behind the common :class:`~agents.solvers.base.Solver`
interface so the judge scores them like every other solver.

Registered solvers:

* ``"td0"`` (:mod:`.td0`): TD(0) policy evaluation of a given policy with a DeepSets critic along simulated batched
  paths (B economies × N agents), with an optional target network; checked against the exact value of the LQ
  policy of the linear investment economy (:func:`~hetagents_env.economies.lq.linear_policy_value`).
* ``"ppo"`` (:mod:`.ppo`): PPO — torchrl ``Collector`` on :class:`~hetagents_env.interfaces.torchrl.EconomyTorchRLEnv`, torchrl
  ``GAE`` and ``ClipPPOLoss``; shared DeepSets actor (Gaussian, fixed sd) and per-agent critic.
* ``"ddpg"`` (:mod:`.ddpg`): DDPG — torchrl ``Collector``, ``TensorDictReplayBuffer``, ``DDPGLoss`` and
  ``SoftUpdate``; deterministic DeepSets actor and a per-agent critic Q(s_i, a_i, φ̄) that sees only the agent's own
  action.
* ``"td3"`` (:mod:`.td3`): TD3 — the DDPG solver with torchrl's ``TD3Loss``: twin per-agent critics (clipped
  double-Q target), target policy smoothing and actor / target updates every ``policy_delay`` critic updates.
* ``"sac"`` (:mod:`.sac`): soft actor-critic — torchrl ``Collector``, ``TensorDictReplayBuffer``, ``SACLoss`` and
  ``SoftUpdate``; a tanh-squashed Gaussian DeepSets actor within the economy's action bounds, twin per-agent
  own-action critics and automatic entropy tuning toward the entropy of the economy's exploration noise.

Every agent is a price taker (details and the argument in :mod:`.networks` and :mod:`.noise`): its learning signal
comes through its own action only — per-agent rewards, per-agent critics whose population summary is over states
(never actions), and zero-sum exploration noise within each economy so that exploration never moves the price.
Differentiating the sum of all agents' payoffs through all actions would make the agents collude through the price
(the planner's solution); independent noise gives the N-player Nash equilibrium, ≈ 1.3–1.9 % below the competitive
investment at N = 128.

Scaling (:mod:`.scaling`): observations centred and scaled by fixed economic constants (initial capital, steady
state), actions in units of replacement investment δ·x̄0 (investment) or a sigmoid share started at the steady-state
share (Krusell–Smith), rewards × (1 − β). For the investment economy the actor is a function of the aggregate only,
:math:`u = \mu(\bar X)` (constant returns: the optimal investment does not depend on own capital).

Shared pieces: :mod:`.scaling` (fixed scales), :mod:`.networks` (actors and critics on economy states),
:mod:`.noise` (exploration), :mod:`.torchrl_adapters` (the networks, env, collector and batches as TorchRL sees
them), :mod:`.base` (settings, schedule, training hooks and checkpoints of every RL solver) and :mod:`.off_policy`
(the replay plumbing of DDPG, TD3 and SAC).
"""

from .base import RLConfig
from .ddpg import DDPGConfig, DDPGSolver
from .networks import RLPolicy, StateActionValue, StateValue
from .noise import AgentNormal, CenteredGaussianNoise
from .ppo import PPOConfig, PPOSolver
from .sac import SACConfig, SACSolver
from .scaling import Scaling, default_scaling
from .td0 import TD0Config, TD0Solver, monte_carlo_value
from .td3 import TD3Config, TD3Solver

__all__ = [
    "AgentNormal",
    "CenteredGaussianNoise",
    "DDPGConfig",
    "DDPGSolver",
    "PPOConfig",
    "PPOSolver",
    "RLConfig",
    "RLPolicy",
    "SACConfig",
    "SACSolver",
    "Scaling",
    "StateActionValue",
    "StateValue",
    "TD0Config",
    "TD0Solver",
    "TD3Config",
    "TD3Solver",
    "default_scaling",
    "monte_carlo_value",
]
