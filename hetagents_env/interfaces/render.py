"""Pictures of the economies for the facades' ``render()`` (Gymnasium, PettingZoo, the SB3 adapter).

A frame shows one economy: the cross-section histogram of its endogenous per-agent state
(``economy.endogenous_key``: capital, wealth) and the path of that state's mean over agents since the economy's last
reset. ``render_mode="rgb_array"`` returns frames as ``uint8`` ``(H, W, 3)`` arrays (matplotlib's Agg canvas, no
display needed; ready for ``RecordVideo``); ``"human"`` shows the first economy's frame in a matplotlib window
after every reset and step. Nothing here runs unless a ``render_mode`` is set.
"""

from __future__ import annotations

import collections
import warnings
from collections.abc import Sequence

import numpy as np
import torch

#: the render modes every rendering facade accepts (besides ``None``)
RENDER_MODES = ("human", "rgb_array")
#: frames per second advertised to video recorders (one frame per period)
RENDER_FPS = 4
#: the aggregate path keeps at most this many periods
MAX_PERIODS = 1000


def check_render_mode(render_mode: str | None) -> str | None:
    """``render_mode`` itself if supported; otherwise ``ValueError`` listing the supported modes."""
    if render_mode is None or render_mode in RENDER_MODES:
        return render_mode
    raise ValueError(f"render_mode must be None or one of {', '.join(map(repr, RENDER_MODES))}, got {render_mode!r}")


def draw_frame(values: np.ndarray, path: np.ndarray, *, key: str, title: str, period: int) -> np.ndarray:
    """One frame ``(320, 640, 3)`` uint8: histogram of ``values`` (N,) and ``path`` (periods up to ``period``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 3.2), dpi=100)  # a bare Figure: no pyplot state, safe in workers and threads
    canvas = FigureCanvasAgg(fig)
    hist, line = fig.subplots(1, 2)
    hist.hist(values, bins=int(np.clip(np.sqrt(values.size), 5, 40)), color="tab:blue")
    hist.set(xlabel=key, ylabel="agents", title=f"cross-section of {key}")
    periods = np.arange(period - path.size + 1, period + 1)
    line.plot(periods, path, color="tab:red", marker="." if path.size < 50 else None)
    line.set(xlabel="period", ylabel=f"mean {key}", title="aggregate path")
    line.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"{title}, period {period}", fontsize=10)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class Frames(Sequence):
    """The frames of all economies at one moment, drawn only when read (a batch of B economies renders one
    frame, not B, when a recorder keeps only the first)."""

    def __init__(self, values: torch.Tensor, path: torch.Tensor, elapsed: torch.Tensor, key: str, title: str) -> None:
        self._values, self._path, self._elapsed = values, path, elapsed.tolist()
        self._key, self._title = key, title

    def __len__(self) -> int:
        return len(self._elapsed)

    def path(self, index: int) -> np.ndarray:
        """Economy ``index``'s mean of the endogenous state, period by period since its last reset (at most
        :data:`MAX_PERIODS` periods)."""
        return self._path[-(self._elapsed[index] + 1) :, index].cpu().numpy()

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return draw_frame(
            self._values[index].double().cpu().numpy(), self.path(index), key=self._key,
            title=f"{self._title} #{range(len(self))[index]}", period=self._elapsed[index],
        )


class Renderer:
    """Render bookkeeping of one core :class:`~hetagents_env.interfaces.env.EconomyEnv`: the aggregate path of
    every economy (appended after each step, replaced after a reset) and the frames.

    Args:
        core: the env whose ``state`` and ``elapsed_steps`` are drawn.
        render_mode: ``"human"`` or ``"rgb_array"``.
    """

    def __init__(self, core, render_mode: str) -> None:
        if check_render_mode(render_mode) is None:
            raise ValueError("a Renderer needs a render_mode")
        self.core, self.render_mode = core, render_mode
        self.key = core.economy.endogenous_key
        self.title = core.economy.env_id
        self._path: collections.deque[torch.Tensor] = collections.deque(maxlen=MAX_PERIODS)
        self._window = None

    def record(self, new_period: bool) -> None:
        """Note the current state: ``new_period=True`` after a step, ``False`` after a (partial) reset."""
        mean = self.core.state[self.key].mean(-1, dtype=torch.float64)
        if not new_period and self._path:
            if not bool(self.core.elapsed_steps.any()):  # every economy restarted: forget the old paths
                self._path.clear()
            else:  # only some restarted; the others' means are unchanged
                self._path.pop()
        self._path.append(mean)
        if self.render_mode == "human":
            self.show()

    def frames(self) -> Frames:
        """The frames of all economies now (lazy: each is drawn when read)."""
        if not self._path:
            raise RuntimeError("nothing to render yet: call reset() first")
        return Frames(
            self.core.state[self.key].detach().clone(), torch.stack(list(self._path)),
            self.core.elapsed_steps.clone(), self.key, self.title,
        )

    def show(self) -> None:
        """Draw the first economy's frame in a matplotlib window (human mode)."""
        import matplotlib.pyplot as plt

        frame = self.frames()[0]
        if self._window is None or not plt.fignum_exists(self._window.figure.number):
            figure = plt.figure("hetagents", figsize=(6.4, 3.2))
            axes = figure.add_axes((0, 0, 1, 1))
            axes.set_axis_off()
            self._window = axes.imshow(frame)
        else:
            self._window.set_data(frame)
        with warnings.catch_warnings():  # headless (Agg) backends cannot show a window: nothing to do then
            warnings.filterwarnings("ignore", message=".*non-interactive.*")
            plt.pause(1e-3)

    def close(self) -> None:
        """Close the human-mode window, if any."""
        if self._window is not None:
            import matplotlib.pyplot as plt

            plt.close(self._window.figure)
            self._window = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_window": None}  # a window belongs to this process
