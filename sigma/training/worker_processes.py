"""Worker processes for ``MultiWorker(n, processes=True)``: workers 1..n-1, each in its own process.

Worker 0 stays in the trainer's process (what hooks and checkpoints see);
the others are started from a clean ``forkserver`` process (forking the
trainer itself is unsafe once numba's OpenMP threads have run) and get the
network, loss and optimiser by pickle. Their shards reach them through
shared memory, their gradients are summed through shared memory (see
:mod:`sigma.distributed.shared_memory`), and with gradient all-reduce the
parameters themselves live in shared memory: worker 0 updates them in
place and every worker sees the update without a copy.

Each command to a worker process gets exactly one reply: ``("done",)``,
``("aborted", why)`` (another worker failed) or ``("error", exception,
traceback)``.

Example:
    >>> import sigma, sigma.optim
    >>> from sigma import nn
    >>> from sigma.training.multiworker import MultiWorker
    >>> network = nn.Linear(3, 2)
    >>> operator = MultiWorker(2, processes=True)
    >>> operator.setup(network, nn.CrossEntropyLoss(), sigma.optim.SGD(network.parameters(), lr=0.1))
    >>> operator.train_step({"inputs": sigma.randn(6, 3), "targets": sigma.tensor([0, 1, 1, 0, 1, 0])})["batch_size"]
    6
    >>> operator.teardown()
"""
from __future__ import annotations

import multiprocessing
import pickle
import traceback
from multiprocessing import connection as _connection
from typing import Any, List, Optional, Tuple

import numpy as np

from sigma.distributed import CommunicationError
from sigma.distributed.shared_memory import SharedMemoryCommunicator, SharedMemoryGroup, SharedRegion
from sigma.tensor import Tensor

# Seconds a worker process gets to start (import Sigma, unpickle the network) and to stop.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0


def _context():
    context = multiprocessing.get_context("forkserver")
    # The server imports Sigma once; every worker process forked from it then starts in milliseconds.
    context.set_forkserver_preload(["sigma", "backends.cpu"])
    return context


