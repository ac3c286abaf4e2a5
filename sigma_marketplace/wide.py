"""The wide forward pass: the loss of every path on one batch, without a loop over paths.

Stage ``s`` runs once per chunk of upstream products with all its vendors
side by side (see :mod:`sigma_marketplace.layers`), so for full upstream it
computes all ``V^(s+1)`` products of the batch in a few large operations.
Chunks are sized so the stage's largest activation stays under
``chunk_bytes``; the pass goes depth first (a chunk's products run through
the later stages before the next chunk is made), so memory is bounded by
the chunks, never by the number of paths. Stages before the last sampled
one are materialised, because sampling picks from all upstream products.

The last stage's outputs for a whole chunk of paths go through the
per-sample loss together, and one reduction gives each path's mean loss.
Everything runs on raw arrays of the parameters' backend, without
recording gradients.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from sigma.autograd import no_grad
from sigma.tensor import Tensor

from sigma_marketplace.layers import WideContext, wide_layer_for
from sigma_marketplace.paths import PathPlan
from sigma_marketplace.stages import Stage, Stages

__all__ = ["path_losses", "WidePass", "default_chunk_bytes"]

# Chunks of a few tens of MB keep a CPU's working set near that of a plain batch (larger ones measured no
# faster on 2 cores); a GPU wants its work in as few launches as possible.
CPU_CHUNK_BYTES = 64 * 1024 * 1024
DEVICE_CHUNK_BYTES = 1024 * 1024 * 1024


def default_chunk_bytes(backend) -> int:
    """The wide pass's chunk size for ``backend`` when none is given."""
    return CPU_CHUNK_BYTES if backend.kind == "cpu" else DEVICE_CHUNK_BYTES


