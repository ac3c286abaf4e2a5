"""Helpers shared by the benchmark scripts: timing, tables, machine facts."""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable, List, Sequence


def best_of(function: Callable[[], None], repeats: int = 5, number: int = 1) -> float:
    """Seconds for one call: the median of ``repeats`` runs of ``number`` calls.

    The median (not the minimum) because the machines are shared and noisy,
    and a single lucky run would flatter whichever side got it.
    """
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            function()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def table(headers: Sequence[str], rows: List[Sequence]) -> str:
    """A Markdown table, so it can be pasted into RESULTS.md as printed."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for row in f:
                if row.startswith("model name"):
                    cpu = row.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def import_torch(threads: int):
    """PyTorch as the baseline, or None where it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch
