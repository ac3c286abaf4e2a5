"""``MultiGPU(devices)``: one worker per device, each with its own copy of the model, in threads of one process.

Each step cuts the batch into one contiguous shard per device; every
worker computes gradients on its shard, the gradients (one flat buffer per
worker) are summed across devices, and every worker applies the same
update to its own copy, so the copies stay identical, as MPI ranks do.
The sum runs GPU to GPU through NCCL when every device is a GPU and cupy
has NCCL; otherwise through host memory (:class:`~sigma.distributed.HostStaged`).
Worker 0 is the trainer's network, moved to ``devices[0]``: hooks and
checkpoints see it. Model averaging (``merge="average"`` or
``ModelAveraging(every=n)``) works as for :class:`MultiWorker`.

Devices may repeat and may be CPUs, which is how the tests run it here.

Example:
    >>> import sigma, sigma.optim
    >>> from sigma import nn
    >>> from sigma.training.multigpu import MultiGPU
    >>> network = nn.Linear(3, 2)
    >>> operator = MultiGPU(["cpu", "cpu"])   # ["cuda:0", "cuda:1"] on a machine with two GPUs
    >>> operator.setup(network, nn.CrossEntropyLoss(), sigma.optim.SGD(network.parameters(), lr=0.1))
    >>> report = operator.train_step({"inputs": sigma.randn(6, 3), "targets": sigma.tensor([0, 1, 1, 0, 1, 0])})
    >>> report["batch_size"], operator.describe(), operator.transport
    (6, "MultiGPU(['cpu', 'cpu'], merge=GradientAllReduce())", 'host')
    >>> operator.teardown()
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import backends
from sigma.distributed import HostStaged, LocalGroup, nccl_available
from sigma.training.data_parallel import (FlatBuffer, GradientAllReduce, ModelAveraging, WorkerStreams,
                                          broadcast_parameters, gradient_step)
from sigma.training.multiworker import MultiWorker
from sigma.training.operators import Worker


class MultiGPU(MultiWorker):
    """One worker per entry of ``devices`` (``"cuda:0"``, ``"cuda:1"``, ... or backends), in one process.

    Args:
        devices: where the workers run; at least one.
        merge: ``"all_reduce"`` (default: one update from the gradients of all shards, the same result as
            one worker on the whole batch), ``"average"`` or ``ModelAveraging(every=n)``.
        transport: ``"auto"`` (NCCL when every device is a GPU and cupy has NCCL, else host memory),
            ``"nccl"`` or ``"host"``.
        timeout: seconds a worker waits for the others before the step fails.
    """

    def __init__(self, devices: Sequence[Any], merge: Union[str, GradientAllReduce, ModelAveraging] = "all_reduce",
                 transport: str = "auto", timeout: Optional[float] = 600.0):
        if isinstance(devices, (str, bytes)) or not isinstance(devices, Sequence) or len(devices) == 0:
            raise ValueError(f"MultiGPU: devices must be a non-empty list such as ['cuda:0', 'cuda:1'], "
                             f"got {devices!r}")
        if transport not in ("auto", "nccl", "host"):
            raise ValueError(f"MultiGPU: transport must be 'auto', 'nccl' or 'host', got {transport!r}")
        super().__init__(len(devices), merge, timeout)
        self.devices = [backends.get(device) if isinstance(device, str) else device for device in devices]
        self.requested_transport = transport
        self.transport: Optional[str] = None

    def _choose_transport(self) -> str:
        all_gpus = all(device.name.startswith("cuda:") for device in self.devices)
        if self.requested_transport == "nccl":
            if not (all_gpus and nccl_available()):
                raise RuntimeError("MultiGPU(transport='nccl') needs every device to be a GPU and cupy built with "
                                   f"NCCL; devices: {[d.name for d in self.devices]}")
            return "nccl"
        if self.requested_transport == "auto" and all_gpus and nccl_available():
            return "nccl"
        return "host"

    def setup(self, network, loss: Callable, optimiser, backend=None,
              gradient_clip: Optional[float] = None) -> None:
        network.to(self.devices[0])
        primary = Worker(network, loss, optimiser, self.devices[0], gradient_clip)
        if primary.forward_only and isinstance(self.merge, GradientAllReduce):
            raise ValueError(f"MultiGPU: {type(optimiser).__name__} is forward-only and makes no gradients to "
                             "all-reduce; use merge='average' (or ModelAveraging(every=n))")
        self.workers = [primary]
        for device in self.devices[1:]:
            replica_network, replica_optimiser = copy.deepcopy((network, optimiser))
            replica_network.to(device)
            self.workers.append(Worker(replica_network, loss, replica_optimiser, device, gradient_clip))
        self.group = LocalGroup(self.count, timeout=self.timeout)
        self.transport = self._choose_transport()
        if self.transport == "nccl":
            from sigma.distributed import NCCLCommunicator
            # NCCL members must be created together: each in its own worker thread.
            self.communicators = self._run_all(
                lambda index: NCCLCommunicator(self.devices[index], bootstrap=self.group.communicators[index]))
        else:
            self.communicators = [HostStaged(member) for member in self.group.communicators]
        self.flats = [FlatBuffer(worker.network) for worker in self.workers]
        self.since_average = 0

    def _step_streams(self) -> List[Tuple[WorkerStreams, Any]]:
        # One seed drawn from worker 0's stream; each device's stream is its own backend's kind.
        base = int(WorkerStreams.install(self.workers[0].backend).shared.integers(0, 2 ** 62, (1,))[0])
        pairs = []
        for index, worker in enumerate(self.workers):
            streams = WorkerStreams.install(worker.backend)
            pairs.append((streams, streams.seeded(base + index)))
        return pairs

    def _update(self) -> None:
        """Nothing left to do: every copy took its own update inside its step."""

    def _gradient_step(self, index: int, shard: Any, total: int) -> Dict[str, Any]:
        # Every device updates its own copy with the same summed gradients.
        return gradient_step(self.workers[index], shard, self.communicators[index], self.flats[index], update=True,
                             total=total)

    def teardown(self) -> None:
        super().teardown()
        for worker in self.workers:
            WorkerStreams.uninstall(worker.backend)

    def state_dict(self) -> Dict[str, Any]:
        return {"devices": [device.name for device in self.devices], "merge": repr(self.merge),
                "since_average": self.since_average}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        # Restored weights are worker 0's; the other devices copy them (and its optimiser state).
        self.since_average = 0
        self._run_all(lambda index: broadcast_parameters(self.communicators[index], self.flats[index]))
        for worker in self.workers[1:]:
            worker.optimiser.load_state_dict(self.workers[0].optimiser.state_dict())

    def describe(self) -> str:
        return f"MultiGPU({[device.name for device in self.devices]!r}, merge={self.merge!r})"
