"""Shared fixtures and helpers of the test suite.

* ``device``: every device test runs on CPU; a ``cuda`` parameter is added and skipped when no GPU is visible.
* ``dtype``: float32 and float64, the two dtypes every economy must support.
* helpers for generators, tolerances and finiteness checks, importable as ``from conftest import ...``.

Torch runs with one intra-op thread (``HETAGENTS_TEST_THREADS`` to change it). Hypothesis runs with the ``hetagents`` profile (or the one named by ``HYPOTHESIS_PROFILE``): no per-example
deadline, since the test machines are shared and a first torch call can take a while. Tests set their own
``max_examples`` to keep the suite fast.
"""

from __future__ import annotations

import math
import os

import hetagents_env
import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "hetagents", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "hetagents"))

# One intra-op thread unless told otherwise: the tests run small tensors, and on a busy 2-core machine MKL's thread
# pool makes each small transcendental op (log, exp, sqrt) cost milliseconds with 2 threads (microseconds with 1).
torch.set_num_threads(int(os.environ.get("HETAGENTS_TEST_THREADS", "1")))

CUDA_AVAILABLE = torch.cuda.is_available()

#: parameters for ``pytest.mark.parametrize("device", DEVICES)`` (also the ``device`` fixture's params)
DEVICES = [
    pytest.param(torch.device("cpu"), id="cpu"),
    pytest.param(
        torch.device("cuda"),
        id="cuda",
        marks=[pytest.mark.cuda, pytest.mark.skipif(not CUDA_AVAILABLE, reason="CUDA is not available")],
    ),
]
#: parameters for ``pytest.mark.parametrize("dtype", DTYPES)`` (also the ``dtype`` fixture's params)
DTYPES = [pytest.param(torch.float32, id="float32"), pytest.param(torch.float64, id="float64")]

#: the environment ids every generic test covers: every registered economy, so a new one is tested as it lands
ENV_IDS = hetagents_env.list_envs()


# session scope: the values are immutable, and hypothesis' @given refuses function-scoped fixtures
@pytest.fixture(params=DEVICES, scope="session")
def device(request) -> torch.device:
    """The torch device under test (CPU always; CUDA when available, skipped otherwise)."""
    return request.param


@pytest.fixture(params=DTYPES, scope="session")
def dtype(request) -> torch.dtype:
    """The floating dtype under test (float32, float64)."""
    return request.param


@pytest.fixture(params=ENV_IDS, scope="session")
def env_id(request) -> str:
    """Each registered environment id."""
    return request.param


def make_generator(device: torch.device | str = "cpu", seed: int = 0) -> torch.Generator:
    """A seeded ``torch.Generator`` on ``device``."""
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(seed)
    return gen


def eps(dtype: torch.dtype) -> float:
    """Machine epsilon of ``dtype``."""
    return torch.finfo(dtype).eps


def close_kwargs(dtype: torch.dtype, scale: float = 1.0) -> dict[str, float]:
    """``rtol``/``atol`` for ``torch.testing.assert_close`` of results a few operations away from each other.

    ``scale`` multiplies both (use it for longer chains of operations).
    """
    if dtype == torch.float64:
        return {"rtol": 1e-12 * scale, "atol": 1e-12 * scale}
    if dtype == torch.float32:
        return {"rtol": 1e-5 * scale, "atol": 1e-5 * scale}
    raise ValueError(f"no tolerance for {dtype}")


def assert_finite(tensor: torch.Tensor, what: str = "tensor") -> None:
    """Fail with a count of the NaN/inf entries unless every entry of ``tensor`` is finite."""
    bad = ~torch.isfinite(tensor)
    assert not bool(bad.any()), f"{what} has {int(bad.sum())} non-finite entries of {tensor.numel()}"


def box_sample(env_id: str, u: torch.Tensor) -> torch.Tensor:
    """Uniforms ``u`` mapped into the economy's action bounds (``[-0.1, 0.1]`` on an unbounded side)."""
    cls = hetagents_env.economy_class(env_id)
    low = cls.action_low if math.isfinite(cls.action_low) else -0.1
    high = cls.action_high if math.isfinite(cls.action_high) else 0.1
    return low + (high - low) * u


def action_sequence(env_id: str, steps: int, b: int, n: int, seed: int = 7) -> torch.Tensor:
    """``steps`` reproducible actions ``(steps, b, n)`` inside the economy's action box (``box_sample``)."""
    u = torch.rand(steps, b, n, generator=torch.Generator().manual_seed(seed))
    return box_sample(env_id, u)
