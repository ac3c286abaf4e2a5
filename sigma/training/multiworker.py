"""``MultiWorker(n)``: several workers on one device, as threads of this process or as processes.

Threads (the default): numpy's matrix products release the GIL, so workers'
BLAS calls run at the same time, the parameters are shared without copying,
and nothing is pickled. Processes (``processes=True``, CPU only): workers
1..n-1 run in processes of their own, so nothing of theirs waits for the
interpreter lock; shards, gradients and parameters go through shared memory
(:mod:`sigma.training.worker_processes`). ``benchmarks/scaling.py``
compares them; see ``docs/scaling.md``.

Example:
    >>> import sigma, sigma.optim
    >>> from sigma import nn
    >>> from sigma.training.multiworker import MultiWorker
    >>> network = nn.Linear(3, 2)
    >>> operator = MultiWorker(2)
    >>> operator.setup(network, nn.CrossEntropyLoss(), sigma.optim.SGD(network.parameters(), lr=0.1))
    >>> report = operator.train_step({"inputs": sigma.randn(6, 3), "targets": sigma.tensor([0, 1, 1, 0, 1, 0])})
    >>> report["batch_size"], sorted(report)
    (6, ['batch_size', 'train/accuracy', 'train/loss'])
    >>> operator.teardown()
"""
from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from sigma.distributed import CommunicationError, LocalGroup
from sigma.training.data_parallel import (FlatBuffer, GradientAllReduce, ModelAveraging, WorkerStreams,
                                          apply_update, average_parameters, broadcast_parameters, gradient_step,
                                          local_step, merge_strategy, take_shard)
from sigma.training.operators import Operator, Worker, split_batch
from sigma.training.worker_processes import WorkerProcesses


