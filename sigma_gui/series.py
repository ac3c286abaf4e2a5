"""Metric series: the points of one key of one run, kept in growable arrays, and the maths the charts need.

A :class:`MetricSeries` stores, for each reported value, the iteration, the
epoch (fractional mid-epoch), the wall time and the value, in numpy arrays
that double their capacity when full, so appending a million points costs
a few dozen copies, and a chart can hand pyqtgraph views of the arrays
without converting lists.

Example:
    >>> from sigma_gui.series import MetricSeries, smooth
    >>> series = MetricSeries("train/loss")
    >>> for step, loss in enumerate([4.0, 2.0, 1.0], start=1):
    ...     series.append(iteration=step, epoch=step / 10, time=100.0 + step, value=loss)
    >>> series.x("iteration").tolist(), series.values.tolist()
    ([1.0, 2.0, 3.0], [4.0, 2.0, 1.0])
    >>> smooth(series.values, 0.5).tolist()
    [4.0, 2.6666666666666665, 1.7142857142857142]
"""
from __future__ import annotations

import csv
import io
from typing import Tuple

import numpy as np

X_AXES = ("iteration", "epoch", "time")


class MetricSeries:
    """The points reported for one metric key, in arrival order (iterations ascending)."""

    def __init__(self, key: str, capacity: int = 256):
        self.key = key
        self._columns = np.empty((4, max(int(capacity), 1)), dtype=np.float64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, iteration: float, epoch: float, time: float, value: float) -> None:
        """Add one point; the arrays grow by doubling."""
        if self._size == self._columns.shape[1]:
            grown = np.empty((4, 2 * self._size), dtype=np.float64)
            grown[:, :self._size] = self._columns[:, :self._size]
            self._columns = grown
        self._columns[:, self._size] = (iteration, epoch, time, value)
        self._size += 1

    def extend(self, iterations, epochs, times, values) -> None:
        """Add many points at once (arrays of equal length)."""
        block = np.asarray([iterations, epochs, times, values], dtype=np.float64)
        if block.ndim != 2:
            raise ValueError(f"extend: iterations, epochs, times and values must be 1-d arrays of one length, got "
                             f"lengths {[len(np.atleast_1d(a)) for a in (iterations, epochs, times, values)]}")
        needed = self._size + block.shape[1]
        if needed > self._columns.shape[1]:
            grown = np.empty((4, max(needed, 2 * self._columns.shape[1])), dtype=np.float64)
            grown[:, :self._size] = self._columns[:, :self._size]
            self._columns = grown
        self._columns[:, self._size:needed] = block
        self._size = needed

    def truncate_after(self, iteration: float) -> int:
        """Drop the points after ``iteration`` (a resumed run abandoned them); returns how many went."""
        keep = int(np.searchsorted(self.iterations, iteration, side="right"))
        dropped = self._size - keep
        self._size = keep
        return dropped

    @property
    def iterations(self) -> np.ndarray:
        return self._columns[0, :self._size]

    @property
    def epochs(self) -> np.ndarray:
        return self._columns[1, :self._size]

    @property
    def times(self) -> np.ndarray:
        return self._columns[2, :self._size]

    @property
    def values(self) -> np.ndarray:
        return self._columns[3, :self._size]

    def x(self, axis: str) -> np.ndarray:
        """The x coordinates by ``"iteration"``, ``"epoch"`` or ``"time"`` (seconds since the first point)."""
        if axis == "iteration":
            return self.iterations
        if axis == "epoch":
            return self.epochs
        if axis == "time":
            times = self.times
            return times - times[0] if len(times) else times
        raise ValueError(f"unknown x axis {axis!r}; choose from {X_AXES}")

    def last(self) -> float:
        """The newest value; an error if there is none."""
        if not self._size:
            raise IndexError(f"the series {self.key!r} has no points yet")
        return float(self._columns[3, self._size - 1])

    def to_csv(self) -> str:
        """``iteration,epoch,time,<key>`` rows as CSV text."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["iteration", "epoch", "time", self.key])
        for iteration, epoch, time, value in self._columns[:, :self._size].T:
            writer.writerow([int(iteration), repr(float(epoch)), repr(float(time)), repr(float(value))])
        return buffer.getvalue()


def _moving_average(points: np.ndarray, weight: float, carried: float, seen: int) -> Tuple[np.ndarray, float, int]:
    """Debiased exponential moving average of finite ``points``, continuing from the biased average
    ``carried`` after ``seen`` earlier points; returns the averages and the state to continue from."""
    smoothed = np.empty(len(points))
    # a_k = w^k a_0 + (1-w) sum_{i<=k} w^{k-i} v_i, as a cumulative sum of v_i w^-i; in chunks short enough
    # that w^-i stays far from overflowing, each restarting from the average the chunk before left.
    chunk = max(1, int(300 / max(-np.log(weight), 1e-12)))
    for start in range(0, len(points), chunk):
        block = points[start:start + chunk]
        n = np.arange(1, len(block) + 1)
        powers = weight ** n
        averages = powers * carried + (1.0 - weight) * powers * np.cumsum(block / powers)
        smoothed[start:start + len(block)] = averages / (1.0 - weight ** (seen + n))
        carried, seen = float(averages[-1]), seen + len(block)
    return smoothed, carried, seen


class Smoother:
    """The smoothed copy of a growing series, extended with only the new points at each update."""

    def __init__(self, weight: float = 0.0):
        self.weight = weight
        self._reset()

    def _reset(self) -> None:
        self._result = np.empty(0)
        self._carried, self._seen, self._last = 0.0, 0, np.nan

    @property
    def weight(self) -> float:
        return self._weight

    @weight.setter
    def weight(self, weight: float) -> None:
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"smoothing weight must be in [0, 1), got {weight!r}")
        self._weight = float(weight)
        self._reset()

    def update(self, values: np.ndarray) -> np.ndarray:
        """The smoothed ``values``; ``values`` must extend the previous call's (or be shorter: recomputed)."""
        values = np.asarray(values, dtype=np.float64)
        done = len(self._result)
        if len(values) < done:
            self._reset()
            done = 0
        if self._weight == 0.0:
            self._result = values
            return values
        fresh = values[done:]
        finite = np.isfinite(fresh)
        smoothed = np.full(len(fresh), np.nan)
        if finite.any():
            averaged, self._carried, self._seen = _moving_average(fresh[finite], self._weight, self._carried,
                                                                  self._seen)
            smoothed[finite] = averaged
        # Non-finite points take the average so far, so one NaN does not punch a hole in the line.
        positions = np.where(finite, np.arange(len(fresh)), -1)
        latest = np.maximum.accumulate(positions) if len(fresh) else positions
        holes = ~finite & (latest >= 0)
        smoothed[holes] = smoothed[latest[holes]]
        smoothed[~finite & (latest < 0)] = self._last
        if len(smoothed):
            self._last = smoothed[-1]
        self._result = np.concatenate([self._result, smoothed]) if done else smoothed
        return self._result


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average with debiasing (weight 0: the raw values; towards 1: smoother).

    Non-finite values are skipped (they keep the previous average).
    """
    return Smoother(weight).update(np.array(values, dtype=np.float64))


def clipped_range(values: np.ndarray, quantile: float = 0.01) -> Tuple[float, float]:
    """A y range holding the values between the ``quantile`` and ``1 - quantile`` quantiles, padded by 10%,
    so a few huge early losses do not flatten the rest of the curve.

    Example:
        >>> from sigma_gui.series import clipped_range
        >>> import numpy as np
        >>> low, high = clipped_range(np.r_[np.ones(98), 1000.0, 2.0], quantile=0.02)
        >>> high < 10
        True
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return 0.0, 1.0
    low, high = np.quantile(values, [quantile, 1.0 - quantile])
    scale = max(abs(low), abs(high))
    if high - low <= 1e-9 * scale:  # a constant (up to rounding in averages): centre it, do not zoom into noise
        middle = 0.5 * (low + high)
        pad = 0.1 * scale if scale > 0 else 1.0
        return float(middle - pad), float(middle + pad)
    pad = 0.1 * (high - low)
    return float(low - pad), float(high + pad)
