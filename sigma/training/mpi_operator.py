"""``MPI``: data-parallel training with one worker per MPI rank (mpi4py), on one machine or many.

Every rank runs the same script (``mpirun -n 4 python train.py``), builds
the same trainer and iterates the same (seeded) training batches; each
rank trains on its contiguous shard of every batch, so the dataset is
split among the ranks by the iterator's seeded permutation, differently
every epoch. Gradients are packed into one flat buffer per step and
all-reduced; every rank applies the same update, so the parameters stay
identical. Rank 0 alone shows the progress bar, writes checkpoints, logs
and the run directory (the trainer asks :attr:`MPI.writes_output`); the
hooks that decide things (evaluation, early stopping, schedules) run on
every rank, so every rank decides alike.

Example (a group of one, so that it runs without ``mpirun``; under ``mpirun`` write ``MPI()``, which
uses ``MPI.COMM_WORLD``):
    >>> import sigma, sigma.optim
    >>> from sigma import nn
    >>> from sigma.distributed import SingleProcess
    >>> from sigma.training.operators import MPI
    >>> network = nn.Linear(3, 2)
    >>> operator = MPI(communicator=SingleProcess(), abort_on_error=False)
    >>> operator.setup(network, nn.CrossEntropyLoss(), sigma.optim.SGD(network.parameters(), lr=0.1))
    >>> report = operator.train_step({"inputs": sigma.randn(4, 3), "targets": sigma.tensor([0, 1, 1, 0])})
    >>> report["batch_size"], operator.writes_output, operator.describe()
    (4, True, 'MPI(ranks=1, merge=GradientAllReduce())')
    >>> operator.teardown()
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from sigma.distributed import Communicator, MPICommunicator, abort_on_uncaught_exception
from sigma.training.data_parallel import (FlatBuffer, GradientAllReduce, ModelAveraging, WorkerStreams,
                                          average_parameters, broadcast_parameters, gradient_step, local_step,
                                          merge_strategy, take_shard)
from sigma.training.operators import Operator, Worker


class MPI(Operator):
    """One worker on this rank; the ranks of ``communicator`` (``MPI.COMM_WORLD`` by default) train together.

    Args:
        merge: ``"all_reduce"`` (default), ``"average"`` or ``ModelAveraging(every=n)``, as for
            :class:`~sigma.training.multiworker.MultiWorker`.
        communicator: a :class:`sigma.distributed.Communicator` (an ``MPICommunicator`` unless given;
            an ``NCCLCommunicator`` for GPUs).
        abort_on_error: make an uncaught exception on any rank abort the whole job (``MPI_Abort``)
            instead of leaving the other ranks waiting for ever.

    At setup rank 0's initial parameters are broadcast, so the ranks start
    equal whatever their seeds. Each rank draws random numbers (dropout)
    from its own stream, seeded each step from the backend's stream.
    """

    def __init__(self, merge: Union[str, GradientAllReduce, ModelAveraging] = "all_reduce",
                 communicator: Optional[Communicator] = None, abort_on_error: bool = True):
        self.merge = merge_strategy(merge)
        self.communicator = communicator
        self.abort_on_error = abort_on_error
        self.workers = []
        self.since_average = 0

    @property
    def rank(self) -> int:
        return self.communicator.rank

    @property
    def size(self) -> int:
        return self.communicator.size

    @property
    def writes_output(self) -> bool:
        return self.communicator is None or self.communicator.rank == 0

    def setup(self, network, loss: Callable, optimiser, backend=None,
              gradient_clip: Optional[float] = None) -> None:
        if self.communicator is None:
            self.communicator = MPICommunicator()
        if self.abort_on_error:
            abort_on_uncaught_exception(self.communicator)
        worker = Worker(network, loss, optimiser, backend, gradient_clip)
        if worker.forward_only and isinstance(self.merge, GradientAllReduce):
            raise ValueError(f"MPI: {type(optimiser).__name__} is forward-only and makes no gradients to "
                             "all-reduce; use merge='average' (or ModelAveraging(every=n))")
        self.workers = [worker]
        self.flat = FlatBuffer(network)
        broadcast_parameters(self.communicator, self.flat)
        self.since_average = 0

    def train_step(self, batch: Any) -> Dict[str, Any]:
        worker = self.workers[0]
        streams = WorkerStreams.install(worker.backend)
        stream = streams.for_step(self.size)[self.rank]
        shard = take_shard(batch, self.rank, self.size)
        with streams.using(stream):
            if isinstance(self.merge, GradientAllReduce):
                return gradient_step(worker, shard, self.communicator, self.flat, update=True)
            report = local_step(worker, shard, self.communicator, self.flat)
        self.since_average += 1
        if self.merge.due(self.since_average):
            self.average()
        return report

    def average(self) -> None:
        """Average the ranks' parameters now (model averaging; nothing to do with all-reduce)."""
        if isinstance(self.merge, ModelAveraging) and self.size > 1:
            average_parameters(self.communicator, self.flat)
        self.since_average = 0

    def end_epoch(self) -> None:
        if isinstance(self.merge, ModelAveraging) and self.merge.every == "epoch":
            self.average()

    def teardown(self) -> None:
        if isinstance(self.merge, ModelAveraging) and self.since_average:
            self.average()
        if self.workers:
            WorkerStreams.uninstall(self.workers[0].backend)

    def share_commands(self, command_round: Tuple[Optional[str], List[Any]]) -> Tuple[Optional[str], List[Any]]:
        """Rank 0's commands and stop reason, on every rank: commands (from a GUI or ``sigma gui``) reach
        rank 0 only, and a rank that paused or stopped alone would leave the others waiting in the next
        all-reduce. A few hundred bytes per step (one ``allgather``)."""
        if self.communicator is None or self.size == 1:
            return command_round
        return self.communicator.all_gather(command_round)[0]

    def state_dict(self) -> Dict[str, Any]:
        return {"ranks": self.size, "merge": repr(self.merge)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        # Every rank restores the same file, so the ranks are equal again; a restore is a sync point.
        self.since_average = 0

    def describe(self) -> str:
        size = "?" if self.communicator is None else self.size
        return f"MPI(ranks={size}, merge={self.merge!r})"