class ShardChannel:
    """The leader's side of the shared memory that carries one worker process's shard of each batch.

    Arrays (and tensors' arrays) are copied into the memory; anything else in
    the batch travels pickled in the message. The memory grows (a new region,
    sent to the worker) when a shard does not fit.
    """

    def __init__(self, link):
        self.link = link
        self.region: Optional[SharedRegion] = None
        self.generation = 0

    def write(self, shard: Any) -> tuple:
        """Copy ``shard`` into the memory; returns the description :func:`read_shard` rebuilds it from."""
        items = list(shard.items()) if isinstance(shard, dict) else list(enumerate(shard))
        arrays, offset, layout = [], 0, []
        for key, value in items:
            array = value.data if isinstance(value, Tensor) else value
            if isinstance(array, np.ndarray):
                offset = -(-offset // 64) * 64  # aligned, as numpy's own arrays are
                layout.append((key, "tensor" if isinstance(value, Tensor) else "array", array.dtype.str,
                               array.shape, offset))
                arrays.append((array, offset))
                offset += array.nbytes
            else:
                layout.append((key, "value", value, None, None))
        if self.region is None or offset > self.region.size:
            self.region = SharedRegion(max(offset, 1 << 20, 2 * (self.region.size if self.region else 0)))
            self.generation += 1
            self.link.send(("region", self.generation, self.region.size))
            self.region.send(self.link)
            self.region.close_descriptor()
        for array, start in arrays:
            view = self.region.array(array.dtype, array.size, start)
            np.copyto(view.reshape(array.shape), array)
        return ("dict" if isinstance(shard, dict) else type(shard).__name__, self.generation, layout)


def read_shard(description: tuple, region: SharedRegion, backend) -> Any:
    """The shard :meth:`ShardChannel.write` described, as views of the shared memory."""
    kind, _, layout = description
    values = []
    for key, how, dtype_or_value, shape, offset in layout:
        if how == "value":
            values.append((key, dtype_or_value))
            continue
        dtype = np.dtype(dtype_or_value)
        array = region.array(dtype, int(np.prod(shape, dtype=np.int64)), offset).reshape(shape)
        values.append((key, Tensor(array, device=backend) if how == "tensor" else array))
    if kind == "dict":
        return dict(values)
    rebuilt = [value for _, value in values]
    return tuple(rebuilt) if kind == "tuple" else rebuilt


class WorkerProcesses:
    """Workers ``1..count-1`` of a :class:`MultiWorker`, each in a process of its own.

    ``shared_parameters``: put worker 0's parameters in shared memory for every
    worker to read (gradient all-reduce, where worker 0 alone updates them);
    with model averaging every worker keeps its own.
    """

    def __init__(self, count: int, primary, flat_size: int, dtype: Any, shared_parameters: bool,
                 timeout: Optional[float]):
        self.count = count
        self.timeout = timeout
        self.group = SharedMemoryGroup(count, flat_size, dtype, timeout=timeout)
        self.communicator = self.group.communicators[0]
        self.parameters = list(primary.network.parameters())
        self.parameter_views: List[np.ndarray] = []
        self.parameter_region: Optional[SharedRegion] = None
        try:
            payload = pickle.dumps((primary.network, primary.loss, primary.optimiser, primary.gradient_clip),
                                   protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:
            self.group.close()
            raise TypeError(f"MultiWorker(processes=True) sends the network, loss and optimiser to its worker "
                            f"processes with pickle, and they cannot be pickled ({type(error).__name__}: {error}); "
                            "define their classes at the top level of a module, or use processes=False") from error
        if shared_parameters:
            self._share_parameters()
        context = _context()
        self.links, self.processes, self.channels = [None], [None], [None]
        try:
            for rank in range(1, count):
                ours, theirs = context.Pipe(duplex=True)
                process = context.Process(
                    target=_worker_process_main, name=f"sigma-worker-{rank}", daemon=True,
                    args=(rank, count, payload, flat_size, np.dtype(dtype).str, timeout, theirs,
                          self.group.member_link(rank),
                          None if self.parameter_region is None else self.parameter_region.size,
                          [(view.dtype.str, view.size, offset) for view, offset in self._parameter_layout()]))
                process.start()
                theirs.close()
                self.links.append(ours)
                self.processes.append(process)
                self.channels.append(ShardChannel(ours))
                self.group.watch(rank, process)
                self.group.send_region(rank)
                if self.parameter_region is not None:
                    self.parameter_region.send(ours)
            for rank in range(1, count):
                try:
                    self._reply(rank, START_TIMEOUT, raise_errors=True)
                except CommunicationError as error:
                    raise CommunicationError(
                        f"{error} while starting. Worker processes import the main script as multiprocessing's "
                        "'forkserver' does: a script that starts training at its top level must do so under "
                        "`if __name__ == \"__main__\":` (its error is printed above)") from None
        except BaseException:
            self.close()
            raise
        if self.parameter_region is not None:
            self.parameter_region.close_descriptor()

    # Parameters in shared memory --------------------------------------------------------------------------

    def _parameter_layout(self) -> List[Tuple[np.ndarray, int]]:
        layout, offset = [], 0
        for view in self.parameter_views:
            layout.append((view, offset))
            offset += -(-view.nbytes // 64) * 64
        return layout

    def _share_parameters(self) -> None:
        sizes = [-(-p.data.nbytes // 64) * 64 for p in self.parameters]
        self.parameter_region = SharedRegion(sum(sizes))
        offset = 0
        for parameter, size in zip(self.parameters, sizes):
            view = self.parameter_region.array(parameter.data.dtype, parameter.data.size, offset)
            view = view.reshape(parameter.data.shape)
            view[...] = parameter.data
            parameter.data = view
            self.parameter_views.append(view)
            offset += size

    def sync_parameters(self) -> None:
        """Put back in shared memory any parameter whose array was replaced (a ``load_state_dict`` that
        assigns new arrays, an optimiser that does not update in place): the other workers read only
        the shared arrays."""
        for parameter, view in zip(self.parameters, self.parameter_views):
            if parameter.data is not view:
                if parameter.data.shape != view.shape:
                    raise ValueError(f"MultiWorker: a parameter changed shape from {view.shape} to "
                                     f"{parameter.data.shape} during training")
                view[...] = parameter.data
                parameter.data = view

    def unshare_parameters(self) -> None:
        """Give worker 0's parameters private arrays again (after the worker processes have stopped)."""
        for parameter, view in zip(self.parameters, self.parameter_views):
            if parameter.data is view:
                parameter.data = view.copy()
        self.parameter_views = []

    # Commands ---------------------------------------------------------------------------------------------

    def send(self, rank: int, message: tuple) -> None:
        try:
            self.links[rank].send(message)
        except (OSError, EOFError) as error:
            raise self._unreachable(rank, error) from None

    def send_shard(self, rank: int, kind: str, shard: Any, *rest: Any) -> None:
        try:
            description = self.channels[rank].write(shard)
        except (OSError, EOFError) as error:
            raise self._unreachable(rank, error) from None
        self.send(rank, (kind, description) + rest)

    def _unreachable(self, rank: int, error: BaseException) -> CommunicationError:
        process = self.processes[rank]
        process.join(1.0)
        if process.exitcode is not None:
            return CommunicationError(f"worker {rank} (process {process.pid}) died with exit code {process.exitcode}")
        return CommunicationError(f"worker {rank} (process {process.pid}) cannot be reached: {error}")

    def _reply(self, rank: int, timeout: Optional[float], raise_errors: bool = False) -> tuple:
        link, process = self.links[rank], self.processes[rank]
        if not _connection.wait([link, process.sentinel], timeout):
            raise CommunicationError(f"worker {rank} (process {process.pid}) did not answer in {timeout} s")
        try:
            reply = link.recv()
        except (EOFError, OSError):
            process.join(1.0)
            raise CommunicationError(f"worker {rank} (process {process.pid}) died with exit code "
                                     f"{process.exitcode}") from None
        if raise_errors and reply[0] == "error":
            raise _remote_error(rank, reply)
        return reply

    def collect(self, first_error: Optional[BaseException] = None) -> None:
        """Wait for every worker process's reply to the current command; raise the first real failure
        (``first_error``, worker 0's own, counts first), after making the group usable again."""
        errors: List[BaseException] = [] if first_error is None else [first_error]
        for rank in range(1, self.count):
            try:
                reply = self._reply(rank, self.timeout)
            except CommunicationError as error:
                errors.append(error)
                continue
            if reply[0] == "error":
                errors.append(_remote_error(rank, reply))
            elif reply[0] == "aborted":
                errors.append(CommunicationError(reply[1]))
        if errors:
            self.reset()
            real = [error for error in errors if not isinstance(error, CommunicationError)]
            raise (real or errors)[0]

    def run(self, message: tuple) -> None:
        """Send every worker process ``message`` and wait for their replies (no work for worker 0)."""
        for rank in range(1, self.count):
            self.send(rank, message)
        self.collect()

    def reset(self) -> None:
        """After a failed step: drop leftover messages everywhere so the next step starts clean."""
        if any(not process.is_alive() for process in self.processes[1:]):
            return  # the group is broken for good; every later step fails with the same clear error
        self.communicator.drain()
        for rank in range(1, self.count):
            self.send(rank, ("reset",))
        for rank in range(1, self.count):
            self._reply(rank, self.timeout)

    def close(self) -> None:
        for rank in range(1, len(self.processes)):
            try:
                self.links[rank].send(("stop",))
            except (OSError, EOFError):
                pass
        for process in self.processes[1:]:
            process.join(STOP_TIMEOUT)
            if process.is_alive():
                process.terminate()
                process.join(STOP_TIMEOUT)
        for link in self.links[1:]:
            link.close()
        self.unshare_parameters()
        self.group.close()
        self.processes, self.links = [None], [None]


def _remote_error(rank: int, reply: tuple) -> BaseException:
    _, error, text = reply
    if not isinstance(error, BaseException):
        error = RuntimeError(str(error))
    error.add_note(f"(raised in worker {rank}'s process)\n{text}")
    return error


def _worker_process_main(rank: int, count: int, payload: bytes, flat_size: int, dtype: str,
                         timeout: Optional[float], link, group_link, parameter_bytes: Optional[int],
                         parameter_layout: List[Tuple[str, int, int]]) -> None:
    """A worker process: set up, say ready, then run commands until told to stop or the trainer goes."""
    import numba
    from threadpoolctl import threadpool_limits

    from sigma.training.data_parallel import (FlatBuffer, WorkerStreams, average_parameters, broadcast_parameters,
                                              gradient_step, local_step)
    from sigma.training.operators import Worker

    # One core's worth of threads: the other workers have the other cores.
    threadpool_limits(1, user_api="blas")
    numba.set_num_threads(max(1, numba.config.NUMBA_NUM_THREADS // count))
    try:
        communicator = SharedMemoryCommunicator.join(rank, count, flat_size, dtype, timeout, group_link)
        parameter_region = None if parameter_bytes is None else SharedRegion.receive(link, parameter_bytes)
        network, loss, optimiser, gradient_clip = pickle.loads(payload)
        worker = Worker(network, loss, optimiser, gradient_clip=gradient_clip)
        if parameter_region is not None:
            for parameter, (item_dtype, size, offset) in zip(network.parameters(), parameter_layout):
                parameter.data = parameter_region.array(item_dtype, size, offset).reshape(parameter.data.shape)
        flat = FlatBuffer(network, allocate=communicator.allocate)
        streams = WorkerStreams.install(worker.backend)
    except BaseException as error:
        _send_error(link, error)
        return
    link.send(("done",))
    shards: Optional[SharedRegion] = None
    while True:
        try:
            message = link.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return  # the trainer's process is gone
        kind = message[0]
        if kind == "stop":
            return
        if kind == "region":
            shards = SharedRegion.receive(link, message[2])
            continue
        try:
            if kind == "gradient_step":
                _, description, seed, total = message
                with streams.using(streams.seeded(seed)):
                    gradient_step(worker, read_shard(description, shards, worker.backend), communicator, flat,
                                  update=False, total=total)
            elif kind == "local_step":
                _, description, seed, due = message
                with streams.using(streams.seeded(seed)):
                    local_step(worker, read_shard(description, shards, worker.backend), communicator, flat)
                    if due:
                        average_parameters(communicator, flat)
            elif kind == "average":
                average_parameters(communicator, flat)
            elif kind == "broadcast":
                broadcast_parameters(communicator, flat)
            elif kind == "optimiser_state":
                worker.optimiser.load_state_dict(message[1])
            elif kind == "reset":
                communicator.drain()
            else:
                raise ValueError(f"worker process: unknown command {kind!r}")
            link.send(("done",))
        except CommunicationError as error:
            link.send(("aborted", str(error)))
        except BaseException as error:
            communicator.abort(f"worker {rank} failed with {type(error).__name__}: {error}")
            _send_error(link, error)


def _send_error(link, error: BaseException) -> None:
    text = traceback.format_exc()
    try:
        pickle.dumps(error)
    except Exception:
        error = RuntimeError(f"{type(error).__name__}: {error}")
    link.send(("error", error, text))
