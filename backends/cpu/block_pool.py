"""Spread the blocks of one operation over the CPU's cores, one thread per core.

Convolution works through the batch in blocks (im2col, then a matrix product),
and both halves of a block could use every core: numba's parallel loops and
OpenBLAS's threads. Handing each block from one thread pool to the other made
the two pools spin against each other: on 2 cores a step took 300 to 570 ms
where one thread took 300. So here each thread takes whole blocks: it runs the
serial numba kernels and the matrix products itself, with BLAS held to one
thread while the blocks run. numba's kernels (``nogil``) and numpy's matrix
products release the GIL, so the threads run in parallel.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

_state = threading.local()


def in_block_worker() -> bool:
    """True while the calling thread runs blocks: kernels it calls should run serially."""
    return getattr(_state, "active", False)


class BlockPool:
    """Runs ``work(worker, block)`` for every block, on as many threads as numba may use here.

    ``worker`` numbers the thread (0 is the caller), so that the work can keep
    buffers (and partial sums) per thread. Worker ``w`` of ``n`` takes blocks
    ``w, w + n, w + 2n, ...`` in order: a fixed split rather than first come,
    first served, so that what a worker sums (a convolution's weight gradient)
    comes out bit for bit the same in every run, as resuming from a
    checkpoint needs. The blocks of one operation are of equal size.

    Example:
        >>> pool = BlockPool()
        >>> seen = []
        >>> pool.run(lambda worker, block: seen.append(block), 5)
        >>> sorted(seen)
        [0, 1, 2, 3, 4]
    """

    def __init__(self):
        self._executor: Optional[ThreadPoolExecutor] = None
        self._executor_threads = 0
        self._blas = None
        # One operation at a time: BLAS's thread count is global to the process.
        self._busy = threading.Lock()
        self._pid = os.getpid()

    def workers(self, blocks: int) -> int:
        """How many threads :meth:`run` would use for ``blocks`` blocks from this thread."""
        import numba
        if blocks < 2 or in_block_worker():
            return 1
        # numba's thread count is per thread: a MultiWorker worker's share is 1,
        # so it runs its blocks itself and the workers stay one per core.
        return max(1, min(blocks, numba.get_num_threads()))

    def run(self, work: Callable[[int, int], None], blocks: int, workers: Optional[int] = None) -> None:
        workers = self.workers(blocks) if workers is None else workers
        if os.getpid() != self._pid:
            # A forked child inherits this object but none of its threads (nor a lock that another thread may
            # have held): start afresh rather than wait for threads that do not exist here.
            self.__init__()
        if workers <= 1 or not self._busy.acquire(blocking=False):
            self._run_serially(work, blocks, workers)
            return
        try:
            executor = self._executor_for(workers - 1)
            with self.single_threaded_blas():
                futures = [executor.submit(self._loop, work, blocks, worker, workers)
                           for worker in range(1, workers)]
                error = None
                try:
                    self._loop(work, blocks, 0, workers)
                except BaseException as exc:   # wait for the others before raising
                    error = exc
                for future in futures:
                    try:
                        future.result()
                    except BaseException as exc:
                        error = error or exc
                if error is not None:
                    raise error
        finally:
            self._busy.release()

    @staticmethod
    def _run_serially(work, blocks: int, workers: int) -> None:
        # ``workers`` > 1 here only when another operation holds the pool: this
        # thread then does every block itself, each as the worker it would have
        # gone to, so that per-worker sums are the same as in parallel.
        for block in range(blocks):
            work(block % max(workers, 1), block)

    @staticmethod
    def _loop(work, blocks: int, worker: int, workers: int) -> None:
        previous = in_block_worker()
        _state.active = True
        try:
            for block in range(worker, blocks, workers):
                work(worker, block)
        finally:
            _state.active = previous

    def _executor_for(self, threads: int) -> ThreadPoolExecutor:
        if self._executor is None or self._executor_threads < threads:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sigma-blocks")
            self._executor_threads = threads
        return self._executor

    @contextlib.contextmanager
    def single_threaded_blas(self):
        """A context in which BLAS runs on one thread (the thread count it had is restored after).

        Example:
            >>> import numpy as np
            >>> with BlockPool().single_threaded_blas():
            ...     product = np.ones((64, 64)) @ np.ones((64, 64))
        """
        # threadpoolctl finds the BLAS libraries once; setting and restoring their thread count directly then
        # costs a few microseconds, which matters for the matrix products of small layers.
        if self._blas is None:
            from threadpoolctl import ThreadpoolController
            self._blas = ThreadpoolController().select(user_api="blas").lib_controllers
        previous = [library.get_num_threads() for library in self._blas]
        for library, threads in zip(self._blas, previous):
            if threads != 1:
                library.set_num_threads(1)
        try:
            yield
        finally:
            for library, threads in zip(self._blas, previous):
                if threads != 1:
                    library.set_num_threads(threads)
