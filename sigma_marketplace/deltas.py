"""Vendor perturbations regenerated from seeds by a counter-based random generator.

Vendor ``v`` of stage ``s`` uses ``W + delta`` for every parameter of the
stage; its delta is uniform in ``[-scale, scale)`` and is a pure function of
``(seed, parameter index)``: numpy's Philox bit generator keyed by those two
64-bit words, counter from zero. Any delta can be regenerated on its own, in
any order, on any machine, so an optimiser needs to remember only one seed
per vendor, not a copy of the parameters. Seed 0 is reserved for the
unperturbed leader: its delta is exactly zero.

The values are drawn on the host and moved to the parameter's backend (on a
GPU this is one transfer per delta; a device-side Philox kernel would remove
it).
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

from sigma.tensor import Tensor

__all__ = ["uniform_delta", "draw_seeds", "SeedDeltas", "DirectionDeltas"]

LEADER_SEED = 0


def uniform_delta(seed: int, index: int, shape: Sequence[int], scale: float, dtype=np.float32) -> np.ndarray:
    """The perturbation of parameter ``index`` for a vendor with ``seed``: uniform in ``[-scale, scale)``.

    A host (numpy) array; the same arguments always give the same values,
    and seed 0 gives zeros.

    Example:
        >>> a = uniform_delta(7, 0, (2, 3), 0.5)
        >>> bool((a == uniform_delta(7, 0, (2, 3), 0.5)).all()), bool((abs(a) <= 0.5).all())
        (True, True)
        >>> bool((uniform_delta(7, 1, (2, 3), 0.5) != a).any()), float(abs(uniform_delta(0, 0, (2,), 1.0)).sum())
        (True, 0.0)
    """
    seed, index = int(seed), int(index)
    if not 0 <= seed < 2 ** 64 or not 0 <= index < 2 ** 64:
        raise ValueError(f"uniform_delta: seed and index must be in [0, 2**64), got seed={seed}, index={index}")
    dtype = np.dtype(dtype)
    if seed == LEADER_SEED:
        return np.zeros(tuple(shape), dtype=dtype)
    generator = np.random.Generator(np.random.Philox(key=np.array([seed, index], dtype=np.uint64)))
    values = generator.random(tuple(shape), dtype=dtype if dtype in (np.float32, np.float64) else np.float64)
    values = values.astype(dtype, copy=False)
    # u in [0, 1) -> (2u - 1) * scale in [-scale, scale)
    values *= dtype.type(2 * scale)
    values -= dtype.type(scale)
    return values


def draw_seeds(seed: int, step: int, stage: int, vendors: int) -> np.ndarray:
    """The ``vendors`` seeds of one stage for one step: 0 (the leader) then nonzero 64-bit values.

    A pure function of its arguments, so a run is reproducible from its seed
    and a restored optimiser draws the same seeds as one that never stopped.

    Example:
        >>> seeds = draw_seeds(1, 5, 0, 4)
        >>> seeds.dtype, int(seeds[0]), bool((seeds[1:] != 0).all())
        (dtype('uint64'), 0, True)
        >>> bool((seeds == draw_seeds(1, 5, 0, 4)).all()), bool((seeds != draw_seeds(1, 6, 0, 4)).any())
        (True, True)
    """
    words = np.random.SeedSequence([int(seed), int(step), int(stage)]).generate_state(2 * (vendors - 1), np.uint64)
    others = [int(w) for w in words if w != LEADER_SEED][:vendors - 1]
    return np.array([LEADER_SEED] + others, dtype=np.uint64)


class SeedDeltas:
    """The vendors' perturbations of every stage, from one seed per vendor.

    ``parameters[s]`` are stage ``s``'s parameters, ``seeds[s]`` its
    vendors' seeds (vendor 0 should be the leader, seed 0) and ``scales[s]``
    the half-width of the uniform noise. With ``cache=True`` each stage's
    deltas are drawn once and kept (memory: vendors x parameters); with
    ``cache=False`` they are regenerated whenever asked for (memory: one
    layer's vendors at a time). Both give identical values.

    Example:
        >>> import sigma
        >>> w = sigma.zeros(3)
        >>> deltas = SeedDeltas([[w]], [draw_seeds(0, 1, 0, 2)], [0.1], cache=False)
        >>> deltas.deltas(0, 0).shape, float(abs(deltas.deltas(0, 0)[0]).sum())
        ((2, 3), 0.0)
    """

    def __init__(self, parameters: Sequence[Sequence[Tensor]], seeds: Sequence[np.ndarray], scales: Sequence[float],
                 cache: bool = True):
        if not len(parameters) == len(seeds) == len(scales):
            raise ValueError(f"SeedDeltas: {len(parameters)} stage(s) of parameters, {len(seeds)} of seeds and "
                             f"{len(scales)} scale(s); give one of each per stage")
        self.parameters = [list(stage) for stage in parameters]
        self.seeds = [np.asarray(s, dtype=np.uint64).reshape(-1) for s in seeds]
        self.scales = [float(s) for s in scales]
        self.cache = bool(cache)
        self._cached: Dict[Tuple[int, int], object] = {}

    def vendors(self, stage: int) -> int:
        return len(self.seeds[stage])

    def delta(self, stage: int, vendor: int, index: int):
        """Vendor ``vendor``'s perturbation of parameter ``index`` of ``stage``, on the parameter's backend."""
        if self.cache:
            return self.deltas(stage, index)[vendor]
        param = self.parameters[stage][index]
        host = uniform_delta(int(self.seeds[stage][vendor]), index, param.shape, self.scales[stage], param.dtype)
        return param.backend.asarray(host)

    def deltas(self, stage: int, index: int):
        """All vendors' perturbations of parameter ``index`` of ``stage``: shape ``(vendors, *param.shape)``."""
        key = (stage, index)
        if key in self._cached:
            return self._cached[key]
        param = self.parameters[stage][index]
        host = np.empty((self.vendors(stage),) + param.shape, dtype=param.dtype)
        for vendor, seed in enumerate(self.seeds[stage]):
            host[vendor] = uniform_delta(int(seed), index, param.shape, self.scales[stage], param.dtype)
        stacked = param.backend.asarray(host)
        if self.cache:
            self._cached[key] = stacked
        return stacked

    def combine(self, stage: int, index: int, weights: Sequence[float]):
        """``sum_v weights[v] * delta_v`` for parameter ``index`` of ``stage``, one vendor at a time."""
        param = self.parameters[stage][index]
        xp = param.backend.xp
        total = xp.zeros(param.shape, dtype=param.dtype)
        for vendor, weight in enumerate(weights):
            if weight != 0 and int(self.seeds[stage][vendor]) != LEADER_SEED:
                total += param.dtype.type(weight) * self.delta(stage, vendor, index)
        return total


class DirectionDeltas:
    """Vendors that step along a fixed direction by different amounts (the meta-learning-rate pass).

    Vendor ``v`` of stage ``s`` adds ``multipliers[s][v] * direction[s][i]``
    to parameter ``i``.

    Example:
        >>> import numpy as np, sigma
        >>> w = sigma.zeros(2)
        >>> deltas = DirectionDeltas([[w]], [[np.array([1.0, -1.0], dtype=np.float32)]], [[0.5, 2.0]])
        >>> deltas.deltas(0, 0).tolist()
        [[0.5, -0.5], [2.0, -2.0]]
    """

    def __init__(self, parameters: Sequence[Sequence[Tensor]], direction: Sequence[Sequence[object]],
                 multipliers: Sequence[Sequence[float]]):
        self.parameters = [list(stage) for stage in parameters]
        self.direction = [list(stage) for stage in direction]
        self.multipliers = [np.asarray(m, dtype=np.float64).reshape(-1) for m in multipliers]

    def vendors(self, stage: int) -> int:
        return len(self.multipliers[stage])

    def delta(self, stage: int, vendor: int, index: int):
        param = self.parameters[stage][index]
        return param.dtype.type(self.multipliers[stage][vendor]) * self.direction[stage][index]

    def deltas(self, stage: int, index: int):
        param = self.parameters[stage][index]
        xp = param.backend.xp
        factors = xp.asarray(self.multipliers[stage].astype(param.dtype)).reshape((-1,) + (1,) * param.ndim)
        return factors * self.direction[stage][index][None]

