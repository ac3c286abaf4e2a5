"""MultiWorker(processes=True): the same numbers as threads and as Inline, and clear
errors when a worker process fails, dies or cannot be given the model."""
import os
import signal
import time

import numpy as np
import pytest

import sigma
import sigma.optim
from sigma import nn
from sigma.distributed import CommunicationError
from sigma.training.data_parallel import ModelAveraging
from sigma.training.operators import Inline, MultiWorker

from distributed_helpers import assert_close, make_trainer


def parameters(trainer):
    return {name: tensor.numpy().copy() for name, tensor in trainer.network.state_dict().items()}


class ExplodesOnceInAWorkerProcess(nn.Module):
    """Identity, except that its first call in a worker process raises (at the top level: it must pickle)."""

    def __init__(self):
        super().__init__()
        self.home = os.getpid()
        self.calls = 0

    def forward(self, x):
        if os.getpid() != self.home:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("replica exploded")
        return x


@pytest.mark.parametrize("workers,batch_size", [(2, 32), (3, 7)])
def test_all_reduce_in_processes_equals_inline_on_the_whole_batch(workers, batch_size):
    # Batches of 7 end with 1 sample: for 3 workers, two empty shards.
    inline = make_trainer(Inline(), batch_size=batch_size)
    inline_result = inline.run(epochs=2)
    parallel = make_trainer(MultiWorker(workers, processes=True), batch_size=batch_size)
    parallel_result = parallel.run(epochs=2)
    assert_close(parameters(inline), parameters(parallel))
    assert parallel_result.metrics["train/loss"] == pytest.approx(inline_result.metrics["train/loss"], rel=1e-4)
    assert parallel_result.metrics["train/accuracy"] == pytest.approx(inline_result.metrics["train/accuracy"])
    assert parallel.samples_seen == inline.samples_seen == 240
    assert not np.allclose(parameters(inline)["0.weight"], make_trainer(Inline()).network[0].weight.numpy())


@pytest.mark.parametrize("merge", ["all_reduce", ModelAveraging(every=3)])
def test_processes_give_the_same_bits_as_threads(merge):
    # Dropout draws from each worker's own stream and batch normalisation's running statistics are merged:
    # both must come out the same wherever the workers run.
    threads = make_trainer(MultiWorker(2, merge=merge), dropout=0.3, batch_norm=True)
    threads.run(iterations=7)
    processes = make_trainer(MultiWorker(2, merge=merge, processes=True), dropout=0.3, batch_norm=True)
    processes.run(iterations=7)
    assert_close(parameters(threads), parameters(processes), tolerance=0)
    assert np.abs(parameters(processes)["1.running_mean"]).max() > 1e-3


def test_a_second_run_restarts_the_worker_processes_from_the_trainer_network():
    straight = make_trainer(Inline())
    straight.run(iterations=8)
    operator = MultiWorker(2, processes=True)
    trainer = make_trainer(operator)
    trainer.run(iterations=3)
    assert operator.helpers is None  # the run's end stopped them
    trainer.run(iterations=8)
    assert_close(parameters(straight), parameters(trainer))


def test_a_parameter_array_replaced_between_steps_reaches_the_worker_processes():
    def run(processes):
        trainer = make_trainer(MultiWorker(2, processes=processes))
        trainer.run(iterations=2)
        weight = trainer.network[0].weight
        weight.data = np.full_like(weight.data, 0.01)  # a new array, not the shared one
        trainer.run(iterations=2)
        return parameters(trainer)

    assert_close(run(False), run(True), tolerance=0)


def test_an_error_in_a_worker_process_ends_the_step_with_that_error():
    sigma.manual_seed(0)
    network = nn.Sequential(ExplodesOnceInAWorkerProcess(), nn.Linear(8, 3))
    operator = MultiWorker(2, processes=True)
    operator.setup(network, nn.CrossEntropyLoss(), sigma.optim.SGD(network.parameters(), lr=0.1))
    batch = {"inputs": sigma.ones(6, 8), "targets": sigma.tensor([0, 1, 2, 0, 1, 2])}
    try:
        with pytest.raises(RuntimeError, match="replica exploded") as raised:
            operator.train_step(batch)
        assert any("worker 1's process" in note for note in raised.value.__notes__)
        before = network[1].weight.numpy().copy()
        assert operator.train_step(batch)["batch_size"] == 6  # the group recovered
        assert not np.array_equal(before, network[1].weight.numpy())
    finally:
        operator.teardown()


def test_a_killed_worker_process_ends_the_step_with_a_clear_error_at_once():
    operator = MultiWorker(2, processes=True, timeout=600)
    trainer = make_trainer(operator)
    process = operator.helpers.processes[1]
    os.kill(process.pid, signal.SIGKILL)
    process.join(10)
    started = time.monotonic()
    with pytest.raises(CommunicationError, match=r"worker 1 \(process \d+\) (died with exit code -9|cannot be "
                                                 r"reached)"):
        trainer.run(iterations=2)
    assert time.monotonic() - started < 5
    assert trainer.run(iterations=2).iteration == 2  # a new run starts new worker processes


def test_a_network_that_cannot_be_pickled_is_refused_with_the_reason():
    class Local(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 2)

        def forward(self, x):
            return self.linear(x)

    network = Local()
    with pytest.raises(TypeError, match="cannot be pickled.*top level of a module, or use processes=False"):
        MultiWorker(2, processes=True).setup(network, nn.CrossEntropyLoss(),
                                             sigma.optim.SGD(network.parameters(), lr=0.1))
    assert isinstance(network.linear.weight.data.base, np.ndarray) or network.linear.weight.data.base is None


def test_processes_describe_themselves():
    assert MultiWorker(2, processes=True).describe() == "MultiWorker(2, merge=GradientAllReduce(), processes=True)"