class WidePass:
    """One wide pass over a batch; after :meth:`run`, ``leader_outputs`` holds the unperturbed model's outputs."""

    def __init__(self, stages: Stages, targets: Tensor, per_sample_loss: Callable, plan: PathPlan, deltas,
                 chunk_bytes: int):
        self.stages, self.targets, self.per_sample_loss = stages, targets, per_sample_loss
        self.plan, self.deltas, self.chunk_bytes = plan, deltas, int(chunk_bytes)
        self.backend = stages.backend
        self.xp = self.backend.xp
        self.batch = targets.shape[0]
        self.recorded_paths: List[np.ndarray] = []
        self.recorded_losses: List[np.ndarray] = []
        self.leader_outputs = None
        self._sizes: Dict[Tuple[int, tuple], int] = {}

    # -- one stage ----------------------------------------------------------------------
    def vendor_values(self, stage: Stage):
        """``param -> (V, *shape)`` values of the vendors of ``stage`` (leader's value plus each delta)."""
        def values(param: Tensor):
            index = stage.position[id(param)]
            return param.data[None] + self.deltas.deltas(stage.index, index)
        return values

    def elements_per_sample(self, stage: Stage, x) -> int:
        """The largest activation of one vendor for one sample in ``stage`` (a one-sample plain forward)."""
        key = (stage.index, tuple(x.shape[1:]))
        if key not in self._sizes:
            largest = int(np.prod(x.shape[1:]))
            sample = Tensor._make(x[:1], self.backend, False, None)
            for layer in stage.layers if stage.vectorised else [stage.module]:
                sample = layer(sample)
                largest = max(largest, int(sample.size))
            self._sizes[key] = largest
        return self._sizes[key]

    def run_stage(self, stage: Stage, x, shared: bool):
        """Stage ``stage`` for all its vendors on ``x``: (N, ...) shared or (V, N, ...) -> (V, N, ...)."""
        vendors = self.plan.vendors[stage.index]
        if stage.vectorised:
            context = WideContext(self.backend, vendors, self.vendor_values(stage))
            for layer in stage.layers:
                x, shared = wide_layer_for(layer)(context, layer, x, shared)
            if shared:
                raise RuntimeError(f"stage {stage.index} never used its parameters on the data")
            return x
        return self._run_per_vendor(stage, x, shared, vendors)

    def run_rows(self, stage: Stage, x, shared: bool, rows: int):
        """:meth:`run_stage` on at most ``rows`` samples at a time (every layer treats samples independently)."""
        axis = 0 if shared else 1
        if x.shape[axis] <= rows:
            return self.run_stage(stage, x, shared)
        pieces = [self.run_stage(stage, x[start:start + rows] if shared else x[:, start:start + rows], shared)
                  for start in range(0, x.shape[axis], rows)]
        return self.xp.concatenate(pieces, axis=1)

    def _run_per_vendor(self, stage: Stage, x, shared: bool, vendors: int):
        originals = [param.data for param in stage.parameters]
        values = [param.data[None] + self.deltas.deltas(stage.index, i) for i, param in enumerate(stage.parameters)]
        outputs = []
        try:
            for vendor in range(vendors):
                for param, value in zip(stage.parameters, values):
                    param.data = value[vendor]
                vendor_input = x if shared else x[vendor]
                outputs.append(stage.module(Tensor._make(vendor_input, self.backend, False, None)).data)
        finally:
            for param, original in zip(stage.parameters, originals):
                param.data = original
        return self.xp.stack(outputs, axis=0)                                           # (V, N, ...)

    def products(self, stage: Stage, x, paths: np.ndarray):
        """Yield ``(outputs, paths)`` chunks of ``stage``'s products; ``x`` holds its upstream products."""
        xp, batch = self.xp, self.batch
        index = stage.index
        vendors = self.plan.vendors[index]
        table = self.plan.tables[index]
        upstream = x.reshape((x.shape[0] // batch, batch) + x.shape[1:])                 # (U, B, ...)
        itemsize = upstream.dtype.itemsize
        per_sample = self.elements_per_sample(stage, upstream[0]) * vendors * itemsize
        if table is not None:
            per_sample += int(np.prod(upstream.shape[2:])) * vendors * itemsize
        # Whole upstream products (or sample columns) per chunk; when even one is too large, the
        # stage runs on slices of the batch instead.
        step = max(1, self.chunk_bytes // max(per_sample * batch, 1))
        rows = max(1, self.chunk_bytes // max(per_sample, 1))
        length = upstream.shape[0] if table is None else table.shape[1]
        for start in range(0, length, step):
            stop = min(start + step, length)
            count = stop - start
            if table is None:
                chunk = upstream[start:stop].reshape((count * batch,) + upstream.shape[2:])
                out = self.run_rows(stage, chunk, True, rows)
                parents = paths[start:stop]
            else:
                gathered = upstream[self.backend.asarray(table[:, start:stop])]           # (V, c, B, ...)
                chunk = gathered.reshape((vendors, count * batch) + gathered.shape[3:])
                out = self.run_rows(stage, chunk, False, rows)
                parents = paths
            # (V, c*B, ...) -> products (c, V, B, ...) -> (c*V*B, ...)
            out = out.reshape((vendors, count, batch) + out.shape[2:])
            out = xp.ascontiguousarray(xp.moveaxis(out, 0, 1)).reshape((count * vendors * batch,) + out.shape[3:])
            yield out, self.plan.extend(index, parents, start, stop)

    # -- the whole pass -----------------------------------------------------------------
    def record(self, outputs, paths: np.ndarray) -> None:
        xp = self.xp
        count = len(paths)
        targets = self.targets.data
        tiled = xp.broadcast_to(targets[None], (count,) + targets.shape).reshape((count * self.batch,) +
                                                                                 targets.shape[1:])
        losses = self.per_sample_loss(Tensor._make(outputs, self.backend, False, None),
                                      Tensor._make(tiled, self.backend, False, None))
        losses = losses.data if isinstance(losses, Tensor) else self.backend.asarray(losses)
        if losses.shape[0] != count * self.batch:
            raise ValueError(f"the per-sample loss returned shape {tuple(losses.shape)} for {count * self.batch} "
                             "samples; it must keep one row per sample (reduction='none')")
        per_path = losses.reshape(count, -1).astype(self.xp.float64).mean(axis=1)
        leader = np.flatnonzero(~paths.any(axis=1))
        if len(leader):
            row = int(leader[0]) * self.batch
            self.leader_outputs = Tensor._make(outputs[row:row + self.batch].copy(), self.backend, False, None)
        self.recorded_paths.append(paths)
        self.recorded_losses.append(np.asarray(self.backend.to_host(per_path), dtype=np.float64))

    def descend(self, stage_index: int, x, paths: np.ndarray) -> None:
        if stage_index == len(self.stages):
            self.record(x, paths)
            return
        for out, out_paths in self.products(self.stages[stage_index], x, paths):
            self.descend(stage_index + 1, out, out_paths)

    def run(self, inputs) -> Tuple[np.ndarray, np.ndarray]:
        sampled = [i for i, table in enumerate(self.plan.tables) if table is not None]
        materialise = sampled[-1] if sampled else 0
        x, paths = inputs, np.zeros((1, 0), dtype=np.int64)
        for index in range(materialise):
            chunks = list(self.products(self.stages[index], x, paths))
            x = self.xp.concatenate([out for out, _ in chunks], axis=0)
            paths = np.concatenate([p for _, p in chunks], axis=0)
        self.descend(materialise, x, paths)
        return np.concatenate(self.recorded_paths, axis=0), np.concatenate(self.recorded_losses, axis=0)


def path_losses(stages: Stages, inputs: Tensor, targets: Tensor, per_sample_loss: Callable, plan: PathPlan,
                deltas, chunk_bytes: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Every path's mean loss on the batch ``(inputs, targets)``.

    ``deltas.deltas(stage, index)`` gives the vendors' perturbations
    ``(V, *shape)`` of each parameter; ``per_sample_loss(outputs, targets)``
    returns one loss per sample. Returns ``(paths, losses)``: the vendor of
    every stage on each path (int array ``(P, stages)``, in the plan's
    product order) and the path's mean loss (float64 ``(P,)``).
    """
    if len(plan.vendors) != len(stages):
        raise ValueError(f"the path plan has {len(plan.vendors)} stage(s), the model {len(stages)}")
    if inputs.shape[0] != targets.shape[0]:
        raise ValueError(f"{inputs.shape[0]} inputs but {targets.shape[0]} targets in the batch")
    wide = WidePass(stages, targets, per_sample_loss, plan, deltas,
                    default_chunk_bytes(stages.backend) if chunk_bytes is None else chunk_bytes)
    with no_grad():
        return wide.run(inputs.data)
