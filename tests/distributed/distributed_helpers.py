"""What the data-parallel operator tests share: a small blobs classification problem and its trainer."""
import numpy as np

import sigma
import sigma.data
import sigma.optim
from sigma import nn
from sigma.training import Trainer


def blobs(samples=120, features=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(classes, features))
    targets = rng.integers(0, classes, size=samples)
    inputs = centres[targets] + rng.normal(size=(samples, features))
    return sigma.data.InMemoryDataset(inputs=inputs.astype(np.float32), targets=targets.astype(np.int64))


def make_trainer(operator, *, batch_size=32, dropout=0.0, batch_norm=False, samples=120, **options):
    sigma.manual_seed(0)
    layers = [nn.Linear(8, 16)] + ([nn.BatchNorm1d(16)] if batch_norm else []) + \
        [nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3)]
    network = nn.Sequential(*layers)
    optimiser = sigma.optim.Adam(network.parameters(), lr=0.01)
    data = sigma.data.MinibatchIterator(blobs(samples), batch_size=batch_size, seed=1)
    return Trainer(network, nn.CrossEntropyLoss(), optimiser, data, operator=operator, **options)


def assert_close(first, second, tolerance=2e-5):
    assert first.keys() == second.keys() and first
    for name in first:
        np.testing.assert_allclose(first[name], second[name], rtol=tolerance, atol=tolerance, err_msg=name)


def shared_memory_member(rank, size, link, results, mismatch=False):
    """One member of a SharedMemoryGroup test (rank 0 in the test's process, the others in processes of their
    own): every collective once; sends what it saw to ``results``."""
    from sigma.distributed import CommunicationError
    from sigma.distributed.shared_memory import SharedMemoryCommunicator
    if rank > 0:
        communicator = SharedMemoryCommunicator.join(rank, size, 8, np.float64, 30.0, link)
    else:
        communicator = link
    seen = {}
    try:
        in_slot = communicator.allocate(5, np.float64)
        in_slot[:] = np.arange(5) + 10 * rank
        communicator.all_reduce(in_slot[:4] if mismatch and rank == size - 1 else in_slot, "sum")
        seen["sum"] = in_slot.copy()
        private = np.full(3, float(rank))
        communicator.all_reduce(private, "mean")
        seen["mean"] = private
        broadcast = np.full(4, float(rank))
        communicator.broadcast(broadcast, root=size - 1)
        seen["broadcast"] = broadcast
        seen["gathered"] = communicator.all_gather(rank * 2)
    except CommunicationError as error:
        seen["error"] = str(error)
    if rank == 0:
        return seen
    results.send(seen)
