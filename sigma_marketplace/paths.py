"""Which vendor combinations (paths) a step evaluates, and in what order.

Stage 0's vendors all read the batch, giving ``V0`` products. Each later
stage either takes **every** upstream product (full upstream: product
``u * V + v`` is vendor ``v`` applied to upstream product ``u``) or, with
upstream sampling ``k``, each of its vendors takes ``k`` of them (product
``j * V + v`` is vendor ``v`` applied to upstream product ``table[v, j]``).
A product's path lists the vendor it went through at every stage.

The leader (vendor 0 of every stage) always reads upstream product 0, so
product 0 of every stage, and path 0 at the end, is the all-leader path:
the parameters as they are.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

__all__ = ["PathPlan"]


class PathPlan:
    """Vendor counts per stage and, for sampled stages, which upstream products each vendor reads.

    ``tables[s]`` is ``None`` (full upstream) or an int array ``(V_s, k_s)``
    of upstream product indices.

    Example:
        >>> plan = PathPlan([2, 3])
        >>> plan.product_counts, plan.paths().tolist()[:4]
        ([2, 6], [[0, 0], [0, 1], [0, 2], [1, 0]])
    """

    def __init__(self, vendors: Sequence[int], tables: Optional[Sequence[Optional[np.ndarray]]] = None):
        self.vendors = [int(v) for v in vendors]
        if not self.vendors:
            raise ValueError("PathPlan: a marketplace needs at least one stage")
        tables = list(tables) if tables is not None else [None] * len(self.vendors)
        if len(tables) != len(self.vendors):
            raise ValueError(f"PathPlan: {len(tables)} upstream table(s) for {len(self.vendors)} stage(s)")
        if tables[0] is not None:
            raise ValueError("PathPlan: stage 0 reads the batch itself; it cannot sample upstream products")
        self.tables: List[Optional[np.ndarray]] = []
        self.product_counts: List[int] = []
        upstream = 1
        for stage, (vendors, table) in enumerate(zip(self.vendors, tables)):
            if table is not None:
                table = np.asarray(table, dtype=np.int64)
                if table.ndim != 2 or table.shape[0] != vendors or table.shape[1] < 1:
                    raise ValueError(f"PathPlan: stage {stage}'s upstream table has shape {table.shape}; it needs "
                                     f"({vendors}, k) with k >= 1")
                if table.min() < 0 or table.max() >= upstream:
                    raise ValueError(f"PathPlan: stage {stage}'s upstream table refers to products outside "
                                     f"[0, {upstream})")
                upstream = table.shape[1] * vendors
            else:
                upstream = upstream * vendors
            self.tables.append(table)
            self.product_counts.append(upstream)

    @classmethod
    def sample(cls, vendors: Sequence[int], upstream: Sequence[Optional[int]], seed: int, step: int) -> "PathPlan":
        """A plan where stage ``s`` with ``upstream[s] = k`` gives each vendor ``k`` random upstream products.

        Vendor 0 (the leader) always reads product 0 first, so the all-leader
        path is always evaluated. ``k`` equal to the number of upstream
        products means full upstream. The draw is a pure function of
        ``(seed, step)``.

        Example:
            >>> plan = PathPlan.sample([3, 3], [None, 2], seed=0, step=1)
            >>> plan.product_counts, plan.tables[1].shape, int(plan.tables[1][0, 0])
            ([3, 6], (3, 2), 0)
        """
        vendors = [int(v) for v in vendors]
        if len(upstream) != len(vendors):
            raise ValueError(f"PathPlan.sample: {len(upstream)} upstream setting(s) for {len(vendors)} stage(s)")
        if upstream[0] is not None:
            raise ValueError(f"upstream sampling: stage 0 reads the batch itself, so its upstream must be None, "
                             f"got {upstream[0]!r}")
        tables: List[Optional[np.ndarray]] = [None]
        available = vendors[0]
        for stage in range(1, len(vendors)):
            k = upstream[stage]
            if k is None or k == available:
                tables.append(None)
                available *= vendors[stage]
                continue
            if k > available:
                raise ValueError(f"upstream sampling: stage {stage} asks each vendor for {k} upstream products, "
                                 f"but stage {stage - 1} makes only {available}")
            generator = np.random.Generator(np.random.Philox(np.random.SeedSequence([int(seed), int(step), stage,
                                                                                      0x75707374])))
            table = np.empty((vendors[stage], k), dtype=np.int64)
            table[0, 0] = 0
            table[0, 1:] = 1 + generator.choice(available - 1, size=k - 1, replace=False)
            for vendor in range(1, vendors[stage]):
                table[vendor] = generator.choice(available, size=k, replace=False)
            tables.append(table)
            available = k * vendors[stage]
        return cls(vendors, tables)

    @property
    def stage_count(self) -> int:
        return len(self.vendors)

    @property
    def path_count(self) -> int:
        return self.product_counts[-1]

    def paths(self) -> np.ndarray:
        """Every evaluated path, in product order: int array ``(paths, stages)`` of vendor indices."""
        paths = np.arange(self.vendors[0], dtype=np.int64)[:, None]
        for stage in range(1, self.stage_count):
            paths = self.extend(stage, paths, 0, self.chunk_length(stage))
        return paths

    def chunk_length(self, stage: int) -> int:
        """How many upstream products (full) or sample columns (sampled) stage ``stage`` iterates over."""
        table = self.tables[stage]
        return table.shape[1] if table is not None else (1 if stage == 0 else self.product_counts[stage - 1])

    def extend(self, stage: int, upstream_paths: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Paths of stage ``stage``'s products made from positions ``start:stop`` of its iteration.

        For a full-upstream stage ``upstream_paths`` holds the paths of the
        upstream products ``start:stop``; for a sampled stage it holds all
        upstream paths and the positions are sample columns.
        """
        vendors = self.vendors[stage]
        table = self.tables[stage]
        vendor_column = np.tile(np.arange(vendors, dtype=np.int64), stop - start)[:, None]
        if table is None:
            parents = np.repeat(upstream_paths, vendors, axis=0)
        else:
            parents = upstream_paths[table[:, start:stop].T.reshape(-1)]
        return np.concatenate([parents, vendor_column], axis=1)
