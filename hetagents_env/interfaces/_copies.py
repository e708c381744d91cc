"""How an env is copied (``pickle``, ``copy.deepcopy``, ``cloudpickle``): the version guard and the copy's seed.

Multiprocess vector envs (Gymnasium ``AsyncVectorEnv``, SB3 ``SubprocVecEnv``, SuperSuit ``concat_vec_envs_v1``)
copy one constructed env into every worker. Two rules make those copies usable:

* **Version guard.** A pickle records ``hetagents_env.__version__``; loading it under another version raises
  :class:`pickle.UnpicklingError` naming both versions, *before* the economy inside is rebuilt (an economy whose
  code changed must not come back silently wrong).
* **Independent, reproducible streams.** A copy made without a new seed must not replay the original's shocks.
  The copy's generator is seeded with :func:`copy_seed` ``(seed, n)``: a :class:`numpy.random.SeedSequence` child
  of the original generator's seed (``rng.initial_seed()``, i.e. the last seed given to it, or its entropy seed)
  and of ``n``, the number of copies taken from that original so far. Same seed and same sequence of copies ->
  the same streams; different copies -> independent streams. A copy taken inside a forked child of an env that
  was built in the parent also mixes in the child's pid: forked siblings share the same counter, and nothing else
  tells them apart (such copies are independent but not reproducible; seed them with ``reset(seed=...)``).
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from .. import _version


def package_version() -> str:
    """``hetagents_env.__version__`` (read at call time, so a test can stand in another version)."""
    return _version.__version__


def copy_seed(seed: int, count: int, born_pid: int) -> int:
    """The seed of copy number ``count`` of a generator seeded with ``seed``, owned by an object built in
    process ``born_pid`` (see the module docstring)."""
    key = (count,) if os.getpid() == born_pid else (count, os.getpid())
    return int(np.random.SeedSequence(entropy=int(seed), spawn_key=key).generate_state(1, np.uint64)[0])


def restore(cls: type, saved_version: str):
    """Unpickling hook: an empty ``cls`` instance, or an error when the pickle is from another package version.

    Called by pickle before the object's state (the economy) is loaded, so a mismatch stops there."""
    current = package_version()
    if saved_version != current:
        raise pickle.UnpicklingError(
            f"this {cls.__name__} was pickled by hetagents_env {saved_version} and cannot be loaded by "
            f"hetagents_env {current}: rebuild it with hetagents_env.make(...) instead"
        )
    return cls.__new__(cls)