class MultiWorker(Operator):
    """``workers`` replicas of the model in threads of this process; each step splits the batch among them.

    Args:
        workers: how many workers (threads); the batch is cut into this many contiguous shards.
        merge: ``"all_reduce"`` (default: gradients summed over the shards, then one update: the
            same result as one worker on the whole batch), ``"average"`` (each worker updates on its
            own; parameters averaged at every epoch end) or ``ModelAveraging(every=n)`` (every ``n``
            iterations).
        timeout: seconds a worker waits for the others before the step fails.
        processes: run workers 1..n-1 in processes of their own instead of threads (CPU backend only;
            the network, loss and optimiser must pickle).

    Worker 0 is the trainer's own network and optimiser (what hooks and
    checkpoints see). With all-reduce the other workers share its parameter
    arrays and only worker 0 updates them; with averaging each worker has
    its own copy and optimiser. Each worker draws random numbers (dropout)
    from its own stream, seeded each step from the backend's stream.
    """

    def __init__(self, workers: int = 2, merge: Union[str, GradientAllReduce, ModelAveraging] = "all_reduce",
                 timeout: Optional[float] = 600.0, processes: bool = False):
        if not (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1):
            raise ValueError(f"MultiWorker: workers must be a whole number >= 1, got {workers!r}")
        self.count = workers
        self.merge = merge_strategy(merge)
        self.timeout = timeout
        self.processes = bool(processes)
        self.helpers: Optional[WorkerProcesses] = None
        self.workers: List[Worker] = []
        self.since_average = 0
        self._pool: Optional[ThreadPoolExecutor] = None

    def setup(self, network, loss: Callable, optimiser, backend=None,
              gradient_clip: Optional[float] = None) -> None:
        primary = Worker(network, loss, optimiser, backend, gradient_clip)
        if primary.forward_only and isinstance(self.merge, GradientAllReduce):
            raise ValueError(f"MultiWorker: {type(optimiser).__name__} is forward-only and makes no gradients to "
                             "all-reduce; use merge='average' (or ModelAveraging(every=n))")
        if self.processes:
            self._setup_processes(primary)
            return
        self.workers = [primary]
        for _ in range(self.count - 1):
            replica_network, replica_optimiser = copy.deepcopy((network, optimiser))
            self.workers.append(Worker(replica_network, loss, replica_optimiser, primary.backend, gradient_clip))
        self.group = LocalGroup(self.count, timeout=self.timeout)
        self.communicators = self.group.communicators
        self.flats = [FlatBuffer(worker.network) for worker in self.workers]
        self.since_average = 0

    def _setup_processes(self, primary: Worker) -> None:
        if primary.backend.kind != "cpu":
            raise ValueError(f"MultiWorker(processes=True) runs on the CPU backend; this network is on "
                             f"{primary.backend.name!r} (use MultiGPU for several GPUs)")
        if self.helpers is not None:  # set up again: the old worker processes go first
            self.helpers.close()
            self.helpers = None
        self.workers = [primary]
        self._start_processes()

    def _start_processes(self) -> None:
        """Start workers 1..n-1 from worker 0 as it is now (at setup, and again at the first step after a
        teardown: a trainer tears its operator down at the end of every ``run``)."""
        primary = self.workers[0]
        layout = FlatBuffer(primary.network)
        self.helpers = WorkerProcesses(self.count, primary, layout.array.size, layout.array.dtype,
                                       shared_parameters=isinstance(self.merge, GradientAllReduce),
                                       timeout=self.timeout)
        self.communicators = [self.helpers.communicator]
        self.flats = [FlatBuffer(primary.network, allocate=self.helpers.communicator.allocate)]
        self.since_average = 0

    def _share_parameters(self, index: int) -> None:
        # Re-pointed every step: cheap, and right even if the optimiser replaced an array.
        for mine, primary in zip(self.flats[index].parameters, self.flats[0].parameters):
            mine.data = primary.data

    def _run_all(self, task: Callable[[int], Any]) -> List[Any]:
        """``task(index)`` for every worker at once (worker 0 in this thread); the first real error wins."""
        if self._pool is None and self.count > 1:
            self._pool = ThreadPoolExecutor(self.count - 1, thread_name_prefix="sigma-worker")

        def guarded(index: int) -> Any:
            try:
                with self.workers[index].backend.share_threads(self.count):
                    return task(index)
            except CommunicationError:
                raise
            except BaseException as error:
                self.group.abort(f"worker {index} failed with {type(error).__name__}: {error}")
                raise

        futures = [self._pool.submit(guarded, index) for index in range(1, self.count)]
        results, errors = [None] * self.count, []
        try:
            results[0] = guarded(0)
        except BaseException as error:
            errors.append(error)
        for index, future in enumerate(futures, start=1):
            try:
                results[index] = future.result()
            except BaseException as error:
                errors.append(error)
        if errors:
            self.group.reset()
            real = [error for error in errors if not isinstance(error, CommunicationError)]
            raise (real or errors)[0]
        return results

    def _step_streams(self) -> List[Tuple[WorkerStreams, Any]]:
        """Per worker: the ``WorkerStreams`` installed on its backend, and its own stream for this step."""
        streams = WorkerStreams.install(self.workers[0].backend)
        return [(streams, stream) for stream in streams.for_step(self.count)]

    def _gradient_step(self, index: int, shard: Any, total: int) -> Dict[str, Any]:
        """Worker ``index``'s part of an all-reduce step on a batch of ``total`` samples: the workers share
        worker 0's parameter arrays, and worker 0 alone updates them, in :meth:`_update`."""
        if index > 0:
            self._share_parameters(index)
        return gradient_step(self.workers[index], shard, self.communicators[index], self.flats[index],
                             update=index == 0, defer_update=True, total=total)

    def _update(self) -> None:
        """Apply worker 0's summed gradients, once every worker's thread is done with the step: the
        optimiser's kernels then have all of numba's threads, not one worker's share (Adam on the large
        MLP: 0.67 ms on one thread, 0.42 ms on two), while the other workers would only have waited."""
        apply_update(self.workers[0])

    def _worker_part(self, index: int, batch: Any, step_streams, average: bool, due: bool, total: int
                     ) -> Dict[str, Any]:
        """Worker ``index``'s part of a step, on its shard of ``batch``, drawing from its own stream."""
        shard = take_shard(batch, index, self.count)
        streams, stream = step_streams[index]
        with streams.using(stream):
            if not average:
                return self._gradient_step(index, shard, total)
            report = local_step(self.workers[index], shard, self.communicators[index], self.flats[index])
            if due:
                average_parameters(self.communicators[index], self.flats[index])
            return report

    def _train_step_processes(self, batch: Any, step_streams, average: bool, due: bool, total: int
                              ) -> Dict[str, Any]:
        """Shards to the worker processes, worker 0's part here, then the update here: with all-reduce the
        parameters are shared memory, so the worker processes see it without a copy."""
        helpers = self.helpers
        if not average:
            helpers.sync_parameters()
        try:
            for index in range(1, self.count):
                seed = step_streams[index][1].seed
                if average:
                    helpers.send_shard(index, "local_step", take_shard(batch, index, self.count), seed, due)
                else:
                    helpers.send_shard(index, "gradient_step", take_shard(batch, index, self.count), seed, total)
        except CommunicationError as error:
            self.communicators[0].abort(str(error))  # the workers that got their shard stop waiting for this one
            raise
        backend = self.workers[0].backend
        report, failure = None, None
        try:
            with backend.share_threads(self.count), backend.block_pool.single_threaded_blas():
                report = self._worker_part(0, batch, step_streams, average, due, total)
        except BaseException as error:
            if not isinstance(error, CommunicationError):
                self.communicators[0].abort(f"worker 0 failed with {type(error).__name__}: {error}")
            failure = error
        helpers.collect(failure)
        if not average:
            self._update()
        return report

    def train_step(self, batch: Any) -> Dict[str, Any]:
        step_streams = self._step_streams()
        average = isinstance(self.merge, ModelAveraging)
        self.since_average += 1
        due = average and self.merge.due(self.since_average)

        total = len(split_batch(batch)[0])
        if self.processes:
            if self.helpers is None:
                self._start_processes()
            report = self._train_step_processes(batch, step_streams, average, due, total)
            if due:
                self.since_average = 0
            return report

        report = self._run_all(lambda index: self._worker_part(index, batch, step_streams, average, due, total))[0]
        if not average:
            self._update()
        if due:
            self.since_average = 0
        return report

    def average(self) -> None:
        """Average the workers' parameters now (model averaging; nothing to do with all-reduce)."""
        if isinstance(self.merge, ModelAveraging) and self.count > 1 and self.processes:
            if self.helpers is None:  # stopped at a teardown, which averaged first
                return
            self._with_helpers(("average",), lambda: average_parameters(self.communicators[0], self.flats[0]))
        elif isinstance(self.merge, ModelAveraging) and self.count > 1:
            self._run_all(lambda index: average_parameters(self.communicators[index], self.flats[index]))
        self.since_average = 0

    def _with_helpers(self, message: tuple, own_part: Callable[[], Any]) -> None:
        """Send the worker processes ``message`` and do worker 0's part of it here, at the same time."""
        for index in range(1, self.count):
            self.helpers.send(index, message)
        failure = None
        try:
            own_part()
        except BaseException as error:
            failure = error
        self.helpers.collect(failure)

    def end_epoch(self) -> None:
        if isinstance(self.merge, ModelAveraging) and self.merge.every == "epoch":
            self.average()

    def teardown(self) -> None:
        if isinstance(self.merge, ModelAveraging) and self.since_average and self.workers:
            self.average()  # the trainer's network (worker 0) ends as the average
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self.helpers is not None:
            self.helpers.close()
            self.helpers = None
        if self.workers:
            WorkerStreams.uninstall(self.workers[0].backend)

    def state_dict(self) -> Dict[str, Any]:
        return {"workers": self.count, "merge": repr(self.merge), "since_average": self.since_average}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        # Restored weights are worker 0's; the others start from them, wherever the checkpoint came from.
        self.since_average = 0
        if self.processes:
            if self.helpers is None:
                return  # started from worker 0's restored state at the next step
            # Worker 0's restored values (parameters and floating buffers) to every worker process.
            self.helpers.sync_parameters()
            self._with_helpers(("broadcast",), lambda: broadcast_parameters(self.communicators[0], self.flats[0]))
            if not isinstance(self.merge, GradientAllReduce):
                self.helpers.run(("optimiser_state", self.workers[0].optimiser.state_dict()))
            return
        for flat in self.flats[1:]:
            for mine, primary in zip(flat.parameters + flat.buffers, self.flats[0].parameters + self.flats[0].buffers):
                mine.data[...] = primary.data
        if not isinstance(self.merge, GradientAllReduce):
            for worker in self.workers[1:]:
                worker.optimiser.load_state_dict(self.workers[0].optimiser.state_dict())

    def describe(self) -> str:
        return f"MultiWorker({self.count}, merge={self.merge!r}{', processes=True' if self.processes else ''})"
